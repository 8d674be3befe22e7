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

/** A literature search failed for good: the service kept refusing, was unreachable, or answered nonsense. */
export class LiteratureError extends SwarmError {
  readonly kind: LiteratureErrorKind;

  constructor(
    message: string,
    /** The service that failed, as its source names it ("Semantic Scholar", "OpenAlex"). */
    readonly service: string,
    /** The last HTTP status, when the service answered at all. */
    readonly status: number | undefined,
    options?: { hint?: string; cause?: unknown; kind?: LiteratureErrorKind },
  ) {
    super(message, options);
    this.kind = options?.kind ?? kindOfStatus(status);
  }
}
