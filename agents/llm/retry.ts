import type { Logger } from "../../bus/logger.js";

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/** Retries after a call's first try: SWARM_LLM_RETRIES, else 4. Past them the job itself is retried, by redelivery. */
function retriesFromEnv(): number {
  const n = Number(process.env.SWARM_LLM_RETRIES ?? 4);
  return Number.isInteger(n) && n >= 0 ? n : 4;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: retriesFromEnv() + 1, baseMs: 1000, maxMs: 60_000 };

interface HttpLikeError {
  status?: number;
  /** Set by errors that know whether a retry may help (a ProviderError for a cut-off answer). */
  retryable?: boolean;
  headers?: Headers | Record<string, string | null | undefined>;
  name?: string;
  message?: string;
}

function header(err: HttpLikeError, name: string): string | undefined {
  const h = err.headers;
  if (!h) return undefined;
  if (typeof (h as Headers).get === "function") return (h as Headers).get(name) ?? undefined;
  return (h as Record<string, string | undefined>)[name] ?? undefined;
}

/** Milliseconds the server asked us to wait (Retry-After in seconds or as a date, or retry-after-ms). */
export function retryAfterMs(err: unknown, now = Date.now()): number | undefined {
  const e = err as HttpLikeError;
  const ms = header(e, "retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Number(ms);
  const value = header(e, "retry-after");
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Whether a failed request is worth another try: rate limits, server errors, timeouts, dropped connections
 * and answers that arrived unreadable are; a bad request, bad credentials or a cancelled call are not. An
 * error that says itself whether it is retryable is taken at its word.
 */
export function isRetryable(err: unknown): boolean {
  const e = err as HttpLikeError;
  if (typeof e?.retryable === "boolean") return e.retryable;
  if (e?.name === "AbortError" || /UserAbort/.test(e?.name ?? "")) return false;
  if (typeof e?.status === "number") return e.status === 408 || e.status === 409 || e.status === 429 || e.status >= 500;
  return /Connection|Timeout|timed out|ECONNRESET|ECONNREFUSED|socket|network|fetch failed/i.test(`${e?.name} ${e?.message}`);
}

/** Waits `ms`, or rejects with the signal's reason once it is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error("aborted"));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error("aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with full jitter, or the server's Retry-After when it gives one. */
export function backoffMs(attempt: number, policy: RetryPolicy, err: unknown, random = Math.random): number {
  const asked = retryAfterMs(err);
  if (asked !== undefined) return Math.min(policy.maxMs, asked) + Math.floor(random() * 250);
  return Math.floor(random() * Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1)));
}

/** What a caller learns before each wait: the failure, the try that failed, and how long until the next. */
export interface RetryNotice {
  err: unknown;
  attempt: number;
  waitMs: number;
  /** What the server asked for, when it said. */
  retryAfterMs: number | undefined;
}

export async function withRetries<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  opts: { policy?: RetryPolicy; signal?: AbortSignal; log?: Logger; /** Replaces the default log line for each wait; an error it throws ends the retries and is what the caller gets. */ onRetry?: (n: RetryNotice) => void } = {},
): Promise<T> {
  const policy = opts.policy ?? DEFAULT_RETRY;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !isRetryable(err) || opts.signal?.aborted) throw err;
      const wait = backoffMs(attempt, policy, err);
      const status = (err as HttpLikeError).status;
      if (opts.onRetry) opts.onRetry({ err, attempt, waitMs: wait, retryAfterMs: retryAfterMs(err) });
      else opts.log?.warn(
        { attempt, waitMs: wait, status, retryAfter: retryAfterMs(err) },
        `${what}: ${status ? `HTTP ${status}` : (err as Error).message}; retrying in ${(wait / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${policy.attempts})${retryAfterMs(err) !== undefined ? ", as the server's Retry-After asks" : ""}`,
      );
      await sleep(wait, opts.signal);
    }
  }
}

/** At most `limit` calls at once (a number, or read at each call); the rest wait their turn in order. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  private readonly limit: () => number;
  constructor(limit: number | (() => number)) {
    this.limit = typeof limit === "number" ? () => limit : limit;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit() || this.queue.length) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      // A limit raised meanwhile lets more than one waiting call go.
      while (this.queue.length && this.active < this.limit()) {
        this.active++;
        this.queue.shift()!();
      }
    }
  }
}
