import OpenAI from "openai";
import type { Logger } from "../../bus/logger.js";
import { ProviderError, providerErrorFrom } from "./errors.js";
import type { ModelInfo } from "./models.js";
import { Limiter, withRetries, type RetryPolicy } from "./retry.js";
import type { ChatMessage, LlmProvider, ProviderAnswer, ProviderRequest } from "./types.js";

export interface OpenAiOptions {
  /** `openai`, or `openai-compatible` for any server that speaks Chat Completions (Ollama, vLLM, …). */
  name: "openai" | "openai-compatible";
  model: string;
  apiKey: string;
  baseURL?: string;
  info: ModelInfo | undefined;
  timeoutMs: number;
  retry?: RetryPolicy;
  concurrency: number;
  log: Logger;
}

const limiters = new Map<string, Limiter>();

/** Without a system role the instructions go first in the user's turn. */
function toOpenAiMessages(messages: ChatMessage[], systemRole: boolean): OpenAI.Chat.ChatCompletionMessageParam[] {
  const out: OpenAI.Chat.ChatCompletionMessageParam[] = [];
  let pendingSystem = "";
  for (const m of messages) {
    if (m.role === "system" && !systemRole) pendingSystem += `${m.content}\n\n`;
    else if (m.role === "user") {
      out.push({ role: "user", content: pendingSystem + m.content });
      pendingSystem = "";
    } else out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** Chat Completions, with native JSON-schema output where the model supports it. */
export function openAiProvider(opts: OpenAiOptions): LlmProvider {
  const client = new OpenAI({
    apiKey: opts.apiKey,
    ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
    timeout: opts.timeoutMs,
    // Retries are ours: one policy for every provider, and every attempt in the log.
    maxRetries: 0,
  });
  const who = `${opts.name}/${opts.model}`;
  const key = `${opts.name} ${opts.baseURL ?? ""}`;
  const limiter = limiters.get(key) ?? new Limiter(opts.concurrency);
  limiters.set(key, limiter);
  const schemaOutput = opts.info?.jsonSchema ?? opts.name === "openai";
  const systemRole = opts.info?.systemRole ?? true;
  const temperature = opts.info?.temperature ?? true;

  return {
    name: opts.name,
    model: opts.model,
    disclosure: `This paper was written by the language model ${opts.model} (${opts.name}), driven by scientist-swarm.`,
    async complete(req: ProviderRequest): Promise<ProviderAnswer> {
      const body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
        model: opts.model,
        messages: toOpenAiMessages(req.messages, systemRole),
        ...(temperature && req.temperature !== undefined ? { temperature: req.temperature } : {}),
        ...(schemaOutput
          ? { response_format: { type: "json_schema", json_schema: { name: req.task.replace(/[^A-Za-z0-9_-]/g, "_"), schema: req.jsonSchema, strict: false } } }
          : {}),
      };
      try {
        const res = await withRetries(
          `${who} ${req.task}`,
          () => limiter.run(() => client.chat.completions.create(body, { ...(req.signal ? { signal: req.signal } : {}) })),
          { ...(opts.retry ? { policy: opts.retry } : {}), ...(req.signal ? { signal: req.signal } : {}), log: opts.log },
        );
        const choice = res.choices[0];
        const text = choice?.message?.content ?? "";
        return {
          text,
          usage: {
            inputTokens: res.usage?.prompt_tokens ?? 0,
            outputTokens: res.usage?.completion_tokens ?? 0,
            cachedTokens: res.usage?.prompt_tokens_details?.cached_tokens ?? 0,
            estimated: !res.usage,
          },
        };
      } catch (err) {
        throw providerErrorFrom(err, `${who} ${req.task}`);
      }
    },
    async check(signal) {
      try {
        if (opts.name === "openai") await client.models.retrieve(opts.model, signal ? { signal } : {});
        else {
          // Compatible servers list their models; not all of them serve a single model's page.
          const page = await client.models.list(signal ? { signal } : {});
          const ids = page.data.map((m) => m.id);
          if (ids.length && !ids.includes(opts.model)) {
            throw new ProviderError(`${who}: the server at ${opts.baseURL} does not serve ${opts.model}`, 404, {
              hint: `it serves: ${ids.slice(0, 10).join(", ")}`,
            });
          }
        }
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        throw providerErrorFrom(err, `${who}: checking the credentials and the model`);
      }
    },
  };
}
