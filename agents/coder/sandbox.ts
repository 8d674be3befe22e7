import { execa } from "execa";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { lchown, readdir, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { z } from "zod";
import type { Logger } from "../../bus/logger.js";

export interface SandboxResult {
  ok: boolean;
  exitCode: number | undefined;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  ms: number;
  sandboxed: boolean;
  /** The uid the run had in its sandbox. */
  uid?: number;
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
  /** Address-space limit (RLIMIT_AS) for the run and everything it starts; it also sizes the private /tmp. */
  memoryMb?: number;
  /** Processes and threads the run may have at once (RLIMIT_NPROC); 256 unless given. */
  maxProcesses?: number;
}

/** Process groups of the sandboxes running now: none may outlive this process, however it ends. */
const liveGroups = new Set<number>();
/** The runs going on now, to their very end: what a stopping worker waits for. */
const liveRuns = new Set<Promise<unknown>>();
let exitHookInstalled = false;

function signalQuietly(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The processes descended from `pid` now, read from /proc: bubblewrap's init in the new PID namespace has a session of its own. */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name, in parentheses, may hold spaces and parentheses itself: the fields after it are plain.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const next = [pid];
  while (next.length) for (const child of children.get(next.pop()!) ?? []) found.push(child), next.push(child);
  return found;
}

/** Whether `pid` still runs (a zombie has ended, and only waits for its parent to read its status). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Kills a sandbox: its process group, and bubblewrap's init in the run's PID namespace (whose end takes every
 * process of the namespace with it) without waiting for it to notice that its parent died. Returns what it killed.
 */
function killSandbox(pid: number): number[] {
  // Once the leader has ended, its children are no longer its: there is nothing to find by parent, only its group to kill.
  const tree = running(pid) ? descendantsOf(pid) : [];
  signalQuietly(-pid, "SIGKILL");
  for (const child of tree) signalQuietly(child, "SIGKILL");
  return tree;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of liveGroups) killSandbox(pid);
    if (accountsDir) rmSync(accountsDir, { recursive: true, force: true });
  });
}

/** Resolves when every sandboxed run of this process has ended, with all it started: a stopping worker waits for it. */
export async function sandboxesSettled(): Promise<void> {
  while (liveRuns.size) await Promise.allSettled([...liveRuns]);
}

let bwrapChecked: boolean | undefined;
let warned = false;

function hasBwrap(): boolean {
  bwrapChecked ??= BWRAP_PATHS.some((p) => existsSync(p));
  return bwrapChecked;
}

export const BWRAP_PATHS = ["/usr/bin/bwrap", "/bin/bwrap"];
/** Set by `--unsafe-no-sandbox`: without bubblewrap, generated code runs anyway, with the host's every file in reach. */
export const UNSAFE_NO_SANDBOX_ENV = "SWARM_UNSAFE_NO_SANDBOX";
const DEFAULT_MAX_PROCESSES = 256;

/**
 * As root, each run gets a uid of its own that no account has: its process count (RLIMIT_NPROC counts per uid)
 * is its own, and no host file belongs to it. Process id and slot keep concurrent runs, here and in other
 * workers on this host, apart; the range stays below 2^31 for tools that read a uid as a signed int.
 */
const UID_BASE = 1_900_000_000;
const SLOTS = 256;
const busySlots = new Set<number>();

function takeSlot(): number | undefined {
  for (let s = 0; s < SLOTS; s++) {
    if (!busySlots.has(s)) {
      busySlots.add(s);
      return s;
    }
  }
  return undefined;
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

/** The host paths that hold programs and libraries: each is bound read-only, or made the same symlink. */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/** What the loader, fontconfig, matplotlib and Debian's Python read in /etc; nothing else of it. */
const ETC_ENTRIES = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "fonts", "matplotlibrc", "localtime", "nsswitch.conf", "mime.types"];

/** Directories the sandbox makes afresh: they are there, but nothing of the host's beneath them. */
const MADE_DIRS = ["/tmp", "/etc", "/dev", "/proc"];

const under = (path: string, root: string) => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

let systemArgs: string[] | undefined;

