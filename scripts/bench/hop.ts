/**
 * Figure 3: what one hop through the bus costs. A hop is a job put on its work queue, taken by a worker (its
 * claim written, its handler run: here one that answers at once), its outcome published, and the publisher's
 * wait for that outcome answered; measured over `--jobs` hops one after another, against a plain NATS request
 * and reply on the same server, and the last hundred hops against the first hundred (a hop must not grow with
 * the run). Prints figures; not run by the tests.
 *
 *   npm run bench:hop [-- --jobs 1000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { z } from "zod";
import { connectBus } from "../../bus/connection.js";
import { startLocalNats } from "../../bus/server.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { publishJob, serveJobs } from "../../bus/workQueue.js";
import type { Idea } from "../../bus/schemas.js";
import { median, pct, report } from "./lib.js";

const { values } = parseArgs({ options: { jobs: { type: "string", default: "1000" }, warmup: { type: "string", default: "50" } } });
const { jobs, warmup } = z.object({ jobs: z.coerce.number().int().min(200), warmup: z.coerce.number().int().min(0) }).parse(values);

const log = pino({ level: "silent" });
const store = await mkdtemp(join(tmpdir(), "bench-hop-"));
const server = await startLocalNats({ storeDir: store, log });
// The publisher and the worker are different connections, as they are different nodes in a swarm.
const publisher = await connectBus(server.url, { name: "bench-publisher" });
const worker = await connectBus(server.url, { name: "bench-worker" });
const idea: Idea = { Name: "hop", Title: "A hop", Experiment: "none", Interestingness: 1, Feasibility: 1, Novelty: 1 };
const served = serveJobs(worker, "novelty", async () => ({ verdict: "novel", reason: "bench", evidence: [], queries: [] }), {
  concurrency: 1, by: { agent: "critic", node: "bench" }, log,
});

/** Milliseconds for each of `n` hops on run `runId`, one after another. */
async function hops(runId: string, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const jobId = `${runId}.novelty.hop.${i}`;
    const start = performance.now();
    await publishJob(publisher, "novelty", { jobId, runId, ideaId: "hop", idea, turn: 0 });
    await awaitOutcome(publisher, runId, "novelty", jobId);
    ms.push(performance.now() - start);
  }
  return ms;
}

/** Milliseconds for each of `n` plain requests answered by a subscriber on the other connection. */
async function requests(n: number): Promise<number[]> {
  const sub = worker.nc.subscribe("bench.echo", { callback: (_err, m) => void m.respond(m.data) });
  await worker.nc.flush();
  const ms: number[] = [];
  const data = new TextEncoder().encode("x".repeat(200));
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await publisher.nc.request("bench.echo", data, { timeout: 5_000 });
    ms.push(performance.now() - start);
  }
  sub.unsubscribe();
  return ms;
}

try {
  await hops("bench-warm", warmup);
  const hopMs = await hops("bench-hop", jobs);
  const reqMs = await requests(jobs);
  const first = median(hopMs.slice(0, 100));
  const last = median(hopMs.slice(-100));
  const f = (x: number) => `${x.toFixed(2)} ms`;
  report(`Bus hops: job → worker → outcome → publisher (${jobs} one after another, nats-server on loopback):`, [
    { figure: 3, what: "hop p50", value: median(hopMs), unit: "ms", target: { op: "<=", value: 1 }, detail: `plain request/reply p50 ${f(median(reqMs))}` },
    { figure: 3, what: "hop p99", value: pct(hopMs, 0.99), unit: "ms", target: { op: "<=", value: 5 }, detail: `plain request/reply p99 ${f(pct(reqMs, 0.99))}` },
    { figure: 3, what: "hop p50, last hundred / first hundred", value: last / first, unit: "×", target: { op: "<=", value: 1.2 }, detail: `${f(last)} / ${f(first)}` },
    { figure: 3, what: "hop p50 / plain request-reply p50", value: median(hopMs) / median(reqMs), unit: "×" },
  ]);
} finally {
  await served.stop();
  await publisher.close();
  await worker.close();
  await server.stop();
  await rm(store, { recursive: true, force: true });
}
