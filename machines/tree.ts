import { assign, enqueueActions, setup, spawnChild, stopChild } from "xstate";
import {
  TREE_STAGES, type Idea, type Metric, type SeedRun, type TreeBudget, type TreeNode, type TreeRecord, type TreeStage, type TreeStep, type TreeStepResult,
} from "../bus/schemas.js";
import { failure, type Failure } from "../bus/errors.js";
import { declared, declaredCallback } from "./declare.js";
import type { ChainResult, JobEvent, JobRequest } from "./idea.js";

/** What each stage is for, as the coder of each of its nodes is told. */
export const STAGE_GOALS: Record<TreeStage, string> = {
  implement: "Implement the idea in the baseline code so that it runs and reports its results; each draft may implement it differently.",
  tune: "Tune the settings the idea's implementation depends on (learning rate, width, schedule, …) so that it is compared at its best, one change per node.",
  research: "Push the idea itself further: vary what the idea is about, one change per node, to find where it helps most.",
  ablate: "Take back one change of the chosen variant at a time, keeping the rest, to show what each change contributes.",
};

export interface TreeInput {
  runId: string;
  ideaId: string;
  idea: Idea;
  experimentKind: "experiment" | "gpuExperiment";
  budget: TreeBudget;
  /** The template reads SWARM_SEED: re-runs on other seeds measure the spread; without it they are reproductions. */
  seeded: boolean;
  /** The template's measure (its manifest's, else one read from the baseline's results); absent, each node's coder chooses one. */
  metric?: Metric | undefined;
  /** A rewound idea's search: its jobs are new ones, not the first search's found done. */
  generation?: number | undefined;
}

interface Context extends TreeInput {
  /** Jobs kept in flight: the budget's width, or the coder slots the swarm has when the search starts. */
  width: number;
  nodes: TreeNode[];
  seedRuns: SeedRun[];
  /** Seed runs planned and not yet given to a coder. */
  pending: SeedRun[];
  /** The best working node of each stage that has ended. */
  best: Partial<Record<TreeStage, string>>;
  /** The node the search chose when its research ended, which the ablations take apart and the confirmation tests. */
  final: string | undefined;
  report: ChainResult | undefined;
  failure: Failure | undefined;
  /** Why the last lost node's job failed: when no draft ran because every one was lost, this is why. */
  lastLoss: Failure | undefined;
}

export interface TreeOutput {
  status: "done" | "failed";
  tree: TreeRecord;
  result?: ChainResult;
  failure?: Failure;
}

/** The search's measure; before any is known (no manifest, no node run yet), a placeholder that says so. */
const metricOf = (c: Context): Metric => c.metric ?? { name: "unknown", goal: "max" };

const running = (c: Context) => c.nodes.filter((n) => n.status === "running").length + c.seedRuns.filter((r) => r.status === "running").length;

/** A better value by the metric's goal; a node without one is worse than any with one. */
function better(c: Context, a: TreeNode, b: TreeNode): boolean {
  if (a.value === undefined || b.value === undefined) return a.value !== undefined;
  return (c.metric?.goal ?? "max") === "max" ? a.value > b.value : a.value < b.value;
}

/** Best-first: the working node with the best value, the earliest among equals; ablations take the chosen one apart and never replace it. */
function bestOf(c: Context, nodes: TreeNode[]): TreeNode | undefined {
  let best: TreeNode | undefined;
  for (const n of nodes) if (n.status === "works" && n.action !== "ablate" && (!best || better(c, n, best))) best = n;
  return best;
}

const childrenOf = (c: Context, id: string, action?: TreeNode["action"]) => c.nodes.filter((n) => n.parent === id && (!action || n.action === action));

/**
 * The next node of a stage, or none when the stage has made its budget of nodes or has nothing to expand. A
 * buggy node is debugged first, while its debug depth allows; then the stage's own step, while its budget
 * allows: drafts from the baseline, improvements of the best node so far, or ablations of the chosen one.
 */