function systemMounts(): string[] {
  if (systemArgs) return systemArgs;
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) {
    const st = lstatOrUndefined(dir);
    if (st?.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
    else if (st?.isDirectory()) args.push("--ro-bind", dir, dir);
  }
  args.push("--perms", "0755", "--dir", "/etc");
  for (const name of [...ETC_ENTRIES, ...readdirSync("/etc").filter((n) => /^python3/.test(n))]) {
    if (existsSync(`/etc/${name}`)) args.push("--ro-bind", `/etc/${name}`, `/etc/${name}`);
  }
  systemArgs = args;
  return args;
}

const pythonPaths = new Map<string, Promise<string[]>>();
const PythonPaths = z.array(z.string());

/** Where the interpreter loads from (its prefixes and sys.path), asked of the interpreter itself, once. */
function pythonPathsOf(python: string, env: Record<string, string>): Promise<string[]> {
  const key = JSON.stringify([python, env.PYTHONPATH, env.PYTHONHOME, env.PYTHONUSERBASE]);
  let paths = pythonPaths.get(key);
  if (!paths) {
    const code = "import sys, json; print(json.dumps([sys.executable, sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path]))";
    paths = execa(python, ["-c", code], { cwd: "/", env, extendEnv: false, timeout: 30_000 })
      .then(({ stdout }) => [python, ...PythonPaths.parse(JSON.parse(stdout))])
      .catch(() => {
        // The run itself will fail and say why; a later run asks again.
        pythonPaths.delete(key);
        return [python];
      });
    pythonPaths.set(key, paths);
  }
  return paths;
}

/**
 * Directories bwrap makes on its own are root's alone (0700): the run's user must be able to pass through the
 * ones that lead to what it may see.
 */
function parentDirs(path: string, visible: string[]): string[] {
  const args: string[] = [];
  for (let dir = dirname(path), chain: string[] = []; ; dir = dirname(dir)) {
    if (dir === "/" || MADE_DIRS.includes(dir) || visible.some((v) => under(dir, v))) {
      for (const d of chain.reverse()) args.push("--perms", "0755", "--dir", d);
      return args;
    }
    chain.push(dir);
  }
}

/** Read-only binds for the Python paths outside the system's; never one that holds the workspace or is `/`. */
function pythonMounts(paths: string[], cwd: string, visible: string[]): string[] {
  const args: string[] = [];
  const real = (p: string) => {
    try {
      const r = realpathSync(p);
      return lstatSync(r).isDirectory() ? r : dirname(r);
    } catch {
      return undefined;
    }
  };
  const dirs = [...new Set(paths.filter((p) => p.startsWith("/")).map(real).filter((p): p is string => p !== undefined))]
    .sort((a, b) => a.length - b.length);
  for (const dir of dirs) {
    if (dir === "/" || visible.some((v) => under(dir, v)) || under(cwd, dir) || under(dir, cwd)) continue;
    args.push(...parentDirs(dir, visible), "--ro-bind", dir, dir);
    visible.push(dir);
  }
  return args;
}

/** A GPU given to the run (CUDA_VISIBLE_DEVICES) needs the NVIDIA device nodes that `--dev` leaves out. */
function gpuDevices(env: Record<string, string>): string[] {
  if (env.CUDA_VISIBLE_DEVICES === undefined) return [];
  return readdirSync("/dev").filter((n) => n.startsWith("nvidia")).flatMap((n) => ["--dev-bind", `/dev/${n}`, `/dev/${n}`]);
}

let accountsDir: string | undefined;

/** /etc/passwd and /etc/group naming the run's user and nobody else of the host. */
function accountFiles(uid: number, gid: number): { passwd: string; group: string } {
  accountsDir ??= mkdtempSync(join(tmpdir(), "swarm-sandbox-"));
  const passwd = join(accountsDir, `passwd-${uid}`);
  const group = join(accountsDir, `group-${gid}`);
  if (!existsSync(passwd)) writeFileSync(passwd, `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:${uid}:${gid}:sandbox:/tmp:/usr/sbin/nologin\n`, { mode: 0o644 });
  if (!existsSync(group)) writeFileSync(group, `root:x:0:\nsandbox:x:${gid}:\n`, { mode: 0o644 });
  return { passwd, group };
}

