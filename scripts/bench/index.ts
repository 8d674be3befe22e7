/**
 * Every benchmark, one after another, each in its own process (so one's memory and CPU do not weigh on the
 * next), then all their figures in one table with the machine they were measured on. Not run by the tests.
 *
 *   npm run bench [-- --only 1,3,7]
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { z } from "zod";
import { formatFigure, machineLine, met, type Figure } from "./lib.js";
import { ROOT } from "./swarmRun.js";

/** The scripts, by the figures they print, in the order they run. */
const BENCHES: { script: string; figures: number[] }[] = [
  { script: "ensemble.ts", figures: [1] },
  { script: "idea.ts", figures: [2] },
  { script: "hop.ts", figures: [3] },
  { script: "reviewThroughput.ts", figures: [4] },
  { script: "makespan.ts", figures: [5] },
  { script: "memory.ts", figures: [6] },
  { script: "exit.ts", figures: [7] },
  { script: "tree.ts", figures: [8] },
];

const { values } = parseArgs({ options: { only: { type: "string" } } });
const only = z
  .string()
  .regex(/^\d(,\d)*$/, "figure numbers, comma-separated, e.g. 1,3")
  .transform((s) => s.split(",").map(Number))
  .optional()
  .parse(values.only);

const dir = await mkdtemp(join(tmpdir(), "bench-"));
const out = join(dir, "figures.jsonl");
const failed: string[] = [];
try {
  for (const bench of BENCHES.filter((b) => !only || b.figures.some((f) => only.includes(f)))) {
    process.stdout.write(`\n$ tsx scripts/bench/${bench.script}\n`);
    const res = await execa(process.execPath, ["--import", "tsx", join("scripts/bench", bench.script)], {
      cwd: ROOT, stdout: "inherit", stderr: "inherit", reject: false, env: { BENCH_OUT: out },
    });
    if (res.exitCode !== 0) failed.push(`${bench.script} (exit ${res.exitCode})`);
  }
  const reports = (await readFile(out, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { title: string; figures: Figure[] });
  const figures = reports.flatMap((r) => r.figures).sort((a, b) => (a.figure || 99) - (b.figure || 99));
  process.stdout.write(`\nEvery figure, as measured just now on ${machineLine()}:\n`);
  for (const f of figures) process.stdout.write(`${formatFigure(f)}\n`);
  const targets = figures.filter((f) => f.target);
  process.stdout.write(`${targets.filter((f) => met(f)).length} of ${targets.length} targets met.\n`);
  if (failed.length) {
    process.stdout.write(`These benchmarks failed, and their figures are missing: ${failed.join(", ")}\n`);
    process.exitCode = 1;
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