function propose(c: Context, stage: TreeStage): NodeStep | undefined {
  const made = c.nodes.filter((n) => n.stage === stage);
  const node = `n${c.nodes.length + 1}`;
  const goal = STAGE_GOALS[stage];
  const metric = c.metric ? { metric: c.metric } : {};
  // Debug steps are bounded by their depth, not by the stage's budget: a buggy draft is not a spent one.
  const buggy = made.find((n) => n.status === "buggy" && n.debugDepth < c.budget.maxDebugDepth && !childrenOf(c, n.id, "debug").length);
  if (buggy) return { action: "debug", node, parent: buggy.id, stage, goal, ...metric };
  if (made.filter((n) => n.action !== "debug").length >= c.budget[stage]) return undefined;
  const parent = stage === "implement" ? "root" : stage === "ablate" ? c.final : bestOf(c, c.nodes)?.id;
  if (!parent) return undefined;
  const action = stage === "implement" ? "draft" : stage === "ablate" ? "ablate" : "improve";
  const siblings = childrenOf(c, parent, action);
  return { action, node, parent, stage, goal, sibling: siblings.length, tried: siblings.flatMap((n) => (n.description ? [n.description] : [])), ...metric };
}

type NodeStep = Extract<TreeStep, { action: "draft" | "improve" | "ablate" | "debug" }>;

function nodeOf(c: Context, step: NodeStep): TreeNode {
  const parent = c.nodes.find((n) => n.id === step.parent);
  const debugDepth = step.action === "debug" ? (parent?.debugDepth ?? 0) + 1 : 0;
  return { id: step.node, parent: step.parent, stage: step.stage, action: step.action, debugDepth, status: "running" };
}

/** The seed re-runs of the chosen nodes, and the final comparison with the baseline on seeds the search never saw. */
function seedPlan(c: Context): SeedRun[] {
  const plan: SeedRun[] = [];
  const run = (of: string, seed: number, purpose: SeedRun["purpose"]) => plan.push({ id: `${of}-s${seed}`, of, seed, purpose, status: "running" });
  if (c.seeded) {
    const chosen = [...new Set(["root", ...TREE_STAGES.flatMap((s) => (c.best[s] ? [c.best[s]!] : [])), ...(c.final ? [c.final] : [])])];
    for (const of of chosen) for (let s = 1; s < c.budget.seeds; s++) run(of, s, "replicate");
  }
  // Fresh seeds for the comparison the paper's claim rests on; a template without seeds is reproduced once.
  const fresh = c.seeded ? c.budget.seeds : 1;
  if (c.final) for (const of of [c.final, "root"]) for (let s = 0; s < fresh; s++) run(of, 1000 + s, "confirm");
  return plan;
}

export function treeRecord(c: Context): TreeRecord {
  return {
    metric: metricOf(c),
    seeded: c.seeded,
    seeds: c.budget.seeds,
    stages: TREE_STAGES.map((stage) => ({ stage, goal: STAGE_GOALS[stage], budget: c.budget[stage], ...(c.best[stage] ? { best: c.best[stage] } : {}) })),
    nodes: c.nodes,
    seedRuns: c.seedRuns,
    ...(c.final ? { final: c.final } : {}),
  };
}

const jobOf = (c: Context, id: string, step: TreeStep): JobRequest => ({
  kind: c.experimentKind,
  job: { jobId: `${c.runId}.experiment.${c.ideaId}${c.generation ? `.g${c.generation}` : ""}.${id}`, runId: c.runId, ideaId: c.ideaId, idea: c.idea, step },
});

const idOfJob = (jobId: string | undefined) => jobId?.split(".").at(-1);

type StageParams = { stage: TreeStage };

