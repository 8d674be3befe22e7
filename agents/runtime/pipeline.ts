import { fromCallback, fromPromise } from "xstate";
import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";
import { publishProgress, watchEvents } from "../../bus/events.js";
import { awaitDecision, followRewinds, listRewinds, readRewind } from "../../bus/gates.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { publishJob } from "../../bus/workQueue.js";
import { hasArtifact, putArtifact } from "../../bus/artifacts.js";
import { subjects } from "../../bus/subjects.js";
import { failureOf } from "../../bus/errors.js";
import { AcceptedIdea, type Actor, type JobKind, type JobResult, type Outcome, type RunConfig } from "../../bus/schemas.js";
import { ideaMachine, type GateAsk, type GateEvent, type IdeaInput, type JobEvent, type JobRequest } from "../../machines/idea.js";
import { pipelineMachine, type AcceptedEvent, type PipelineOutput, type RewindEvent, type Rewinds } from "../../machines/pipeline.js";
import { spentUsd } from "../llm/budget.js";
import { treeMachine } from "../../machines/tree.js";
import { loadTemplate, topicTemplate } from "../templates.js";
import { listNodes } from "./nodeRegistry.js";
import { restoreFrom, runMachine } from "./runMachine.js";

/** The pipeline's actor id in its run: its persisted snapshot holds every idea's too. */
export const PIPELINE_ACTOR = "pipeline";

export interface PipelineOptions {
  bus: Bus;
  config: RunConfig;
  baselineKind: "baseline" | "gpuBaseline";
  experimentKind: "experiment" | "gpuExperiment";
  by: Actor;
  log: Logger;
  signal: AbortSignal;
  /** Go on from the run's persisted pipeline (`--resume`), rather than start it. */
  resume: boolean;
  /** Told of every outcome the pipeline receives, for the person watching. */
  onOutcome?: (kind: JobKind, outcome: Outcome<JobKind>) => void;
}

/** The typed event an outcome becomes. */
async function eventOf(bus: Bus, runId: string, kind: JobKind, outcome: Outcome<JobKind>): Promise<JobEvent> {
  if (!outcome.ok) return { type: "JOB_FAILED", kind, failure: outcome.failure };
  switch (kind) {
    case "scaffold":
      return { type: "SCAFFOLDED", result: outcome.result as JobResult<"scaffold"> };
    case "plan":
      return { type: "PLANNED", result: outcome.result as JobResult<"plan"> };
    case "baseline":
    case "gpuBaseline":
      return { type: "BASELINE_DONE", result: outcome.result as JobResult<"baseline"> };
    case "ideate":
      return { type: "IDEATED", result: outcome.result as JobResult<"ideate"> };
    case "experiment":
    case "gpuExperiment":
      return { type: "EXPERIMENTED", result: outcome.result as JobResult<"experiment"> };
    case "cite":
      return { type: "CITED", result: outcome.result as JobResult<"cite"> };
    case "write":
      return { type: "WRITTEN", result: outcome.result as JobResult<"write"> };
    case "chair":
      return { type: "DECIDED", result: outcome.result as JobResult<"chair">, spentUsd: await spentUsd(bus, runId) };
    default:
      throw new Error(`the pipeline does not wait for ${kind} jobs`);
  }
}

/** What a run's tree searches go by: its budget, and what the template's manifest says of its seed and measure. */
function treeSettings(config: RunConfig): NonNullable<IdeaInput["tree"]> {
  const { manifest } = config.topic ? topicTemplate(config.template, config.topic) : loadTemplate(config.template);
  return { budget: config.tree, seeded: manifest.seeded, ...(manifest.metric ? { metric: manifest.metric } : {}) };
}

