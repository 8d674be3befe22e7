import type { z } from "zod";
import type { Usage } from "../../bus/schemas.js";

export type { Usage } from "../../bus/schemas.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * What an agent asks of a model: a task name (which prompt this is), the rendered messages, the schema the
 * answer must satisfy, and the structured data the messages were rendered from. Real providers read the
 * messages; the offline provider answers from the data. Both get the same request.
 */
export interface LlmRequest<S extends z.ZodType = z.ZodType> {
  task: string;
  messages: ChatMessage[];
  schema: S;
  data: unknown;
  temperature?: number;
  signal?: AbortSignal;
  /** For the log and the cost totals. */
  ideaId?: string;
}

export interface ProviderAnswer {
  /** The parsed JSON the model produced, not yet validated by the caller's schema. */
  raw: unknown;
  usage: Usage;
}

export interface LlmProvider {
  readonly name: string;
  readonly model: string;
  /** The sentence a paper carries to say who wrote it. */
  readonly disclosure: string;
  complete(req: LlmRequest): Promise<ProviderAnswer>;
}

/** The one interface agents use: ask by task, get a validated value or a typed error. */
export interface Llm {
  readonly provider: string;
  readonly model: string;
  readonly disclosure: string;
  ask<S extends z.ZodType>(req: LlmRequest<S>): Promise<z.infer<S>>;
}
