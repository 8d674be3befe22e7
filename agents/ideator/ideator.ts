import { fromPromise } from "xstate";
import { ideatorMachine, type IdeaRecord } from "../../machines/ideator.js";
import type { Idea, Job, JobResult } from "../../bus/schemas.js";
import { Idea as IdeaSchema } from "../../bus/schemas.js";
import { JobFailedError, publishJob } from "../../bus/workQueue.js";
import { errorOf } from "../../bus/errors.js";
import { publishAccepted } from "../../bus/events.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { loadTemplate, readTemplateFile } from "../templates.js";
import { ask } from "../llm/task.js";
import { assertWithinBudget } from "../llm/budget.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { proposeIdea, reflectOnIdea, reviseIdea } from "./prompts.js";
import { nearDuplicate } from "./nearDuplicate.js";
import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import { kvKeys } from "../../bus/subjects.js";

const archiveKey = kvKeys.archive;

/** Ideas proposed by earlier runs of the same template, so a new run does not propose them again. */
export async function readArchive(bus: Bus, template: string): Promise<Idea[]> {
  const entry = await bus.kv.get(archiveKey(template));
  if (!entry || entry.operation !== "PUT") return [];
  const parsed = z.array(IdeaSchema).safeParse(entry.json());
  return parsed.success ? parsed.data : [];
}

export async function writeArchive(bus: Bus, template: string, ideas: Idea[]): Promise<void> {
  await bus.kv.put(archiveKey(template), JSON.stringify(ideas));
}

export async function ideate(job: Job<"ideate">, ctx: AgentContext): Promise<JobResult<"ideate">> {
  const template = loadTemplate(ctx.config.template);
  const code = readTemplateFile(template, "experiment.py");
  const earlierRuns = await readArchive(ctx.bus, template.name);
  const opts = { signal: ctx.signal };
  const noveltyJobId = (i: { ideaId: string; turn: number }) => `${job.runId}.novelty.${i.ideaId}.${i.turn}`;

  const machine = ideatorMachine.provide({
    actors: {
      proposeIdea: fromPromise(async ({ input }: { input: { proposed: number; earlier: IdeaRecord[] } }) => {
        // A new idea is new paid work.
        await assertWithinBudget(ctx.bus, job.runId, ctx.config.budgetUsd);
        const archive = [...template.seedIdeas, ...earlierRuns, ...input.earlier.map((r) => r.idea)];
        await ctx.progress(`drafting idea ${input.proposed + 1} of ${job.count}`);
        return ask(ctx.llm, proposeIdea, { system: template.system, task: template.taskDescription, code, archive }, opts);
      }),
      reflectOnIdea: fromPromise(async ({ input }: { input: { idea: Idea; round: number } }) => {
        await ctx.progress(`reflecting on "${input.idea.Title}" (round ${input.round})`);
        return ask(ctx.llm, reflectOnIdea, { idea: input.idea, round: input.round, maxRounds: ctx.config.maxReflections, code }, opts);
      }),
      screenIdea: fromPromise(async ({ input }: { input: { idea: Idea; earlier: IdeaRecord[] } }) => {
        const twin = nearDuplicate(input.idea, [...template.seedIdeas, ...earlierRuns, ...input.earlier.map((r) => r.idea)]);
        if (twin) await ctx.progress(`"${input.idea.Title}" nearly repeats "${twin.Title}": dropped before the critic`);
        return twin ? { duplicateOf: twin.Name } : {};
      }),
      askCritic: fromPromise(async ({ input }: { input: { ideaId: string; idea: Idea; turn: number } }) => {
        await ctx.progress(`asking the critic about "${input.idea.Title}"`, input.ideaId);
        await publishJob(ctx.bus, "novelty", { jobId: noveltyJobId(input), runId: job.runId, ideaId: input.ideaId, idea: input.idea, turn: input.turn });
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
        return ask(ctx.llm, reviseIdea, { idea: input.idea, verdict: input.verdict, code }, opts);
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
  await writeArchive(ctx.bus, template.name, [...earlierRuns, ...records.filter((r) => r.status !== "undecided").map((r) => r.idea)]);
  for (const failure of failures) await ctx.progress(failure.message);
  const undecided = records.filter((r) => r.status === "undecided").length;
  await ctx.progress(
    `done: ${records.filter((r) => r.status === "accepted").length} of ${records.length} ideas judged novel${undecided ? `; ${undecided} undecided, the literature unreachable` : ""}`,
  );
  // The first failure says whose fault it was: a spent budget stops the run, a provider's outage is retried.
  if (!records.length && failures[0]) throw new JobFailedError(`no idea could be proposed: ${failures[0].message}`, failures[0]);
  return { ideas: records, ...(failures.length ? { failures: failures.map((f) => f.message) } : {}) };
}
