import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import { DEFAULT_RETRY, withRetries, type RetryPolicy } from "../llm/retry.js";
import { kindOfStatus, LiteratureError, type LiteratureErrorKind } from "./errors.js";

/** Told of every wait on a service, with why, so the person watching a run knows why a search stalls. */
export type OnWait = (why: string, ms: number) => void;

export interface JsonClientOptions {
  /** The service as people know it: "Semantic Scholar". */
  service: string;
  log: Logger;
  onWait?: OnWait | undefined;
  retry?: RetryPolicy | undefined;
  /** Limit for one request, answer included. */
  timeoutMs?: number | undefined;
  headers?: Record<string, string>;
  /** Called before every request, retries included: where a service's rate limit is kept. */
  pace?: ((signal?: AbortSignal) => Promise<void>) | undefined;
  /** What the person can do when the service keeps failing, given its last status. */
  hint: (status: number | undefined) => string;
  /** The service's wait bound, shared by all its requests; without one, each request gets its own of DEFAULT_MAX_WAIT_MS. */
  budget?: WaitBudget | undefined;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
/** How long a run waits out one service's rate limits and outages before it gives up on it: five minutes. */
export const DEFAULT_MAX_WAIT_MS = 300_000;

/**
 * How long a service may hold a run up. The waits between its retries add up here; once the next one would
 * take the sum past `maxMs`, the request gives up. An answer clears the sum: the bound is per outage, so a
 * service that stays down costs each later search one request, not another full wait.
 */
export class WaitBudget {
  private spentMs = 0;

  constructor(readonly maxMs: number) {}

  /** Milliseconds waited since the service last answered. */
  get waitedMs(): number {
    return this.spentMs;
  }

  /** Whether waiting `ms` more stays within the bound. */
  allows(ms: number): boolean {
    return this.spentMs + ms <= this.maxMs;
  }

  spend(ms: number): void {
    this.spentMs += ms;
  }

  clear(): void {
    this.spentMs = 0;
  }
}

/** A non-2xx answer, shaped as `isRetryable` and `retryAfterMs` read errors. */
class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly body: string,
  ) {
    super(`HTTP ${status}`);
  }
}

/**
 * GETs JSON and validates it. Rate limits, server errors, timeouts and dropped connections are retried by the
 * project's `withRetries` (the server's Retry-After when it gives one), each wait logged and reported through
 * `onWait` with how much of the wait bound it has used. A 429 is retried for as long as the bound lasts,
 * however many tries that takes; other failures get the policy's attempts, within the bound too. Whatever
 * still fails becomes a LiteratureError. Cancellation is passed on as it is.
 */
export async function getJson<T>(url: URL, schema: z.ZodType<T>, what: string, opts: JsonClientOptions, signal?: AbortSignal): Promise<T> {
  const policy = opts.retry ?? DEFAULT_RETRY;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const budget = opts.budget ?? new WaitBudget(DEFAULT_MAX_WAIT_MS);
  let attempts = 0;
  // Failures other than a 429: the policy's attempts bound these, whatever rate limits came between.
  let errors = 0;
  try {
    const value = await withRetries(
      `${opts.service} ${what}`,
      async (attempt) => {
        attempts = attempt;
        await opts.pace?.(signal);
        return getOnce(url, schema, what, opts, timeoutMs, signal);
      },
      {
        // The count is kept here, not by withRetries: it does not apply to rate limits. Throwing from onRetry ends the retries.
        policy: { ...policy, attempts: Number.POSITIVE_INFINITY },
        ...(signal ? { signal } : {}),
        onRetry: ({ err, attempt, waitMs, retryAfterMs }) => {
          const status = err instanceof HttpStatusError ? err.status : undefined;
          if (status !== 429 && ++errors >= policy.attempts) throw err;
          if (!budget.allows(waitMs)) throw gaveUp(err, waitMs, budget, what, opts, timeoutMs);
          const waited = `waited ${seconds(budget.waitedMs)} s of at most ${boundSeconds(budget.maxMs)} s`;
          const tries = status === 429 ? `attempt ${attempt + 1}; ${waited}` : `attempt ${attempt + 1} of ${attempt - errors + policy.attempts}; ${waited}`;
          budget.spend(waitMs);
          const why = `${opts.service} ${describe(err, timeoutMs, false)}; waiting ${seconds(waitMs)} s ${retryAfterMs !== undefined ? "as its Retry-After asks" : "before trying again"} (${tries})`;
          opts.log.warn({ service: opts.service, status, attempt, waitMs, retryAfter: retryAfterMs, waitedMs: budget.waitedMs, maxWaitMs: budget.maxMs }, why);
          opts.onWait?.(why, waitMs);
        },
      },
    );
    budget.clear();
    return value;
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (err instanceof LiteratureError) throw err;
    const status = err instanceof HttpStatusError ? err.status : undefined;
    const tries = attempts > 1 ? ` (${attempts} attempts)` : "";
    throw new LiteratureError(`${opts.service} ${what} failed${tries}: ${describe(err, timeoutMs)}`, opts.service, status, {
      hint: opts.hint(status),
      cause: err,
      reason: kindOf(err),
    });
  }
}

