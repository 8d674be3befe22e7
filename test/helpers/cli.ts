import { execa, type ResultPromise } from "execa";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

/** Runs one of the CLI entry points as a user would, in its own process (group). */
export function runScript(script: "swarm" | "node" | "graph" | "claims" | "reviewBench" | "status" | "gate", args: string[], opts: { env?: Record<string, string>; detached?: boolean } = {}): ResultPromise<{ reject: false; all: true }> {
  return execa(process.execPath, ["--import", "tsx", `scripts/${script}.ts`, ...args], {
    cwd: ROOT,
    reject: false,
    all: true,
    env: { LOG_LEVEL: "warn", ...opts.env },
    detached: opts.detached ?? false,
  }) as unknown as ResultPromise<{ reject: false; all: true }>;
}

/** Resolves with the first line of a running process's output that matches. */
export function waitForLine(child: ResultPromise, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${buffer.slice(-3000)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      for (const line of buffer.split("\n")) {
        if (pattern.test(line)) {
          clearTimeout(timer);
          child.all?.off("data", onData);
          resolvePromise(line);
          return;
        }
      }
    };
    child.all?.on("data", onData);
  });
}
