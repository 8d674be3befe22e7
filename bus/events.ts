import { randomUUID } from "node:crypto";
import type { Bus } from "./connection.js";
import { STREAMS, subjects } from "./subjects.js";
import { AcceptedIdea, LlmExchange, Progress, StateBatch, outcomeSchema, type JobKind, type Outcome, type StateEvent } from "./schemas.js";
import type { z } from "zod";
import type { Logger } from "./logger.js";
import { BusError } from "./errors.js";
import { retryBus } from "./retryBus.js";
import { followStored } from "./storedReads.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** NATS refuses messages over 1 MiB; stay well below with room for headers. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const MAX_EVENT_BYTES = 900 * 1024;

async function publishValidated<S extends z.ZodType>(bus: Bus, subject: string, schema: S, value: z.input<S>, msgID: string = randomUUID()): Promise<void> {
  const parsed = schema.parse(value);
  const bytes = enc.encode(JSON.stringify(parsed));
  if (bytes.length > MAX_EVENT_BYTES) {
    throw new BusError(`event on ${subject} is ${bytes.length} bytes; blobs belong in the object store`);
  }
  // One msgID for every attempt: a publish that reached the stream before its ack was lost to an outage is
  // stored once, however often it is retried.
  await retryBus(`publish on ${subject}`, () => bus.js.publish(subject, bytes, { msgID }), { log: bus.log });
}

/** Publishes a job's outcome under this connection's identity, naming the connection (which holds the job's claim). */
export async function publishOutcome<K extends JobKind>(
  bus: Bus,
  kind: K,
  outcome: DistributiveOmit<Outcome<K>, "at" | "instance">,
): Promise<void> {
  await publishValidated(bus, subjects.outcome(outcome.runId, kind, outcome.jobId, bus.identity), outcomeSchema(kind), {
    ...outcome,
    instance: bus.instanceId,
    at: new Date().toISOString(),
  } as never);
}

export async function publishAccepted(bus: Bus, accepted: Omit<AcceptedIdea, "at">): Promise<void> {
  // An ideator that is redone after a crash accepts the same idea again: the stream keeps one.
  await publishValidated(bus, subjects.accepted(accepted.runId, accepted.ideaId), AcceptedIdea, { ...accepted, at: new Date().toISOString() }, `${accepted.runId}.accepted.${accepted.ideaId}`);
}

export async function publishStates(bus: Bus, runId: string, events: StateEvent[]): Promise<void> {
  await publishValidated(bus, subjects.state(runId), StateBatch, { events });
}

export async function publishProgress(bus: Bus, progress: Omit<Progress, "at">): Promise<void> {
  await publishValidated(bus, subjects.progress(progress.runId), Progress, { ...progress, at: new Date().toISOString() });
}

/** Exchanges can carry a whole paper: trim the longest message contents until the record fits. */
export async function publishLlmExchange(bus: Bus, exchange: LlmExchange & { key: string }): Promise<void> {
  let record = exchange;
  let size = enc.encode(JSON.stringify(record)).length;
  while (size > MAX_EVENT_BYTES) {
    const excess = size - MAX_EVENT_BYTES + 1024;
    const longest = record.messages.reduce((a, m, i) => (m.content.length > record.messages[a]!.content.length ? i : a), 0);
    const messages = record.messages.map((m, i) =>
      i === longest ? { ...m, content: `${m.content.slice(0, Math.max(0, m.content.length - excess))}\n[… truncated for the log]` } : m,
    );
    record = { ...record, messages };
    size = enc.encode(JSON.stringify(record)).length;
  }
  await publishValidated(bus, subjects.llm(exchange.runId, exchange.key), LlmExchange, record);
}

/**
 * The exchange last recorded under this key, if any: one get of the last message on the key's own subject,
 * as cheap at the ten-thousandth exchange of a run as at the first. It waits out an outage like every other
 * bus read; a record that is not a valid exchange counts as none.
 */
export async function recordedLlmExchange(
  bus: Bus,
  runId: string,
  key: string,
  opts: { signal?: AbortSignal; log?: Logger } = {},
): Promise<LlmExchange | undefined> {
  const subject = subjects.llm(runId, key);
  const stored = await retryBus(`reading ${subject}`, () => bus.jsm.streams.getMessage(STREAMS.conversation.name, { last_by_subj: subject }), {
    log: bus.log,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (!stored) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(stored.data));
  } catch {
    opts.log?.warn({ subject }, "ignored a recorded exchange that is not JSON");
    return undefined;
  }
  const parsed = LlmExchange.safeParse(raw);
  if (!parsed.success || parsed.data.key !== key) {
    opts.log?.warn({ subject, issues: parsed.error?.issues }, "ignored a recorded exchange that fails its schema");
    return undefined;
  }
  return parsed.data;
}

export interface EventStream<T> extends AsyncIterable<{ subject: string; value: T }> {
  close(): Promise<void>;
}

/**
 * Reads a run's conversation from the stream, from its first message on, then live. A message that
 * fails its schema is logged and skipped, never half-read. It reads by sequence from the stream's leader
 * (bus/storedReads.ts), so it rides out a restart of the server and the loss of one server of a cluster.
 */
export async function watchEvents<S extends z.ZodType>(
  bus: Bus,
  filterSubject: string,
  schema: S,
  log?: Logger,
): Promise<EventStream<z.infer<S>>> {
  const follower = followStored(bus, STREAMS.conversation.name, filterSubject);
  return {
    close: () => follower.close(),
    async *[Symbol.asyncIterator]() {
      for await (const m of follower) {
        let raw: unknown;
        try {
          raw = JSON.parse(dec.decode(m.data));
        } catch {
          log?.warn({ subject: m.subject }, "skipped an event that is not JSON");
          continue;
        }
        const parsed = schema.safeParse(raw);
        if (!parsed.success) {
          log?.warn({ subject: m.subject, issues: parsed.error.issues }, "skipped an event that fails its schema");
          continue;
        }
        yield { subject: m.subject, value: parsed.data };
      }
    },
  };
}
