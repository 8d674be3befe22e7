import { SwarmError } from "../../bus/errors.js";

export abstract class LlmError extends SwarmError {}

/** The model answered, but never with a value that satisfies the task's schema. */
export class ModelBehaviorError extends LlmError {}

/** The provider could not be reached or refused the request (credentials, quota, network). */
export class ProviderError extends LlmError {
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No such provider, or it is misconfigured (a missing key, a missing base URL). */
export class ProviderConfigError extends LlmError {}

/** The run's budget is spent: no new paid work starts. */
export class BudgetReachedError extends LlmError {}

/** An SDK's failed call, as a ProviderError that says whose fault it is and what to check. */
export function providerErrorFrom(err: unknown, who: string): ProviderError {
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
  return new ProviderError(`${who}: ${status ? `HTTP ${status}: ` : ""}${e.message ?? String(err)}`, status, { ...(hint ? { hint } : {}), cause: err });
}
