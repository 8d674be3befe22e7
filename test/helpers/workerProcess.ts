import { execa, type ResultPromise } from "execa";
import { existsSync, readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { ROOT, waitForLine } from "./cli.js";

export interface WorkerProcess {
  child: ResultPromise;
  /** The bus connection's instanceId, once it serves. */
  instanceId: string;
}

/** Starts test/helpers/claimWorker.ts in its own process, and resolves once it serves. */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = execa(process.execPath, ["--import", "tsx", "test/helpers/claimWorker.ts"], {
    cwd: ROOT,
    reject: false,
    all: true,
    env: { LOG_LEVEL: "debug", LOG_FORMAT: "json", ...env },
  });
  const line = await waitForLine(child, /^ready \S+$/, 30_000);
  return { child, instanceId: line.split(" ")[1]! };
}

/** The lines a claim worker wrote to its count file: "<node> start|end|aborted <jobId>". */
export function countLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/** A debug logger whose records the test reads. */
export function capturingLog(): { log: Logger; records: { msg: string; [k: string]: unknown }[] } {
  const records: { msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) records.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: "debug" }, sink), records };
}

/** Waits until `check` holds, polling. */
export async function until(check: () => boolean, timeoutMs: number, what = "the condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
