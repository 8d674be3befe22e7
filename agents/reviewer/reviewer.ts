import { generationTag } from "../../bus/gates.js";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fromPromise } from "xstate";
import type { z } from "zod";
import { reviewerMachine } from "../../machines/reviewer.js";
import type { Job, JobResult, Review } from "../../bus/schemas.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { failure } from "../../bus/errors.js";
import { getArtifact, putArtifact, roundPrefix } from "../../bus/artifacts.js";
import { extractPdfText } from "../tools/pdfText.js";
import { figureImages, withImages } from "../llm/images.js";
import type { Task } from "../llm/task.js";
import type { ImagePart } from "../llm/types.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { ReviewExample, reflectOnReview, writeReview } from "./prompts.js";

const EXAMPLES_DIR = fileURLToPath(new URL("../../config/review_examples", import.meta.url));
let examples: Promise<ReviewExample[]> | undefined;

/** The worked examples shipped in config/review_examples/, in file-name order. */
export function reviewExamples(): Promise<ReviewExample[]> {
  examples ??= (async () =>
    Promise.all(
      (await readdir(EXAMPLES_DIR)).filter((f) => f.endsWith(".json")).sort().map(async (f) => ReviewExample.parse(JSON.parse(await readFile(join(EXAMPLES_DIR, f), "utf8")))),
    ))();
  return examples;
}

/** Papers read on this node lately: the reviewers of one ensemble that run here read each paper once. */
const papersRead = new Map<string, Promise<string>>();
const PAPERS_KEPT = 8;

/** The text of the paper at artifact `pdf` (a round's PDF is never replaced), extracted once per node. */
function paperText(pdf: string, extract: () => Promise<string>): Promise<string> {
  let text = papersRead.get(pdf);
  if (!text) {
    text = extract();
    papersRead.set(pdf, text);
    // A failed reading is not kept: the next reviewer tries again.
    text.catch(() => papersRead.delete(pdf));
    if (papersRead.size > PAPERS_KEPT) papersRead.delete(papersRead.keys().next().value!);
  }
  return text;
}

export async function review(job: Job<"review">, ctx: AgentContext): Promise<JobResult<"review">> {
  const persona = job.reviewer;
  // Personas and temperatures differ across the ensemble, so that K reviews are not K copies of one opinion.
  const opts = { signal: ctx.signal, ideaId: job.ideaId, temperature: Math.min(1, 0.1 + 0.2 * (job.reviewer % 5)) };
  const pdfText = () => paperText(job.pdf, async () => {
    const dir = join(ctx.workRoot, job.runId, `${job.ideaId}-review-${job.reviewer}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const pdf = join(dir, "paper.pdf");
    await writeFile(pdf, await getArtifact(ctx.bus, job.pdf));
    try {
      return await extractPdfText(pdf);
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  });
  // A model that sees images is shown the experiment's figures (kept under the idea's first prefix, whatever the
  // round), read once per job; any other model reviews the text alone.
  let figures: Promise<ImagePart[]> | undefined;
  const shown = () =>
    (figures ??= ctx.llm.seesImages && job.figures?.length
      ? figureImages(ctx.bus, job, job.figures, { log: ctx.log, signal: ctx.signal }).then(async (images) => {
          await ctx.progress(`reviewer ${job.reviewer} is shown ${images.length} of the paper's ${job.figures!.length} figures`, job.ideaId);
          return images;
        })
      : Promise.resolve([]));
  /** Asks with the figures attached to the paper's turn, their names in the data (and so in the prompt). */
  const askSeeing = async <D extends z.ZodObject, A extends z.ZodType>(task: Task<D, A>, data: Omit<z.infer<D>, "figures">): Promise<z.infer<A>> => {
    const images = await shown();
    const full = { ...data, ...(images.length ? { figures: images.map((i) => i.name) } : {}) } as z.infer<D>;
    return ctx.llm.ask({ task: task.name, messages: withImages(task.render(full), images), schema: task.answer, data: full, ...opts });
  };
  const machine = reviewerMachine.provide({
    actors: {
      readPaper: fromPromise(async () => {
        // A `.txt` artifact is a paper whose text was extracted already (the review benchmark's papers).
        const isText = job.pdf.endsWith(".txt");
        const text = isText ? new TextDecoder().decode(await getArtifact(ctx.bus, job.pdf)) : await pdfText();
        if (text.trim().length < 200) {
          const why = `the ${isText ? "text" : "PDF"} ${job.pdf} has almost no text`;
          throw new JobFailedError(why, failure("model", why, { hint: "a paper is reviewed from its extractable text: look at the paper's TeX" }));
        }
        await ctx.progress(`reviewer ${job.reviewer} is reading the paper (${text.length} characters)`, job.ideaId);
        return text;
      }),
      writeReview: fromPromise(async ({ input }: { input: { text: string } }) =>
        askSeeing(writeReview, { text: input.text, persona, examples: (await reviewExamples()).slice(0, ctx.config.fewShot) }),
      ),
      reflect: fromPromise(async ({ input }: { input: { text: string; review: Review; round: number } }) =>
        askSeeing(reflectOnReview, { ...input, persona, maxRounds: ctx.config.reviewReflections }),
      ),
    },
  });
  const actorId = `reviewer.${job.ideaId}${job.round ? `.r${job.round}` : ""}${generationTag(job)}.${job.reviewer}`;
  const out = await runMachine(machine, { maxReflections: ctx.config.reviewReflections }, ctx, { actorId, ideaId: job.ideaId, snapshot: await restoreFrom(ctx, actorId, reviewerMachine) });
  if (!out.review) throw new JobFailedError(`reviewer ${job.reviewer} could not review ${job.ideaId}: ${out.error!.message}`, out.error);
  // The reviewer keeps its own review, so one that arrives after the area chair decided is still recorded.
  await putArtifact(
    ctx.bus,
    `${roundPrefix(job.runId, job.ideaId, job.round)}/reviews/review_${job.reviewer}.json`,
    JSON.stringify({ reviewer: job.reviewer, node: ctx.by.node, review: out.review, reflections: out.reflections, at: new Date().toISOString() }, null, 2),
  );
  await ctx.progress(`reviewer ${job.reviewer}: Overall ${out.review.Overall}, ${out.review.Decision} (after ${out.reflections} reflections)`, job.ideaId);
  return { review: out.review, reflections: out.reflections };
}
