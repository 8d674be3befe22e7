/**
 * What the sandbox costs a run: the same short Python script (numpy imported, a small computation, a file
 * written) run directly and through runSandboxed, side by side. Prints figures; not run by the tests.
 *
 *   npm run bench:sandbox [-- --trials 20]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { pino } from "pino";
import { z } from "zod";
import { runSandboxed } from "../../agents/coder/sandbox.js";

const { values } = parseArgs({ options: { trials: { type: "string", default: "20" } } });
const trials = z.coerce.number().int().min(1).parse(values.trials);
const log = pino({ level: "silent" });
const python = (await execa("python3", ["-c", "import sys; print(sys.executable)"])).stdout.trim();
const ws = await mkdtemp(join(tmpdir(), "bench-sandbox-"));
await writeFile(join(ws, "run.py"), "import numpy as np\nx = np.random.rand(200, 200)\nnp.save('out.npy', x @ x)\n");

const median = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
async function time(run: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    await run();
    ms.push(performance.now() - start);
  }
  return ms;
}

try {
  const direct = await time(() => execa(python, ["run.py"], { cwd: ws, extendEnv: false, env: { PATH: "/usr/bin:/bin", HOME: ws } }));
  const boxed = await time(async () => {
    const res = await runSandboxed({ cwd: ws, python, args: ["run.py"], timeoutMs: 60_000, log });
    if (!res.ok) throw new Error(`the sandboxed run failed: ${res.stderr.slice(-500)}`);
  });
  process.stdout.write(`${trials} runs each of a numpy script (${python})\n`);
  process.stdout.write(`  direct:     median ${median(direct).toFixed(0)} ms\n`);
  process.stdout.write(`  sandboxed:  median ${median(boxed).toFixed(0)} ms (+${(median(boxed) - median(direct)).toFixed(0)} ms a run)\n`);
} finally {
  await rm(ws, { recursive: true, force: true });
}
