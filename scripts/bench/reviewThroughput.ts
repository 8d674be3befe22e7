/**
 * Figure 4: review throughput with 1, 2, 4 and 8 reviewer node processes on one local nats-server, as a ratio
 * to one node. Each node is `scripts/node.ts --roles reviewer=<slots>` in its own process, with the offline
 * stand-in answering after --latency-ms (SWARM_OFFLINE_LATENCY_MS), so that a review waits as it would on a
 * model. This process serves no reviewer slot: it only publishes the review jobs and reads their outcomes.
 * Each round gives every slot --per-slot jobs (the batch grows with the nodes), after a warm-up of one job
 * per slot. A node's slots share the offline endpoint's calls-at-once limit, as they would a provider's: as many
 * as the node hosts slots (agents/llm/endpoints.ts). Prints figures; not run by the tests.
 *
 *   npm run bench:review-throughput [-- --slots 2 --per-slot 4 --latency-ms 1000 --nodes 1,2,4,8]
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { z } from "zod";
import { putArtifact } from "../../bus/artifacts.js";
import { connectBus } from "../../bus/connection.js";
import { watchEvents } from "../../bus/events.js";
import { outcomeSchema, type Outcome } from "../../bus/schemas.js";
import { startLocalNats } from "../../bus/server.js";
import { subjects } from "../../bus/subjects.js";
import { publishJob } from "../../bus/workQueue.js";
import { putRunConfig } from "../../agents/runtime/runConfig.js";
import { DEFAULT_DATA_DIR, loadRatings, readPaperText, stratifiedSample } from "../../agents/reviewBench/data.js";
import { ideaIdOf, reviewRunConfig } from "../../agents/reviewBench/reviewPapers.js";
import { machineLine, report, type Figure } from "./lib.js";
import { startReviewerNode, waitJoined, type NodeProcess } from "./swarmRun.js";

const { values } = parseArgs({
  options: {
    slots: { type: "string", default: "2" },
    "per-slot": { type: "string", default: "4" },
    "latency-ms": { type: "string", default: "1000" },
    nodes: { type: "string", default: "1,2,4,8" },
    papers: { type: "string", default: "4" },
    data: { type: "string", default: DEFAULT_DATA_DIR },
  },
});
const Args = z.object({
  slots: z.coerce.number().int().min(1).max(64),
  "per-slot": z.coerce.number().int().min(1),
  "latency-ms": z.coerce.number().int().min(0),
  nodes: z
    .string()
    .transform((s) => s.split(",").map((n) => Number(n.trim())))
    .pipe(z.array(z.number().int().min(1).max(64)).min(1))
    .refine((ns) => ns[0] === 1, "the first node count must be 1: the ratios are to one node"),
  papers: z.coerce.number().int().min(1).max(500),
  data: z.string().min(1),
});
const { slots, "per-slot": perSlot, "latency-ms": latencyMs, nodes: nodeCounts, papers: paperCount, data } = Args.parse(values);

/** How long nodes get to start and advertise themselves, and to leave once told to. */
const JOIN_TIMEOUT_MS = 120_000;
const LEAVE_TIMEOUT_MS = 20_000;

// The papers are read before the server starts, so that missing data leaves nothing running.
const sample = stratifiedSample(await loadRatings(data), paperCount, 0);
const log = pino({ level: "silent" });
const store = await mkdtemp(join(tmpdir(), "bench-review-throughput-"));
const server = await startLocalNats({ storeDir: store, log });
const bus = await connectBus(server.url, { name: "bench", log });

/** Asks each node to leave (SIGTERM, as scripts/node.ts handles it), and kills one that does not within LEAVE_TIMEOUT_MS. */
async function stopNodes(procs: NodeProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async ({ child }) => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), LEAVE_TIMEOUT_MS);
      await child;
      clearTimeout(timer);
    }),
  );
}

/** One round's run: its config in KV, its papers in the object store; no lease, so that workers serve its jobs as they do a benchmark's. */
async function prepareRun(runId: string): Promise<string[]> {
  await putRunConfig(bus, reviewRunConfig({ runId, reviewers: 1, llm: { provider: "offline", model: "offline" } }));
  const objects = sample.map((p) => `${runId}/bench/${p.paperId}.txt`);
  for (const [k, paper] of sample.entries()) await putArtifact(bus, objects[k]!, await readPaperText(data, paper.paperId));
  return objects;
}

