import { assign, enqueueActions, setup } from "xstate";
import type { Idea, JobKind, JobResult } from "../bus/schemas.js";
import type { Failure } from "../bus/errors.js";
import { declaredCallback } from "./declare.js";
import { chooseMetric } from "./metric.js";
import type { GateName } from "../bus/gates.js";
import { ideaMachine, type Generations, type IdeaInput, type IdeaOutput, type JobEvent, type JobRequest } from "./idea.js";

/** The ideator judged an idea novel: it goes to the coder at once, while the ideator works on the next. */
export type AcceptedEvent = { type: "IDEA_ACCEPTED"; ideaId: string; idea: Idea };

/** A person asked for an idea to be done again from `stage` on (bus/gates.ts): its `generation`-th rewind. */
export type RewindEvent = { type: "REWIND"; ideaId: string; generation: number; stages: Generations };

/** Each idea's rewinds so far: the latest one's number, and the generation of each stage's jobs. */
export type Rewinds = Record<string, { generation: number; stages: Generations }>;

/** What XState sends when a spawned idea reaches its end (`xstate.done.actor.<ideaId>`). */
type IdeaDone = { type: `xstate.done.actor.${string}`; actorId: string; output: IdeaOutput };

export type PipelineEvent = JobEvent | AcceptedEvent | IdeaDone | RewindEvent;

/** A tree search goes by the template's measure; without one in its manifest, by one read from the baseline's results. */
function withMetric(tree: NonNullable<IdeaInput["tree"]>, baseline: JobResult<"baseline"> | undefined): NonNullable<IdeaInput["tree"]> {
  if (tree.metric || !baseline?.run.results) return tree;
  const metric = chooseMetric(baseline.run.results);
  return metric ? { ...tree, metric } : tree;
}

const ideaInput = (c: Context, ideaId: string, idea: Idea, generations: Generations | undefined): IdeaInput => ({
  runId: c.runId, ideaId, idea, experimentKind: c.experimentKind, revisionRounds: c.revisionRounds,
  ...(c.budgetUsd !== undefined ? { budgetUsd: c.budgetUsd } : {}),
  ...(c.search ? { search: c.search } : {}),
  ...(c.tree ? { tree: withMetric(c.tree, c.baseline) } : {}),
  ...(c.gates?.length ? { gates: c.gates } : {}),
  ...(generations ? { generations } : {}),
});

const isIdeaDone = (event: PipelineEvent): event is IdeaDone => event.type.startsWith("xstate.done.actor.");

export interface PipelineInput {
  runId: string;
  /** Ideas the ideator is asked for. */
  ideas: number;
  baselineKind: "baseline" | "gpuBaseline";
  experimentKind: "experiment" | "gpuExperiment";
  revisionRounds: number;
  /** A `--topic` run: the coder writes the template before its baseline is run. */
  scaffold?: boolean | undefined;
  budgetUsd?: number | undefined;
  search?: IdeaInput["search"];
  tree?: IdeaInput["tree"];
  gates?: GateName[] | undefined;
  /** The rewinds asked for before this pipeline started (a run gone on with after its end). */
  rewinds?: Rewinds | undefined;
}

interface Context extends PipelineInput {
  scaffolded?: JobResult<"scaffold"> | undefined;
  baseline: JobResult<"baseline"> | undefined;
  ideation: JobResult<"ideate"> | undefined;
  /** Why the run could not go on: its baseline or its ideation failed. */
  failure: Failure | undefined;
  failedAt: JobKind | undefined;
  /** The ideas in flight and finished, in the order they were accepted. */
  accepted: { ideaId: string; idea: Idea }[];
  finished: Record<string, IdeaOutput>;
  /** Absent in a snapshot from before rewinds. */
  rewinds?: Rewinds;
}

export interface PipelineOutput {
  scaffolded?: JobResult<"scaffold">;
  baseline?: JobResult<"baseline">;
  ideation?: JobResult<"ideate">;
  failure?: Failure;
  failedAt?: JobKind;
  ideas: IdeaOutput[];
}

/**
 * A run: the template's baseline before any model call (a run from a topic first has the coder write its
 * template, and the baseline is that code's first working run), then ideation, during which every idea the critic
 * judges novel starts its own pipeline (an idea machine, spawned with the idea's id) while the ideator goes on;
 * the run ends when ideation has ended and every idea has been decided or has failed.
 */
