import { errors as natsErrors, RequestError } from "@nats-io/transport-node";
// The public barrel leaves these two out; they are exported from the package's internal entry point.
import { JetStreamApiError, JetStreamStatusError, jserrors } from "@nats-io/jetstream/internal";
import type { KV } from "@nats-io/kv";
import { BusError } from "./errors.js";
import type { Logger } from "./logger.js";

/** JetStream's "system temporarily unavailable" while a restarted server recovers its streams. */
const JS_TEMPORARILY_UNAVAILABLE = 10008;

/**
 * Whether an error is the bus being away (a lost connection, a request that timed out during an outage,
 * a JetStream still recovering after a restart) rather than anything wrong with what was asked. Only these
 * are worth waiting out; a closed connection, a schema failure or a missing object are real.
 */
export function isTransientBusError(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof natsErrors.ClosedConnectionError || e instanceof natsErrors.DrainingConnectionError) return false;
    if (e instanceof natsErrors.TimeoutError || e instanceof natsErrors.ConnectionError || e instanceof natsErrors.NoRespondersError) return true;
    if (e instanceof RequestError && e.isNoResponders()) return true;
    // No responders on the JetStream API: the server is up but its JetStream is not yet.
    if (e instanceof jserrors.JetStreamNotEnabled && e.cause instanceof RequestError) return true;
    if (e instanceof JetStreamApiError && (e.code === JS_TEMPORARILY_UNAVAILABLE || e.status === 503)) return true;
    if (e instanceof JetStreamStatusError && (e.code === 503 || e.code === 408)) return true;
  }
  return false;
}

export interface RetryOptions {
  /** Stops the waiting (the worker is stopping). */
  signal?: AbortSignal;
  log?: Logger;
  /** How long to keep trying before giving up; generous, since a server restart may take minutes. */
  maxWaitMs?: number;
  /** First pause and longest pause between attempts. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Injected by tests so that they never sleep. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

/** An hour by default; SWARM_BUS_RETRY_S changes it. */
export const BUS_RETRY_MAX_WAIT_MS = Number(process.env.SWARM_BUS_RETRY_S ?? 3_600) * 1000;

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs a bus operation, and while it fails because the bus is away, runs it again with backoff (with
 * jitter, so that a swarm's nodes do not all knock at once when the server comes back). Every operation
 * given here must be safe to repeat: an upload by name, a publish with a msgID, a KV put.
 */
export async function retryBus<T>(what: string, op: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const sleep = opts.sleep ?? defaultSleep;
  const now = opts.now ?? Date.now;
  const maxWaitMs = opts.maxWaitMs ?? BUS_RETRY_MAX_WAIT_MS;
  const base = opts.baseDelayMs ?? 250;
  const cap = opts.maxDelayMs ?? 5_000;
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await op();
      if (attempt > 1) opts.log?.info({ what, attempts: attempt, waitedMs: now() - started }, "bus operation went through after the bus came back");
      return value;
    } catch (err) {
      if (!isTransientBusError(err)) throw err;
      const waited = now() - started;
      if (opts.signal?.aborted) throw new BusError(`stopped while retrying ${what}`, { cause: err });
      if (waited >= maxWaitMs) {
        throw new BusError(`${what} failed for ${Math.round(waited / 1000)} s while NATS was unreachable: ${(err as Error).message}`, {
          hint: "is the nats-server running? SWARM_BUS_RETRY_S sets how long the swarm waits for it",
          cause: err,
        });
      }
      const pause = Math.min(cap, base * 2 ** Math.min(attempt - 1, 16)) * (0.75 + Math.random() * 0.5);
      const log = attempt === 1 ? opts.log?.warn.bind(opts.log) : opts.log?.debug.bind(opts.log);
      log?.({ what, attempt, err: (err as Error).message }, "bus unavailable; retrying");
      await sleep(Math.min(pause, Math.max(0, maxWaitMs - waited)), opts.signal);
    }
  }
}

/**
 * The KV bucket, with the operations that are safe to repeat (get, put, delete) waiting out an outage.
 * create and update are compare-and-set: their callers decide what a conflict means, so they pass through.
 */
export function retryingKv(kv: KV, opts: Omit<RetryOptions, "signal"> = {}): KV {
  const wrapped: Partial<KV> = {
    get: (key, o) => retryBus(`KV get ${key}`, () => kv.get(key, o), opts),
    put: (key, value, o) => retryBus(`KV put ${key}`, () => kv.put(key, value, o), opts),
    delete: (key, o) => retryBus(`KV delete ${key}`, () => kv.delete(key, o), opts),
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop in wrapped) return wrapped[prop as keyof KV];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
