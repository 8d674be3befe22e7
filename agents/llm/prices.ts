import { readFileSync } from "node:fs";
import { z } from "zod";
import type { Usage } from "./types.js";

const Price = z.object({ input: z.number().min(0), output: z.number().min(0), cachedInput: z.number().min(0) });
const PriceTable = z.record(z.string(), z.union([Price, z.string()]));
export type Price = z.infer<typeof Price>;

let table: Record<string, Price> | undefined;

function load(): Record<string, Price> {
  const raw = PriceTable.parse(JSON.parse(readFileSync(new URL("../../config/prices.json", import.meta.url), "utf8")));
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, Price] => typeof e[1] !== "string"));
}

/** Price per million tokens of `provider/model`, or undefined when the table does not know it. */
export function priceOf(provider: string, model: string): Price | undefined {
  table ??= load();
  return table[`${provider}/${model}`];
}

export function costOf(price: Price | undefined, usage: Usage): number {
  if (!price) return 0;
  const fresh = Math.max(0, usage.inputTokens - usage.cachedTokens);
  return (fresh * price.input + usage.cachedTokens * price.cachedInput + usage.outputTokens * price.output) / 1e6;
}
