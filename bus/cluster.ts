import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { StorageType, jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import { writePrivate, type Identities } from "./auth.js";
import { BusError, UserError } from "./errors.js";
import type { Logger } from "./logger.js";
import { freePort, spawnNatsServer, type NatsProcess } from "./natsProcess.js";
import { clientHost, isLoopback, writeServerAuth, type LocalNats } from "./server.js";
import { clientTlsOptions, tlsConfigBlock, type ServerTlsFiles, type SwarmTls } from "./tls.js";

/** How many copies of every stream, KV bucket and object store a cluster keeps: any one server may be lost. */
export const CLUSTER_REPLICAS = 3;

/** The name every server of a swarm's local cluster gives its cluster. */
const CLUSTER_NAME = "scientist-swarm";

/** Where a local cluster's servers listen: kept in the run's bus.json, so that a resumed run reopens the same servers. */
export const ClusterLayout = z.object({
  servers: z
    .array(z.object({ name: z.string().regex(/^[A-Za-z0-9_-]+$/), port: z.number().int().positive(), clusterPort: z.number().int().positive() }))
    .min(CLUSTER_REPLICAS),
});
export type ClusterLayout = z.infer<typeof ClusterLayout>;

/** What a swarm keeps of its local servers in results/<run>/bus.json: what `--resume` reopens and `npm run gate` finds. */
export const BusFile = z.object({ port: z.number().int(), cluster: ClusterLayout.optional() });

export interface ClusterServer {
  name: string;
  /** The port clients connect to. */
  port: number;
  /** The port the other servers of the cluster connect to (its route). */
  clusterPort: number;
  pid: number;
  /** This server's own JetStream store. */
  storeDir: string;
  /** Stops this one server, as an operator would. */
  stop(): Promise<void>;
  /** Kills this one server at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
}

/** A local cluster looks to its users like one server whose `url` names every server, comma-separated. */
export interface LocalCluster extends LocalNats {
  urls: string[];
  /** How many copies the cluster keeps of each stream, bucket and store (connectBus's `replicas`). */
  replicas: number;
  servers: ClusterServer[];
  layout: ClusterLayout;
}

/** A cluster needs a majority of its servers to agree on anything: an odd number, at least 3, survives losing one. */
export function checkClusterSize(size: number): void {
  if (!Number.isInteger(size) || size < CLUSTER_REPLICAS || size % 2 === 0) {
    throw new UserError(`--nats-cluster ${size}: a cluster needs an odd number of servers, at least ${CLUSTER_REPLICAS}`, {
      hint: "give --nats-cluster 3 (survives losing any one server) or 5 (any two); an even number survives no more than one fewer would",
    });
  }
}

const q = (s: string) => JSON.stringify(s);

/** One server's configuration: its name, its client and route ports, its own store, and the routes to all the others. */
function serverConfig(server: ClusterLayout["servers"][number], all: ClusterLayout["servers"], opts: { host: string; storeDir: string; auth: boolean; tls?: ServerTlsFiles | undefined }): string {
  return [
    "# Written by scientist-swarm for one server of the run's local cluster (--nats-cluster).",
    `server_name: ${q(server.name)}`,
    `host: ${q(opts.host)}`,
    `port: ${server.port}`,
    `jetstream { store_dir: ${q(opts.storeDir)} }`,
    // Routes take no credentials, and a server that connects to one joins the cluster and hears everything: they
    // listen on loopback only, since the servers of a local cluster are all on this machine.
    "cluster {",
    `  name: ${q(CLUSTER_NAME)}`,
    `  host: "127.0.0.1"`,
    `  port: ${server.clusterPort}`,
    `  routes: [${all.filter((s) => s.name !== server.name).map((s) => q(`nats-route://127.0.0.1:${s.clusterPort}`)).join(", ")}]`,
    "}",
    // The same authorization and tls blocks as a single server's (clients only: the routes stay on loopback).
    ...(opts.auth ? ['include "auth.conf"'] : []),
    ...(opts.tls ? [tlsConfigBlock(opts.tls)] : []),
    "",
  ].join("\n");
}

/**
 * Starts `size` nats-servers on this machine as one JetStream cluster, each with its own store under `dir`
 * (`dir/<name>/`) and its configuration beside it (`dir/<name>.conf`). Beyond loopback every server requires
 * the same credentials (`dir/auth.conf`, as startLocalNats writes it). Given the `layout` of an earlier start,
 * the same servers come back on the same ports with their stores: a restart. Resolves once the cluster has
 * elected its JetStream leader and can make a stream with a copy on every server it needs.
 */
export async function startLocalCluster(opts: { size: number; dir: string; host?: string; log?: Logger; binary?: string; layout?: ClusterLayout; tls?: SwarmTls }): Promise<LocalCluster> {
  const size = opts.layout?.servers.length ?? opts.size;
  checkClusterSize(size);
  const host = opts.host ?? "127.0.0.1";
  // The servers are on this machine: they reach each other, and this machine's clients reach them, on the address they listen on.
  const localHost = clientHost(host);
  mkdirSync(opts.dir, { recursive: true });
  const layout: ClusterLayout = opts.layout ?? { servers: [] };
  if (!opts.layout) {
    for (let i = 1; i <= size; i++) layout.servers.push({ name: `n${i}`, port: await freePort(host), clusterPort: await freePort() });
  }
  let identities: Identities | undefined;
  if (!isLoopback(host)) identities = writeServerAuth(opts.dir).identities;

  const started: NatsProcess[] = [];
  const stopAll = () => Promise.all(started.map((p) => p.stop())).then(() => undefined);
  const servers: ClusterServer[] = [];
  try {
    // All at once: a server waits for its peers before JetStream is ready.
    await Promise.all(
      layout.servers.map(async (s) => {
        const storeDir = join(opts.dir, s.name);
        mkdirSync(storeDir, { recursive: true });
        const conf = join(opts.dir, `${s.name}.conf`);
        writePrivate(conf, serverConfig(s, layout.servers, { host, storeDir, auth: Boolean(identities), tls: opts.tls }));
        const proc = await spawnNatsServer({ binary: opts.binary ?? "nats-server", args: ["-c", conf], log: opts.log });
        started.push(proc);
        servers.push({ ...s, pid: proc.pid, storeDir, stop: proc.stop, kill: proc.kill });
      }),
    );
    servers.sort((a, b) => a.name.localeCompare(b.name));
    const urls = servers.map((s) => `${opts.tls ? "tls" : "nats"}://${localHost}:${s.port}`);
    await waitForJetStream(urls, CLUSTER_REPLICAS, identities?.swarm, opts.tls);
    opts.log?.debug({ urls, dir: opts.dir, auth: Boolean(identities) }, "local nats cluster started");
    return {
      url: urls.join(","),
      urls,
      port: servers[0]!.port,
      replicas: CLUSTER_REPLICAS,
      servers,
      layout,
      ...(identities ? { identities } : {}),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The stream the cluster is proven with: made and deleted again, in memory, so it leaves nothing behind. */
const PROBE_STREAM = "SCI_CLUSTER_PROBE";
const JETSTREAM_READY_MS = 30_000;

/**
 * Waits until the cluster's JetStream has a leader and knows enough servers to keep `replicas` copies: until
 * then a stream cannot be made, and the swarm's first would fail.
 */
export async function waitForJetStream(urls: string[], replicas: number, credential?: { user: string; password: string }, tls?: SwarmTls): Promise<void> {
  const tlsOptions = tls ? clientTlsOptions(urls.join(","), { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.servername ? { servername: tls.servername } : {}) }) : undefined;
  const nc = await connect({
    servers: urls, name: "scientist-swarm cluster probe", ...(credential ? { user: credential.user, pass: credential.password } : {}), ...(tlsOptions ? { tls: tlsOptions } : {}),
  });
  const deadline = Date.now() + JETSTREAM_READY_MS;
  let last: unknown;
  try {
    while (Date.now() < deadline) {
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: PROBE_STREAM, subjects: ["_sci.cluster.probe"], storage: StorageType.Memory, num_replicas: replicas, max_bytes: 1024 });
        await jsm.streams.delete(PROBE_STREAM);
        return;
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new BusError(`the local NATS cluster's JetStream was not ready within ${JETSTREAM_READY_MS / 1000} s: ${(last as Error | undefined)?.message ?? "no answer"}`, {
      hint: "the servers' configurations are in the run's nats/ folder; start one with `nats-server -c nats/n1.conf` to see what it says",
      cause: last,
    });
  } finally {
    await nc.close();
  }
}
