import { randomUUID } from "node:crypto";
import { AuthorizationError, PermissionViolationError, connect, RequestError, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { z } from "zod";
import { OPEN_IDENTITY } from "./auth.js";
import { BusError } from "./errors.js";
import { clientTlsOptions, tlsConnectError, type ClientTls } from "./tls.js";
import { rootLogger, type Logger } from "./logger.js";
import { retryingKv } from "./retryBus.js";
import { BUCKETS, BUCKET_STREAMS, STREAMS, durableName, subjects } from "./subjects.js";
import { JOB_KINDS } from "./schemas.js";

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Run configs, run state, actor snapshots, done-markers of jobs. */
  kv: KV;
  /** Code, run outputs, figures, TeX, PDFs. */
  obj: ObjectStore;
  url: string;
  /** Where bus operations log their retries. */
  log: Logger;
  /**
   * This connection's own id. It names the holder of a job's claim or a run's lease, and the connection
   * answers on `sci.live.<instanceId>` for as long as it is open (see askHolder).
   */
  instanceId: string;
  /** The identity this connection publishes as: its credential's role, or OPEN_IDENTITY without one (bus/auth.ts). */
  identity: string;
  /** The JetStream domain its requests name, when the servers have one (ConnectOptions.domain). */
  domain: string | undefined;
  /** The claim and lease keys this connection holds now: what it answers when asked whether it holds one. */
  held: Set<string>;
  /** When the connection last came back after losing the server; 0 if it never lost it. */
  reconnectedAt(): number;
  close(): Promise<void>;
}

/** What a person is told about the connection: it went away, it came back, or it is gone for good. */
export type BusStatus =
  | { type: "lost"; server: string }
  | { type: "back"; server: string; downMs: number }
  | { type: "closed"; error?: Error };

/** The lines the swarm and a node print; `waits` names who is waiting ("the run", "this node"). */
export function describeBusStatus(status: BusStatus, waits = "the run"): string {
  switch (status.type) {
    case "lost":
      return `NATS connection lost; reconnecting (${waits} waits)…`;
    case "back":
      return `NATS back after ${Math.max(1, Math.round(status.downMs / 1000))} s`;
    case "closed":
      return `NATS connection closed${status.error ? `: ${status.error.message}` : ""}`;
  }
}

/**
 * Reconnection for as long as it takes: a restart of the server, however long, delays the swarm and
 * breaks nothing. The jitter keeps a swarm's nodes from all knocking at the same moment; the pings find a
 * server that vanished without closing the socket.
 */
const RECONNECT = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 1_000,
  reconnectJitter: 500,
  pingInterval: 20_000,
  maxPingOut: 3,
} as const;

function watchStatus(nc: NatsConnection, log: Logger, identity: string, onStatus?: (status: BusStatus) => void): void {
  const tell = (status: BusStatus) => {
    try {
      onStatus?.(status);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "a bus status listener threw");
    }
  };
  let lostAt: number | undefined;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && lostAt === undefined) {
        lostAt = Date.now();
        log.warn({ server: s.server }, "NATS connection lost; reconnecting");
        tell({ type: "lost", server: s.server });
      } else if (s.type === "reconnect") {
        const downMs = lostAt === undefined ? 0 : Date.now() - lostAt;
        lostAt = undefined;
        log.info({ server: s.server, downMs }, "NATS connection back");
        tell({ type: "back", server: s.server, downMs });
      } else if (s.type === "error" && s.error instanceof PermissionViolationError) {
        // The server says only which subject; which identity asked is what tells a misconfigured node from a forger.
        log.error({ operation: s.error.operation, subject: s.error.subject, identity }, `NATS refused ${identity} a ${s.error.operation} on ${s.error.subject}`);
      } else if (s.type === "error") {
        log.warn({ err: s.error.message }, "NATS server reported an error");
      }
    }
  })();
  void nc.closed().then((error) => {
    log[error ? "error" : "debug"]({ err: error?.message }, "NATS connection closed");
    tell(error ? { type: "closed", error } : { type: "closed" });
  });
}

/**
 * How long a worker may stay silent on a job before JetStream hands it to another worker (workers say
 * `working()` three times as often): how soon the job of a worker that died, or of a swarm that was killed
 * and resumed, is taken up again. A worker that is only slow loses nothing by it: its claim keeps the job
 * (serveJobs). Set where the consumers are first created, e.g. shorter for tests; workers read it back from
 * their consumer.
 */
export const ACK_WAIT_MS = Number(process.env.SWARM_ACK_WAIT_MS ?? 10_000);

const DAY_NS = 24 * 60 * 60 * 1_000_000_000;
const GIB = 1024 ** 3;

