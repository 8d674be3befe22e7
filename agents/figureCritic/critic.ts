import { fromPromise } from "xstate";
import { figureCriticMachine } from "../../machines/figureCritic.js";
import type { FigureCritique, Job, JobResult } from "../../bus/schemas.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { getArtifact, hasArtifact } from "../../bus/artifacts.js";
import { figureImages, withImages } from "../llm/images.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { checkFigure } from "./check.js";
import { lookAtFigure } from "./prompts.js";

/** The problems of a critique in a line each, for progress and for the coder's and writer's prompts. */
export const problemLines = (critiques: FigureCritique[]) => critiques.flatMap((c) => c.problems.map((p) => `${c.figure}: ${p.kind}: ${p.detail}`));

/**
 * A `figures` job: each figure (a file under `<runId>/<ideaId>/` in the object store) checked by its pixels and
 * its caption, then, where the role's model sees images, shown to it one at a time with its caption and the
 * sentences that refer to it.
 */
export async function critiqueFigures(job: Job<"figures">, ctx: AgentContext): Promise<JobResult<"figures">> {
  const prefix = `${job.runId}/${job.ideaId}`;
  const opts = { signal: ctx.signal };
  const say = (text: string) => ctx.progress(text, job.ideaId);
  const machine = figureCriticMachine.provide({
    actors: {
      checkFigures: fromPromise(async ({ input }) => {
        const out: FigureCritique[] = [];
        for (const figure of input.figures) {
          const name = `${prefix}/${figure.name}`;
          const png = (await hasArtifact(ctx.bus, name, opts)) ? await getArtifact(ctx.bus, name, opts) : undefined;
          out.push(checkFigure(figure, png, job.runs));
        }
        return out;
      }),
      seeFigure: fromPromise(async ({ input }) => {
        const data = { figure: input.figure.name, caption: input.figure.caption, references: input.figure.references, plottedRuns: job.runs, pixelCheck: input.checked.problems };
        const images = await figureImages(ctx.bus, job, [input.figure.name], { log: ctx.log, signal: ctx.signal, max: 1 });
        // Nothing to show (the file is missing, or too large for a model): the pixel check has said why.
        if (!images.length) return { shows: input.checked.shows, problems: [], seen: false };
        return ctx.llm.ask({
          task: lookAtFigure.name,
          messages: withImages(lookAtFigure.render(data), images),
          schema: lookAtFigure.answer,
          data,
          signal: ctx.signal,
          ideaId: job.ideaId,
        });
      }),
    },
  });
  // One actor per job (a coder's plot round, a writer's caption round), named by the job without its run.
  const actorId = `figureCritic.${job.jobId.startsWith(`${job.runId}.`) ? job.jobId.slice(job.runId.length + 1) : job.jobId}`;
  const out = await runMachine(machine, { figures: job.figures, sees: ctx.llm.seesImages }, ctx, {
    actorId, ideaId: job.ideaId, snapshot: await restoreFrom(ctx, actorId, figureCriticMachine),
  });
  if (out.error) throw new JobFailedError(`the figure critique of ${job.ideaId} failed: ${out.error.message}`, out.error);
  const problems = problemLines(out.critiques);
  await say(
    `figure critic (${out.seen ? `${ctx.llm.model} looked at them` : "pixel and caption check; no model looked"}), round ${job.round}: ${
      problems.length ? problems.slice(0, 3).join("; ") : `${out.critiques.length} figure${out.critiques.length === 1 ? "" : "s"} fine`
    }`,
  );
  return { critiques: out.critiques, seen: out.seen };
}
