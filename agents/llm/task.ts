import type { z } from "zod";
import type { ChatMessage, Llm } from "./types.js";
import { renderSections } from "./sections.js";

/**
 * One prompt: its name, the data it is about, what to do with it, and the schema of the answer. The user
 * message is the instructions, the data as labelled sections, then the shape of the answer. Prompts live
 * beside the agent that uses them, one task each.
 */
export interface TaskSpec<D extends z.ZodObject, A extends z.ZodType> {
  name: string;
  data: D;
  answer: A;
  system: string | ((data: z.infer<D>) => string);
  instructions: (data: z.infer<D>) => string;
  /** The answer's JSON shape in words, for models that cannot be given the schema. */
  shape: string;
}

export interface Task<D extends z.ZodObject, A extends z.ZodType> extends TaskSpec<D, A> {
  render(data: z.infer<D>): ChatMessage[];
}

export function defineTask<D extends z.ZodObject, A extends z.ZodType>(spec: TaskSpec<D, A>): Task<D, A> {
  return {
    ...spec,
    render(data) {
      const system = typeof spec.system === "string" ? spec.system : spec.system(data);
      const user = [
        spec.instructions(data),
        "The material, one section per input:",
        renderSections(data as Record<string, unknown>),
        `Answer with one JSON object and nothing else, of this shape:\n${spec.shape}`,
      ].join("\n\n");
      return [
        { role: "system", content: system },
        { role: "user", content: user },
      ];
    },
  };
}

export function ask<D extends z.ZodObject, A extends z.ZodType>(
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
