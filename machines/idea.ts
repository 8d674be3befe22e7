import { assign, setup } from "xstate";
import type { Citation, Idea, JobInput, JobKind, JobResult, Metric, TreeBudget, TreeRecord } from "../bus/schemas.js";
import type { Failure } from "../bus/errors.js";
import { declaredCallback } from "./declare.js";
import { treeMachine, type TreeOutput } from "./tree.js";

/** A job the pipeline puts on a work queue, and waits for. */
export type JobRequest = { [K in JobKind]: { kind: K; job: JobInput<K> } }[JobKind];

/** An idea's experiments as the writer takes them: the runs, their figures and notes (the linear chain's, or a tree search's report). */
export type ChainResult = Extract<JobResult<"experiment">, { runs: unknown }>;

/**
 * What a job's outcome tells the pipeline, one event per kind of result; a failure of any kind is JOB_FAILED.
 * `jobId` and `by` (the node that did it) tell a tree search which of its jobs in flight answered.
 */
export type JobEvent =
  | { type: "SCAFFOLDED"; result: JobResult<"scaffold"> }
  | { type: "BASELINE_DONE"; result: JobResult<"baseline"> }
  | { type: "PLANNED"; result: JobResult<"plan"> }
  | { type: "IDEATED"; result: JobResult<"ideate"> }
  | { type: "EXPERIMENTED"; result: JobResult<"experiment">; jobId?: string; by?: string }
  | { type: "CITED"; result: JobResult<"cite"> }
  | { type: "WRITTEN"; result: JobResult<"write"> }
  /** The run's spend when the decision arrived: a revision is new paid work. */
  | { type: "DECIDED"; result: JobResult<"chair">; spentUsd: number }
  | { type: "JOB_FAILED"; kind: JobKind; failure: Failure; jobId?: string };

export type Decision = JobResult<"chair">;

export interface IdeaInput {
  runId: string;
  ideaId: string;
  idea: Idea;
  /** `gpuExperiment` when the template's profile needs a GPU: only nodes with GPUs serve that queue. */
  experimentKind: "experiment" | "gpuExperiment";
  /** One chain of runs, or a tree search over variants (machines/tree.ts); linear when absent, as in runs before the tree. */
  search?: "linear" | "tree" | undefined;
  tree?: { budget: TreeBudget; seeded: boolean; metric?: Metric | undefined } | undefined;
  /** Times a rejected paper is revised from its meta-review and reviewed again. */
  revisionRounds: number;
  budgetUsd?: number | undefined;
}

interface Context extends IdeaInput {
  /** 0 while the paper as first written is reviewed; r while its r-th revision is. */
  round: number;
  experiment: ChainResult | undefined;
  /** The citations the writer found beside the experiments; none when its search failed. */
  citations: Citation[] | undefined;
  paper: JobResult<"write"> | undefined;
  /** Every round's decision, in order. */
  decisions: Decision[];
  failure: Failure | undefined;
  /** The job kind that failed. */
  failedAt: JobKind | undefined;
  /** What a tree search ended with, done or not: kept when it failed before its report. */
  searched?: TreeRecord | undefined;
}

export interface IdeaOutput {
  ideaId: string;
  status: "decided" | "failed";
  round: number;
  experiment?: ChainResult;
  paper?: JobResult<"write">;
  decisions: Decision[];
  failure?: Failure;
  failedAt?: JobKind;
  tree?: TreeRecord;
}

const suffix = (round: number) => (round ? `.r${round}` : "");

const outputOf = (c: Context): IdeaOutput => ({
  ideaId: c.ideaId,
  status: c.failure ? "failed" : "decided",
  round: c.round,
  ...(c.experiment ? { experiment: c.experiment } : {}),
  ...(c.paper ? { paper: c.paper } : {}),
  decisions: c.decisions,
  ...(c.failure ? { failure: c.failure } : {}),
  ...(c.failedAt ? { failedAt: c.failedAt } : {}),
  ...(c.searched ? { tree: c.searched } : {}),
});

