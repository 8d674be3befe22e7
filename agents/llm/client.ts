import type { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import type { Actor } from "../../bus/schemas.js";
import { publishLlmExchange } from "../../bus/events.js";
import type { Logger } from "../../bus/logger.js";
import { ModelBehaviorError } from "./errors.js";
import { costOf, priceOf } from "./prices.js";
import type { Llm, LlmProvider, LlmRequest } from "./types.js";

/**
 * Wraps a provider for one agent in one run: validates every answer against the task's schema and records
 * every exchange, with its tokens and cost, on the run's conversation stream.
 */
export function createLlm(provider: LlmProvider, ctx: { bus: Bus; runId: string; by: Actor; log: Logger }): Llm {
  const price = priceOf(provider.name, provider.model);
  return {
    provider: provider.name,
    model: provider.model,
    disclosure: provider.disclosure,
    async ask<S extends z.ZodType>(req: LlmRequest<S>): Promise<z.infer<S>> {
      const started = Date.now();
      const record = (answer: unknown, usage: { inputTokens: number; outputTokens: number; cachedTokens: number; estimated: boolean }, error?: string) =>
        publishLlmExchange(ctx.bus, {
          runId: ctx.runId,
          by: ctx.by,
          ...(req.ideaId ? { ideaId: req.ideaId } : {}),
          task: req.task,
          provider: provider.name,
          model: provider.model,
          messages: req.messages,
          answer,
          ...(error ? { error } : {}),
          usage,
          costUsd: costOf(price, usage),
          ms: Date.now() - started,
          at: new Date().toISOString(),
        });
      const { raw, usage } = await provider.complete(req);
      const parsed = req.schema.safeParse(raw);
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
        await record(raw, usage, why);
        throw new ModelBehaviorError(`${provider.name}/${provider.model} answered task ${req.task} with a value that fails its schema: ${why}`);
      }
      await record(parsed.data, usage);
      ctx.log.debug({ task: req.task, tokens: usage.inputTokens + usage.outputTokens }, "llm answered");
      return parsed.data;
    },
  };
}
