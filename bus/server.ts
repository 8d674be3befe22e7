import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { loadOrCreateIdentities, serverAuthConfig, writePrivate, type Identities } from "./auth.js";
import { EnvironmentError, BusError } from "./errors.js";
import type { Logger } from "./logger.js";

export interface LocalNats {
  url: string;
  port: number;
  /**
   * The identities the server admits, when it listens beyond loopback (then a client without one is refused);
   * undefined on loopback, where every process of this machine may connect without credentials.
   */
  identities?: Identities;
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

/** Whether an address to listen on admits only this machine. */
export function isLoopback(host: string): boolean {
  return /^(127\.|localhost$|::1$)/.test(host);
}

/**
 * Starts Debian's nats-server with JetStream on `port` (a free one unless told) of `host` (loopback unless
 * told otherwise), its store under `storeDir`. Starting it again with the same port and store is a restart:
 * clients reconnect to it and find their streams, and a server beyond loopback keeps its identities.
 * Beyond loopback the server always requires credentials: its configuration (written beside the store,
 * readable by its owner only) names one user per identity with that identity's permissions.
 * Resolves once the server says it is ready to take clients.
 */
export async function startLocalNats(opts: { storeDir: string; log?: Logger; binary?: string; host?: string; port?: number }): Promise<LocalNats> {
  const binary = opts.binary ?? "nats-server";
  const host = opts.host ?? "127.0.0.1";
  mkdirSync(opts.storeDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  let identities: Identities | undefined;
  const args = ["-js", "-a", host, "-p", String(port), "-sd", opts.storeDir];
  if (!isLoopback(host)) {
    identities = loadOrCreateIdentities(join(opts.storeDir, "identities.json"));
    const conf = join(opts.storeDir, "auth.conf");
    writePrivate(conf, serverAuthConfig(identities));
    // Command-line flags win over the file, which holds only the authorization block.
    args.unshift("-c", conf);
  }
  const child = spawn(binary, args, {
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
  // Keep draining stderr so the server never blocks on a full pipe; what it refused someone is worth a line.
  child.stderr?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (/Violation/.test(line)) opts.log?.warn({ server: line.replace(/^.*?\[(ERR|WRN|INF)\] /, "") }, "nats-server refused a client");
    }
  });
  child.stderr?.resume();
  // Clients on this machine connect over loopback whatever address the server listens on.
  const url = `nats://127.0.0.1:${port}`;
  opts.log?.debug({ url, storeDir: opts.storeDir, auth: Boolean(identities) }, "local nats-server started");

  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    ...(identities ? { identities } : {}),
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
