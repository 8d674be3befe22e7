import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { EnvironmentError, BusError } from "./errors.js";
import type { Logger } from "./logger.js";

export interface LocalNats {
  url: string;
  port: number;
  /** Stops the server and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
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
 * Starts Debian's nats-server with JetStream on `port` (a free one unless told) of `host` (loopback unless
 * told otherwise), its store under `storeDir`. Starting it again with the same port and store is a restart:
 * clients reconnect to it and find their streams.
 * Resolves once the server says it is ready to take clients.
 */
export async function startLocalNats(opts: { storeDir: string; log?: Logger; binary?: string; host?: string; port?: number }): Promise<LocalNats> {
  const binary = opts.binary ?? "nats-server";
  const host = opts.host ?? "127.0.0.1";
  mkdirSync(opts.storeDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const child = spawn(binary, ["-js", "-a", host, "-p", String(port), "-sd", opts.storeDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
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
  // Keep draining stderr so the server never blocks on a full pipe.
  child.stderr?.resume();
  // Clients on this machine connect over loopback whatever address the server listens on.
  const url = `nats://127.0.0.1:${port}`;
  opts.log?.debug({ url, storeDir: opts.storeDir }, "local nats-server started");

  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
          await exited;
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}
