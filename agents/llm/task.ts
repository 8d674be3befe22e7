import type { z } from "zod";
import type { ChatMessage, Llm } from "./types.js";

/**
 * One prompt: its name, the data it is rendered from, the messages a model reads, and the schema of the
 * answer. Prompts live beside the agent that uses them, one task each.
 */
export interface Task<D extends z.ZodType, A extends z.ZodType> {
  name: string;
  data: D;
  answer: A;
  render(data: z.infer<D>): ChatMessage[];
}

export function defineTask<D extends z.ZodType, A extends z.ZodType>(task: Task<D, A>): Task<D, A> {
  return task;
}

export function ask<D extends z.ZodType, A extends z.ZodType>(
  llm: Llm,
  task: Task<D, A>,
  data: z.infer<D>,
  opts: { signal?: AbortSignal; ideaId?: string; temperature?: number } = {},
): Promise<z.infer<A>> {
  return llm.ask({
    task: task.name,
    messages: task.render(data),
    schema: task.answer,
    data,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.ideaId ? { ideaId: opts.ideaId } : {}),
    ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
  });
}

/** Shows a value to a model as a fenced JSON block: readable for people, unambiguous for models. */
export function jsonBlock(value: unknown): string {
  return "```json\n" + JSON.stringify(value, null, 2) + "\n```";
}

export function codeBlock(code: string, lang = "python"): string {
  return "```" + lang + "\n" + code + "\n```";
}

/** Every prompt ends by stating the answer's shape, so models without schema enforcement can follow it. */
export function answerAs(schemaDescription: string): string {
  return `Answer with one JSON object and nothing else, of this shape:\n${schemaDescription}`;
}
