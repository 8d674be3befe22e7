import { z } from "zod";
import { Failure } from "./errors.js";

/** Run ids are one subject token: letters, digits, dash. */
export const RunId = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "a run id is letters, digits and dashes");
export const IdeaId = z.string().regex(/^[a-z0-9_]{1,64}$/, "an idea id is snake_case");

export const Score = z.number().int().min(1).max(10);

/** An idea in the AI Scientist's fields, so seed_ideas.json and archives from the reference load as they are. */
export const Idea = z.object({
  Name: z.string().min(1),
  Title: z.string().min(1),
  Experiment: z.string().min(1),
  Interestingness: Score,
  Feasibility: Score,
  Novelty: Score,
  /** Why this idea: what earlier work or review it builds on or answers. */
  Rationale: z.string().optional(),
  /** The past reviews it answers, as `<runId>/<ideaId>` (agents/ideator/archive.ts). */
  Answers: z.array(z.string()).optional(),
});
export type Idea = z.infer<typeof Idea>;

/** What the reviews of an idea's paper came to, as the archive keeps it for the template's later runs. */
export const ArchivedReview = z.object({
  runId: RunId,
  ideaId: IdeaId,
  decision: z.enum(["Accept", "Reject"]),
  /** The reviews' mean scores. */
  scores: z.record(z.string(), z.number()),
  /** The reviewers' main weaknesses, the most raised first. */
  weaknesses: z.array(z.string()),
});
export type ArchivedReview = z.infer<typeof ArchivedReview>;

/** An idea an earlier run had: which run, and what its paper's reviews said when it was decided. */
export const ArchiveEntry = z.object({ idea: Idea, runId: RunId.optional(), ideaId: IdeaId.optional(), review: ArchivedReview.optional() });
export type ArchiveEntry = z.infer<typeof ArchiveEntry>;

/** A template's archive; one from the reference (a plain list of ideas) reads as entries without reviews. */
export const Archive = z.array(z.union([ArchiveEntry, Idea.transform((idea): ArchiveEntry => ({ idea }))]));

/** A past review as the ideator and the critic are shown it: `id` (`<runId>/<ideaId>`) is what an idea's Answers name. */
export const PastReview = ArchivedReview.omit({ runId: true, ideaId: true }).extend({
  id: z.string(),
  idea: Idea.pick({ Name: true, Title: true, Experiment: true }),
});
export type PastReview = z.infer<typeof PastReview>;

export const Evidence = z.object({
  title: z.string(),
  authors: z.array(z.string()),
  year: z.number().int().optional(),
  venue: z.string().optional(),
  citations: z.number().int().optional(),
  url: z.string().optional(),
  key: z.string().optional(),
});
export type Evidence = z.infer<typeof Evidence>;

/** A work a paper cites, as the writer keeps it: what the search said of it (its abstract left out) and its BibTeX entry. */
export const Citation = Evidence.extend({ key: z.string().min(1), bibtex: z.string() });
export type Citation = z.infer<typeof Citation>;

/** "undecided" is the critic's own: no search reached the literature, so there is nothing to judge on. */
export const VerdictKind = z.enum(["novel", "not novel", "revise", "undecided"]);
export const Verdict = z.object({
  verdict: VerdictKind,
  reason: z.string(),
  evidence: z.array(Evidence),
  queries: z.array(z.string()),
});
export type Verdict = z.infer<typeof Verdict>;

/** final_info.json as the reference writes it: {dataset: {means: {metric: number}}}. */
export const FinalInfo = z.record(z.string(), z.object({ means: z.record(z.string(), z.number()) }).passthrough());
export type FinalInfo = z.infer<typeof FinalInfo>;

export const RunRecord = z.object({
  run: z.string(),
  description: z.string(),
  ok: z.boolean(),
  attempts: z.number().int(),
  /** The run's final_info.json, when it succeeded. */
  results: FinalInfo.optional(),
  error: z.string().optional(),
});
export type RunRecord = z.infer<typeof RunRecord>;

