import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import { DEFAULT_RETRY, withRetries, type RetryPolicy } from "../llm/retry.js";
import { LiteratureError } from "./errors.js";

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
}

export const DEFAULT_TIMEOUT_MS = 30_000;

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
 * `onWait`; whatever still fails becomes a LiteratureError. Cancellation is passed on as it is.
 */
export async function getJson<T>(url: URL, schema: z.ZodType<T>, what: string, opts: JsonClientOptions, signal?: AbortSignal): Promise<T> {
  const policy = opts.retry ?? DEFAULT_RETRY;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let attempts = 0;
  try {
    return await withRetries(
      `${opts.service} ${what}`,
      async (attempt) => {
        attempts = attempt;
        await opts.pace?.(signal);
        return getOnce(url, schema, what, opts, timeoutMs, signal);
      },
      {
        policy,
        ...(signal ? { signal } : {}),
        onRetry: ({ err, attempt, waitMs, retryAfterMs }) => {
          const status = err instanceof HttpStatusError ? err.status : undefined;
          const why = `${opts.service} ${describe(err, timeoutMs, false)}; waiting ${(waitMs / 1000).toFixed(1)} s ${retryAfterMs !== undefined ? "as its Retry-After asks" : "before trying again"} (attempt ${attempt + 1} of ${policy.attempts})`;
          opts.log.warn({ service: opts.service, status, attempt, waitMs, retryAfter: retryAfterMs }, why);
          opts.onWait?.(why, waitMs);
        },
      },
    );
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (err instanceof LiteratureError) throw err;
    const status = err instanceof HttpStatusError ? err.status : undefined;
    const tries = attempts > 1 ? ` (${attempts} attempts)` : "";
    throw new LiteratureError(`${opts.service} ${what} failed${tries}: ${describe(err, timeoutMs)}`, opts.service, status, {
      hint: opts.hint(status),
      cause: err,
    });
  }
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
  });
}

function describe(err: unknown, timeoutMs: number, detail = true): string {
  if (err instanceof HttpStatusError) {
    const kind = err.status === 429 ? " (rate limit)" : err.status >= 500 ? " (server error)" : "";
    const message = detail ? serviceMessage(err.body) : undefined;
    return `answered ${err.status}${kind}${message ? `: ${message}` : ""}`;
  }
  const e = err as Error;
  if (e?.name === "TimeoutError") return `did not answer within ${(timeoutMs / 1000).toFixed(0)} s`;
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