const citeJob = {
  src: "job" as const,
  input: ({ context: c }: { context: Context }): JobRequest => ({ kind: "cite", job: { jobId: `${c.runId}.cite.${c.ideaId}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea } }),
};

/** While the experiments run: the citations arrive, or their search fails, or the experiments do. */
const whileCiting = {
  CITED: { actions: assign<Context, Extract<JobEvent, { type: "CITED" }>, undefined, JobEvent, never>({ citations: ({ event }) => event.result.citations }) },
  JOB_FAILED: [
    // Without the literature the paper is still written, with the template's own references.
    { guard: { type: "citationsFailed" as const, params: ({ event }: { event: Extract<JobEvent, { type: "JOB_FAILED" }> }) => ({ kind: event.kind }) }, actions: assign<Context, JobEvent, undefined, JobEvent, never>({ citations: [] }) },
    { target: "failed", actions: { type: "fail" as const, params: ({ event }: { event: Extract<JobEvent, { type: "JOB_FAILED" }> }) => ({ kind: event.kind, failure: event.failure }) } },
  ],
};

/**
 * One idea's way through the swarm, after the critic judged it novel: its experiments (the coder) and, beside
 * them, the search for the citations its paper will have (the writer, which needs only the idea), then the paper
 * (the writer), the area chair's decision, and while revision rounds and budget are left, a revision of a
 * rejected paper from its meta-review and another review. Each step is a job on a work queue, and its outcome
 * comes back as an event: the pipeline holds no edge between agents anywhere else.
 */
export const ideaMachine = setup({
  types: {
    input: {} as IdeaInput,
    context: {} as Context,
    events: {} as JobEvent,
    output: {} as IdeaOutput,
  },
  actors: {
    job: declaredCallback<JobEvent, JobRequest>("job"),
    tree: treeMachine,
  },
  guards: {
    searchesTree: ({ context }) => context.search === "tree" && context.tree !== undefined,
    searched: (_, { output }: { output: TreeOutput }) => output.status === "done" && output.result !== undefined,
    /** Both the experiments and the citation search have ended. */
    readyToWrite: ({ context }) => context.experiment !== undefined && context.citations !== undefined,
    citationsFailed: (_, { kind }: { kind: JobKind }) => kind === "cite",
    revise: ({ context }, { decision, spentUsd }: { decision: Decision; spentUsd: number }) =>
      decision.decision === "Reject" &&
      context.round < context.revisionRounds &&
      (context.budgetUsd === undefined || spentUsd < context.budgetUsd),
  },
  actions: {
    fail: assign((_, { kind, failure }: { kind: JobKind; failure: Failure }) => ({ failure, failedAt: kind })),
  },
}).createMachine({
  id: "idea",
  context: ({ input }) => ({ ...input, round: 0, experiment: undefined, citations: undefined, paper: undefined, decisions: [], failure: undefined, failedAt: undefined }),
  initial: "starting",
  states: {
    starting: {
      always: [{ guard: "searchesTree", target: "searching" }, { target: "experimenting" }],
    },
    // The citation search needs only the idea: it runs while the experiments do, and the paper waits for both.
    experimenting: {
      invoke: [
        {
          src: "job",
          input: ({ context: c }): JobRequest => ({ kind: c.experimentKind, job: { jobId: `${c.runId}.experiment.${c.ideaId}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea } }),
        },
        citeJob,
      ],
      on: {
        EXPERIMENTED: { actions: assign({ experiment: ({ event }) => ("runs" in event.result ? event.result : undefined) }) },
        ...whileCiting,
      },
      always: { guard: "readyToWrite", target: "writing" },
    },
    // The same, with the experiments a tree search over variants whose every node is a job of its own.
    searching: {
      invoke: [
        {
          id: "tree",
          src: "tree",
          input: ({ context: c }) => ({ runId: c.runId, ideaId: c.ideaId, idea: c.idea, experimentKind: c.experimentKind, ...c.tree! }),
          onDone: [
            {
              guard: { type: "searched", params: ({ event }) => ({ output: event.output }) },
              actions: assign({ experiment: ({ event }) => event.output.result, searched: ({ event }) => event.output.tree }),
            },
            {
              target: "failed",
              actions: [
                assign({ searched: ({ event }) => event.output.tree }),
                {
                  type: "fail",
                  params: ({ event }) => ({ kind: "experiment" as const, failure: event.output.failure ?? { kind: "internal" as const, retryable: false, message: "the tree search ended without a report" } }),
                },
              ],
            },
          ],
        },
        citeJob,
      ],
      on: whileCiting,
      always: { guard: "readyToWrite", target: "writing" },
    },
    writing: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({
          kind: "write",
          job: { jobId: `${c.runId}.write.${c.ideaId}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, round: 0, ...(c.citations ? { citations: c.citations } : {}) },
        }),
      },
      on: {
        WRITTEN: { target: "reviewing", actions: assign({ paper: ({ event }) => event.result }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    reviewing: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({
          kind: "chair",
          job: { jobId: `${c.runId}.chair.${c.ideaId}${suffix(c.round)}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, pdf: c.paper!.pdf, round: c.round },
        }),
      },
      on: {
        DECIDED: [
          {
            guard: { type: "revise", params: ({ event }) => ({ decision: event.result, spentUsd: event.spentUsd }) },
            target: "revising",
            actions: assign(({ context, event }) => ({ decisions: [...context.decisions, event.result], round: context.round + 1 })),
          },
          { target: "decided", actions: assign(({ context, event }) => ({ decisions: [...context.decisions, event.result] })) },
        ],
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    // The writer revises the paper from the meta-review of the round before; the chair then reviews it again.
    revising: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({
          kind: "write",
          job: {
            jobId: `${c.runId}.write.${c.ideaId}${suffix(c.round)}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, round: c.round,
            metaReview: c.decisions[c.decisions.length - 1]!.metaReview,
          },
        }),
      },
      on: {
        WRITTEN: { target: "reviewing", actions: assign({ paper: ({ event }) => event.result }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    decided: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => outputOf(context),
});
