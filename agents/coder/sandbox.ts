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
  /** Address-space limit (RLIMIT_AS) for the run and everything it starts. */
  memoryMb?: number;
}

/** Process groups of the sandboxes running now: none may outlive this process, however it ends. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of liveGroups) killGroup(pid);
  });
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

/** The last `max` bytes of a stream, and how many came before them. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;
  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.max && this.chunks.length > 1) {
      const first = this.chunks.shift()!;
      this.size -= first.length;
      this.dropped += first.length;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    const cut = Math.max(0, all.length - this.max);
    const kept = all.subarray(cut).toString("utf8");
    const dropped = this.dropped + cut;
    return dropped ? `[… ${dropped} bytes cut]\n${kept}` : kept;
  }
}

/**
 * Runs untrusted Python in its workspace: through bubblewrap (read-only system, only the workspace
 * writable, no network, own PID namespace, dies with its parent) when it is installed, always with a
 * scrubbed environment, a wall-clock limit that kills the whole process group, capped output, and an
 * address-space limit when one is given.
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
  const command = [
    ...(opts.memoryMb !== undefined && existsSync("/usr/bin/prlimit") ? ["/usr/bin/prlimit", `--as=${opts.memoryMb * 1024 * 1024}`, "--"] : []),
    opts.python,
    ...opts.args,
  ];
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
          ...command,
        ],
      ]
    : [command[0]!, command.slice(1)];
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
    // Output is streamed into rolling tails below: a talkative run is neither killed nor allowed to fill memory.
    buffer: false,
    stdin: "ignore",
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const tails = { stdout: new Tail(max), stderr: new Tail(max) };
  child.stdout?.on("data", (chunk: Buffer) => tails.stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => tails.stderr.push(chunk));
  const pid = child.pid;
  const kill = () => pid && killGroup(pid);
  if (pid) liveGroups.add(pid);
  installExitHook();
  // Cancelling kills the whole group at once, not only its leader.
  opts.signal?.addEventListener("abort", kill, { once: true });
  const guard = setTimeout(kill, opts.timeoutMs + 50);
  const result = await child;
  clearTimeout(guard);
  opts.signal?.removeEventListener("abort", kill);
  kill();
  if (pid) liveGroups.delete(pid);
  const stdout = tails.stdout.text();
  let stderr = tails.stderr.text();
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
