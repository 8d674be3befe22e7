import { readFileSync } from "node:fs";
import { z } from "zod";
import type { Usage } from "./types.js";

export const ModelInfo = z.object({
  /** Can be made to answer in a given JSON schema (response_format, or a forced tool call). */
  jsonSchema: z.boolean(),
  /** Accepts n > 1 completions per request. */
  n: z.boolean(),
  /** Accepts a system message. */
  systemRole: z.boolean(),
  /** Accepts a temperature. */
  temperature: z.boolean(),
  /** Takes images in a user message (OpenAI `image_url` parts, Anthropic `image` blocks). */
  vision: z.boolean().default(false),
  input: z.number().min(0),
  output: z.number().min(0),
  cachedInput: z.number().min(0),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

const Table = z.record(z.string(), z.union([ModelInfo, z.string()]));
let table: Record<string, ModelInfo> | undefined;

function load(): Record<string, ModelInfo> {
  const raw = Table.parse(JSON.parse(readFileSync(new URL("../../config/models.json", import.meta.url), "utf8")));
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, ModelInfo] => typeof e[1] !== "string"));
}

/** What `provider/model` supports and costs, or undefined when the table does not know it. */
export function modelInfo(provider: string, model: string): ModelInfo | undefined {
  table ??= load();
  return table[`${provider}/${model}`];
}

export function costOf(info: ModelInfo | undefined, usage: Usage): number {
  if (!info) return 0;
  const fresh = Math.max(0, usage.inputTokens - usage.cachedTokens);
  return (fresh * info.input + usage.cachedTokens * info.cachedInput + usage.outputTokens * info.output) / 1e6;
}
