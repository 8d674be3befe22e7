import type { JobKind } from "./schemas.js";

/** Every subject is `sci.<runId>.<topic>`; these helpers are the only place that spells them. */
export const subjects = {
  job: (runId: string, kind: JobKind) => `sci.${runId}.jobs.${kind}`,
  /** Any run's jobs of one kind: what a worker's durable consumer filters on. */
  anyJob: (kind: JobKind) => `sci.*.jobs.${kind}`,
  /** One job's outcome, on a subject of its own: waiting for it reads that subject, not the whole run. */
  outcome: (runId: string, kind: JobKind, jobId: string) => `sci.${runId}.conv.${kind}.${jobId}`,
  /** The outcomes of one kind in a run, or only of the jobs whose ids begin with the tokens of `prefix`. */
  outcomes: (runId: string, kind: JobKind, prefix?: string) => `sci.${runId}.conv.${kind}.${prefix ? `${prefix}.` : ""}>`,
  progress: (runId: string) => `sci.${runId}.conv.progress`,
  llm: (runId: string) => `sci.${runId}.conv.llm`,
  /** Every actor's transitions, batched. */
  state: (runId: string) => `sci.${runId}.conv.state`,
  /** Everything said in one run. */
  conversation: (runId: string) => `sci.${runId}.conv.>`,
} as const;

export const STREAMS = {
  /** Work-queue stream: a job is removed once a worker acks it. */
  jobs: { name: "SCI_JOBS", subjects: ["sci.*.jobs.*"] },
  /** Everything agents say to each other, kept so a run can be replayed and resumed. */
  conversation: { name: "SCI_CONV", subjects: ["sci.*.conv.>"] },
} as const;

export const BUCKETS = { runs: "sci-runs", artifacts: "sci-artifacts" } as const;

export const durableName = (kind: JobKind) => `jobs-${kind}`;
