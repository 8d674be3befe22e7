import type Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import type { ModelInfo } from "./models.js";
import { type Limiter, withRetries, type RetryPolicy } from "./retry.js";
import { malformedAnswer, providerErrorFrom, unreadableAnswer } from "./errors.js";
import type { LlmProvider, ProviderAnswer, ProviderRequest } from "./types.js";
import { dropImages, dropWarner } from "./images.js";

export interface AnthropicOptions {
  model: string;
  apiKey: string;
  baseURL?: string;
  info: ModelInfo | undefined;
  timeoutMs: number;
  maxTokens?: number;
  retry?: RetryPolicy;
  /** The endpoint's calls-at-once limit in this process (agents/llm/endpoints.ts). */
  limiter: Limiter;
  log: Logger;
}


/** The part of a Messages answer the swarm reads; anything else in a 200 is a broken answer. */
const MessageBody = z.object({
  content: z.array(z.looseObject({ type: z.string(), text: z.string().optional(), input: z.unknown() })),
  // A proxy may leave usage out; then the count is an estimate, not a reason to fail.
  usage: z
    .object({
      input_tokens: z.number(),
      output_tokens: z.number(),
      cache_read_input_tokens: z.number().nullish(),
      cache_creation_input_tokens: z.number().nullish(),
    })
    .nullish()
    .catch(undefined),
});
type MessageBody = z.infer<typeof MessageBody>;

/** Anthropic refuses cache breakpoints on short blocks; below this a mark would only be noise. */
const MIN_CACHE_CHARS = 4000;

/**
 * The Messages API. A structured answer is a forced call of one tool whose input schema is the answer's
 * schema; the system prompt and long stable parts of the request (a paper, the template's code) are marked
 * for prompt caching.
 */
export function anthropicProvider(opts: AnthropicOptions): LlmProvider {
  // The SDK is loaded at the first request: it takes most of a second to load, and most runs never call it.
  let made: Promise<Anthropic> | undefined;
  const sdkClient = () =>
    (made ??= import("@anthropic-ai/sdk").then((m) => new m.default({ apiKey: opts.apiKey, ...(opts.baseURL ? { baseURL: opts.baseURL } : {}), timeout: opts.timeoutMs, maxRetries: 0 })));
  const who = `anthropic/${opts.model}`;
  const limiter = opts.limiter;
  // Images go only to a model its entry says takes them.
  const vision = opts.info?.vision ?? false;
  const dropped = dropWarner(opts.log, who);

  return {
    name: "anthropic",
    model: opts.model,
    disclosure: `This paper was written by the language model ${opts.model} (Anthropic), driven by scientist-swarm.`,
    async complete(req: ProviderRequest): Promise<ProviderAnswer> {
      const system = req.messages.filter((m) => m.role === "system").map((m) => m.content).join("\n\n");
      // Consecutive turns of one role become one message with several blocks.
      const messages: Anthropic.MessageParam[] = [];
      for (const m of (vision ? req.messages : dropImages(req.messages, dropped)).filter((x) => x.role !== "system")) {
        // Images go before their text, as Anthropic recommends; a cache mark on the text covers them too.
        const images: Anthropic.ImageBlockParam[] = m.role === "user"
          ? (m.images ?? []).map((i) => ({ type: "image", source: { type: "base64", media_type: i.mediaType, data: i.base64 } }))
          : [];
        const blocks: Anthropic.ContentBlockParam[] = [
          ...images,
          {
            type: "text",
            text: m.content,
            ...(m.cache && m.content.length >= MIN_CACHE_CHARS ? { cache_control: { type: "ephemeral" as const } } : {}),
          },
        ];
        const last = messages[messages.length - 1];
        if (last && last.role === m.role && Array.isArray(last.content)) (last.content as Anthropic.ContentBlockParam[]).push(...blocks);
        else messages.push({ role: m.role as "user" | "assistant", content: blocks });
      }
      const tool = req.task.replace(/[^A-Za-z0-9_-]/g, "_");
      const body: Anthropic.MessageCreateParamsNonStreaming = {
        model: opts.model,
        max_tokens: opts.maxTokens ?? 8192,
        ...(system ? { system: [{ type: "text", text: system, ...(system.length >= MIN_CACHE_CHARS ? { cache_control: { type: "ephemeral" as const } } : {}) }] } : {}),
        messages,
        tools: [{ name: tool, description: `Give the answer to the task ${req.task}.`, input_schema: req.jsonSchema as Anthropic.Tool.InputSchema }],
        tool_choice: { type: "tool", name: tool },
        ...(req.temperature !== undefined && (opts.info?.temperature ?? true) ? { temperature: req.temperature } : {}),
      };
      // One request, its answer read and checked: an unreadable or malformed 200 is retried like a 5xx.
      const once = async (): Promise<MessageBody> => {
        let raw: unknown;
        try {
          raw = await (await sdkClient()).messages.create(body, req.signal ? { signal: req.signal } : {});
        } catch (err) {
          throw unreadableAnswer(err) ?? err;
        }
        const parsed = MessageBody.safeParse(raw);
        if (!parsed.success) {
          const i = parsed.error.issues[0]!;
          throw malformedAnswer("Messages", raw, `${i.path.join(".") || "(root)"}: ${i.message}`);
        }
        return parsed.data;
      };
      try {
        const res = await withRetries(`${who} ${req.task}`, () => limiter.run(once), {
          ...(opts.retry ? { policy: opts.retry } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
          log: opts.log,
        });
        const toolUse = res.content.find((b) => b.type === "tool_use" && b.input !== undefined);
        const text = res.content.flatMap((b) => (b.type === "text" && b.text !== undefined ? [b.text] : [])).join("\n");
        const cacheRead = res.usage?.cache_read_input_tokens ?? 0;
        const cacheWrite = res.usage?.cache_creation_input_tokens ?? 0;
        return {
          text: toolUse ? JSON.stringify(toolUse.input) : text,
          ...(toolUse ? { json: toolUse.input } : {}),
          usage: {
            inputTokens: (res.usage?.input_tokens ?? 0) + cacheRead + cacheWrite,
            outputTokens: res.usage?.output_tokens ?? 0,
            cachedTokens: cacheRead,
            estimated: !res.usage,
          },
        };
      } catch (err) {
        throw providerErrorFrom(err, `${who} ${req.task}`);
      }
    },
    async check(signal) {
      try {
        await (await sdkClient()).models.retrieve(opts.model, {}, signal ? { signal } : {});
      } catch (err) {
        throw providerErrorFrom(err, `${who}: checking the credentials and the model`);
      }
    },
  };
}