interface Round {
  nodes: number;
  jobs: number;
  seconds: number;
  reviewsPerS: number;
  byNodes: number;
}

/** Starts `n` nodes, warms each slot with one job, then times `n × slots × perSlot` reviews from the first publish to the last outcome. */
async function round(n: number): Promise<Round> {
  const runId = `bench-tput-${n}-${randomBytes(3).toString("hex")}`;
  const objects = await prepareRun(runId);
  const stream = await watchEvents(bus, subjects.outcomes(runId, "review"), outcomeSchema("review"), log);
  const outcomes = stream[Symbol.asyncIterator]();
  let next = 0;
  /** Publishes `count` jobs, paper by paper and then the next reviewer persona, and waits for all their outcomes. */
  async function batch(count: number): Promise<Outcome<"review">[]> {
    const pending = new Set<string>();
    for (let k = 0; k < count; k++, next++) {
      const index = next % sample.length;
      const ideaId = ideaIdOf(sample[index]!.paperId);
      const reviewer = Math.floor(next / sample.length);
      const jobId = `${runId}.review.${ideaId}.${reviewer}`;
      pending.add(jobId);
      await publishJob(bus, "review", { jobId, runId, ideaId, pdf: objects[index]!, reviewer });
    }
    const got: Outcome<"review">[] = [];
    while (pending.size) {
      const { value, done } = await outcomes.next();
      if (done) throw new Error(`the conversation stream closed with ${pending.size} reviews outstanding`);
      if (!pending.delete(value.value.jobId)) continue;
      if (!value.value.ok) throw new Error(`review job ${value.value.jobId} failed on ${value.value.by.node}: ${value.value.error}`);
      got.push(value.value);
    }
    return got;
  }

  const procs = Array.from({ length: n }, (_, k) => startReviewerNode({ name: `bench-n${n}-${k}`, slots, natsUrl: server.url, env: { SWARM_OFFLINE_LATENCY_MS: String(latencyMs) } }));
  try {
    await waitJoined(bus, procs, JOIN_TIMEOUT_MS);
    await batch(n * slots);
    const jobs = n * slots * perSlot;
    const start = performance.now();
    const done = await batch(jobs);
    const seconds = (performance.now() - start) / 1000;
    const byNodes = new Set(done.map((o) => o.by.node)).size;
    process.stdout.write(`${n} node${n > 1 ? "s" : ""} × ${slots} slots: ${jobs} reviews in ${seconds.toFixed(2)} s by ${byNodes} nodes\n`);
    return { nodes: n, jobs, seconds, reviewsPerS: jobs / seconds, byNodes };
  } finally {
    await stream.close();
    await stopNodes(procs);
  }
}

try {
  process.stdout.write(`${machineLine()}\n`);
  const rounds: Round[] = [];
  for (const n of nodeCounts) rounds.push(await round(n));
  const one = rounds[0]!;
  const figures: Figure[] = rounds.flatMap((r): Figure[] => [
    {
      figure: 4,
      what: `review throughput, ${r.nodes} reviewer node${r.nodes > 1 ? "s" : ""} × ${slots} slots`,
      value: r.reviewsPerS,
      unit: "reviews/s",
      detail: `${r.jobs} reviews in ${r.seconds.toFixed(2)} s, by ${r.byNodes} of ${r.nodes} nodes`,
    },
    ...(r.nodes === 1
      ? []
      : [
          {
            figure: 4,
            what: `throughput ratio, ${r.nodes} nodes / 1 node`,
            value: r.reviewsPerS / one.reviewsPerS,
            unit: "×",
            // The target is for 8 nodes.
            ...(r.nodes === 8 ? { target: { op: ">=" as const, value: 7.2 } } : {}),
            detail: `${r.reviewsPerS.toFixed(3)} / ${one.reviewsPerS.toFixed(3)} reviews/s`,
          },
        ]),
  ]);
  report(`Review throughput (offline model answering after ${latencyMs} ms, ${perSlot} reviews a slot, node processes on one local nats-server)`, figures);
} finally {
  await bus.close();
  await server.stop();
  await rm(store, { recursive: true, force: true });
}