export const Review = z.object({
  Summary: z.string(),
  Strengths: z.array(z.string()),
  Weaknesses: z.array(z.string()),
  Originality: z.number().int().min(1).max(4),
  Quality: z.number().int().min(1).max(4),
  Clarity: z.number().int().min(1).max(4),
  Significance: z.number().int().min(1).max(4),
  Questions: z.array(z.string()),
  Limitations: z.array(z.string()),
  Ethical_Concerns: z.boolean(),
  Soundness: z.number().int().min(1).max(4),
  Presentation: z.number().int().min(1).max(4),
  Contribution: z.number().int().min(1).max(4),
  Overall: z.number().int().min(1).max(10),
  Confidence: z.number().int().min(1).max(5),
  Decision: z.enum(["Accept", "Reject"]),
});
export type Review = z.infer<typeof Review>;

/** Who did something: the agent role and the node (process) it ran on. */
export const Actor = z.object({ agent: z.string(), node: z.string() });
export type Actor = z.infer<typeof Actor>;

// ---- jobs: one schema per work queue, and the result its worker reports ----

/** What the figure critic found wrong with a figure (agents/figureCritic/). */
export const FIGURE_PROBLEMS = ["blank", "missing-data", "too-small", "no-legend", "unreadable-axes", "caption-claims", "other"] as const;
export const FigureProblem = z.object({ kind: z.enum(FIGURE_PROBLEMS), detail: z.string() });
export type FigureProblem = z.infer<typeof FigureProblem>;

/** The figure critic's word on one figure: what it shows, and its problems (none: `ok`). `seen`: a model looked at the image. */
export const FigureCritique = z.object({
  figure: z.string(),
  ok: z.boolean(),
  shows: z.string(),
  problems: z.array(FigureProblem),
  seen: z.boolean().default(false),
});
export type FigureCritique = z.infer<typeof FigureCritique>;

/** A figure as the critic is shown it: its file (under `<runId>/<ideaId>/`), its caption and the sentences that refer to it. */
export const FigureToCheck = z.object({ name: z.string().min(1), caption: z.string(), references: z.array(z.string()).default([]) });
export type FigureToCheck = z.infer<typeof FigureToCheck>;

/** `critiques`: the figure critic's last word on the figures, for the writer's captions. */
const ExperimentResult = z.object({ runs: z.array(RunRecord), figures: z.array(z.string()), notes: z.string(), critiques: z.array(FigureCritique).optional() });

// ---- the tree search over an idea's experiment variants (machines/tree.ts) ----

/** The stages of a tree search, in order, as AI-Scientist-v2 has them. */
export const TREE_STAGES = ["implement", "tune", "research", "ablate"] as const;
export const TreeStage = z.enum(TREE_STAGES);
export type TreeStage = z.infer<typeof TreeStage>;

/** The measure a search goes by: a key of final_info.json's means, averaged over its datasets. */
export const Metric = z.object({ name: z.string().min(1), goal: z.enum(["max", "min"]) });
export type Metric = z.infer<typeof Metric>;

/** `root` is the template's own code (the baseline); the search's nodes are n1, n2, … */
export const TreeNodeId = z.string().regex(/^n\d{1,4}$/, "a tree node is n<number>");
export const TreeParent = z.union([z.literal("root"), TreeNodeId]);
/** A re-run of a node (or of the baseline) on one seed: `n4-s2`, `root-s1000`. */
export const SeedRunId = z.string().regex(/^(root|n\d{1,4})-s\d{1,6}$/, "a seed run is <node>-s<seed>");
export const TreeStatus = z.enum(["running", "works", "buggy", "lost"]);

export const TreeNode = z.object({
  id: TreeNodeId,
  parent: TreeParent,
  stage: TreeStage,
  /** draft: from the baseline; debug: fixes a buggy parent from its stderr; improve: changes a working parent; ablate: takes one change of the best back. */
  action: z.enum(["draft", "debug", "improve", "ablate"]),
  /** Debug steps in a row that led here. */
  debugDepth: z.number().int().min(0),
  status: TreeStatus,
  /** What the node's code changes, as the coder said; absent while it is running. */
  description: z.string().optional(),
  /** The metric over the node's datasets, when it ran. */
  value: z.number().optional(),
  /** The coder node that ran it. */
  by: z.string().optional(),
  /** Why it failed, short; the whole stderr is in the object store. */
  error: z.string().optional(),
});
export type TreeNode = z.infer<typeof TreeNode>;

