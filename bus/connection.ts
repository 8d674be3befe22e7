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
  close(): Promise<void>;
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

export async function connectBus(url: string, opts: { name?: string } = {}): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name: opts.name ?? "scientist-swarm", maxReconnectAttempts: 10 });
  } catch (err) {
    throw new BusError(`cannot connect to NATS at ${url}: ${(err as Error).message}`, {
      hint: "is the swarm running? Check NATS_URL, or unset it to start a local server",
      cause: err,
    });
  }
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
      kv,
      obj,
      url,
      async close() {
        if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
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
