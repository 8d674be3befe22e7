/**
 * The tree search's wall time on 1 and on 2 coder slots (issue 15): two offline runs of one idea on nanofit with
 * `--search tree` and the same budget, the model answering after `--latency-ms`, each with `--coders C` (the tree
 * keeps C nodes in flight). The search's time is its actor's, from its first state to its last: every node, the
 * seed re-runs and the report. On two cores the ratio is bounded by the cores as much as by the slots.
 *
 *   npm run bench:tree [-- --latency-ms 1000 --tree implement=3,tune=3,research=2,ablate=2 --seeds 2]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { report } from "./lib.js";
import { lifetimes, readStates, runSwarm } from "./swarmRun.js";

const { values } = parseArgs({
  options: { "latency-ms": { type: "string", default: "1000" }, tree: { type: "string", default: "implement=3,tune=3,research=2,ablate=2" }, seeds: { type: "string", default: "2" } },
});
const Args = z.object({ "latency-ms": z.coerce.number().int().min(0), tree: z.string(), seeds: z.coerce.number().int().min(1) });
const { "latency-ms": latencyMs, tree, seeds } = Args.parse(values);

/** The search's span on C coder slots, and how many nodes and seed runs it made. */
async function search(coders: number): Promise<{ ms: number; steps: number }> {
  const out = await mkdtemp(join(tmpdir(), "bench-tree-"));
  try {
    const run = await runSwarm(out, ["--search", "tree", "--tree", tree, "--seeds", String(seeds), "--coders", String(coders), "--revisions", "0", "--reviewers", "1"], {
      SWARM_OFFLINE_LATENCY_MS: String(latencyMs),
    });
    const states = await readStates(run);
    const spans = [...lifetimes(states, /\/tree$/).values()];
    if (spans.length !== 1) throw new Error(`run ${run.runId} has ${spans.length} tree searches, not 1:\n${run.output.slice(-2000)}`);
    const steps = new Set(states.filter((e) => /^coder\.[a-z0-9_]+\.(n\d+|root)(-s\d+)?$/.test(e.actor)).map((e) => e.actor)).size;
    return { ms: spans[0]![1] - spans[0]![0], steps };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

const one = await search(1);
const two = await search(2);
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
report(`A tree search (nanofit, ${tree}, ${seeds} seeds, offline at ${latencyMs} ms a call):`, [
  { figure: 8, what: "tree search wall time, 1 coder slot", value: one.ms / 1000, unit: "s", detail: `${one.steps} nodes and seed runs` },
  { figure: 8, what: "tree search wall time, 2 coder slots", value: two.ms / 1000, unit: "s", detail: `${two.steps} nodes and seed runs` },
  { figure: 8, what: "speed-up, 2 slots over 1", value: one.ms / two.ms, unit: "×", detail: `${s(one.ms)} / ${s(two.ms)}` },
]);