/** What each stream keeps, and what it does once full. */
const STREAM_LIMITS = {
  // The record a run is resumed and replayed from: a month of runs, and once full the oldest runs' turns go
  // first, so that a live run is never refused its progress and outcomes.
  // Its bytes are reserved on the server when the stream is made, so they are kept to what a laptop can spare.
  conversation: { max_age: 30 * DAY_NS, max_bytes: 1 * GIB, discard: DiscardPolicy.Old },
  // Jobs are small (blobs are in the object store) and leave once done; one still waiting after the month
  // its run's conversation is kept can no longer be resumed. Full, it refuses new jobs at publish, where the
  // publisher hears of it, rather than dropping queued work unheard.
  jobs: { max_age: 30 * DAY_NS, max_bytes: GIB / 4, discard: DiscardPolicy.New },
} as const;

type StreamLimits = (typeof STREAM_LIMITS)[keyof typeof STREAM_LIMITS];

/**
 * How long the run state (KV: configs, leases, claims, done-markers, snapshots, spend) and the artifacts (object
 * store) outlive their last write: the month a run's conversation is kept, after which it cannot be resumed
 * anyway. A key written again (the idea archive, a node's advert) starts its month again. By age only: a size
 * limit would drop the oldest entries of a store, such as a live run's configuration or half an object.
 * What a run made is also in its results folder, which nothing expires.
 */
const BUCKET_MAX_AGE_NS = 30 * DAY_NS;

/**
 * Brings a bucket that an earlier release made to this release's limits: an age limit, and reads answered by the
 * stream's leader only (a follower's direct answer can lag behind a write just made, and a claim read that way
 * would be missed). A change the server refuses is logged and the bucket kept as it is, since it still works.
 */
async function ensureBucketConfig(jsm: JetStreamManager, stream: string, want: { allow_direct?: false }, log?: Logger): Promise<void> {
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || (info.config.max_age === BUCKET_MAX_AGE_NS && (want.allow_direct === undefined || !info.config.allow_direct))) return;
  await jsm.streams
    .update(stream, { ...info.config, max_age: BUCKET_MAX_AGE_NS, ...want })
    .then(() => log?.info({ stream }, `bucket ${stream} now keeps entries ${BUCKET_MAX_AGE_NS / DAY_NS} days after their last write${want.allow_direct === false ? ", and is read from its leader" : ""}`))
    .catch((err: Error) => log?.warn({ stream, err: err.message }, `bucket ${stream} keeps its earlier limits: the server refused the update`));
}

/**
 * Creates the stream, or brings one that an earlier release made to this configuration; a change the server
 * refuses is logged and the stream kept as it is, since it still works.
 */
async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subjectList: string[],
  retention: RetentionPolicy,
  limits: StreamLimits,
  log?: Logger,
  replicas = 1,
): Promise<void> {
  const info = await jsm.streams.info(name).catch(() => undefined);
  if (!info) {
    await jsm.streams.add({
      name,
      subjects: subjectList,
      retention,
      storage: StorageType.File,
      // Job ids are msgIDs: a job published twice inside this window is stored once.
      duplicate_window: 10 * 60 * 1_000_000_000,
      ...limits,
      num_replicas: replicas,
    });
    return;
  }
  const { config } = info;
  const same =
    [...config.subjects].sort().join() === [...subjectList].sort().join() &&
    config.max_age === limits.max_age &&
    config.max_bytes === limits.max_bytes &&
    config.discard === limits.discard &&
    config.num_replicas === replicas;
  if (same) return;
  try {
    await jsm.streams.update(name, { ...config, subjects: subjectList, ...limits, num_replicas: replicas });
    log?.info({ stream: name, subjects: subjectList, ...limits }, `stream ${name} updated to this release's subjects and limits`);
  } catch (err) {
    log?.warn({ stream: name, err: (err as Error).message }, `stream ${name} keeps its earlier configuration: the server refused the update`);
  }
}

/**
 * Creates (once) the streams, the durable consumers, the KV bucket and the object store. Deliveries are not
 * bounded: a job waiting for its run's lease or for a slow holder is delivered again and again, and
 * serveJobs counts the attempts that failed itself (in the job's claim). Consumers made by releases that
 * bounded deliveries are changed to match. The jobs stream takes the known job kinds only, so that a job of
 * any other kind is refused at publish (no stream answers it) instead of being stored with no worker for it.
 */
