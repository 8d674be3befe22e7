import { execa } from "execa";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "../../bus/logger.js";

export interface SandboxResult {
  ok: boolean;
  exitCode: number | undefined;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
  sandboxed: boolean;
}

export interface SandboxOptions {
  cwd: string;
  python: string;
  args: string[];
  timeoutMs: number;
  /** Bytes kept of each of stdout and stderr (the tail). */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  log: Logger;
  /** Extra variables for the child; the parent's environment never reaches it. */
  env?: Record<string, string>;
}

let bwrapChecked: boolean | undefined;
let warned = false;

function hasBwrap(): boolean {
  bwrapChecked ??= ["/usr/bin/bwrap", "/bin/bwrap"].some((p) => existsSync(p));
  return bwrapChecked;
}

/** What generated code may see: no keys, no tokens, no proxies. Only what Python needs to start. */
function cleanEnv(cwd: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: cwd,
    LANG: "C.UTF-8",
    MPLBACKEND: "Agg",
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    OMP_NUM_THREADS: "1",
    OPENBLAS_NUM_THREADS: "1",
    ...(process.env.OPENBLAS_CORETYPE ? { OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE } : {}),
    ...extra,
  };
}

const tail = (s: string, n: number) => (s.length > n ? `[… ${s.length - n} bytes cut]\n${s.slice(-n)}` : s);

/**
 * Runs untrusted Python in its workspace: through bubblewrap (read-only system, only the workspace
 * writable, no network, own PID namespace, dies with its parent) when it is installed, always with a
 * scrubbed environment, a wall-clock limit that kills the whole process group, and capped output.
 */
export async function runSandboxed(opts: SandboxOptions): Promise<SandboxResult> {
  const cwd = resolve(opts.cwd);
  const max = opts.maxOutputBytes ?? 64 * 1024;
  const env = cleanEnv(cwd, opts.env);
  const sandboxed = hasBwrap();
  if (!sandboxed && !warned) {
    warned = true;
    opts.log.warn("bubblewrap is not installed: generated code runs WITHOUT filesystem and network isolation (apt-get install -y bubblewrap)");
  }
  const [file, args] = sandboxed
    ? [
        "bwrap",
        [
          "--ro-bind", "/", "/",
          "--dev", "/dev",
          "--proc", "/proc",
          "--tmpfs", "/tmp",
          "--bind", cwd, cwd,
          "--unshare-net",
          "--unshare-pid",
          "--new-session",
          "--die-with-parent",
          "--chdir", cwd,
          "--clearenv",
          ...Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v]),
          opts.python,
          ...opts.args,
        ],
      ]
    : [opts.python, opts.args];
  const started = Date.now();
  const child = execa(file, args, {
    cwd,
    env,
    extendEnv: false,
    reject: false,
    timeout: opts.timeoutMs,
    killSignal: "SIGKILL",
    // Its own process group, so that the limit kills everything it started.
    detached: true,
    cleanup: true,
    maxBuffer: { stdout: 8 * max, stderr: 8 * max },
    stdin: "ignore",
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const pid = child.pid;
  const killGroup = () => {
    if (pid) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const guard = setTimeout(killGroup, opts.timeoutMs + 50);
  const result = await child;
  clearTimeout(guard);
  killGroup();
  const stdout = tail(String(result.stdout ?? ""), max);
  let stderr = tail(String(result.stderr ?? ""), max);
  if (result.timedOut) stderr += `\n[killed: exceeded the wall-clock limit of ${Math.round(opts.timeoutMs / 1000)} s]`;
  return {
    ok: result.exitCode === 0 && !result.timedOut,
    exitCode: result.exitCode,
    timedOut: Boolean(result.timedOut),
    stdout,
    stderr,
    ms: Date.now() - started,
    sandboxed,
  };
}
