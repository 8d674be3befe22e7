import { createHash, randomUUID } from "node:crypto";
import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import type { Actor, Usage } from "../../bus/schemas.js";
import { publishLlmExchange, recordedLlmExchange } from "../../bus/events.js";
import type { Logger } from "../../bus/logger.js";
import { ModelBehaviorError } from "./errors.js";
import { costOf, modelInfo } from "./models.js";
import { extractJson } from "./extractJson.js";
import { redact } from "./redact.js";
import { addSpend } from "./budget.js";
import type { ChatMessage, Llm, LlmProvider, LlmRequest } from "./types.js";
import { dropImages, dropWarner, imageDigest, loggedContent } from "./images.js";

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

export interface LlmContext {
  bus: Bus;
  runId: string;
  by: Actor;
  log: Logger;
  /**
   * What the calls belong to (a job's id): a second client with the same scope that asks the same requests
   * in the same order gets the answers recorded for the first, without asking the model. Without a scope
   * (a one-off call outside any job) answers are recorded but never reused.
   */
  scope?: string;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * Wraps a provider for one agent in one run: gets a value that satisfies the task's schema (extracting JSON
 * from text where the provider cannot enforce it, then up to MAX_REPAIRS turns that quote what was wrong), and
 * records every call, keys redacted, with its tokens and cost, on the run's conversation stream under the
 * call's key. A call whose key already has an answer recorded (the job is being redone) takes that answer
 * instead, at no cost and recording nothing.
 */
export function createLlm(provider: LlmProvider, ctx: LlmContext): Llm {
  const info = modelInfo(provider.name, provider.model);
  const seesImages = info?.vision ?? false;
  const dropped = dropWarner(ctx.log, `${provider.name}/${provider.model}`);
  if (!info && provider.name !== "replay") ctx.log.warn(`${provider.name}/${provider.model} is not in config/models.json: its cost is counted as 0`);
  const reusable = ctx.scope !== undefined;
  // A call without a scope still gets a key of its own, so that it never lands on a job's subject.
  const scope = ctx.scope ?? `unscoped-${randomUUID()}`;
  // How many calls with the same request this client has made: the n-th identical request of a job is the
  // n-th of its redo too, while two identical requests in one job keep two answers.
  const asked = new Map<string, number>();

  /** Takes the next occurrence of this request; `release` gives it back when no answer came. */
  function keyFor(task: string, messages: ChatMessage[]): { key: string; release(): void } {
    // A message's images count by their digest: another figure is another request. A message without images
    // keys as it always did, so that answers recorded before images existed are still found.
    const turns = messages.map(({ role, content, images }) => (images?.length ? [role, content, images.map((i) => imageDigest(i).sha256)] : [role, content]));
    const request = sha256(JSON.stringify([scope, provider.name, provider.model, task, turns]));
    const n = asked.get(request) ?? 0;
    asked.set(request, n + 1);
    return {
      key: sha256(JSON.stringify([request, n])).slice(0, 32),
      release() {
        // Only the latest occurrence can be given back; a later identical call already holds its own.
        if (asked.get(request) === n + 1) asked.set(request, n);
      },
    };
  }

  /** What was answered under this key before; a lookup that fails costs a model call, never the task. */
  async function recorded(key: string, req: LlmRequest) {
    if (!reusable) return undefined;
    try {
      return await recordedLlmExchange(ctx.bus, ctx.runId, key, { log: ctx.log, ...(req.signal ? { signal: req.signal } : {}) });
    } catch (err) {
      ctx.log.warn({ task: req.task, key, err: (err as Error).message }, "could not look up a recorded answer; asking the model");
      return undefined;
    }
  }

  return {
    provider: provider.name,
    model: provider.model,
    disclosure: provider.disclosure,
    seesImages,
    async ask<S extends z.ZodType>(req: LlmRequest<S>): Promise<z.infer<S>> {
      // Images a model does not take are never sent, keyed or logged: the request is what the model was asked.
      let messages: ChatMessage[] = seesImages ? req.messages : dropImages(req.messages, dropped);
      let why = "";
      for (let turn = 0; turn <= MAX_REPAIRS; turn++) {
        const { key, release } = keyFor(req.task, messages);
        const before = await recorded(key, req);
        if (before && !before.error) {
          const kept = req.schema.safeParse(before.answer);
          if (kept.success) {
            ctx.log.debug({ task: req.task, turn, key }, "reused a recorded answer");
            return kept.data;
          }
          ctx.log.debug({ task: req.task, turn, key }, "a recorded answer no longer fits the schema; asking the model");
        }
        // A rejected answer is reused as the text it was, so that the repair turn that followed it is asked
        // again with the same messages, and found recorded too.
        const rejected = before?.error && typeof before.answer === "string" ? before.answer : undefined;
        if (rejected !== undefined) ctx.log.debug({ task: req.task, turn, key }, "reused a recorded rejected answer");
        const started = Date.now();
        // Without usage: an answer taken from the log, which costs nothing and is not recorded again.
        let answer: { text: string; json?: unknown; usage?: Usage };
        try {
          answer = rejected !== undefined ? { text: rejected } : await provider.complete({
            task: req.task,
            messages,
            jsonSchema: jsonSchemaOf(req.schema),
            data: req.data,
            by: ctx.by,
            ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
            ...(req.signal ? { signal: req.signal } : {}),
            ...(req.ideaId ? { ideaId: req.ideaId } : {}),
          });
        } catch (err) {
          release();
          throw err;
        }
        let value: unknown;
        if (answer.json !== undefined) value = answer.json;
        else {
          const extracted = extractJson(answer.text);
          if (extracted.ok) value = extracted.value;
          else why = `the answer is not valid JSON (${extracted.error})`;
        }
        const parsed = value === undefined ? undefined : req.schema.safeParse(value);
        if (parsed && !parsed.success) why = `the JSON does not fit the required shape: ${problems(parsed.error)}`;
        if (answer.usage) {
          await record(ctx, provider, info, req, key, messages, answer.usage, parsed?.success ? parsed.data : answer.text, parsed?.success ? undefined : why, Date.now() - started);
        }
        if (parsed?.success) return parsed.data;
        // A rejection taken from the log was warned about when it was new.
        if (answer.usage) ctx.log.warn({ task: req.task, turn }, `answer rejected: ${why}`);
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
  ctx: LlmContext,
  provider: LlmProvider,
  info: ReturnType<typeof modelInfo>,
  req: LlmRequest,
  key: string,
  messages: ChatMessage[],
  usage: Usage,
  answer: unknown,
  error: string | undefined,
  ms: number,
): Promise<void> {
  const costUsd = costOf(info, usage);
  await addSpend(ctx.bus, ctx.runId, costUsd);
  await publishLlmExchange(ctx.bus, {
    ...redact({
      runId: ctx.runId,
      by: ctx.by,
      ...(req.ideaId ? { ideaId: req.ideaId } : {}),
      task: req.task,
      provider: provider.name,
      model: provider.model,
      // An image is logged as a line naming it, its size and digest: the bytes are in the object store, not the log.
      messages: messages.map((m) => ({ role: m.role, content: loggedContent(m) })),
      answer,
      ...(error ? { error } : {}),
      usage,
      costUsd,
      ms,
      at: new Date().toISOString(),
    }),
    key,
  });
}
