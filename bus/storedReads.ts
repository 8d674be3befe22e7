import type { StoredMsg } from "@nats-io/jetstream";
import type { Bus } from "./connection.js";
import { BusError } from "./errors.js";
import { retryBus } from "./retryBus.js";
import { BUCKET_STREAMS } from "./subjects.js";

/**
 * Reads by sequence number, each one request that the stream's leader answers: no consumer is made. A consumer
 * is placed on one server, and Debian's nats-server 2.9.10 goes on placing new ones on a server of a cluster
 * that was killed, for minutes (nats-io/natscli#1067); a reader whose consumer lands there waits forever. A
 * request to the stream's leader is answered by whichever server leads now, and is simply asked again while
 * the stream elects a new one. So every reader of the conversation, the object store and KV listings reads
 * this way; only the work queues' replicated durable consumers remain.
 */

/** How often a live reader asks again with no message said: it is woken at once by each message, so this only bounds what a lost wake-up costs. */
export const LIVE_POLL_MS = 1_000;

export interface StoredReadOptions {
  signal?: AbortSignal;
}

/** The first message at or after `seq` on `filter` (wildcards allowed), or null when there is none yet. */
export async function nextStored(bus: Bus, stream: string, filter: string, seq: number, opts: StoredReadOptions = {}): Promise<StoredMsg | null> {
  return retryBus(`reading ${filter}`, // The server takes next_by_subj on this request too (2.9 and later); the client types it for direct gets only.
    () => bus.jsm.streams.getMessage(stream, { seq, next_by_subj: filter } as unknown as { seq: number }), {
    log: bus.log,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** The subjects of a stream that hold messages, under `filter`: the stream's own count of them, with no consumer. */
export async function storedSubjects(bus: Bus, stream: string, filter: string, opts: StoredReadOptions = {}): Promise<string[]> {
  const info = await retryBus(`listing ${filter}`, () => bus.jsm.streams.info(stream, { subjects_filter: filter }), {
    log: bus.log,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return Object.keys(info.state.subjects ?? {}).sort();
}

/** The keys of the runs bucket under `filter` (KV wildcards), deleted ones among them: callers read each and skip those. */
export async function storedKeys(bus: Bus, filter: string, opts: StoredReadOptions = {}): Promise<string[]> {
  const prefix = `${BUCKET_STREAMS.runs.subjects}.`;
  return (await storedSubjects(bus, BUCKET_STREAMS.runs.name, `${prefix}${filter}`, opts)).map((s) => s.slice(prefix.length));
}

/** A reader's wait for the next message: a live message ends it at once (`wake`), and the poll after `ms` anyway. */
export class Wakeup {
  private pending: (() => void) | undefined;

  wake(): void {
    this.pending?.();
  }

  wait(ms: number, stopped: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        this.pending = undefined;
        resolve();
      };
      timer = setTimeout(done, ms);
      this.pending = done;
      if (stopped()) done();
    });
  }
}

export interface StoredFollower extends AsyncIterable<StoredMsg> {
  close(): Promise<void>;
}

/**
 * Every message on `filter` from `fromSeq` on, in order, then each new one as it is stored. A core subscription
 * on the filter wakes the reader when a message is said (it needs subscribe permission there; without it the
 * reader asks every LIVE_POLL_MS). The reading rides out an outage and a change of leader: each read is asked
 * again until it is answered, after the last message read, so nothing is skipped and nothing is read twice.
 */
export function followStored(bus: Bus, stream: string, filter: string, opts: { fromSeq?: number; pollMs?: number } = {}): StoredFollower {
  const stop = new AbortController();
  const pollMs = opts.pollMs ?? LIVE_POLL_MS;
  let next = Math.max(1, opts.fromSeq ?? 1);
  let woken = false;
  const wakeup = new Wakeup();
  const sub = bus.nc.subscribe(filter, {
    callback: () => {
      woken = true;
      wakeup.wake();
    },
  });
  const ended = () => stop.signal.aborted || bus.nc.isClosed() || bus.nc.isDraining();
  return {
    async close() {
      stop.abort();
      wakeup.wake();
      if (!sub.isClosed()) sub.unsubscribe();
    },
    async *[Symbol.asyncIterator]() {
      try {
        // Once the server has the subscription, a message stored after any read below wakes the reader: without
        // this, one stored between the first read and the subscription's arrival waited for the poll.
        if (!ended()) await bus.nc.flush().catch(() => undefined);
        while (!ended()) {
          woken = false;
          let m: StoredMsg | null;
          try {
            m = await nextStored(bus, stream, filter, next, { signal: stop.signal });
          } catch (err) {
            if (ended()) return;
            throw err instanceof BusError ? err : new BusError(`reading ${filter} failed: ${(err as Error).message}`, { cause: err });
          }
          if (m) {
            next = m.seq + 1;
            yield m;
            continue;
          }
          if (woken) continue;
          await wakeup.wait(pollMs, () => stop.signal.aborted);
        }
      } finally {
        if (!sub.isClosed()) sub.unsubscribe();
      }
    },
  };
}
