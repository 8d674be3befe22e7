/**
 * Figure 1: what a bigger review ensemble costs in time. The same offline run (nanofit, one idea, the model
 * answering after `--latency-ms`) with K = 5 reviewers and with K = 1: the review stage's wall time (the area
 * chair's first round, from its request for reviews to its decision) of each, and their ratio. With enough
 * model concurrency for every reviewer slot the process hosts, five reviews take as long as one.
 *
 *   npm run bench:ensemble [-- --latency-ms 1000 --k 5]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { report } from "./lib.js";
import { lifetimes, readStates, runSwarm } from "./swarmRun.js";

const { values } = parseArgs({ options: { "latency-ms": { type: "string", default: "1000" }, k: { type: "string", default: "5" } } });
const { "latency-ms": latencyMs, k } = z.object({ "latency-ms": z.coerce.number().int().min(0), k: z.coerce.number().int().min(2).max(20) }).parse(values);

const out = await mkdtemp(join(tmpdir(), "bench-ensemble-"));

/** The first review round's wall time, milliseconds, of a run with `reviewers` reviewers. */
async function reviewStage(reviewers: number): Promise<number> {
  // No revision: the first round is the whole review stage.
  const run = await runSwarm(out, ["--reviewers", String(reviewers), "--revisions", "0"], { SWARM_OFFLINE_LATENCY_MS: String(latencyMs) });
  const chairs = [...lifetimes(await readStates(run), /^areaChair\.[a-z0-9_]+$/).values()];
  if (chairs.length !== 1) throw new Error(`expected one area chair in run ${run.runId}, found ${chairs.length}`);
  const [first, last] = chairs[0]!;
  return last - first;
}

try {
  const one = await reviewStage(1);
  const many = await reviewStage(k);
  report(`Review stage of one paper (nanofit, offline at ${latencyMs} ms a call):`, [
    { figure: 1, what: `review stage, K = ${k} / K = 1`, value: many / one, unit: "×", target: { op: "<=", value: 1.05 }, detail: `${(many / 1000).toFixed(2)} s / ${(one / 1000).toFixed(2)} s` },
  ]);
} finally {
  await rm(out, { recursive: true, force: true });
}
