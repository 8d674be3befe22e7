import { assign, setup } from "xstate";
import type { Citation, Idea, JobInput, JobKind, JobResult, Metric, PlannedRun, TreeBudget, TreeRecord } from "../bus/schemas.js";
import type { Failure } from "../bus/errors.js";
import type { Decision as GateDecision, GateName, Proposal, Stage } from "../bus/gates.js";
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

/** A person's decision at a gate (bus/gates.ts), as the gate actor tells it: who decided, and what. */
export type GateEvent =
  | { type: "APPROVED"; by: string }
  | { type: "EDITED"; by: string; decision: Extract<GateDecision, { choice: "edit" }> }
  | { type: "REJECTED"; by: string; reason: string };

/** What a gate asks: `request` names it in its idea (`plan.g0`, `paper.r1.g2`), so a rewound idea asks anew. */
export interface GateAsk {
  runId: string;
  ideaId: string;
  request: string;
  proposal: Proposal;
}

export type IdeaEvent = JobEvent | GateEvent;

export type Decision = JobResult<"chair">;

/** Per stage, the generation of its jobs: a rewind from a stage on gives that stage and every later one a new one. */
export type Generations = Partial<Record<Stage, number>>;

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
  /** Where a person decides before the idea goes on (`--gate`). */
  gates?: GateName[] | undefined;
  /** The generation of each stage's jobs; none (0) until the idea is rewound. */
  generations?: Generations | undefined;
}

interface Context extends IdeaInput {
  /** The paper's version: 0 as first written, then one more for each revision (from a meta-review or a person's notes). */
  round: number;
  /** Revisions made from a meta-review, of `revisionRounds` (absent in a snapshot from before gates). */
  revised?: number;
  /** The plan of runs a person approved or edited at the plan gate. */
  plan: PlannedRun[] | undefined;
  /** A person's notes on the paper at its gate: the next revision is made from them. */
  notes: string | undefined;
  /** Revisions made from a person's notes, of MAX_AMENDMENTS (absent in a snapshot from before gates). */
  amended?: number;
  /** Who turned the idea down, where, and why. */
  rejected: { gate: GateName; reason: string; by: string } | undefined;
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
  /** `rejected`: a person turned it down at a gate. */
  status: "decided" | "failed" | "rejected";
  round: number;
  experiment?: ChainResult;
  paper?: JobResult<"write">;
  decisions: Decision[];
  failure?: Failure;
  failedAt?: JobKind;
  tree?: TreeRecord;
  rejected?: { gate: GateName; reason: string; by: string };
  /** The idea as it went on: edited at its gate, if it was. */
  idea?: Idea;
}

/** Times a person may send a paper back to the writer at its gate, with notes. */
export const MAX_AMENDMENTS = 3;

const suffix = (round: number) => (round ? `.r${round}` : "");
/** A stage's jobs in a rewound idea carry its generation, so that they are done again rather than found done. */
const gen = (c: Pick<IdeaInput, "generations">, stage: Stage) => (c.generations?.[stage] ? `.g${c.generations[stage]}` : "");
const gated = (c: Context, gate: GateName) => c.gates?.includes(gate) ?? false;

const outputOf = (c: Context): IdeaOutput => ({
  ideaId: c.ideaId,
  status: c.rejected ? "rejected" : c.failure ? "failed" : "decided",
  round: c.round,
  ...(c.experiment ? { experiment: c.experiment } : {}),
  ...(c.paper ? { paper: c.paper } : {}),
  decisions: c.decisions,
  ...(c.failure ? { failure: c.failure } : {}),
  ...(c.failedAt ? { failedAt: c.failedAt } : {}),
  ...(c.searched ? { tree: c.searched } : {}),
  ...(c.rejected ? { rejected: c.rejected } : {}),
  idea: c.idea,
});