export const pipelineMachine = setup({
  types: {
    input: {} as PipelineInput,
    context: {} as Context,
    events: {} as PipelineEvent,
    output: {} as PipelineOutput,
  },
  actors: {
    idea: ideaMachine,
    job: declaredCallback<JobEvent, JobRequest>("job"),
    /** Sends IDEA_ACCEPTED for every idea the ideator accepts in this run, those accepted before a restart included. */
    watchIdeas: declaredCallback<AcceptedEvent, { runId: string }>("watchIdeas"),
    /** Sends REWIND for every rewind a person asks of this run's ideas, those asked before included. */
    watchRewinds: declaredCallback<RewindEvent, { runId: string }>("watchRewinds"),
  },
  guards: {
    scaffolds: ({ context }) => context.scaffold === true,
    isNew: ({ context }, { ideaId }: { ideaId: string }) => !context.accepted.some((a) => a.ideaId === ideaId),
    allFinished: ({ context }) => context.accepted.every((a) => context.finished[a.ideaId] !== undefined),
    /** A rewind not yet taken up: each is numbered, and a restart reads them all again. */
    newRewind: ({ context }, { ideaId, generation }: { ideaId: string; generation: number }) => generation > (context.rewinds?.[ideaId]?.generation ?? 0),
  },
  actions: {
    /** Starts the pipeline of each idea not yet started: the accepted event and the ideation's record both name it. */
    start: enqueueActions(({ context, enqueue }, { ideas }: { ideas: { ideaId: string; idea: Idea }[] }) => {
      const fresh = ideas.filter((i, n) => !context.accepted.some((a) => a.ideaId === i.ideaId) && ideas.findIndex((o) => o.ideaId === i.ideaId) === n);
      for (const { ideaId, idea } of fresh) enqueue.spawnChild("idea", { id: ideaId, input: ideaInput(context, ideaId, idea, context.rewinds?.[ideaId]?.stages) });
      if (fresh.length) enqueue.assign({ accepted: [...context.accepted, ...fresh] });
    }),
    /**
     * Takes a rewind up: the idea (stopped where it was, or ended) starts again with the jobs of `stage` and every
     * later stage new; the jobs before it are found done, so their results are kept and nothing before is redone.
     */
    rewind: enqueueActions(({ context, enqueue }, { ideaId, generation, stages }: { ideaId: string; generation: number; stages: Generations }) => {
      const { [ideaId]: _, ...finished } = context.finished;
      enqueue.assign({ rewinds: { ...(context.rewinds ?? {}), [ideaId]: { generation, stages } }, finished });
      const accepted = context.accepted.find((a) => a.ideaId === ideaId);
      if (!accepted) return;
      enqueue.stopChild(ideaId);
      enqueue.spawnChild("idea", { id: ideaId, input: ideaInput(context, ideaId, accepted.idea, stages) });
    }),
    /** An idea reached its end: the event is XState's, named by the idea's id. */
    finish: assign({ finished: ({ context, event }) => (isIdeaDone(event) ? { ...context.finished, [event.actorId]: event.output } : context.finished) }),
    fail: assign((_, { kind, failure }: { kind: JobKind; failure: Failure }) => ({ failure, failedAt: kind })),
  },
}).createMachine({
  id: "pipeline",
  context: ({ input }) => ({ ...input, baseline: undefined, ideation: undefined, failure: undefined, failedAt: undefined, accepted: [], finished: {}, rewinds: input.rewinds ?? {} }),
  // A person may rewind an idea at any time while the run goes on.
  invoke: { src: "watchRewinds", input: ({ context }) => ({ runId: context.runId }) },
  on: {
    REWIND: {
      guard: { type: "newRewind", params: ({ event }) => ({ ideaId: event.ideaId, generation: event.generation }) },
      actions: { type: "rewind", params: ({ event }) => ({ ideaId: event.ideaId, generation: event.generation, stages: event.stages }) },
    },
  },
  initial: "starting",
  states: {
    starting: {
      always: [{ guard: "scaffolds", target: "scaffolding" }, { target: "baseline" }],
    },
    // A run from a topic has no template yet: the coder writes one, and runs it until it works.
    scaffolding: {
      invoke: { src: "job", input: ({ context: c }): JobRequest => ({ kind: "scaffold", job: { jobId: `${c.runId}.scaffold`, runId: c.runId } }) },
      on: {
        SCAFFOLDED: { target: "baseline", actions: assign({ scaffolded: ({ event }) => event.result }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    // The unchanged template, before any model call: a template that cannot run here stops the run with nothing spent.
    baseline: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({ kind: c.baselineKind, job: { jobId: `${c.runId}.baseline`, runId: c.runId } }),
      },
      on: {
        BASELINE_DONE: { target: "ideating", actions: assign({ baseline: ({ event }) => event.result }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    ideating: {
      invoke: [
        { src: "job", input: ({ context: c }): JobRequest => ({ kind: "ideate", job: { jobId: `${c.runId}.ideate`, runId: c.runId, count: c.ideas } }) },
        { src: "watchIdeas", input: ({ context }) => ({ runId: context.runId }) },
      ],
      on: {
        IDEA_ACCEPTED: {
          guard: { type: "isNew", params: ({ event }) => ({ ideaId: event.ideaId }) },
          actions: { type: "start", params: ({ event }) => ({ ideas: [{ ideaId: event.ideaId, idea: event.idea }] }) },
        },
        IDEATED: {
          target: "finishing",
          actions: [
            assign({ ideation: ({ event }) => event.result }),
            {
              type: "start",
              params: ({ event }) => ({ ideas: event.result.ideas.filter((i) => i.status === "accepted").map(({ ideaId, idea }) => ({ ideaId, idea })) }),
            },
          ],
        },
        "xstate.done.actor.*": { actions: "finish" },
        // The ideas already accepted still go to their end.
        JOB_FAILED: { target: "finishing", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    finishing: {
      always: { guard: "allFinished", target: "done" },
      on: { "xstate.done.actor.*": { actions: "finish" } },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    ...(context.scaffolded ? { scaffolded: context.scaffolded } : {}),
    ...(context.baseline ? { baseline: context.baseline } : {}),
    ...(context.ideation ? { ideation: context.ideation } : {}),
    ...(context.failure ? { failure: context.failure } : {}),
    ...(context.failedAt ? { failedAt: context.failedAt } : {}),
    ideas: context.accepted.flatMap((a) => (context.finished[a.ideaId] ? [context.finished[a.ideaId]!] : [])),
  }),
});