export const SeedRun = z.object({
  id: SeedRunId,
  of: TreeParent,
  seed: z.number().int().min(0),
  /** replicate: a chosen node over more seeds; confirm: the final comparison on seeds the search never saw. */
  purpose: z.enum(["replicate", "confirm"]),
  status: TreeStatus,
  value: z.number().optional(),
  by: z.string().optional(),
});
export type SeedRun = z.infer<typeof SeedRun>;

/** What a tree search ends with, and what its report (tree.json) is made from. */
export const TreeRecord = z.object({
  metric: Metric,
  /** The template reads its seed from SWARM_SEED (its manifest says so); without it a re-run is a reproduction. */
  seeded: z.boolean(),
  seeds: z.number().int().min(1),
  stages: z.array(z.object({ stage: TreeStage, goal: z.string(), budget: z.number().int().min(0), best: TreeNodeId.optional() })),
  nodes: z.array(TreeNode),
  seedRuns: z.array(SeedRun),
  /** The node the search chose, compared with the baseline on fresh seeds. */
  final: TreeNodeId.optional(),
});
export type TreeRecord = z.infer<typeof TreeRecord>;

/** One step of a tree search, as a coder is asked to take it: a node to make and run, a seed re-run, or the report. */
export const TreeStep = z.discriminatedUnion("action", [
  z.object({
    action: z.enum(["draft", "improve", "ablate"]),
    node: TreeNodeId,
    parent: TreeParent,
    stage: TreeStage,
    goal: z.string(),
    /** Which of the parent's children this is: siblings made at once take different directions. */
    sibling: z.number().int().min(0),
    /** What the parent's other children, made before, changed. */
    tried: z.array(z.string()),
    metric: Metric.optional(),
  }),
  z.object({
    action: z.literal("debug"),
    node: TreeNodeId,
    parent: TreeNodeId,
    stage: TreeStage,
    goal: z.string(),
    metric: Metric.optional(),
  }),
  z.object({
    action: z.literal("seed"),
    node: SeedRunId,
    of: TreeParent,
    seed: z.number().int().min(0),
    metric: Metric,
    /** The coder node that found it: an independent replication runs elsewhere where the swarm has another. */
    avoid: z.string().optional(),
  }),
  z.object({ action: z.literal("report"), tree: TreeRecord }),
]);
export type TreeStep = z.infer<typeof TreeStep>;

/** What a node or seed run reports back to the tree. */
export const TreeStepResult = z.object({
  node: z.union([TreeNodeId, SeedRunId]),
  /** The node it was made from (a seed run: the node it re-ran), and its stage: enough to draw the tree as it grows. */
  parent: TreeParent.optional(),
  stage: TreeStage.optional(),
  ok: z.boolean(),
  description: z.string(),
  /** The run's final_info.json, when it ran. */
  results: FinalInfo.optional(),
  value: z.number().optional(),
  /** The metric, chosen when the step was given none (from the manifest, else from the run's results). */
  metric: Metric.optional(),
  error: z.string().optional(),
});
export type TreeStepResult = z.infer<typeof TreeStepResult>;

/** An experiment job's result: an idea's whole linear chain or a tree's report (runs, figures, notes), or one step of its tree. */
const ExperimentOutcome = z.union([ExperimentResult, TreeStepResult]);

/** Job ids are subject tokens too (each job's outcome has a subject of its own): dot-separated, no wildcards. */
export const JobId = z.string().max(200).regex(/^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$/, "a job id is dot-separated tokens of letters, digits, '_', '=' and '-'");

const jobBase = { jobId: JobId, runId: RunId };

/** One run the coder plans for an idea: what it changes, in a sentence or two. */
export const PlannedRun = z.object({ description: z.string().min(1).max(2000) });
export type PlannedRun = z.infer<typeof PlannedRun>;