export async function ensureTopology(jsm: JetStreamManager, opts: { ackWaitMs?: number; log?: Logger; replicas?: number } = {}): Promise<void> {
  await ensureStream(jsm, STREAMS.jobs.name, JOB_KINDS.map(subjects.anyJob), RetentionPolicy.Workqueue, STREAM_LIMITS.jobs, opts.log, opts.replicas);
  await ensureStream(jsm, STREAMS.conversation.name, [...STREAMS.conversation.subjects], RetentionPolicy.Limits, STREAM_LIMITS.conversation, opts.log, opts.replicas);
  for (const kind of JOB_KINDS) {
    const durable = durableName(kind);
    const info = await jsm.consumers.info(STREAMS.jobs.name, durable).catch(() => undefined);
    if (!info) {
      await jsm.consumers.add(STREAMS.jobs.name, {
        durable_name: durable,
        filter_subject: subjects.anyJob(kind),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: (opts.ackWaitMs ?? ACK_WAIT_MS) * 1_000_000,
        max_deliver: -1,
        max_ack_pending: 1000,
      });
    } else if (info.config.max_deliver !== -1) {
      await jsm.consumers.update(STREAMS.jobs.name, durable, { max_deliver: -1 });
    }
  }
}

/** How long a holder has to answer whether it holds something; one that is silent that long is stopped or busy, not gone. */
const HOLDER_ANSWER_MS = 1_000;
/**
 * After this connection came back from an outage, how long the others' absence proves nothing: they are
 * reconnecting too (a second or two, see RECONNECT), and until then the server knows none of their
 * subscriptions.
 */
export const RECONNECT_SETTLE_MS = 5_000;

/** Whether this connection came back so recently that the absence or silence of others says nothing yet. */
export function recentlyReconnected(bus: Bus, now: number): boolean {
  return now - bus.reconnectedAt() < RECONNECT_SETTLE_MS;
}

const HolderReply = z.object({ holds: z.boolean() });

/**
 * Asks the connection `instanceId` whether it still holds `key` (a job's claim, a run's lease), and tells the
 * dead from the slow: `gone` when the server has no subscriber for it (its connection closed: the process
 * died, or left), `let go` when it answers no, `holds` when it answers yes, and `silent` when it does not
 * answer in time (a process that is stopped or busy keeps its connection, and with it what it held). An
 * answer that cannot be trusted (this connection is away, or came back moments ago, before the others) is
 * `silent` too: nothing is taken from a holder that may be there.
 */
export async function askHolder(bus: Bus, instanceId: string, key: string, now = Date.now()): Promise<"holds" | "silent" | "let go" | "gone"> {
  if (instanceId === bus.instanceId) return bus.held.has(key) ? "holds" : "let go";
  try {
    const reply = await bus.nc.request(subjects.live(instanceId), new TextEncoder().encode(key), { timeout: HOLDER_ANSWER_MS });
    const parsed = HolderReply.safeParse(JSON.parse(reply.string()));
    if (!parsed.success) return "silent";
    return parsed.data.holds ? "holds" : "let go";
  } catch (err) {
    if (err instanceof RequestError && err.isNoResponders() && !recentlyReconnected(bus, now)) return "gone";
    return "silent";
  }
}

/** Answers askHolder for this connection, from what it holds now. */
function answerHolderQuestions(nc: NatsConnection, instanceId: string, held: Set<string>): void {
  const dec = new TextDecoder();
  nc.subscribe(subjects.live(instanceId), {
    callback: (err, msg) => {
      if (err) return;
      msg.respond(JSON.stringify({ holds: held.has(dec.decode(msg.data)) }));
    },
  });
}

/** A compare-and-set on KV (a create, an update by revision) that lost: someone else wrote the key first. */
export function isKvConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export interface ConnectOptions {
  name?: string;
  log?: Logger;
  /** The ack wait of consumers this connection creates (ACK_WAIT_MS unless told); existing ones keep theirs. */
  ackWaitMs?: number;
  /** Told when the connection is lost, when it is back, and when it is closed. */
  onStatus?: (status: BusStatus) => void;
  /**
   * The identity to connect as (bus/auth.ts), needed by a server that listens beyond loopback. A role's identity
   * may not create streams or consumers: it finds the ones the swarm made.
   */
  credential?: { user: string; password: string; role: string };
  /** What to trust of a server that speaks TLS (bus/tls.ts): its CA; a tls:// URL without one trusts the system's CAs. */
  tls?: ClientTls;
  /**
   * Copies of each stream, the KV bucket and the object store, when this connection makes them: 3 on a cluster
   * (any one server may be lost), 1 on a single server. Unless told, a server that says it is in a cluster of
   * 3 or more (its INFO) gets 3.
   */
  replicas?: number;
  /**
   * The JetStream domain of the swarm's servers (`jetstream { domain: … }` in their configuration). A connection
   * through a leaf node (a laptop's own nats-server that joins the lab's cluster, with no JetStream of its own)
   * reaches JetStream only by naming it; the credentials file carries it. Unless told, the domain the server
   * this connection reached names in its INFO, if any.
   */
  domain?: string;
}

