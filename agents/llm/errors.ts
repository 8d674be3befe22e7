import { SwarmError } from "../../bus/errors.js";

export abstract class LlmError extends SwarmError {}

/** The model answered, but never with a value that satisfies the task's schema. */
export class ModelBehaviorError extends LlmError {}

/** The provider could not be reached or refused the request (credentials, quota, network). */
export class ProviderError extends LlmError {}

/** No such provider, or it is misconfigured. */
export class ProviderConfigError extends LlmError {}
