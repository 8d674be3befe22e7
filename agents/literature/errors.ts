import { SwarmError } from "../../bus/errors.js";

/** A literature search failed for good: the service kept refusing, was unreachable, or answered nonsense. */
export class LiteratureError extends SwarmError {
  constructor(
    message: string,
    /** The service that failed, as its source names it ("Semantic Scholar", "OpenAlex"). */
    readonly service: string,
    /** The last HTTP status, when the service answered at all. */
    readonly status: number | undefined,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(message, options);
  }
}