export const jobSchemas = {
  /** The template's unchanged run, before the run's first model call: a template that cannot run stops the run there. */
  baseline: z.object(jobBase),
  /** The same, for a profile that needs a GPU. */
  gpuBaseline: z.object(jobBase),
  ideate: z.object({ ...jobBase, count: z.number().int().min(1) }),
  /** `reviews`: the past reviews the ideator was shown, so the critic judges a repeat of a rejected idea too. */
  novelty: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea, turn: z.number().int().min(0), reviews: z.array(PastReview).optional() }),
  /**
   * `--topic` runs only, before the baseline: the coder writes the template (experiment.py, plot.py, prompt.json,
   * latex/template.tex) from the run's topic, and runs it until it works; that first working version is the baseline.
   */
  scaffold: z.object(jobBase),
  /** `--gate plan` runs only: the coder's plan of runs for an idea, for a person to approve or edit before any run. */
  plan: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea }),
  /**
   * Without `step`, the idea's experiments as one chain of runs (`--search linear`); with it, one step of its tree
   * search. `plan`: the runs to make, as a person approved or edited them at the plan gate; without it the coder plans.
   */
  experiment: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea, step: TreeStep.optional(), plan: z.array(PlannedRun).optional() }),
  /** The same job, for templates whose profile needs a GPU: only nodes with GPUs serve this queue. */
  gpuExperiment: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea, step: TreeStep.optional(), plan: z.array(PlannedRun).optional() }),
  /** The literature search for an idea's citations, which needs only the idea: it runs beside the experiments. */
  cite: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea }),
  /**
   * Round 0 writes the paper; round r > 0 revises it from the area chair's meta-review of round r - 1. `citations`:
   * what the idea's cite job chose (none when it failed); without them the writer searches itself.
   */
  write: z.object({
    ...jobBase, ideaId: IdeaId, idea: Idea, round: z.number().int().min(0).default(0), metaReview: z.string().optional(), citations: z.array(Citation).optional(),
  }),
  /** `figures`: the experiment's figure files (under `<runId>/<ideaId>/`), shown to reviewers whose model sees images. */
  chair: z.object({ ...jobBase, ideaId: IdeaId, idea: Idea, pdf: z.string(), round: z.number().int().min(0).default(0), figures: z.array(z.string()).optional() }),
  review: z.object({ ...jobBase, ideaId: IdeaId, pdf: z.string(), reviewer: z.number().int().min(0), round: z.number().int().min(0).default(0), figures: z.array(z.string()).optional() }),
  /** The figure critic's look at an idea's figures (files under `<runId>/<ideaId>/`): asked by the coder after plotting, by the writer of its captions. */
  figures: z.object({
    ...jobBase,
    ideaId: IdeaId,
    figures: z.array(FigureToCheck).min(1),
    runs: z.array(z.object({ run: z.string(), description: z.string(), ok: z.boolean() })),
    round: z.number().int().min(0).default(0),
  }),
} as const;

const BaselineResult = z.object({ run: RunRecord, cached: z.boolean(), ms: z.number().min(0) });

export const resultSchemas = {
  baseline: BaselineResult,
  gpuBaseline: BaselineResult,
  /** `prefix`: where in the object store the written template is (`<runId>/template`); `files`: what it holds. */
  scaffold: z.object({ prefix: z.string().min(1), files: z.array(z.string()), baseline: RunRecord, attempts: z.number().int().min(1) }),
  plan: z.object({ runs: z.array(PlannedRun).min(1) }),
  ideate: z.object({
    ideas: z.array(
      z.object({
        ideaId: IdeaId,
        idea: Idea,
        verdict: Verdict.optional(),
        status: z.enum(["accepted", "rejected", "undecided", "failed"]),
        history: z.array(z.string()),
        /** Why a `failed` idea failed. */
        failure: Failure.optional(),
      }),
    ),
    /** Proposals that never became an idea, and why. */
    failures: z.array(z.string()).optional(),
  }),
  novelty: Verdict,
  experiment: ExperimentOutcome,
  gpuExperiment: ExperimentOutcome,
  cite: z.object({ citations: z.array(Citation) }),
  write: z.object({ pdf: z.string(), tex: z.string(), pages: z.number().int().optional() }),
  chair: z.object({
    decision: z.enum(["Accept", "Reject"]),
    metaReview: z.string(),
    scores: z.record(z.string(), z.number()),
    reviews: z.number().int(),
    round: z.number().int().min(0).default(0),
    /** The reviewers' main weaknesses, the most raised first: what the archive keeps for the template's next runs. */
    weaknesses: z.array(z.string()).optional(),
    /** The reviews the decision weighed: whose, from which node, and what each said. */
    // `identity`: who published the review, as the server vouched for it (subjects.outcome).
    reviewers: z.array(z.object({ reviewer: z.number().int().min(0), node: z.string(), identity: z.string(), overall: z.number(), decision: z.enum(["Accept", "Reject"]) })),
  }),
  review: z.object({ review: Review, reflections: z.number().int() }),
  /** `seen`: a model looked at the images; otherwise only the deterministic check did. */
  figures: z.object({ critiques: z.array(FigureCritique), seen: z.boolean() }),
} as const;

