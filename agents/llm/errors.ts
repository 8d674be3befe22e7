import { SwarmError } from "../../bus/errors.js";
import { isRetryable } from "./retry.js";

export abstract class LlmError extends SwarmError {}

/** The model answered, but never with a value that satisfies the task's schema: asking again repeats the repairs. */
export class ModelBehaviorError extends LlmError {
  readonly kind = "model";
}

/** The provider could not be reached or refused the request (credentials, quota, network), or its answer was unreadable. */
export class ProviderError extends LlmError {
  readonly kind = "provider";

  /** Retryable by default when the status says so: a rate limit, a server error; a cut-off answer says it itself. */
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: { hint?: string; cause?: unknown; retryable?: boolean },
  ) {
    super(message, { ...options, retryable: options?.retryable ?? isRetryable({ status }) });
  }
}

/** No such provider, or it is misconfigured (a missing key, a missing base URL): the person running the swarm fixes it. */
export class ProviderConfigError extends LlmError {
  readonly kind = "user";
}

/** The run's budget is spent: no new paid work starts, and no retry starts it either. */
export class BudgetReachedError extends LlmError {
  readonly kind = "budget";
}

/**
 * A failed call as a ProviderError that says who failed, whose fault it is and what to check. A ProviderError
 * from deeper down (a cut-off answer) keeps its status, hint and retryability, and gains the who.
 */
export function providerErrorFrom(err: unknown, who: string): ProviderError {
  if (err instanceof ProviderError) {
    return new ProviderError(`${who}: ${err.message}`, err.status, { ...(err.hint ? { hint: err.hint } : {}), cause: err.cause ?? err, retryable: err.retryable });
  }
  const e = err as { status?: number; message?: string };
  const status = typeof e.status === "number" ? e.status : undefined;
  const hint =
    status === 401 || status === 403
      ? "check the API key in the environment"
      : status === 404
        ? "check the model name and the base URL"
        : status === 429
          ? "the provider keeps rate-limiting: lower the concurrency or wait"
          : undefined;
  return new ProviderError(`${who}: ${status ? `HTTP ${status}: ` : ""}${e.message ?? String(err)}`, status, {
    ...(hint ? { hint } : {}),
    cause: err,
    retryable: isRetryable(err),
  });
}

/**
 * An answer with HTTP status 200 that could not be read: the body was cut off (it is not complete JSON) or the
 * connection closed before all of it came. SDKs throw these as a bare SyntaxError or TypeError, which would
 * fail the task at once; the server is as likely to answer in full next time as after a 5xx.
 */
export function unreadableAnswer(err: unknown): ProviderError | undefined {
  const e = err as { message?: string; cause?: { code?: string } };
  const cutOff = err instanceof SyntaxError;
  const dropped = err instanceof TypeError && (/terminated|other side closed/i.test(e.message ?? "") || e.cause?.code === "UND_ERR_SOCKET");
  if (!cutOff && !dropped) return undefined;
  return new ProviderError(
    cutOff
      ? `the server's answer was cut off or is not JSON (${e.message})`
      : `the connection closed before the server's answer was complete (${e.message})`,
    undefined,
    { retryable: true, cause: err, hint: "the server, or a proxy in front of it, ends answers early: check its logs if this keeps happening" },
  );
}

/** A 200 whose JSON is not the API's answer (no choices, an error object instead): as worth retrying as a 5xx. */
export function malformedAnswer(api: string, body: unknown, problem: string): ProviderError {
  const said = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return new ProviderError(
    `the server's answer is not a ${api} body (${problem})${typeof said === "string" ? `; it says: ${said}` : ""}`,
    undefined,
    { retryable: true, hint: "check that the base URL points at the API itself (it usually ends in /v1), not at a web page or a proxy" },
  );
}
