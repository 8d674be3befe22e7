import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connectBus, type Bus } from "../../bus/connection.js";
import { startLocalNats, type LocalNats } from "../../bus/server.js";
import { putArtifact } from "../../bus/artifacts.js";
import { watchEvents, type EventStream } from "../../bus/events.js";
import { subjects } from "../../bus/subjects.js";
import { BusError } from "../../bus/errors.js";
import type { Logger } from "../../bus/logger.js";
import { IdeaId, RunConfig, outcomeSchema, type Outcome, type Review } from "../../bus/schemas.js";
import { publishJob } from "../../bus/workQueue.js";
import { createProvider, type LlmChoice } from "../llm/providers.js";
import { spentUsd } from "../llm/budget.js";
import { putRunConfig } from "../runtime/runConfig.js";
import { startNode, type SwarmNode } from "../node.js";
import type { ReviewColumn } from "./csv.js";
import { readPaperText, type RatedPaper } from "./data.js";
import { ensembleRow } from "./ensemble.js";

/**
 * A paper id as an idea id (lower-case snake): each capital becomes '_' and its lower case, '_' becomes
 * '__' and '-' becomes '_9', so that two OpenReview ids never share one.
 */
export function ideaIdOf(paperId: string): string {
  return IdeaId.parse(paperId.replace(/[A-Z_-]/g, (c) => (c === "_" ? "__" : c === "-" ? "_9" : `_${c.toLowerCase()}`)));
}

/** The configuration of a run that only reviews papers: what its reviewer jobs read of it. */
export function reviewRunConfig(o: { runId: string; reviewers: number; llm: LlmChoice; budgetUsd?: number }): RunConfig {
  return RunConfig.parse({
    runId: o.runId,
    template: "iclr2022-review-bench",
    ideas: 1,
    reviewers: o.reviewers,
    quorum: o.reviewers,
    reviewDeadlineMs: 3_600_000,
    maxRuns: 1,
    maxFixes: 0,
    maxReflections: 3,
    maxRevisions: 0,
    noveltyRounds: 1,
    experimentTimeoutMs: 1000,
    llm: o.llm,
    ...(o.budgetUsd !== undefined ? { budgetUsd: o.budgetUsd } : {}),
    startedAt: new Date().toISOString(),
  });
}

export interface PaperReviewed {
  paper: RatedPaper;
  /** Papers finished so far, this one included, of `total`. */
  done: number;
  total: number;
  reviews: { reviewer: number; node: string; overall: number; decision: string }[];
  failures: { reviewer: number; error: string }[];
  /** The paper's row of the CSV, as the result will have it. */
  row: Record<ReviewColumn, string>;
}

export interface ReviewPapersOptions {
  papers: readonly RatedPaper[];
  dataDir: string;
  llm: LlmChoice;
  /** Reviews per paper (K), each by its own reviewer persona; their scores are averaged. */
  reviewers: number;
  /** Reviewer workers this process serves (C); nodes that joined the same NATS server add theirs. */
  concurrency: number;
  budgetUsd?: number;
  /** A running NATS server (a swarm's) to use; without it a local one lives as long as the benchmark. */
  natsUrl?: string;
  log: Logger;
  signal?: AbortSignal;
  onStarted?: (info: { runId: string; natsUrl: string; local: boolean }) => void;
  onPaper?: (event: PaperReviewed) => void;
}

export interface ReviewPapersResult {
  runId: string;
  /** One row per paper in the reference's CSV format, in the order the papers were given. */
  rows: Record<ReviewColumn, string>[];
  failures: { paperId: string; reviewer: number; error: string }[];
  /** The nodes that wrote reviews. */
  nodes: string[];
  costUsd: number;
}

const newRunId = () => `bench-${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}-${randomBytes(2).toString("hex")}`;

/**
 * Runs the project's reviewer on each paper as the swarm does: the paper's text goes to the object store,
 * one `review` job per paper and reviewer goes on the work queue, reviewer workers (here and on any joined
 * node) take them, and their outcomes come back on the run's conversation stream.
 */
