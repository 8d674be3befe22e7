import type { z } from "zod";
import type { Task } from "../task.js";

/** Said in everything the offline stand-in writes. */
export const OFFLINE_NOTE = "written by the offline stand-in: no language model wrote this";

type Responder = { task: Task<z.ZodObject, z.ZodType>; answer: (data: never) => unknown };
const responders = new Map<string, Responder>();

/**
 * Registers the offline answer to a task. Each agent keeps its answers beside its prompts
 * (`agents/<role>/offline.ts`); the LLM layer knows none of them.
 */
export function respond<D extends z.ZodObject, A extends z.ZodType>(task: Task<D, A>, answer: (data: z.infer<D>) => z.infer<A>): void {
  responders.set(task.name, { task: task as unknown as Task<z.ZodObject, z.ZodType>, answer: answer as (data: never) => unknown });
}

export function responderFor(taskName: string): Responder | undefined {
  return responders.get(taskName);
}

/** Every task the offline stand-in answers, for tools that must recognise a task from its data alone. */
export function offlineTasks(): Task<z.ZodObject, z.ZodType>[] {
  return [...responders.values()].map((r) => r.task);
}
