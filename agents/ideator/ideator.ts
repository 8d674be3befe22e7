import { fromPromise } from "xstate";
import { ideatorMachine, type IdeaRecord } from "../../machines/ideator.js";
import type { Idea, Job, JobResult } from "../../bus/schemas.js";
import { JobFailedError, publishJob } from "../../bus/workQueue.js";
import { errorOf } from "../../bus/errors.js";
import { publishAccepted } from "../../bus/events.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { readTemplateFile, runTemplate } from "../templates.js";
import { ask } from "../llm/task.js";
import { assertWithinBudget } from "../llm/budget.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { proposeIdea, reflectOnIdea, reviseIdea } from "./prompts.js";
import { nearDuplicate } from "./nearDuplicate.js";
import { pastReviews, readArchive, vetAnswers, writeArchive } from "./archive.js";

export async function ideate(job: Job<"ideate">, ctx: AgentContext): Promise<JobResult<"ideate">> {
  const template = await runTemplate(ctx);
  const code = readTemplateFile(template, "experiment.py");
  // This run's own entries are left out: a job redone after its ideator died (its record written, its outcome not)
  // proposes what it proposed before, not ideas that avoid its own.
  const archived = (await readArchive(ctx.bus, template.name)).filter((e) => e.runId !== job.runId);
  const earlierRuns = archived.map((e) => e.idea);
  // What the papers on earlier ideas were told: the ideator builds on it, the critic judges repeats by it.
  const reviews = pastReviews(archived);
  const shown = reviews.length ? { reviews } : {};
  const vetted = (idea: Idea) => vetAnswers(idea, reviews, ctx.log);
  const opts = { signal: ctx.signal };
  const noveltyJobId = (i: { ideaId: string; turn: number }) => `${job.runId}.novelty.${i.ideaId}.${i.turn}`;

  const machine = ideatorMachine.provide({
    actors: {
      proposeIdea: fromPromise(async ({ input }: { input: { proposed: number; earlier: IdeaRecord[] } }) => {
        // A new idea is new paid work.
        await assertWithinBudget(ctx.bus, job.runId, ctx.config.budgetUsd);
        const archive = [...template.seedIdeas, ...earlierRuns, ...input.earlier.map((r) => r.idea)];
        await ctx.progress(
          `drafting idea ${input.proposed + 1} of ${job.count}${reviews.length ? `, shown ${reviews.length} past review${reviews.length > 1 ? "s" : ""} (${reviews.filter((r) => r.decision === "Reject").length} rejected)` : ""}`,
        );
        const idea = vetted(await ask(ctx.llm, proposeIdea, { system: template.system, task: template.taskDescription, code, archive, ...shown }, opts));
        if (idea.Answers?.length) await ctx.progress(`"${idea.Title}" answers the review${idea.Answers.length > 1 ? "s" : ""} of ${idea.Answers.join(", ")}`);
        return idea;
      }),
      reflectOnIdea: fromPromise(async ({ input }: { input: { idea: Idea; round: number } }) => {
        await ctx.progress(`reflecting on "${input.idea.Title}" (round ${input.round})`);
        const step = await ask(ctx.llm, reflectOnIdea, { idea: input.idea, round: input.round, maxRounds: ctx.config.maxReflections, code, ...shown }, opts);
        return { ...step, idea: vetted(step.idea) };
      }),
      screenIdea: fromPromise(async ({ input }: { input: { idea: Idea; earlier: IdeaRecord[] } }) => {
        const twin = nearDuplicate(input.idea, [...template.seedIdeas, ...earlierRuns, ...input.earlier.map((r) => r.idea)]);
        if (twin) await ctx.progress(`"${input.idea.Title}" nearly repeats "${twin.Title}": dropped before the critic`);
        return twin ? { duplicateOf: twin.Name } : {};
      }),
      askCritic: fromPromise(async ({ input }: { input: { ideaId: string; idea: Idea; turn: number } }) => {
        await ctx.progress(`asking the critic about "${input.idea.Title}"`, input.ideaId);
        await publishJob(ctx.bus, "novelty", { jobId: noveltyJobId(input), runId: job.runId, ideaId: input.ideaId, idea: input.idea, turn: input.turn, ...shown });
      }),
      awaitVerdict: fromPromise(async ({ input }: { input: { ideaId: string; idea: Idea; turn: number } }) => {
        const outcome = await awaitOutcome(ctx.bus, job.runId, "novelty", noveltyJobId(input), { signal: ctx.signal, log: ctx.log });
        if (!outcome.ok) throw errorOf(outcome.failure);
        const { verdict, reason } = outcome.result;
        await ctx.progress(
          verdict === "undecided"
            ? `critic is undecided on "${input.idea.Title}": ${reason.replace(/^undecided: /, "")}`
            : `critic says ${verdict}: ${reason}`,
          input.ideaId,
        );
        return outcome.result;
      }),
      reviseIdea: fromPromise(async ({ input }) => {
        await ctx.progress(`revising "${input.idea.Title}" after the critic's objection`);
        return vetted(await ask(ctx.llm, reviseIdea, { idea: input.idea, verdict: input.verdict, code }, opts));
      }),
      handOff: fromPromise(async ({ input }: { input: { ideaId: string; idea: Idea } }) => {
        // The run's pipeline takes it from here, while the ideator goes on with the next idea.
        await publishAccepted(ctx.bus, { runId: job.runId, ideaId: input.ideaId, idea: input.idea, by: ctx.by });
        await ctx.progress(`"${input.idea.Title}" accepted: its experiments start`, input.ideaId);
      }),
    },
  });

  const { records, failures } = await runMachine(
    machine,
    { target: job.count, maxReflections: ctx.config.maxReflections, maxRevisions: ctx.config.maxRevisions },
    ctx,
    { actorId: "ideator", snapshot: await restoreFrom(ctx, "ideator", ideatorMachine) },
  );
  // An idea the critic could not judge stays open: a later run, with the literature back, may propose it again.
  // Each entry says which run and idea it was, so the run's end can attach its paper's reviews (scripts/swarm.ts).
  const judged = records.filter((r) => r.status !== "undecided").map((r) => ({ idea: r.idea, runId: job.runId, ideaId: r.ideaId }));
  await writeArchive(ctx.bus, template.name, [...archived, ...judged]);
  for (const failure of failures) await ctx.progress(failure.message);
  const undecided = records.filter((r) => r.status === "undecided").length;
  await ctx.progress(
    `done: ${records.filter((r) => r.status === "accepted").length} of ${records.length} ideas judged novel${undecided ? `; ${undecided} undecided, the literature unreachable` : ""}`,
  );
  // The first failure says whose fault it was: a spent budget stops the run, a provider's outage is retried.
  if (!records.length && failures[0]) throw new JobFailedError(`no idea could be proposed: ${failures[0].message}`, failures[0]);
  return { ideas: records, ...(failures.length ? { failures: failures.map((f) => f.message) } : {}) };
}
