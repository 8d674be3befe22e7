import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadOrCreateIdentities, serverAuthConfig, writePrivate, type Identities } from "./auth.js";
import { onFreePort, spawnNatsServer } from "./natsProcess.js";
import type { Logger } from "./logger.js";
import { writeTlsServerConf, type ServerTlsFiles } from "./tls.js";

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

/** Whether an address to listen on admits only this machine. */
export function isLoopback(host: string): boolean {
  return /^(127\.|localhost$|::1$)/.test(host);
}

/**
 * The address this machine's clients reach a server at: loopback when it listens on every address (or on
 * loopback), else the one address it listens on (it does not answer on 127.0.0.1 then).
 */
export function clientHost(host: string): string {
  if (isLoopback(host) || host === "0.0.0.0" || host === "::" || host === "[::]") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The identities a server beyond loopback admits, kept in `dir` (a restart takes the same ones), and the
 * `authorization` block naming them, written to `dir/auth.conf`: both readable by their owner only.
 */
export function writeServerAuth(dir: string): { identities: Identities; conf: string } {
  const identities = loadOrCreateIdentities(join(dir, "identities.json"));
  const conf = join(dir, "auth.conf");
  writePrivate(conf, serverAuthConfig(identities));
  return { identities, conf };
}

/**
 * Starts Debian's nats-server with JetStream on `port` (a free one unless told) of `host` (loopback unless
 * told otherwise), its store under `storeDir`. Starting it again with the same port and store is a restart:
 * clients reconnect to it and find their streams, and a server beyond loopback keeps its identities.
 * Beyond loopback the server always requires credentials: its configuration (written beside the store,
 * readable by its owner only) names one user per identity with that identity's permissions.
 * Given `tls` (bus/tls.ts), it takes TLS connections only, and its `url` says tls://.
 * Resolves once the server says it is ready to take clients.
 */
export async function startLocalNats(opts: { storeDir: string; log?: Logger; binary?: string; host?: string; port?: number; tls?: ServerTlsFiles }): Promise<LocalNats> {
  const binary = opts.binary ?? "nats-server";
  const host = opts.host ?? "127.0.0.1";
  mkdirSync(opts.storeDir, { recursive: true });
  let identities: Identities | undefined;
  let conf: string | undefined;
  if (!isLoopback(host)) {
    const auth = writeServerAuth(opts.storeDir);
    identities = auth.identities;
    conf = auth.conf;
  }
  // On loopback too: TLS asked for is TLS required.
  if (opts.tls) conf = writeTlsServerConf(opts.storeDir, opts.tls, { auth: Boolean(identities) });
  // Command-line flags win over the file, which holds only the authorization and tls blocks.
  const { port, proc } = await onFreePort(opts.port, host, (p) =>
    spawnNatsServer({ binary, args: [...(conf ? ["-c", conf] : []), "-js", "-a", host, "-p", String(p), "-sd", opts.storeDir], log: opts.log }),
  );
  const url = `${opts.tls ? "tls" : "nats"}://${clientHost(host)}:${port}`;
  opts.log?.debug({ url, storeDir: opts.storeDir, auth: Boolean(identities) }, "local nats-server started");

  return {
    url,
    port,
    ...(identities ? { identities } : {}),
    stop: proc.stop,
  };
}
