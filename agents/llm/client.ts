import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import type { Actor, Usage } from "../../bus/schemas.js";
import { publishLlmExchange } from "../../bus/events.js";
import type { Logger } from "../../bus/logger.js";
import { ModelBehaviorError } from "./errors.js";
import { costOf, modelInfo } from "./models.js";
import { extractJson } from "./extractJson.js";
import { redact } from "./redact.js";
import { addSpend } from "./budget.js";
import type { ChatMessage, Llm, LlmProvider, LlmRequest } from "./types.js";

/** Turns in which a model is shown why its answer failed and asked again, before the task fails. */
export const MAX_REPAIRS = 2;

const schemas = new WeakMap<z.ZodType, Record<string, unknown>>();
function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  let js = schemas.get(schema);
  if (!js) {
    js = z.toJSONSchema(schema, { target: "draft-7", unrepresentable: "any" }) as Record<string, unknown>;
    delete js.$schema;
    schemas.set(schema, js);
  }
  return js;
}

function problems(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

/**
 * Wraps a provider for one agent in one run: gets a value that satisfies the task's schema (extracting JSON
 * from text where the provider cannot enforce it, then up to MAX_REPAIRS turns that quote what was wrong), and
 * records every call, keys redacted, with its tokens and cost, on the run's conversation stream.
 */
export function createLlm(provider: LlmProvider, ctx: { bus: Bus; runId: string; by: Actor; log: Logger }): Llm {
  const info = modelInfo(provider.name, provider.model);
  if (!info && provider.name !== "replay") ctx.log.warn(`${provider.name}/${provider.model} is not in config/models.json: its cost is counted as 0`);
  return {
    provider: provider.name,
    model: provider.model,
    disclosure: provider.disclosure,
    async ask<S extends z.ZodType>(req: LlmRequest<S>): Promise<z.infer<S>> {
      let messages: ChatMessage[] = req.messages;
      let why = "";
      for (let turn = 0; turn <= MAX_REPAIRS; turn++) {
        const started = Date.now();
        const answer = await provider.complete({
          task: req.task,
          messages,
          jsonSchema: jsonSchemaOf(req.schema),
          data: req.data,
          by: ctx.by,
          ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
          ...(req.ideaId ? { ideaId: req.ideaId } : {}),
        });
        let value: unknown;
        if (answer.json !== undefined) value = answer.json;
        else {
          const extracted = extractJson(answer.text);
          if (extracted.ok) value = extracted.value;
          else why = `the answer is not valid JSON (${extracted.error})`;
        }
        const parsed = value === undefined ? undefined : req.schema.safeParse(value);
        if (parsed && !parsed.success) why = `the JSON does not fit the required shape: ${problems(parsed.error)}`;
        await record(ctx, provider, info, req, messages, answer.usage, parsed?.success ? parsed.data : answer.text, parsed?.success ? undefined : why, Date.now() - started);
        if (parsed?.success) return parsed.data;
        ctx.log.warn({ task: req.task, turn }, `answer rejected: ${why}`);
        messages = [
          ...messages,
          { role: "assistant", content: answer.text },
          { role: "user", content: `Your answer could not be used: ${why}. Answer again with one complete JSON object of the required shape, and nothing else.` },
        ];
      }
      throw new ModelBehaviorError(`${provider.name}/${provider.model} gave no usable answer to ${req.task} after ${MAX_REPAIRS} repair turns: ${why}`, {
        hint: "a stronger model, or one that supports JSON-schema output, answers more reliably",
      });
    },
  };
}

async function record(
  ctx: { bus: Bus; runId: string; by: Actor; log: Logger },
  provider: LlmProvider,
  info: ReturnType<typeof modelInfo>,
  req: LlmRequest,
  messages: ChatMessage[],
  usage: Usage,
  answer: unknown,
  error: string | undefined,
  ms: number,
): Promise<void> {
  const costUsd = costOf(info, usage);
  await addSpend(ctx.bus, ctx.runId, costUsd);
  await publishLlmExchange(
    ctx.bus,
    redact({
      runId: ctx.runId,
      by: ctx.by,
      ...(req.ideaId ? { ideaId: req.ideaId } : {}),
      task: req.task,
      provider: provider.name,
      model: provider.model,
      messages: messages.map(({ role, content }) => ({ role, content })),
      answer,
      ...(error ? { error } : {}),
      usage,
      costUsd,
      ms,
      at: new Date().toISOString(),
    }),
  );
}
