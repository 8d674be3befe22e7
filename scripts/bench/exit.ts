/**
 * How long the swarm takes to exit: from the last decision it prints, and from its summary, to the process's exit,
 * for whole offline runs; and from a Ctrl-C (SIGINT) in the middle of a run to the exit. Prints figures; not run by
 * the tests.
 *
 *   npm run bench:exit [-- --runs 3]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { z } from "zod";
import { median, report } from "./lib.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const { runs } = z.object({ runs: z.coerce.number().int().min(1) }).parse(values);

const out = await mkdtemp(join(tmpdir(), "bench-exit-"));

/** One offline run of the swarm; the moments (performance.now) its output last matched each pattern, and its end. */
async function run(patterns: Record<string, RegExp>, interruptOn?: RegExp): Promise<{ seen: Record<string, number>; end: number; code: number | undefined }> {
  const child = execa(process.execPath, ["--import", "tsx", "scripts/swarm.ts", "--out", out], { all: true, reject: false, env: { LOG_LEVEL: "warn" } });
  const seen: Record<string, number> = {};
  let interrupted = false;
  child.all!.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    // The last match: a rejected paper is revised and decided again.
    for (const [name, pattern] of Object.entries(patterns)) if (pattern.test(text)) seen[name] = performance.now();
    if (interruptOn && !interrupted && interruptOn.test(text)) {
      interrupted = true;
      seen.interrupt = performance.now();
      child.kill("SIGINT");
    }
  });
  const res = await child;
  return { seen, end: performance.now(), code: res.exitCode };
}


try {
  const fromDecision: number[] = [];
  const fromSummary: number[] = [];
  const fromInterrupt: number[] = [];
  for (let i = 0; i < runs; i++) {
    const done = await run({ decision: /areaChair@.*decision( on revision \d+)?: (Accept|Reject) \(/, summary: /completed in [\d.]+ s/ });
    if (done.code !== 0 || done.seen.decision === undefined || done.seen.summary === undefined) throw new Error(`run ${i + 1} did not complete (exit ${done.code})`);
    fromDecision.push(done.end - done.seen.decision);
    fromSummary.push(done.end - done.seen.summary);
    const stopped = await run({}, /running run_1/);
    if (stopped.seen.interrupt === undefined) throw new Error(`run ${i + 1} was never interrupted (exit ${stopped.code})`);
    fromInterrupt.push(stopped.end - stopped.seen.interrupt);
  }
  const med = (xs: number[]) => median(xs) / 1000;
  const each = (xs: number[]) => `${xs.map((x) => x.toFixed(0)).join(", ")} ms`;
  report(`Exit of an offline swarm (${runs} runs each, nanofit, one idea):`, [
    { figure: 7, what: "the area chair's last decision → exit (median)", value: med(fromDecision), unit: "s", target: { op: "<=", value: 0.3 }, detail: each(fromDecision) },
    { figure: 7, what: "the summary printed → exit (median)", value: med(fromSummary), unit: "s", detail: each(fromSummary) },
    { figure: 7, what: "Ctrl-C mid-experiment → exit (median)", value: med(fromInterrupt), unit: "s", target: { op: "<=", value: 0.3 }, detail: each(fromInterrupt) },
  ]);
} finally {
  await rm(out, { recursive: true, force: true });
}
