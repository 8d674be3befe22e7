import type { JobKind } from "./schemas.js";

/** Every subject is `sci.<runId>.<topic>`; these helpers are the only place that spells them. */
export const subjects = {
  job: (runId: string, kind: JobKind) => `sci.${runId}.jobs.${kind}`,
  /** Any run's jobs of one kind: what a worker's durable consumer filters on. */
  anyJob: (kind: JobKind) => `sci.*.jobs.${kind}`,
  /**
   * One job's outcome, on a subject of its own (waiting for it reads that subject, not the whole run), named by
   * the identity that published it: the server lets each identity publish only under its own name (bus/auth.ts),
   * so the name is vouched for. Without `identity`, the job's outcome from anyone.
   */
  outcome: (runId: string, kind: JobKind, jobId: string, identity = "*") => `sci.${runId}.conv.${kind}.${identity}.${jobId}`,
  /** The outcomes of one kind in a run, or only of the jobs whose ids begin with the tokens of `prefix`. */
  outcomes: (runId: string, kind: JobKind, prefix?: string) => `sci.${runId}.conv.${kind}.${prefix ? `*.${prefix}.` : ""}>`,
  /** An idea the ideator accepted, one subject per idea; `accepted(runId)` is every idea of the run. */
  accepted: (runId: string, ideaId?: string) => `sci.${runId}.conv.accepted.${ideaId ?? "*"}`,
  progress: (runId: string) => `sci.${runId}.conv.progress`,
  /**
   * One model exchange, on a subject of its own named by its key: a job redone after a crash finds the answer
   * it already paid for by reading that one subject.
   */
  llm: (runId: string, key: string) => `sci.${runId}.conv.llm.${key}`,
  /** Every model exchange of one run. */
  llms: (runId: string) => `sci.${runId}.conv.llm.>`,
  /** Every actor's transitions, batched. */
  state: (runId: string) => `sci.${runId}.conv.state`,
  /** Marks a point in a run's conversation, so that a reader knows it has read everything said before it. */
  end: (runId: string) => `sci.${runId}.conv.end`,
  /** Everything said in one run. */
  conversation: (runId: string) => `sci.${runId}.conv.>`,
  /** Where one bus connection answers whether it holds a claim or a lease (never stored: no stream takes three tokens). */
  live: (instanceId: string) => `sci.live.${instanceId}`,
} as const;

/** The identity an outcome's subject names (see `subjects.outcome`). */
export const publisherOf = (subject: string): string | undefined => subject.split(".")[4];

export const STREAMS = {
  /** Work-queue stream: a job is removed once a worker acks it. It takes `anyJob(kind)` of the known kinds only. */
  jobs: { name: "SCI_JOBS" },
  /** Everything agents say to each other, kept so a run can be replayed and resumed. */
  conversation: { name: "SCI_CONV", subjects: ["sci.*.conv.>"] },
} as const;

export const BUCKETS = { runs: "sci-runs", artifacts: "sci-artifacts" } as const;

/** The streams behind the buckets, and the subjects they store under (as @nats-io/kv and @nats-io/obj lay them out). */
export const BUCKET_STREAMS = {
  runs: { name: `KV_${BUCKETS.runs}`, subjects: `$KV.${BUCKETS.runs}` },
  artifacts: { name: `OBJ_${BUCKETS.artifacts}`, subjects: `$O.${BUCKETS.artifacts}` },
} as const;

export const durableName = (kind: JobKind) => `jobs-${kind}`;

const token = (s: string) => s.replace(/[^A-Za-z0-9_=-]/g, "_");

/** Every key of the runs bucket (BUCKETS.runs): these builders are the only place that spells them. */
export const kvKeys = {
  /** The run's configuration, written by its swarm only. */
  config: (runId: string) => `${runId}.config`,
  /** The run's spend so far, in USD. */
  spent: (runId: string) => `${runId}.spent`,
  /** Which swarm drives the run (bus/lease.ts). */
  lease: (runId: string) => `${runId}.lease`,
  /** A job whose outcome is recorded: its redeliveries are acked without being redone. Keyed by kind: a role writes only its own kinds'. */
  done: (runId: string, kind: JobKind, jobId: string) => `${runId}.done.${kind}.${token(jobId)}`,
  /** Who is doing a job; keyed by kind, like `done`. */
  claim: (runId: string, kind: JobKind, jobId: string) => `${runId}.claim.${kind}.${token(jobId)}`,
  /** One actor instance's persisted snapshot. */
  snapshot: (runId: string, actorId: string) => `${runId}.snap.${actorId}`,
  /** A live node's advert. */
  advert: (nodeId: string) => `nodes.${token(nodeId)}`,
  /** One gate of one idea (bus/gates.ts): asked by the run's swarm, decided by a person with the swarm's identity. */
  gate: (runId: string, ideaId: string, request: string) => `${runId}.gate.${token(ideaId)}.${request.split(".").map(token).join(".")}`,
  /** The latest rewind of one idea, written by a person with the swarm's identity. */
  rewind: (runId: string, ideaId: string) => `${runId}.rewind.${token(ideaId)}`,
  /** The ideas earlier runs of a template proposed. */
  archive: (template: string) => `archive.${token(template)}`,
} as const;