/** The error for a service that would hold the run up past its wait bound. */
function gaveUp(err: unknown, nextWaitMs: number, budget: WaitBudget, what: string, opts: JsonClientOptions, timeoutMs: number): LiteratureError {
  const status = err instanceof HttpStatusError ? err.status : undefined;
  const waiting = status === 429 ? "rate limiting" : "retrying";
  const bound = boundSeconds(budget.maxMs);
  const after = budget.waitedMs > 0 ? `after ${seconds(budget.waitedMs)} s of ${waiting}` : "without waiting";
  return new LiteratureError(
    `${opts.service} ${what} gave up ${after} (it ${describe(err, timeoutMs)}): waiting ${seconds(nextWaitMs)} s more would pass the --literature-wait bound of ${bound} s`,
    opts.service,
    status,
    { hint: `Wait longer with --literature-wait <seconds> (now ${bound}), or: ${opts.hint(status)}`, cause: err, reason: kindOf(err) },
  );
}

function kindOf(err: unknown): LiteratureErrorKind {
  if (err instanceof HttpStatusError) return kindOfStatus(err.status);
  return (err as Error)?.name === "TimeoutError" ? "timeout" : "unreachable";
}

function seconds(ms: number, digits = 1): string {
  return (ms / 1000).toFixed(digits);
}

/** A bound as the person set it: "300", "4", "0.5". */
function boundSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(1)));
}

async function getOnce<T>(url: URL, schema: z.ZodType<T>, what: string, opts: JsonClientOptions, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  const limit = AbortSignal.timeout(timeoutMs);
  const res = await fetch(url, {
    headers: { accept: "application/json", ...opts.headers },
    signal: signal ? AbortSignal.any([signal, limit]) : limit,
  });
  const body = await res.text();
  if (!res.ok) throw new HttpStatusError(res.status, res.headers, body);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw badBody(opts, what, `it is not JSON: ${JSON.stringify(body.slice(0, 120))}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
    throw badBody(opts, what, problems);
  }
  return parsed.data;
}

function badBody(opts: JsonClientOptions, what: string, problem: string): LiteratureError {
  return new LiteratureError(`${opts.service} ${what} answered with an unexpected body (${problem})`, opts.service, undefined, {
    hint: `The ${opts.service} API may have changed; ${opts.hint(undefined)}`,
    reason: "bad-answer",
  });
}

function describe(err: unknown, timeoutMs: number, detail = true): string {
  if (err instanceof HttpStatusError) {
    const kind = err.status === 429 ? " (rate limit)" : err.status >= 500 ? " (server error)" : "";
    const message = detail ? serviceMessage(err.body) : undefined;
    return `answered ${err.status}${kind}${message ? `: ${message}` : ""}`;
  }
  const e = err as Error;
  if (e?.name === "TimeoutError") return `did not answer within ${seconds(timeoutMs, 0)} s`;
  const cause = (e?.cause as Error | undefined)?.message;
  return `could not be reached (${cause ?? e?.message ?? String(err)})`;
}

/** The `message` or `error` of a JSON error body, when it has one. */
function serviceMessage(body: string): string | undefined {
  try {
    const json = JSON.parse(body) as { message?: unknown; error?: unknown };
    const text = [json.message, json.error].find((v) => typeof v === "string") as string | undefined;
    return text?.slice(0, 200);
  } catch {
    // A proxy's HTML error page says nothing a person needs.
    const text = body.trim();
    return text && !text.startsWith("<") ? text.slice(0, 200) : undefined;
  }
}

/**
 * Keeps request starts at least `intervalMs` apart, for everyone in this process who shares it. Slots are
 * handed out in order, so concurrent callers queue rather than burst.
 */
export class Pacer {
  private nextAt = 0;

  async wait(intervalMs: number, signal?: AbortSignal): Promise<number> {
    const now = Date.now();
    const at = Math.max(now, this.nextAt);
    this.nextAt = at + intervalMs;
    if (at > now) await sleep(at - now, undefined, signal ? { signal } : undefined);
    return at - now;
  }
}

const pacers = new Map<string, Pacer>();

/** The process's pacer for one server (its origin): a rate limit is per client, not per source object. */
export function pacerFor(baseUrl: string): Pacer {
  const origin = new URL(baseUrl).origin;
  let pacer = pacers.get(origin);
  if (!pacer) pacers.set(origin, (pacer = new Pacer()));
  return pacer;
}