export type JobKind = keyof typeof jobSchemas;
export const JOB_KINDS = Object.keys(jobSchemas) as JobKind[];
export type Job<K extends JobKind> = z.infer<(typeof jobSchemas)[K]>;
/** A job as published: fields with defaults may be left out. */
export type JobInput<K extends JobKind> = z.input<(typeof jobSchemas)[K]>;
export type JobResult<K extends JobKind> = z.infer<(typeof resultSchemas)[K]>;

/** What a worker reports on `sci.<runId>.conv.<kind>` when a job ends, either way. */
export function outcomeSchema<K extends JobKind>(kind: K) {
  // `instance`: the connection that published it, which must be the one holding the job's claim (bus/outcomes.ts).
  const base = { jobId: JobId, runId: RunId, ideaId: IdeaId.optional(), by: Actor, instance: z.string().min(1), at: z.string() };
  return z.discriminatedUnion("ok", [
    z.object({ ...base, ok: z.literal(true), result: resultSchemas[kind] as (typeof resultSchemas)[K] }),
    // `error` is the failure's message, for readers that only print it; deciding is done on `failure`.
    z.object({ ...base, ok: z.literal(false), error: z.string(), failure: Failure }),
  ]);
}
export type Outcome<K extends JobKind> = {
  jobId: string;
  runId: string;
  ideaId?: string | undefined;
  by: Actor;
  instance: string;
  at: string;
} & ({ ok: true; result: JobResult<K> } | { ok: false; error: string; failure: Failure });

// ---- conversation events that are not job outcomes ----

/** The ideator judged an idea novel: the run's pipeline starts its experiments. */
export const AcceptedIdea = z.object({ runId: RunId, ideaId: IdeaId, idea: Idea, by: Actor, at: z.string() });
export type AcceptedIdea = z.infer<typeof AcceptedIdea>;

/** One transition of one actor: which actor, on which node, the state it entered and the event that caused it. */
export const StateEvent = z.object({
  runId: RunId,
  ideaId: IdeaId.optional(),
  by: Actor,
  /** The actor instance, unique in its run: `critic.<ideaId>.<turn>`, `coder.<ideaId>`, ... */
  actor: z.string().min(1),
  machine: z.string().min(1),
  /** Transitions of this actor instance, counted from 0. */
  seq: z.number().int().min(0),
  state: z.unknown(),
  /** The type of the event that caused the transition (`xstate.init`, `xstate.done.actor.…`, `REVIEW`, …). */
  event: z.string(),
  /** The actor reached a final state. */
  done: z.boolean(),
  at: z.string(),
});
export type StateEvent = z.infer<typeof StateEvent>;

/** State events go out in batches, a few per second at most for a busy actor. */
export const StateBatch = z.object({ events: z.array(StateEvent).min(1) });

export const Progress = z.object({
  runId: RunId,
  by: Actor,
  ideaId: IdeaId.optional(),
  text: z.string(),
  at: z.string(),
});
export type Progress = z.infer<typeof Progress>;

export const Usage = z.object({
  inputTokens: z.number().int().min(0),
  outputTokens: z.number().int().min(0),
  cachedTokens: z.number().int().min(0),
  estimated: z.boolean(),
});
export type Usage = z.infer<typeof Usage>;

