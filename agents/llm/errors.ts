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