/** Processes whose real uid is `uid`, read from /proc (status, which a process cannot hide as it can its owner). */
async function processesOf(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const line = /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${name}/status`, "utf8"));
      if (line && Number(line[1]) === uid) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Kills what is left of a run's uid: a sandbox killed from outside takes a moment to be torn down. */
async function reap(uid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const pids = await processesOf(uid);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Gives a workspace to `uid`; symlinks are changed themselves, never what they point to. */
async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await lchown(dir, uid, gid);
  for (const entry of await readdir(dir, { recursive: true })) await lchown(join(dir, entry), uid, gid);
}

function refused(why: string): SandboxResult {
  return { ok: false, exitCode: undefined, timedOut: false, stdout: "", stderr: `[refused: ${why}]`, ms: 0, sandboxed: false };
}

interface Ending {
  timedOut?: boolean;
  isCanceled?: boolean;
  exitCode?: number | undefined;
  signal?: string | undefined;
}

/** Why a run ended badly, in words the coder's model can act on; undefined for a plain failure of the code. */
function reason(end: Ending, stderr: string, limits: { timeoutMs: number; maxProcesses?: number; memoryMb?: number }): string | undefined {
  if (end.timedOut) return `killed: exceeded the wall-clock limit of ${Math.round(limits.timeoutMs / 1000)} s`;
  if (end.isCanceled) return "killed: the job was cancelled";
  if (end.exitCode === 0) return undefined;
  if (limits.maxProcesses !== undefined && /BlockingIOError|Resource temporarily unavailable|can't start new thread|fork: retry|EAGAIN/.test(stderr)) {
    return `the experiment hit the limit of ${limits.maxProcesses} processes and threads: it may not start more`;
  }
  if (limits.memoryMb !== undefined && /MemoryError|Cannot allocate memory|std::bad_alloc|out of memory/i.test(stderr)) {
    return `the experiment hit the memory limit of ${limits.memoryMb} MiB`;
  }
  if (end.signal) return `killed by ${end.signal}`;
  return undefined;
}

/**
 * Runs untrusted Python in its workspace through bubblewrap: it sees the system's programs and libraries and its
 * Python read-only, its workspace read-write and a private /tmp, and nothing else of the host; as root it runs as
 * a uid of its own with no capabilities. No network, own PID namespace (whatever it leaves behind dies with it),
 * dies with its parent, a scrubbed environment, a limit on processes, a wall-clock limit that kills the whole
 * process group, capped output, and an address-space limit when one is given. Without bubblewrap it is refused,
 * unless `--unsafe-no-sandbox` said otherwise.
 */
export async function runSandboxed(opts: SandboxOptions): Promise<SandboxResult> {
  const run = sandboxRun(opts);
  liveRuns.add(run);
  try {
    return await run;
  } finally {
    liveRuns.delete(run);
  }
}

async function sandboxRun(opts: SandboxOptions): Promise<SandboxResult> {
  const cwd = resolve(opts.cwd);
  const max = opts.maxOutputBytes ?? 64 * 1024;
  const maxProcesses = opts.maxProcesses ?? DEFAULT_MAX_PROCESSES;
  const sandboxed = hasBwrap();
  if (!sandboxed) {
    if (process.env[UNSAFE_NO_SANDBOX_ENV] !== "1") {
      return refused("bubblewrap is not installed, and generated code runs only in its sandbox: apt-get install -y bubblewrap (or start with --unsafe-no-sandbox, on a machine you do not mind losing)");
    }
    if (!warned) {
      warned = true;
      opts.log.warn("bubblewrap is not installed and --unsafe-no-sandbox was given: generated code runs WITHOUT isolation (apt-get install -y bubblewrap)");
    }
  }
  const asRoot = process.getuid?.() === 0;
  const slot = sandboxed && asRoot ? takeSlot() : undefined;
  if (sandboxed && asRoot && slot === undefined) return refused(`${SLOTS} sandboxed runs are going on already in this worker`);
  const uid = slot !== undefined ? UID_BASE + (process.pid % 65536) * SLOTS + slot : process.getuid?.();
  const gid = slot !== undefined ? uid : process.getgid?.();
  const env = { ...cleanEnv(cwd, opts.env), USER: "sandbox", LOGNAME: "sandbox" };
  const owner = slot !== undefined ? await stat(cwd) : undefined;
  try {
    if (slot !== undefined) await chownTree(cwd, uid!, gid!);
    // RLIMIT_NPROC counts every process of the real uid: a worker that is not root shares its own with the run.
    const nproc = slot !== undefined ? maxProcesses : sandboxed && uid !== undefined ? (await processesOf(uid)).length + maxProcesses : undefined;
    const limits = [
      ...(nproc !== undefined ? [`--nproc=${nproc}`] : []),
      ...(opts.memoryMb !== undefined ? [`--as=${opts.memoryMb * 1024 * 1024}`] : []),
    ];
    const command = [
      ...(limits.length && existsSync("/usr/bin/prlimit") ? ["/usr/bin/prlimit", ...limits, "--"] : []),
      // bwrap as root keeps root's powers, so that it can bind what root may read; setpriv gives them up.
      ...(slot !== undefined ? ["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"] : []),
      opts.python,
      ...opts.args,
    ];
    let file = command[0]!;
    let args = command.slice(1);
    if (sandboxed) {
      // Bound from the host, with all that lies beneath.
      const visible = [...SYSTEM_DIRS];
      const accounts = accountFiles(uid ?? 65534, gid ?? 65534);
      file = "bwrap";
      args = [
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        ...(asRoot ? [] : ["--unshare-user", "--disable-userns"]),
        "--new-session",
        "--die-with-parent",
        ...systemMounts(),
        "--ro-bind", accounts.passwd, "/etc/passwd",
        "--ro-bind", accounts.group, "/etc/group",
        "--dev", "/dev",
        ...gpuDevices(env),
        "--proc", "/proc",
        "--perms", "1777", ...(opts.memoryMb !== undefined ? ["--size", String(opts.memoryMb * 1024 * 1024)] : []), "--tmpfs", "/tmp",
        ...pythonMounts(await pythonPathsOf(opts.python, env), cwd, visible),
        ...parentDirs(cwd, visible),
        "--bind", cwd, cwd,
        "--chdir", cwd,
        "--clearenv",
        ...Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v]),
        "--",
        ...command,
      ];
    }
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
    const killed = new Set<number>();
    const kill = () => {
      if (pid) for (const p of killSandbox(pid)) killed.add(p);
    };
    if (pid) liveGroups.add(pid);
    installExitHook();
    // Cancelling kills the whole sandbox at once, not only its leader; a job cancelled while it started is killed now.
    opts.signal?.addEventListener("abort", kill, { once: true });
    if (opts.signal?.aborted) kill();
    const guard = setTimeout(kill, opts.timeoutMs + 50);
    const result = await child;
    clearTimeout(guard);
    opts.signal?.removeEventListener("abort", kill);
    kill();
    // The run has ended when the last of its processes has, not when bubblewrap's leader has.
    for (let i = 0; i < 500 && [...killed].some(running); i++) await new Promise((r) => setTimeout(r, 10));
    if (pid) liveGroups.delete(pid);
    const stdout = tails.stdout.text();
    let stderr = tails.stderr.text();
    const why = reason(result, stderr, { timeoutMs: opts.timeoutMs, ...(nproc !== undefined ? { maxProcesses } : {}), ...(opts.memoryMb !== undefined ? { memoryMb: opts.memoryMb } : {}) });
    if (why) stderr += `\n[${why}]`;
    return {
      ok: result.exitCode === 0 && !result.timedOut,
      exitCode: result.exitCode,
      timedOut: Boolean(result.timedOut),
      stdout,
      stderr,
      ms: Date.now() - started,
      sandboxed,
      ...(uid !== undefined && sandboxed ? { uid } : {}),
    };
  } finally {
    if (slot !== undefined) {
      await reap(uid!);
      // What the run wrote goes back to the workspace's owner, and the run's uid keeps nothing on the host.
      await chownTree(cwd, owner!.uid, owner!.gid);
      busySlots.delete(slot);
    }
  }
}