export const LlmExchange = z.object({
  runId: RunId,
  by: Actor,
  ideaId: IdeaId.optional(),
  task: z.string(),
  provider: z.string(),
  model: z.string(),
  messages: z.array(z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string() })),
  answer: z.unknown(),
  error: z.string().optional(),
  /** Names the request (see agents/llm/client.ts) and the subject the exchange is on; absent in older runs. */
  key: z.string().regex(/^[0-9a-f]+$/).optional(),
  usage: Usage,
  costUsd: z.number().min(0),
  ms: z.number().min(0),
  at: z.string(),
});
export type LlmExchange = z.infer<typeof LlmExchange>;

export const LlmChoice = z.object({ provider: z.string(), model: z.string() });

/** What a tree search may spend: nodes per stage, debug steps in a row, seeds per chosen node, jobs in flight. */
export const TreeBudget = z.object({
  implement: z.number().int().min(1).max(50).default(3),
  tune: z.number().int().min(0).max(50).default(3),
  research: z.number().int().min(0).max(50).default(3),
  ablate: z.number().int().min(0).max(50).default(2),
  maxDebugDepth: z.number().int().min(0).max(5).default(2),
  /** Seeds each chosen node (and the final comparison) is run over; 1 turns the re-runs off. */
  seeds: z.number().int().min(1).max(20).default(3),
  /** Jobs the search keeps in flight; by default the coder slots the swarm has when the search starts. */
  width: z.number().int().min(1).max(64).optional(),
});
export type TreeBudget = z.infer<typeof TreeBudget>;

/** The run's configuration, kept in KV so that any node can read what the run asked for. */
export const RunConfig = z.object({
  runId: RunId,
  template: z.string(),
  /** The template's profile: `full`, or one its manifest names (e.g. `reduced` for two CPU cores). */
  profile: z.string().default("full"),
  ideas: z.number().int().min(1),
  reviewers: z.number().int().min(1),
  quorum: z.number().int().min(1),
  reviewDeadlineMs: z.number().int().min(1000),
  maxRuns: z.number().int().min(1),
  maxFixes: z.number().int().min(0),
  /** How an idea's experiments go: one chain of runs, or a tree search over variants (machines/tree.ts). */
  search: z.enum(["linear", "tree"]).default("linear"),
  tree: TreeBudget.default(TreeBudget.parse({})),
  maxReflections: z.number().int().min(1),
  maxRevisions: z.number().int().min(0),
  /** Worked example reviews each reviewer is shown (config/review_examples/). */
  fewShot: z.number().int().min(0).default(1),
  /** Times a rejected paper goes back to the writer with the meta-review and is reviewed again. */
  revisionRounds: z.number().int().min(0).default(1),
  noveltyRounds: z.number().int().min(1),
  /** Times a reviewer reflects on its review at most. */
  reviewReflections: z.number().int().min(1).default(3),
  /** Rounds of citation search the writer makes for a paper. */
  citeRounds: z.number().int().min(0).default(2),
  /** Rounds in which the figure critic's critique goes back to the coder's plot (and the writer's captions); 0 turns the critic off. */
  figureRounds: z.number().int().min(0).default(2),
  experimentTimeoutMs: z.number().int().min(1000),
  llm: LlmChoice,
  /** A model per agent role, overriding `llm` for that role. */
  roleLlm: z.record(z.string(), LlmChoice).default({}),
  /** No new paid work starts once the run has spent this much (USD). */
  budgetUsd: z.number().positive().optional(),
  /** Where the critic and the writer search: Semantic Scholar, OpenAlex, S2 falling back to OpenAlex, or a BibTeX file. */
  literature: z.enum(["s2", "openalex", "auto", "local"]).default("local"),
  /** Longest the critic and the writer wait out one literature service's rate limits and outages, in all (s). */
  literatureWaitS: z.number().positive().default(300),
  /** `--topic`: the research area the run starts from, with no template; the coder writes the template first (job `scaffold`). */
  topic: z.object({ file: z.string(), text: z.string().min(1).max(100_000) }).optional(),
  /** `--gate`: the points where the run waits for a person to approve, edit or reject (npm run gate). */
  gates: z.array(z.enum(["ideas", "plan", "paper"])).default([]),
  /** The BibTeX file for `local` (each node reads its own copy); the shipped one when absent. */
  bibliography: z.string().optional(),
  startedAt: z.string(),
});
export type RunConfig = z.infer<typeof RunConfig>;