const citeJob = {
  src: "job" as const,
  input: ({ context: c }: { context: Context }): JobRequest => ({ kind: "cite", job: { jobId: `${c.runId}.cite.${c.ideaId}${gen(c, "experiment")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea } }),
};

/** While the experiments run: the citations arrive, or their search fails, or the experiments do. */
const whileCiting = {
  CITED: { actions: assign<Context, Extract<JobEvent, { type: "CITED" }>, undefined, IdeaEvent, never>({ citations: ({ event }) => event.result.citations }) },
  JOB_FAILED: [
    // Without the literature the paper is still written, with the template's own references.
    { guard: { type: "citationsFailed" as const, params: ({ event }: { event: Extract<JobEvent, { type: "JOB_FAILED" }> }) => ({ kind: event.kind }) }, actions: assign<Context, JobEvent, undefined, IdeaEvent, never>({ citations: [] }) },
    { target: "failed", actions: { type: "fail" as const, params: ({ event }: { event: Extract<JobEvent, { type: "JOB_FAILED" }> }) => ({ kind: event.kind, failure: event.failure }) } },
  ],
};

/** What every gate does with an approval and a rejection: on to `next`, or the idea ends as the person said. Each gate says what an edit does. */
const atGate = (gate: GateName, next: string) => ({
  APPROVED: { target: next },
  REJECTED: { target: "rejected", actions: assign<Context, Extract<GateEvent, { type: "REJECTED" }>, undefined, IdeaEvent, never>({ rejected: ({ event }) => ({ gate, reason: event.reason, by: event.by }) }) },
});

/**
 * One idea's way through the swarm, after the critic judged it novel: its experiments (the coder) and, beside
 * them, the search for the citations its paper will have (the writer, which needs only the idea), then the paper
 * (the writer), the area chair's decision, and while revision rounds and budget are left, a revision of a
 * rejected paper from its meta-review and another review. Each step is a job on a work queue, and its outcome
 * comes back as an event: the pipeline holds no edge between agents anywhere else. At the gates a run asks for
 * (`--gate`), the idea waits for a person: the idea before its experiments, the coder's plan before any run, each
 * version of the paper before it is reviewed.
 */
export const ideaMachine = setup({
  types: {
    input: {} as IdeaInput,
    context: {} as Context,
    events: {} as IdeaEvent,
    output: {} as IdeaOutput,
  },
  actors: {
    job: declaredCallback<JobEvent, JobRequest>("job"),
    tree: treeMachine,
    /** Asks a person (bus/gates.ts) and waits, durably, for the decision: the gate costs nothing while it waits. */
    gate: declaredCallback<GateEvent, GateAsk>("gate"),
  },
  guards: {
    gatesIdeas: ({ context }) => gated(context, "ideas"),
    gatesPlan: ({ context }) => gated(context, "plan"),
    gatesPaper: ({ context }) => gated(context, "paper"),
    mayAmend: ({ context }) => (context.amended ?? 0) < MAX_AMENDMENTS,
    searchesTree: ({ context }) => context.search === "tree" && context.tree !== undefined,
    searched: (_, { output }: { output: TreeOutput }) => output.status === "done" && output.result !== undefined,
    /** Both the experiments and the citation search have ended. */
    readyToWrite: ({ context }) => context.experiment !== undefined && context.citations !== undefined,
    citationsFailed: (_, { kind }: { kind: JobKind }) => kind === "cite",
    revise: ({ context }, { decision, spentUsd }: { decision: Decision; spentUsd: number }) =>
      decision.decision === "Reject" &&
      // A snapshot from before persons could amend a paper counts its revisions in `round`.
      (context.revised ?? context.round) < context.revisionRounds &&
      (context.budgetUsd === undefined || spentUsd < context.budgetUsd),
  },
  actions: {
    fail: assign((_, { kind, failure }: { kind: JobKind; failure: Failure }) => ({ failure, failedAt: kind })),
  },
}).createMachine({
  id: "idea",
  context: ({ input }) => ({
    ...input, round: 0, revised: 0, amended: 0, plan: undefined, notes: undefined, rejected: undefined,
    experiment: undefined, citations: undefined, paper: undefined, decisions: [], failure: undefined, failedAt: undefined,
  }),
  initial: "starting",
  states: {
    starting: {
      always: [{ guard: "gatesIdeas", target: "awaitingIdea" }, { target: "choosing" }],
    },
    // A person approves the idea, edits it (the coder gets the idea as edited), or turns it down.
    awaitingIdea: {
      invoke: { src: "gate", input: ({ context: c }): GateAsk => ({ runId: c.runId, ideaId: c.ideaId, request: "ideas.g0", proposal: { gate: "ideas", idea: c.idea } }) },
      on: { ...atGate("ideas", "choosing"), EDITED: { target: "choosing", actions: assign({ idea: ({ context, event }) => event.decision.idea ?? context.idea }) } },
    },
    choosing: {
      always: [{ guard: "searchesTree", target: "searching" }, { guard: "gatesPlan", target: "planning" }, { target: "experimenting" }],
    },
    // The coder's plan alone, for a person to see before any run is made.
    planning: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({ kind: "plan", job: { jobId: `${c.runId}.plan.${c.ideaId}${gen(c, "plan")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea } }),
      },
      on: {
        PLANNED: { target: "awaitingPlan", actions: assign({ plan: ({ event }) => event.result.runs }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    awaitingPlan: {
      invoke: {
        src: "gate",
        input: ({ context: c }): GateAsk => ({ runId: c.runId, ideaId: c.ideaId, request: `plan.g${c.generations?.plan ?? 0}`, proposal: { gate: "plan", idea: c.idea, plan: c.plan! } }),
      },
      on: { ...atGate("plan", "experimenting"), EDITED: { target: "experimenting", actions: assign({ plan: ({ context, event }) => event.decision.plan ?? context.plan }) } },
    },
    // The citation search needs only the idea: it runs while the experiments do, and the paper waits for both.
    experimenting: {
      invoke: [
        {
          src: "job",
          input: ({ context: c }): JobRequest => ({
            kind: c.experimentKind,
            job: { jobId: `${c.runId}.experiment.${c.ideaId}${gen(c, "experiment")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, ...(c.plan ? { plan: c.plan } : {}) },
          }),
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
          input: ({ context: c }) => ({
            runId: c.runId, ideaId: c.ideaId, idea: c.idea, experimentKind: c.experimentKind, ...c.tree!, ...(c.generations?.experiment ? { generation: c.generations.experiment } : {}),
          }),
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
          job: { jobId: `${c.runId}.write.${c.ideaId}${gen(c, "writing")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, round: 0, ...(c.citations ? { citations: c.citations } : {}) },
        }),
      },
      on: {
        WRITTEN: { target: "written", actions: assign({ paper: ({ event }) => event.result }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    // Every version of the paper goes to its reviewers, past a person first where the run gates papers.
    written: {
      always: [{ guard: "gatesPaper", target: "awaitingPaper" }, { target: "reviewing" }],
    },
    // A person approves the paper for review, sends notes the writer revises it from, or turns it down.
    awaitingPaper: {
      invoke: {
        src: "gate",
        input: ({ context: c }): GateAsk => ({
          runId: c.runId, ideaId: c.ideaId,
          // A paper after a review (r > 0) is new when the review is: every rewind renews the review stage.
          request: `paper.r${c.round}.g${(c.round ? c.generations?.review : c.generations?.writing) ?? 0}`,
          proposal: { gate: "paper", idea: c.idea, pdf: c.paper!.pdf, round: c.round, amendmentsLeft: MAX_AMENDMENTS - (c.amended ?? 0) },
        }),
      },
      on: {
        ...atGate("paper", "reviewing"),
        EDITED: [
          {
            guard: "mayAmend",
            target: "revising",
            actions: assign(({ context, event }) => ({ notes: event.decision.notes ?? "", round: context.round + 1, amended: (context.amended ?? 0) + 1 })),
          },
          // The gate offers no more edits (the CLI refuses them): one that comes anyway is taken as an approval.
          { target: "reviewing" },
        ],
      },
    },
    reviewing: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({
          kind: "chair",
          job: {
            jobId: `${c.runId}.chair.${c.ideaId}${suffix(c.round)}${gen(c, "review")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, pdf: c.paper!.pdf, round: c.round,
            // Reviewers whose model sees images are shown the figures.
            ...(c.experiment?.figures.length ? { figures: c.experiment.figures } : {}),
          },
        }),
      },
      on: {
        DECIDED: [
          {
            guard: { type: "revise", params: ({ event }) => ({ decision: event.result, spentUsd: event.spentUsd }) },
            target: "revising",
            actions: assign(({ context, event }) => ({ decisions: [...context.decisions, event.result], round: context.round + 1, revised: (context.revised ?? context.round) + 1 })),
          },
          { target: "decided", actions: assign(({ context, event }) => ({ decisions: [...context.decisions, event.result] })) },
        ],
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    // The writer revises the paper from the meta-review of the round before, or from a person's notes at its gate.
    revising: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => ({
          kind: "write",
          job: {
            jobId: `${c.runId}.write.${c.ideaId}${suffix(c.round)}${gen(c, "review")}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, round: c.round,
            metaReview: c.notes ?? c.decisions[c.decisions.length - 1]!.metaReview,
          },
        }),
      },
      on: {
        WRITTEN: { target: "written", actions: assign({ paper: ({ event }) => event.result, notes: undefined }) },
        JOB_FAILED: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ kind: event.kind, failure: event.failure }) } },
      },
    },
    decided: { type: "final" },
    failed: { type: "final" },
    // A person turned the idea down at a gate, saying why.
    rejected: { type: "final" },
  },
  output: ({ context }) => outputOf(context),
});
