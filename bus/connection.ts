import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { BusError } from "./errors.js";
import { rootLogger, type Logger } from "./logger.js";
import { retryingKv } from "./retryBus.js";
import { BUCKETS, STREAMS, durableName, subjects } from "./subjects.js";
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

function watchStatus(nc: NatsConnection, log: Logger, onStatus?: (status: BusStatus) => void): void {
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
 * `working()` three times as often). Set where the streams are first created, e.g. shorter for tests.
 */
export const ACK_WAIT_MS = Number(process.env.SWARM_ACK_WAIT_MS ?? 30_000);
export const MAX_DELIVER = 5;

async function ensureStream(jsm: JetStreamManager, name: string, subjectList: string[], retention: RetentionPolicy): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams.add({
      name,
      subjects: subjectList,
      retention,
      storage: StorageType.File,
      // Job ids are msgIDs: a job published twice inside this window is stored once.
      duplicate_window: 10 * 60 * 1_000_000_000,
    });
  }
}

/** Creates (once) the streams, the durable consumers, the KV bucket and the object store. */
export async function ensureTopology(jsm: JetStreamManager): Promise<void> {
  await ensureStream(jsm, STREAMS.jobs.name, [...STREAMS.jobs.subjects], RetentionPolicy.Workqueue);
  await ensureStream(jsm, STREAMS.conversation.name, [...STREAMS.conversation.subjects], RetentionPolicy.Limits);
  for (const kind of JOB_KINDS) {
    const durable = durableName(kind);
    try {
      await jsm.consumers.info(STREAMS.jobs.name, durable);
    } catch {
      await jsm.consumers.add(STREAMS.jobs.name, {
        durable_name: durable,
        filter_subject: subjects.anyJob(kind),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: ACK_WAIT_MS * 1_000_000,
        max_deliver: MAX_DELIVER,
        max_ack_pending: 1000,
      });
    }
  }
}

export interface ConnectOptions {
  name?: string;
  log?: Logger;
  /** Told when the connection is lost, when it is back, and when it is closed. */
  onStatus?: (status: BusStatus) => void;
}

export async function connectBus(url: string, opts: ConnectOptions = {}): Promise<Bus> {
  const log = (opts.log ?? rootLogger()).child({ component: "bus" });
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name: opts.name ?? "scientist-swarm", ...RECONNECT });
  } catch (err) {
    throw new BusError(`cannot connect to NATS at ${url}: ${(err as Error).message}`, {
      hint: "is the swarm running? Check NATS_URL, or unset it to start a local server",
      cause: err,
    });
  }
  watchStatus(nc, log, opts.onStatus);
  try {
    const jsm = await jetstreamManager(nc);
    await ensureTopology(jsm);
    const js = jetstream(nc);
    const kv = await new Kvm(js).create(BUCKETS.runs, { history: 1 });
    const obj = await new Objm(js).create(BUCKETS.artifacts);
    return {
      nc,
      js,
      jsm,
      kv: retryingKv(kv, { log }),
      obj,
      url,
      log,
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
