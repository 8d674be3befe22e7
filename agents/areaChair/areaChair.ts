import { generationTag } from "../../bus/gates.js";
import { fromCallback, fromPromise } from "xstate";
import { areaChairMachine, type ChairEvent, type ReceivedReview } from "../../machines/areaChair.js";
import type { Job, JobResult, Review } from "../../bus/schemas.js";
import { outcomeSchema } from "../../bus/schemas.js";
import { JobFailedError, publishJob } from "../../bus/workQueue.js";
import { putArtifact, roundPrefix } from "../../bus/artifacts.js";
import { watchEvents } from "../../bus/events.js";
import { vetOutcome } from "../../bus/outcomes.js";
import { publisherOf, subjects } from "../../bus/subjects.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { metaReview } from "./prompts.js";

const NUMERIC: (keyof Review)[] = ["Originality", "Quality", "Clarity", "Significance", "Soundness", "Presentation", "Contribution", "Overall", "Confidence"];

export function meanScores(reviews: Review[]): Record<string, number> {
  return Object.fromEntries(
    NUMERIC.map((k) => [k, Math.round((reviews.reduce((s, r) => s + (r[k] as number), 0) / reviews.length) * 100) / 100]),
  );
}

/** The reviewers' main weaknesses: each said once, the most raised first, at most `max`, each short. */
export function mainWeaknesses(reviews: Review[], max = 5, chars = 240): string[] {
  const counted = new Map<string, { text: string; count: number }>();
  for (const r of reviews) {
    for (const w of new Set(r.Weaknesses.map((x) => x.replace(/\s+/g, " ").trim()).filter(Boolean))) {
      const key = w.toLowerCase().replace(/[.;:!\s]+$/, "");
      const seen = counted.get(key);
      counted.set(key, { text: seen?.text ?? w, count: (seen?.count ?? 0) + 1 });
    }
  }
  // Sorting is stable: among equally raised ones, the first said comes first.
  return [...counted.values()]
    .sort((a, b) => b.count - a.count)
    .slice(0, max)
    .map(({ text }) => shorten(text, chars));
}

/** At most `chars` characters, cut at a word. */
function shorten(text: string, chars: number): string {
  if (text.length <= chars) return text;
  const at = text.lastIndexOf(" ", chars - 1);
  return `${text.slice(0, at > 0 ? at : chars - 1)}…`;
}

export async function chair(job: Job<"chair">, ctx: AgentContext): Promise<JobResult<"chair">> {
  const k = ctx.config.reviewers;
  // Named after the chair's own job (`<runId>.chair.<ideaId>[.r<round>][.g<generation>]`): a rewound idea's paper is
  // reviewed anew, not found reviewed.
  const chairOf = `${job.runId}.chair.${job.ideaId}`;
  const named = job.jobId.startsWith(chairOf) ? job.jobId.slice(chairOf.length) : job.round ? `.r${job.round}` : "";
  const jobIdOf = (i: number) => `${job.runId}.review.${job.ideaId}${named}.${i}`;
  const prefix = roundPrefix(job.runId, job.ideaId, job.round);
  const machine = areaChairMachine.provide({
    actors: {
      requestReviews: fromPromise(async ({ input }: { input: { reviewers: number } }) => {
        for (let i = 0; i < input.reviewers; i++) {
          await publishJob(ctx.bus, "review", { jobId: jobIdOf(i), runId: job.runId, ideaId: job.ideaId, pdf: job.pdf, reviewer: i, round: job.round, ...(job.figures ? { figures: job.figures } : {}) });
        }
        await ctx.progress(`asked ${input.reviewers} reviewers for reviews`, job.ideaId);
      }),
      // Listens to review outcomes on the conversation stream and hands each to the machine as an event.
      collectReviews: fromCallback<ChairEvent, void>(({ sendBack }) => {
        const wanted = new Map(Array.from({ length: k }, (_, i) => [jobIdOf(i), i]));
        let closed = false;
        let close = async () => {};
        void (async () => {
          const stream = await watchEvents(ctx.bus, subjects.outcomes(job.runId, "review", `${job.runId}.review.${job.ideaId}`), outcomeSchema("review"), ctx.log);
          close = () => stream.close();
          if (closed) return void stream.close();
          for await (const { subject, value } of stream) {
            const i = wanted.get(value.jobId);
            if (i === undefined) continue;
            // Counted only from a reviewer identity, and from the worker that holds the job; once per job.
            const distrust = await vetOutcome(ctx.bus, "review", subject, value);
            if (distrust) {
              ctx.log.warn({ subject, jobId: value.jobId }, `ignored a review for reviewer ${i}: ${distrust}`);
              continue;
            }
            wanted.delete(value.jobId);
            if (value.ok) {
              const received: ReceivedReview = { reviewer: i, node: value.by.node, identity: publisherOf(subject)!, review: value.result.review };
              // How far along the round is: every job answered so far, failed ones included.
              await ctx.progress(`review ${i} arrived from node ${value.by.node} (${k - wanted.size} of ${k} answered)`, job.ideaId);
              sendBack({ type: "REVIEW", review: received });
            } else {
              sendBack({ type: "REVIEW_FAILED", reviewer: i, failure: value.failure });
            }
          }
        })().catch((err: Error) => ctx.log.error({ err: err.message }, "collecting reviews failed"));
        return () => {
          closed = true;
          void close();
        };
      }),
      writeMetaReview: fromPromise(async ({ input }: { input: { reviews: ReceivedReview[] } }) => {
        const reviews = input.reviews.map((r) => r.review);
        const scores = meanScores(reviews);
        const answer = await ask(ctx.llm, metaReview, { idea: job.idea, reviews, meanScores: scores }, { signal: ctx.signal, ideaId: job.ideaId });
        return { ...answer, scores };
      }),
    },
  });
  const actorId = `areaChair.${job.ideaId}${job.round ? `.r${job.round}` : ""}${generationTag(job)}`;
  const out = await runMachine(machine, { reviewers: k, quorum: Math.min(ctx.config.quorum, k), deadlineMs: ctx.config.reviewDeadlineMs }, ctx, {
    actorId, ideaId: job.ideaId, snapshot: await restoreFrom(ctx, actorId, areaChairMachine),
  });
  if (!out.decision) throw new JobFailedError(`the area chair reached no decision on ${job.ideaId}: ${out.error!.message}`, out.error);
  const reviewers = out.reviews.map((r) => ({ reviewer: r.reviewer, node: r.node, identity: r.identity, overall: r.review.Overall, decision: r.review.Decision }));
  const weaknesses = mainWeaknesses(out.reviews.map((r) => r.review));
  const result = { ...out.decision, ...(weaknesses.length ? { weaknesses } : {}), reviews: out.reviews.length, round: job.round, reviewers };
  await putArtifact(ctx.bus, `${prefix}/meta_review.json`, JSON.stringify(result, null, 2));
  const label = job.round ? ` on revision ${job.round}` : "";
  await ctx.progress(`decision${label}: ${result.decision} (mean Overall ${result.scores.Overall} over ${result.reviews} reviews)`, job.ideaId);
  return result;
}