/** How many copies a cluster keeps, when the connection is not told: from the servers the one it reached knows of. */
function detectReplicas(nc: NatsConnection): number {
  const info = nc.info;
  // connect_urls names every server of the cluster that takes clients, this one included.
  return info?.cluster && (info.connect_urls?.length ?? 0) >= 3 ? 3 : 1;
}

export async function connectBus(url: string, opts: ConnectOptions = {}): Promise<Bus> {
  const log = (opts.log ?? rootLogger()).child({ component: "bus" });
  let nc: NatsConnection;
  try {
    const auth = opts.credential ? { user: opts.credential.user, pass: opts.credential.password } : {};
    const tls = clientTlsOptions(url, opts.tls);
    // One server, or every server of a cluster, comma-separated: the connection moves to another when one dies.
    // Without async traces a request does not build two errors with their stacks beforehand, in case it fails:
    // that was a tenth of a hop's time, and the swarm's own errors say what was being done.
    nc = await connect({
      servers: url.split(",").map((s) => s.trim()).filter(Boolean), name: opts.name ?? "scientist-swarm", noAsyncTraces: true, ...RECONNECT, ...auth, ...(tls ? { tls } : {}),
    });
  } catch (err) {
    const refused = tlsConnectError(err, url, opts.tls);
    if (refused) throw refused;
    if (err instanceof AuthorizationError) {
      throw new BusError(
        opts.credential
          ? `NATS at ${url} refused the credentials of ${opts.credential.user}: they belong to another run or server`
          : `NATS at ${url} requires credentials: the swarm listens beyond loopback`,
        { hint: "on the swarm's machine, `npm run swarm -- creds --role <role> --out FILE`; then `npm run node -- --creds FILE --roles …`", cause: err },
      );
    }
    throw new BusError(`cannot connect to NATS at ${url}: ${(err as Error).message}`, {
      hint: "is the swarm running? Check NATS_URL, or unset it to start a local server",
      cause: err,
    });
  }
  let reconnectedAt = 0;
  const identity = opts.credential?.role ?? OPEN_IDENTITY;
  watchStatus(nc, log, opts.credential?.role ?? "this connection", (status) => {
    if (status.type === "back") reconnectedAt = Date.now();
    opts.onStatus?.(status);
  });
  const instanceId = randomUUID().replaceAll("-", "");
  const held = new Set<string>();
  answerHolderQuestions(nc, instanceId, held);
  try {
    const domain = opts.domain ?? (nc.info as { domain?: string } | undefined)?.domain;
    const jsm = await jetstreamManager(nc, domain ? { domain } : {});
    const replicas = opts.replicas ?? detectReplicas(nc);
    if (!opts.credential || opts.credential.role === "swarm") await ensureTopology(jsm, { replicas, ...(opts.ackWaitMs === undefined ? {} : { ackWaitMs: opts.ackWaitMs }) });
    const js = jetstream(nc, domain ? { domain } : {});
    // Before the handles are made: the KV handle reads the way the bucket's stream says when it is made.
    if (!opts.credential || opts.credential.role === "swarm") {
      // The object store's reads are by sequence from the leader already (bus/storedReads.ts).
      await ensureBucketConfig(jsm, BUCKET_STREAMS.runs.name, { allow_direct: false }, log);
      await ensureBucketConfig(jsm, BUCKET_STREAMS.artifacts.name, {}, log);
    }
    // The KV client takes its age in milliseconds, the object store's in nanoseconds.
    const kv = await new Kvm(js).create(BUCKETS.runs, { history: 1, replicas, ttl: BUCKET_MAX_AGE_NS / 1_000_000, allow_direct: false });
    const obj = await new Objm(js).create(BUCKETS.artifacts, { replicas, ttl: BUCKET_MAX_AGE_NS });
    return {
      nc,
      js,
      jsm,
      kv: retryingKv(kv, { log }),
      obj,
      url,
      log,
      instanceId,
      identity,
      domain,
      held,
      reconnectedAt: () => reconnectedAt,
      async close() {
        // Draining needs the server; while it is away, leaving must not wait for it.
        if (!nc.isClosed()) await Promise.race([nc.drain().catch(() => undefined), new Promise((r) => setTimeout(r, 3000).unref())]);
        if (!nc.isClosed()) await nc.close();
      },
    };
  } catch (err) {
    await nc.close();
    throw new BusError(`NATS at ${url} has no usable JetStream: ${(err as Error).message}`, {
      hint: "start nats-server with -js (JetStream enabled)",
      cause: err,
    });
  }
}
