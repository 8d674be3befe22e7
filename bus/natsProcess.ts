import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { EnvironmentError, BusError } from "./errors.js";
import type { Logger } from "./logger.js";

/** One running nats-server process, as started by spawnNatsServer. */
export interface NatsProcess {
  pid: number;
  /** Resolves once the process has exited, however it ended. */
  exited: Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills the server at once, as a crash would, and waits for it to exit. */
  kill(): Promise<void>;
}

/** A port nobody uses now on `host` (loopback unless told; on 0.0.0.0, on no address of this machine). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** Whether a server failed to start because its port was taken meanwhile. */
export function portTaken(err: unknown): boolean {
  return err instanceof Error && /address already in use/.test(err.message);
}

/**
 * Starts something on `port`, or on a free port of `host` when none is given. A free port can be taken by
 * another process (an outgoing connection, say) before the server binds it: then it tries another, 3 times.
 */
export async function onFreePort<T>(port: number | undefined, host: string, start: (port: number) => Promise<T>): Promise<{ port: number; proc: T }> {
  for (let attempt = 1; ; attempt++) {
    const p = port ?? (await freePort(host));
    try {
      return { port: p, proc: await start(p) };
    } catch (err) {
      if (port !== undefined || attempt >= 3 || !portTaken(err)) throw err;
    }
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A server must never outlive the process that started it, however that process ends. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/**
 * Starts `binary` with `args` and resolves once it says it is ready to take clients. Its stderr is drained
 * for as long as it runs (a full pipe would block it), and what it refused a client is logged.
 */
export async function spawnNatsServer(opts: { binary: string; args: string[]; log?: Logger | undefined }): Promise<NatsProcess> {
  const { binary } = opts;
  const child = spawn(binary, opts.args, { stdio: ["ignore", "ignore", "pipe"] });
  live.add(child);
  installExitHook();

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => live.delete(child));

  await new Promise<void>((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new BusError(`nats-server did not become ready within 10 s:\n${stderr.slice(-2000)}`));
    }, 10_000);
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === "ENOENT"
          ? new EnvironmentError(`${binary} is not installed`, {
              hint: "apt-get install -y nats-server, or set NATS_URL to a running server with JetStream",
            })
          : new BusError(`could not start ${binary}: ${err.message}`, { cause: err }),
      );
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new BusError(`nats-server exited with code ${code} before it was ready:\n${stderr.slice(-2000)}`));
    });
  });
  // Keep draining stderr so the server never blocks on a full pipe; what it refused someone is worth a line.
  child.stderr?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (/Violation/.test(line)) opts.log?.warn({ server: line.replace(/^.*?\[(ERR|WRN|INF)\] /, "") }, "nats-server refused a client");
    }
  });
  child.stderr?.resume();

  const running = () => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid!,
    exited,
    stop() {
      stopping ??= (async () => {
        if (running()) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
          await exited;
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
  };
}
