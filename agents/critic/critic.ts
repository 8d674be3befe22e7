import { fromPromise } from "xstate";
import { criticMachine } from "../../machines/critic.js";
import type { Job, JobResult } from "../../bus/schemas.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { LiteratureError } from "../literature/errors.js";
import type { LiteratureSource } from "../literature/source.js";
import { decide, think } from "./prompts.js";

export async function judgeNovelty(job: Job<"novelty">, ctx: AgentContext, literature: LiteratureSource): Promise<JobResult<"novelty">> {
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  // The past reviews the ideator was shown: a repeat of a rejected idea is judged by them too.
  const shown = job.reviews?.length ? { reviews: job.reviews } : {};
  const machine = criticMachine.provide({
    actors: {
      think: fromPromise(async ({ input }) => {
        const step = await ask(ctx.llm, think, { ...input, ...shown }, opts);
        return {
          ...(step.query ? { query: step.query } : {}),
          ...(step.decision ? { decision: step.decision } : {}),
        };
      }),
      searchLiterature: fromPromise(async ({ input }: { input: { query: string } }) => {
        const hits = await literature.search(input.query, 8, ctx.signal).catch(async (err: unknown) => {
          if (err instanceof LiteratureError) await ctx.progress(`could not search ${literature.name} for "${input.query}": ${err.message}`, job.ideaId);
          throw err;
        });
        await ctx.progress(`searched ${literature.name} for "${input.query}": ${hits.length} papers`, job.ideaId);
        return hits.map(({ bibtex: _bibtex, abstract: _abstract, ...evidence }) => evidence);
      }),
      decide: fromPromise(async ({ input }) => ask(ctx.llm, decide, { ...input, ...shown }, opts)),
    },
  });
  const out = await runMachine(machine, { idea: job.idea, maxRounds: ctx.config.noveltyRounds }, ctx, { actorId: `critic.${job.ideaId}.${job.turn}`, ideaId: job.ideaId, snapshot: await restoreFrom(ctx, `critic.${job.ideaId}.${job.turn}`, criticMachine) });
  // The failure of the step that broke decides: a provider's outage is retried, a model's garbage is final.
  if (!out.verdict) throw new JobFailedError(`the critic reached no verdict on ${job.ideaId}: ${out.error!.message}`, out.error);
  return out.verdict;
}