/**
 * Runs a run's pipeline (machines/pipeline.ts, one idea machine per accepted idea) in this process until every
 * idea has ended. Each step puts its job on a work queue (idempotently: the job id is the msgID, and a job
 * whose outcome is recorded is not redone) and waits for that job's outcome on its own subject; so a pipeline
 * that goes on from its snapshot after a crash asks again for what it was waiting for, and gets the answer that
 * came while it was away.
 */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineOutput> {
  const { bus, config, log } = opts;
  const runId = config.runId;
  const job = fromCallback<JobEvent, JobRequest>(({ input, sendBack }) => {
    const stop = new AbortController();
    void (async () => {
      await publishJob(bus, input.kind, input.job as never);
      const outcome = (await awaitOutcome(bus, runId, input.kind, input.job.jobId, { signal: stop.signal, log })) as Outcome<JobKind>;
      opts.onOutcome?.(input.kind, outcome);
      const event = await eventOf(bus, runId, input.kind, outcome);
      // A tree search has many jobs in flight: each answer says which job it is, and who did it.
      sendBack(event.type === "EXPERIMENTED" ? { ...event, jobId: input.job.jobId, by: outcome.by.node } : event.type === "JOB_FAILED" ? { ...event, jobId: input.job.jobId } : event);
    })().catch((err: unknown) => {
      if (!stop.signal.aborted) sendBack({ type: "JOB_FAILED", kind: input.kind, failure: failureOf(err, `waiting for ${input.job.jobId}`), jobId: input.job.jobId });
    });
    return () => stop.abort();
  });
  const watchIdeas = fromCallback<AcceptedEvent, { runId: string }>(({ input, sendBack }) => {
    let closed = false;
    let close = async () => {};
    void (async () => {
      const stream = await watchEvents(bus, subjects.accepted(input.runId), AcceptedIdea, log);
      close = () => stream.close();
      if (closed) return void stream.close();
      for await (const { value } of stream) sendBack({ type: "IDEA_ACCEPTED", ideaId: value.ideaId, idea: value.idea });
    })().catch((err: Error) => log.error({ err: err.message }, "following the accepted ideas failed; the ideation's record still starts them"));
    return () => {
      closed = true;
      void close();
    };
  });
  // A gate asks once and waits for the person's decision, read from KV (it may be there already): nothing is spent.
  const gate = fromCallback<GateEvent, GateAsk>(({ input, sendBack }) => {
    const stop = new AbortController();
    void (async () => {
      const gateName = input.proposal.gate;
      const waiting = () =>
        publishProgress(bus, {
          runId, by: opts.by, ideaId: input.ideaId,
          text: `waiting at the ${gateName} gate: npm run gate -- approve|edit|reject ${runId} ${input.ideaId}`,
        }).catch(() => undefined);
      for (;;) {
        try {
          const { decision, by } = await awaitDecision(bus, { ...input, askedAt: new Date().toISOString() }, stop.signal, waiting);
          if (stop.signal.aborted) return;
          log.info({ ideaId: input.ideaId, gate: gateName, choice: decision.choice, by }, `the ${gateName} gate of ${input.ideaId}: ${decision.choice} (${by})`);
          return sendBack(decision.choice === "approve" ? { type: "APPROVED", by } : decision.choice === "edit" ? { type: "EDITED", by, decision } : { type: "REJECTED", by, reason: decision.reason });
        } catch (err) {
          if (stop.signal.aborted) return;
          log.warn({ err: (err as Error).message, ideaId: input.ideaId, gate: gateName }, "could not read the gate; trying again in 5 s");
          await new Promise((r) => setTimeout(r, 5000).unref());
        }
      }
    })();
    return () => stop.abort();
  });
  const watchRewinds = fromCallback<RewindEvent, { runId: string }>(({ input, sendBack }) => {
    const follower = followRewinds(bus, input.runId);
    void (async () => {
      for await (const m of follower) {
        const rewind = readRewind(m.data);
        if (rewind?.runId === input.runId) sendBack({ type: "REWIND", ideaId: rewind.ideaId, generation: rewind.generation, stages: rewind.stages });
      }
    })().catch((err: Error) => log.error({ err: err.message }, "following the run's rewinds failed; those asked before a --resume are still read then"));
    return () => void follower.close();
  });
  // The coder slots that serve an experiment queue now, across the swarm: how wide a tree search goes.
  const coderSlots = fromPromise<number, { experimentKind: "experiment" | "gpuExperiment" }>(async ({ input }) =>
    (await listNodes(bus)).reduce((n, node) => n + (input.experimentKind === "gpuExperiment" ? node.gpus.length : (node.roles.coder ?? 0)), 0));
  const tree = treeMachine.provide({ actors: { job, coderSlots } });
  const machine = pipelineMachine.provide({ actors: { job, watchIdeas, watchRewinds, idea: ideaMachine.provide({ actors: { job, tree, gate } }) } });
  const ctx = { bus, runId, by: opts.by, log, signal: opts.signal };
  const snapshot = opts.resume ? await restoreFrom(ctx, PIPELINE_ACTOR, pipelineMachine) : undefined;
  // A run gone on with after its end starts its pipeline afresh: every job found done, but those a rewind made new.
  const rewinds: Rewinds = snapshot ? {} : Object.fromEntries((await listRewinds(bus, runId)).map((r) => [r.ideaId, { generation: r.generation, stages: r.stages }]));
  const output = await runMachine(
    machine,
    {
      runId, ideas: config.ideas, baselineKind: opts.baselineKind, experimentKind: opts.experimentKind, revisionRounds: config.revisionRounds,
      ...(config.budgetUsd !== undefined ? { budgetUsd: config.budgetUsd } : {}),
      scaffold: config.topic !== undefined,
      ...(config.search === "tree" ? { search: "tree" as const, tree: treeSettings(config) } : {}),
      ...(config.gates.length ? { gates: config.gates } : {}),
      ...(Object.keys(rewinds).length ? { rewinds } : {}),
    },
    ctx,
    { actorId: PIPELINE_ACTOR, snapshot },
  );
  // A tree search that failed before its report (the budget, a lost report job) still leaves its record.
  for (const idea of output.ideas) {
    const name = `${runId}/${idea.ideaId}/tree.json`;
    if (idea.tree && !(await hasArtifact(bus, name))) await putArtifact(bus, name, JSON.stringify(idea.tree, null, 2));
  }
  return output;
}