/** A stage: as many nodes in flight as the width allows, each result recorded as it comes, until the stage is over. */
const stage = (name: TreeStage, next: string) => ({
  entry: { type: "expand" as const, params: { stage: name } },
  on: {
    EXPERIMENTED: { actions: ["record" as const, { type: "expand" as const, params: { stage: name } }] },
    JOB_FAILED: [
      { guard: "unaffordable" as const, target: "failed", actions: "fail" as const },
      { actions: ["lose" as const, { type: "expand" as const, params: { stage: name } }] },
    ],
  },
  always: [
    { guard: { type: "stageOver" as const, params: { stage: name } }, target: next, actions: { type: "closeStage" as const, params: { stage: name } } },
  ],
});

/**
 * One idea's experiments as a tree search over variants: the stages of AI-Scientist-v2 (get the idea running,
 * tune it, research it, ablate it), each node a job on the experiment queue so that every coder slot of the
 * swarm works on the tree at once; then the chosen nodes over more seeds and the final comparison with the
 * baseline on fresh seeds, on another coder node where there is one; then the report (figures, notes, tree.json).
 * The policy is here, in pure functions of the tree; the coders only make and run what they are asked for.
 */
export const treeMachine = setup({
  types: {
    input: {} as TreeInput,
    context: {} as Context,
    events: {} as JobEvent,
    output: {} as TreeOutput,
  },
  actors: {
    job: declaredCallback<JobEvent, JobRequest>("job"),
    /** The coder slots that serve this tree's queue across the swarm now. */
    coderSlots: declared<number, { experimentKind: "experiment" | "gpuExperiment" }>("coderSlots"),
  },
  guards: {
    stageOver: ({ context: c }, { stage }: StageParams) =>
      !c.nodes.some((n) => n.stage === stage && n.status === "running") && propose(c, stage) === undefined,
    nothingWorks: ({ context: c }) => !c.nodes.some((n) => n.status === "works"),
    allLost: ({ context: c }) => c.lastLoss !== undefined && c.nodes.every((n) => n.status === "lost"),
    seedsDone: ({ context: c }) => !c.pending.length && !c.seedRuns.some((r) => r.status === "running"),
    /** A job that failed for the run's budget ends the search: nothing more may be spent on it. */
    unaffordable: ({ event }) => event.type === "JOB_FAILED" && event.failure.kind === "budget",
  },
  actions: {
    expand: enqueueActions(({ context: c, enqueue }, { stage }: StageParams) => {
      let tree = c;
      const steps: NodeStep[] = [];
      while (running(tree) < tree.width) {
        const step = propose(tree, stage);
        if (!step) break;
        steps.push(step);
        tree = { ...tree, nodes: [...tree.nodes, nodeOf(tree, step)] };
      }
      if (!steps.length) return;
      enqueue.assign({ nodes: tree.nodes });
      for (const step of steps) enqueue(spawnChild("job", { id: step.node, input: jobOf(c, step.node, step) }));
    }),
    /** The planned seed runs go out as slots free up: the width holds for them as for the nodes. */
    expandSeeds: enqueueActions(({ context: c, enqueue }) => {
      const take = c.pending.slice(0, Math.max(0, c.width - running(c)));
      if (!take.length) return;
      enqueue.assign({ seedRuns: [...c.seedRuns, ...take], pending: c.pending.slice(take.length) });
      const metric = metricOf(c);
      const avoid = c.nodes.find((n) => n.id === c.final)?.by;
      for (const r of take) {
        const step: TreeStep = { action: "seed", node: r.id, of: r.of, seed: r.seed, metric, ...(r.purpose === "confirm" && avoid ? { avoid } : {}) };
        enqueue(spawnChild("job", { id: r.id, input: jobOf(c, r.id, step) }));
      }
    }),
    record: enqueueActions(({ context: c, event, enqueue }) => {
      if (event.type !== "EXPERIMENTED" || !("node" in event.result)) return;
      const r: TreeStepResult = event.result;
      const status = r.ok ? ("works" as const) : ("buggy" as const);
      const done = { status, ...(r.value !== undefined ? { value: r.value } : {}), ...(event.by ? { by: event.by } : {}) };
      enqueue.assign({
        metric: c.metric ?? r.metric,
        nodes: c.nodes.map((n) => (n.id === r.node ? { ...n, ...done, description: r.description, ...(r.error ? { error: r.error.slice(-500) } : {}) } : n)),
        seedRuns: c.seedRuns.map((s) => (s.id === r.node ? { ...s, ...done } : s)),
      });
      enqueue(stopChild(r.node));
    }),
    /** A node whose job failed (not its code: the bus, the provider) is lost; the stage goes on without it. */
    lose: enqueueActions(({ context: c, event, enqueue }) => {
      if (event.type !== "JOB_FAILED") return;
      const id = idOfJob(event.jobId);
      if (!id) return;
      const error = event.failure.message.slice(-500);
      enqueue.assign({
        lastLoss: event.failure,
        nodes: c.nodes.map((n) => (n.id === id ? { ...n, status: "lost" as const, error } : n)),
        seedRuns: c.seedRuns.map((s) => (s.id === id ? { ...s, status: "lost" as const } : s)),
      });
      enqueue(stopChild(id));
    }),
    closeStage: assign(({ context: c }, { stage }: StageParams) => {
      const best = bestOf(c, c.nodes.filter((n) => n.stage === stage))?.id;
      return {
        best: best ? { ...c.best, [stage]: best } : c.best,
        // The ablations take apart what the search found before them.
        ...(stage === "research" ? { final: bestOf(c, c.nodes)?.id } : {}),
      };
    }),
    fail: assign(({ event }) => (event.type === "JOB_FAILED" ? { failure: event.failure } : {})),
  },
}).createMachine({
  id: "tree",
  context: ({ input }) => ({
    ...input, width: input.budget.width ?? 1, nodes: [], seedRuns: [], pending: [], best: {}, final: undefined, report: undefined, failure: undefined, lastLoss: undefined,
  }),
  initial: "sizing",
  states: {
    sizing: {
      invoke: {
        src: "coderSlots",
        input: ({ context }) => ({ experimentKind: context.experimentKind }),
        onDone: { target: "implementing", actions: assign({ width: ({ context, event }) => context.budget.width ?? Math.max(1, event.output) }) },
        // Without the registry the search still runs, one node at a time.
        onError: { target: "implementing" },
      },
    },
    implementing: {
      ...stage("implement", "implemented"),
    },
    implemented: {
      always: [
        // Every draft lost to its job's failure (a missing module, the sandbox) is that failure's fault, not the model's.
        { guard: "allLost", target: "failed", actions: assign({ failure: ({ context }) => context.lastLoss }) },
        { guard: "nothingWorks", target: "failed", actions: assign({ failure: failure("model", "no implementation of the idea ran", { hint: "each node's error is in tree.json; a stronger model edits the code more reliably" }) }) },
        { target: "tuning" },
      ],
    },
    tuning: stage("tune", "researching"),
    researching: stage("research", "ablating"),
    ablating: stage("ablate", "confirming"),
    confirming: {
      entry: [assign(({ context }) => ({ pending: seedPlan(context) })), "expandSeeds"],
      on: {
        EXPERIMENTED: { actions: ["record", "expandSeeds"] },
        JOB_FAILED: [{ guard: "unaffordable", target: "failed", actions: "fail" }, { actions: ["lose", "expandSeeds"] }],
      },
      always: { guard: "seedsDone", target: "reporting" },
    },
    reporting: {
      invoke: {
        src: "job",
        input: ({ context: c }): JobRequest => jobOf(c, "report", { action: "report", tree: treeRecord(c) }),
      },
      on: {
        EXPERIMENTED: { target: "done", actions: assign({ report: ({ event }) => ("runs" in event.result ? event.result : undefined) }) },
        JOB_FAILED: { target: "failed", actions: "fail" },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context: c }) => ({
    status: c.report && !c.failure ? "done" : "failed",
    tree: treeRecord(c),
    ...(c.report ? { result: c.report } : {}),
    ...(c.failure ? { failure: c.failure } : {}),
  }),
});
