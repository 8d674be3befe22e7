import { SwarmError } from "../../bus/errors.js";

/**
 * What went wrong, in the terms a person acts on: wait (`rate-limited`, `server-error`, `timeout`,
 * `unreachable`), fix a key (`refused`), or report a bug (`bad-request`, `bad-answer`).
 */
export type LiteratureErrorKind = "rate-limited" | "server-error" | "timeout" | "unreachable" | "refused" | "bad-request" | "bad-answer";

/** The kind an HTTP status (or none: no answer at all) says. */
export function kindOfStatus(status: number | undefined): LiteratureErrorKind {
  if (status === undefined) return "unreachable";
  if (status === 429) return "rate-limited";
  if (status === 401 || status === 403) return "refused";
  return status >= 500 ? "server-error" : "bad-request";
}

/** The reasons a later search may get past: the service was busy, slow or away. */
const PASSING: ReadonlySet<LiteratureErrorKind> = new Set(["rate-limited", "server-error", "timeout", "unreachable"]);

/**
 * A literature search failed for good: the service kept refusing, was unreachable, or answered nonsense. Its
 * `reason` says which; a later search may succeed when the service was only busy, slow or away.
 */
export class LiteratureError extends SwarmError {
  readonly kind = "literature";
  readonly reason: LiteratureErrorKind;

  constructor(
    message: string,
    /** The service that failed, as its source names it ("Semantic Scholar", "OpenAlex"). */
    readonly service: string,
    /** The last HTTP status, when the service answered at all. */
    readonly status: number | undefined,
    options?: { hint?: string; cause?: unknown; reason?: LiteratureErrorKind },
  ) {
    const reason = options?.reason ?? kindOfStatus(status);
    super(message, { ...options, retryable: PASSING.has(reason) });
    this.reason = reason;
  }
}