export async function reviewPapers(opts: ReviewPapersOptions): Promise<ReviewPapersResult> {
  const runId = newRunId();
  const log = opts.log.child({ runId, agent: "review-bench" });
  const scratch = await mkdtemp(join(tmpdir(), "review-bench-"));
  let server: LocalNats | undefined;
  let bus: Bus | undefined;
  let node: SwarmNode | undefined;
  let stream: EventStream<Outcome<"review">> | undefined;
  const onAbort = () => void stream?.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!opts.natsUrl) server = await startLocalNats({ storeDir: join(scratch, "nats"), log });
    const url = opts.natsUrl ?? server!.url;
    bus = await connectBus(url, { name: `review-bench ${runId}` });
    opts.onStarted?.({ runId, natsUrl: url, local: !opts.natsUrl });
    // Credentials and the model are proven with one cheap call before anything is spent.
    await createProvider(opts.llm, { bus, runId, log }).check(opts.signal);
    await putRunConfig(bus, reviewRunConfig({ runId, reviewers: opts.reviewers, llm: opts.llm, ...(opts.budgetUsd !== undefined ? { budgetUsd: opts.budgetUsd } : {}) }));

    const jobs = new Map<string, { index: number; reviewer: number }>();
    const objects = opts.papers.map((p) => `${runId}/bench/${p.paperId}.txt`);
    for (const [index, paper] of opts.papers.entries()) {
      await putArtifact(bus, objects[index]!, await readPaperText(opts.dataDir, paper.paperId));
    }
    stream = await watchEvents(bus, subjects.outcomes(runId, "review"), outcomeSchema("review"), log);
    opts.signal?.throwIfAborted();
    node = await startNode({ bus, roles: { reviewer: opts.concurrency }, log, workRoot: join(scratch, "work") });
    for (const [index, paper] of opts.papers.entries()) {
      const ideaId = ideaIdOf(paper.paperId);
      for (let reviewer = 0; reviewer < opts.reviewers; reviewer++) {
        const jobId = `${runId}.review.${ideaId}.${reviewer}`;
        jobs.set(jobId, { index, reviewer });
        await publishJob(bus, "review", { jobId, runId, ideaId, pdf: objects[index]!, reviewer });
      }
    }
    log.info({ papers: opts.papers.length, reviewers: opts.reviewers }, "review jobs published");

    const got = opts.papers.map(() => ({ reviews: [] as { reviewer: number; node: string; review: Review }[], failures: [] as PaperReviewed["failures"] }));
    const nodes = new Set<string>();
    let pending = jobs.size;
    let done = 0;
    if (pending > 0) {
      for await (const { value } of stream) {
        const job = jobs.get(value.jobId);
        if (!job) continue;
        jobs.delete(value.jobId);
        const paper = got[job.index]!;
        if (value.ok) {
          nodes.add(value.by.node);
          paper.reviews.push({ reviewer: job.reviewer, node: value.by.node, review: value.result.review });
        } else {
          paper.failures.push({ reviewer: job.reviewer, error: value.error });
        }
        if (paper.reviews.length + paper.failures.length === opts.reviewers) {
          done++;
          paper.reviews.sort((a, b) => a.reviewer - b.reviewer);
          const reviews = paper.reviews.map((r) => ({ reviewer: r.reviewer, node: r.node, overall: r.review.Overall, decision: r.review.Decision }));
          const row = ensembleRow(opts.papers[job.index]!.paperId, paper.reviews.map((r) => r.review));
          opts.onPaper?.({ paper: opts.papers[job.index]!, done, total: opts.papers.length, reviews, failures: paper.failures, row });
        }
        if (--pending === 0) break;
      }
    }
    if (pending > 0) {
      throw new BusError(opts.signal?.aborted ? "the benchmark was stopped" : `the conversation stream closed with ${pending} reviews outstanding`);
    }
    return {
      runId,
      rows: opts.papers.map((p, k) => ensembleRow(p.paperId, got[k]!.reviews.map((r) => r.review))),
      failures: got.flatMap((g, k) => g.failures.map((f) => ({ paperId: opts.papers[k]!.paperId, ...f }))),
      nodes: [...nodes].sort(),
      costUsd: await spentUsd(bus, runId),
    };
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await stream?.close().catch(() => undefined);
    await node?.stop().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}
