import type { z } from "zod";
import type { ChatMessage, Llm } from "./types.js";
import { renderSections } from "./sections.js";

/**
 * One prompt: its name, the data it is about, what to do with it, and the schema of the answer. The user
 * message is the instructions, the data as labelled sections, then the shape of the answer. Data that stays
 * the same across calls (`stable`: a paper, the template's code, the results a paper is written from) comes
 * first instead, in a user turn of its own marked for the provider's prompt cache: calls that share it then
 * share their prompt's prefix, which OpenAI caches by itself and Anthropic where it is marked. Prompts live
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
  /** Fields that stay the same across calls, in the order they are given: the same list in two tasks gives them one prefix. */
  stable?: readonly (keyof z.infer<D> & string)[];
}

export interface Task<D extends z.ZodObject, A extends z.ZodType> extends TaskSpec<D, A> {
  render(data: z.infer<D>): ChatMessage[];
}

export function defineTask<D extends z.ZodObject, A extends z.ZodType>(spec: TaskSpec<D, A>): Task<D, A> {
  return {
    ...spec,
    render(data) {
      const system = typeof spec.system === "string" ? spec.system : spec.system(data);
      const all = data as Record<string, unknown>;
      const stableNames = (spec.stable ?? []).filter((k) => all[k] !== undefined);
      const stable = Object.fromEntries(stableNames.map((k) => [k, all[k]]));
      const rest = Object.fromEntries(Object.entries(all).filter(([k]) => !stableNames.includes(k)));
      const user = [
        spec.instructions(data),
        stableNames.length ? "The rest of the material, one section per input:" : "The material, one section per input:",
        renderSections(rest),
        `Answer with one JSON object and nothing else, of this shape:\n${spec.shape}`,
      ].join("\n\n");
      return [
        { role: "system", content: system },
        ...(stableNames.length
          ? [{ role: "user" as const, content: `The material this task works from, one section per input:\n\n${renderSections(stable)}`, cache: true }]
          : []),
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
