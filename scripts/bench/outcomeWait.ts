/**
 * How long waiting for one job's outcome takes, with no other outcomes on the stream and after 2,000
 * unrelated ones, side by side; and, for contrast, a wait that reads every outcome of the kind (what a wait
 * cost before each outcome had its own subject). Prints figures; not run by the tests.
 *
 *   npm run bench:outcome-wait [-- --unrelated 2000 --trials 50]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { z } from "zod";
import { connectBus } from "../../bus/connection.js";
import { startLocalNats } from "../../bus/server.js";
import { publishOutcome, watchEvents } from "../../bus/events.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { kvKeys, subjects } from "../../bus/subjects.js";
import type { Claim } from "../../bus/workQueue.js";
import { outcomeSchema } from "../../bus/schemas.js";
import { pct } from "./lib.js";

const { values } = parseArgs({ options: { unrelated: { type: "string", default: "2000" }, trials: { type: "string", default: "50" } } });
const Args = z.object({ unrelated: z.coerce.number().int().min(1), trials: z.coerce.number().int().min(1) });
const { unrelated, trials } = Args.parse(values);

const log = pino({ level: "silent" });
const by = { agent: "bench", node: "bench" };
const store = await mkdtemp(join(tmpdir(), "bench-outcome-"));
const server = await startLocalNats({ storeDir: store, log });
const bus = await connectBus(server.url, { name: "bench" });

/** An outcome as a worker publishes one: it holds the job's claim, which a waiter checks (bus/outcomes.ts). */
async function publish(runId: string, jobId: string): Promise<void> {
  await bus.kv.put(kvKeys.claim(runId, "novelty", jobId), JSON.stringify({ holder: bus.instanceId, node: by.node, at: new Date().toISOString(), failures: 0 } satisfies Claim));
  await publishOutcome(bus, "novelty", { jobId, runId, ideaId: "idea", by, ok: true, result: { verdict: "novel", reason: "r", evidence: [], queries: [] } });
}

/** Milliseconds for each of `trials` waits, each for an outcome published just before it. */
async function timeWaits(runId: string, wait: (jobId: string) => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let t = 0; t < trials; t++) {
    const jobId = `${runId}.novelty.idea.w${t}`;
    await publish(runId, jobId);
    const start = performance.now();
    await wait(jobId);
    ms.push(performance.now() - start);
  }
  return ms;
}

/** The old way: read every outcome of the kind from the run's first, until this job's. */
async function replayWait(runId: string, jobId: string): Promise<void> {
  const stream = await watchEvents(bus, subjects.outcomes(runId, "novelty"), outcomeSchema("novelty"), log);
  try {
    for await (const { value } of stream) if (value.jobId === jobId) return;
  } finally {
    await stream.close();
  }
}

const row = (what: string, xs: number[]) => `${what.padEnd(52)} p50 ${pct(xs, 0.5).toFixed(2).padStart(7)} ms   p95 ${pct(xs, 0.95).toFixed(2).padStart(7)} ms`;

try {
  // Connections and consumers warm up first, so that neither side pays for it.
  await timeWaits("bench-warm", (jobId) => awaitOutcome(bus, "bench-warm", "novelty", jobId));
  const fresh = await timeWaits("bench-fresh", (jobId) => awaitOutcome(bus, "bench-fresh", "novelty", jobId));
  for (let i = 0; i < unrelated; i++) await publish("bench-long", `bench-long.novelty.other.${i}`);
  const long = await timeWaits("bench-long", (jobId) => awaitOutcome(bus, "bench-long", "novelty", jobId));
  const replay = await timeWaits("bench-long", (jobId) => replayWait("bench-long", jobId));
  process.stdout.write(`Waiting for one outcome (${trials} waits each, nats-server on loopback):\n`);
  process.stdout.write(`${row("own subject, no other outcomes in the run", fresh)}\n`);
  process.stdout.write(`${row(`own subject, after ${unrelated} unrelated outcomes`, long)}\n`);
  process.stdout.write(`${row(`reading every outcome of the kind, after ${unrelated}`, replay)}\n`);
  process.stdout.write(`ratio of p50s, after ${unrelated} / none: ${(pct(long, 0.5) / pct(fresh, 0.5)).toFixed(2)}\n`);
} finally {
  await bus.close();
  await server.stop();
  await rm(store, { recursive: true, force: true });
}
