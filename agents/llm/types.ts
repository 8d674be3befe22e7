import type { z } from "zod";
import type { Actor, Usage } from "../../bus/schemas.js";

export type { Usage } from "../../bus/schemas.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
  /** A long part that stays the same across calls (a paper, the template's code): providers may cache it. */
  cache?: boolean;
  /** Images shown with this message (user messages only): sent to models whose entry in config/models.json says `vision`, dropped for others. */
  images?: ImagePart[];
}

/** A figure as a model sees it: PNG bytes, base64-encoded, with a name for the log. */
export interface ImagePart {
  name: string;
  mediaType: "image/png" | "image/jpeg";
  base64: string;
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

/** One call to a provider: the request as the client hands it on. */
export interface ProviderRequest {
  task: string;
  messages: ChatMessage[];
  /** The answer's JSON Schema, for providers that can enforce it. */
  jsonSchema: Record<string, unknown>;
  data: unknown;
  temperature?: number;
  signal?: AbortSignal;
  by: Actor;
  ideaId?: string;
}

export interface ProviderAnswer {
  /** The answer as text, as the model wrote it (for a tool call, its JSON). */
  text: string;
  /** The answer already as a value, when the provider returns structured output. */
  json?: unknown;
  usage: Usage;
}

export interface LlmProvider {
  readonly name: string;
  readonly model: string;
  /** The sentence a paper carries to say who wrote it. */
  readonly disclosure: string;
  complete(req: ProviderRequest): Promise<ProviderAnswer>;
  /** One cheap call that proves the credentials and the model, before anything is spent. */
  check(signal?: AbortSignal): Promise<void>;
}

/** The one interface agents use: ask by task, get a validated value or a typed error. */
export interface Llm {
  readonly provider: string;
  readonly model: string;
  readonly disclosure: string;
  /** Whether the model takes image inputs (config/models.json `vision`): agents attach figures only then. */
  readonly seesImages: boolean;
  ask<S extends z.ZodType>(req: LlmRequest<S>): Promise<z.infer<S>>;
}
