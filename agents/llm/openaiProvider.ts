import type OpenAI from "openai";
import { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import { malformedAnswer, ProviderError, providerErrorFrom, unreadableAnswer } from "./errors.js";
import type { ModelInfo } from "./models.js";
import { type Limiter, withRetries, type RetryPolicy } from "./retry.js";
import type { ChatMessage, ImagePart, LlmProvider, ProviderAnswer, ProviderRequest } from "./types.js";
import { dropImages, dropWarner } from "./images.js";

export interface OpenAiOptions {
  /** `openai`, or `openai-compatible` for any server that speaks Chat Completions (Ollama, vLLM, …). */
  name: "openai" | "openai-compatible";
  model: string;
  apiKey: string;
  baseURL?: string;
  info: ModelInfo | undefined;
  timeoutMs: number;
  retry?: RetryPolicy;
  /** The endpoint's calls-at-once limit in this process (agents/llm/endpoints.ts). */
  limiter: Limiter;
  log: Logger;
}

/**
 * How the answer's shape is asked for: `response_format` with the schema itself, `response_format` JSON mode
 * (any object; the prompt describes the shape), or the prompt alone (the client extracts and repairs).
 */
export type OutputMode = "json_schema" | "json_object" | "prompt";
const SIMPLER: Record<OutputMode, OutputMode | undefined> = { json_schema: "json_object", json_object: "prompt", prompt: undefined };

/** What each server and model not in config/models.json was found to accept, for this process. */
const foundModes = new Map<string, OutputMode>();

/** The part of a Chat Completions answer the swarm reads; anything else in a 200 is a broken answer. */
const ChatCompletionBody = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullish() }) })).min(1),
  // Usage is optional on some servers and odd on others; a strange one only makes the count an estimate.
  usage: z
    .object({
      prompt_tokens: z.number().nullish(),
      completion_tokens: z.number().nullish(),
      prompt_tokens_details: z.object({ cached_tokens: z.number().nullish() }).nullish(),
    })
    .nullish()
    .catch(undefined),
});

const ModelList = z.array(z.object({ id: z.string() }));

/** A user turn's content: its text, or with images its text part then one `image_url` part (a data URL) per image. */
function userContent(text: string, images: ImagePart[] | undefined): string | OpenAI.Chat.ChatCompletionContentPart[] {
  if (!images?.length) return text;
  return [
    { type: "text", text },
    ...images.map((i): OpenAI.Chat.ChatCompletionContentPartImage => ({ type: "image_url", image_url: { url: `data:${i.mediaType};base64,${i.base64}` } })),
  ];
}

/** Without a system role the instructions go first in the user's turn. */
function toOpenAiMessages(messages: ChatMessage[], systemRole: boolean): OpenAI.Chat.ChatCompletionMessageParam[] {
  const out: OpenAI.Chat.ChatCompletionMessageParam[] = [];
  let pendingSystem = "";
  for (const m of messages) {
    if (m.role === "system" && !systemRole) pendingSystem += `${m.content}\n\n`;
    else if (m.role === "user") {
      out.push({ role: "user", content: userContent(pendingSystem + m.content, m.images) });
      pendingSystem = "";
    } else out.push({ role: m.role, content: m.content });
  }
  return out;
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

function firstIssue(error: z.ZodError): string {
  const i = error.issues[0]!;
  return `${i.path.join(".") || "(root)"}: ${i.message}`;
}

/**
 * A refusal of the structured-output mode itself, not of the request: a simpler mode may be accepted. Servers
 * say so with a 4xx whose message names the parameter (llama-server: "response_format type must be one of
 * \"text\" or \"json_object\""; OpenRouter quotes the upstream provider's refusal in error.metadata.raw).
 */
/** The SDK's own service, where no base URL is given. */
const OPENAI_BASE_URL = "https://api.openai.com/v1";

/** The SDK, loaded at the first request: it takes a quarter of a second to load, and most runs never call it. */
let sdk: typeof import("openai") | undefined;
const loadSdk = async () => (sdk ??= await import("openai"));

function refusesMode(err: unknown): boolean {
  if (!(sdk && err instanceof sdk.APIError) || ![400, 404, 415, 422, 501].includes(err.status ?? 0)) return false;
  return /response_format|json.?schema|json_object|json mode|structured output|guided|grammar/i.test(`${err.message} ${JSON.stringify(err.error ?? null)}`);
}

const MODE_WORDS: Record<OutputMode, string> = {
  json_schema: "JSON-schema output (response_format json_schema)",
  json_object: "JSON mode (response_format json_object) and the shape in the prompt",
  prompt: "no response_format: the shape in the prompt, then extraction and repair",
};

/**
 * Chat Completions. Models in config/models.json get the structured output their entry names; for any other
 * model the provider finds out what the server accepts (JSON schema, else JSON mode, else the prompt alone)
 * and remembers it per server and model for the rest of the process.
 */
export function openAiProvider(opts: OpenAiOptions): LlmProvider {
  let made: Promise<OpenAI> | undefined;
  const sdkClient = () =>
    (made ??= loadSdk().then((m) => new m.default({
      apiKey: opts.apiKey,
      ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
      timeout: opts.timeoutMs,
      // Retries are ours: one policy for every provider, and every attempt in the log.
      maxRetries: 0,
    })));
  const who = `${opts.name}/${opts.model}`;
  const server = opts.baseURL ?? OPENAI_BASE_URL;
  const limiter = opts.limiter;
  const modeKey = `${server} ${opts.model}`;
  const tableMode: OutputMode | undefined = opts.info ? (opts.info.jsonSchema ? "json_schema" : "prompt") : undefined;
  const systemRole = opts.info?.systemRole ?? true;
  const temperature = opts.info?.temperature ?? true;
  // Images go only to a model its entry says takes them; an unlisted one may not, and would refuse the request.
  const vision = opts.info?.vision ?? false;
  const dropped = dropWarner(opts.log, who);

  function bodyFor(req: ProviderRequest, mode: OutputMode): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming {
    return {
      model: opts.model,
      messages: toOpenAiMessages(vision ? req.messages : dropImages(req.messages, dropped), systemRole),
      ...(temperature && req.temperature !== undefined ? { temperature: req.temperature } : {}),
      ...(mode === "json_schema"
        ? { response_format: { type: "json_schema", json_schema: { name: req.task.replace(/[^A-Za-z0-9_-]/g, "_"), schema: req.jsonSchema, strict: false } } }
        : mode === "json_object"
          ? { response_format: { type: "json_object" } }
          : {}),
    };
  }

  /** One request, its answer read and checked: an unreadable or malformed 200 is a retryable ProviderError. */
  async function once(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, signal: AbortSignal | undefined): Promise<ProviderAnswer> {
    let raw: unknown;
    try {
      raw = await (await sdkClient()).chat.completions.create(body, signal ? { signal } : {});
    } catch (err) {
      throw unreadableAnswer(err) ?? err;
    }
    const parsed = ChatCompletionBody.safeParse(raw);
    if (!parsed.success) throw malformedAnswer("Chat Completions", raw, firstIssue(parsed.error));
    const { choices, usage } = parsed.data;
    return {
      text: choices[0]!.message.content ?? "",
      usage: {
        inputTokens: usage?.prompt_tokens ?? 0,
        outputTokens: usage?.completion_tokens ?? 0,
        cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
        estimated: !usage,
      },
    };
  }

  /** The cheapest call that proves the key and the model: one token of a completion. */
  async function tinyCompletion(signal: AbortSignal | undefined): Promise<void> {
    const raw: unknown = await (await sdkClient()).chat.completions.create(
      { model: opts.model, messages: [{ role: "user", content: "Say OK." }], max_tokens: 1 },
      signal ? { signal } : {},
    );
    const parsed = ChatCompletionBody.safeParse(raw);
    if (!parsed.success) throw malformedAnswer("Chat Completions", raw, firstIssue(parsed.error));
  }

  /** The ids the server lists, or undefined where it has no GET /models. */
  async function listedModels(signal: AbortSignal | undefined): Promise<string[] | undefined> {
    try {
      const page = await (await sdkClient()).models.list(signal ? { signal } : {});
      const ids = ModelList.safeParse(page.data);
      if (!ids.success) throw malformedAnswer("model list", page.data, firstIssue(ids.error));
      return ids.data.map((m) => m.id);
    } catch (err) {
      if ([404, 405, 501].includes(statusOf(err) ?? 0)) return undefined;
      throw err;
    }
  }

  /** Whether GET /models refuses a request without the key; where it does not (OpenRouter, llama-server), a listing proves nothing about the key. */
  async function listingNeedsKey(signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await (await sdkClient()).models.list({ headers: { Authorization: null }, ...(signal ? { signal } : {}) });
      return false;
    } catch (err) {
      return statusOf(err) === 401 || statusOf(err) === 403;
    }
  }

  /** For servers that may lack GET /models/{id}: the listing where it names the model and needs the key, else one token. */
  async function checkByListing(signal: AbortSignal | undefined): Promise<void> {
    const ids = await listedModels(signal);
    // Ollama answers to `name` for `name:latest`.
    const listed = ids?.length ? ids.includes(opts.model) || ids.includes(`${opts.model}:latest`) : undefined;
    if (listed && (await listingNeedsKey(signal))) return;
    try {
      await tinyCompletion(signal);
    } catch (err) {
      // llama-server answers to any model name, so a name missing from the list fails only if the server refuses it.
      if (listed === false && (statusOf(err) === 404 || statusOf(err) === 400)) {
        throw new ProviderError(`the server at ${server} does not serve ${opts.model}`, 404, {
          hint: `it serves: ${ids!.slice(0, 10).join(", ")}`,
          cause: err,
        });
      }
      throw err;
    }
  }

  return {
    name: opts.name,
    model: opts.model,
    disclosure: `This paper was written by the language model ${opts.model} (${opts.name}), driven by scientist-swarm.`,
    async complete(req: ProviderRequest): Promise<ProviderAnswer> {
      const what = `${who} ${req.task}`;
      let mode = tableMode ?? foundModes.get(modeKey) ?? "json_schema";
      for (;;) {
        try {
          const answer = await withRetries(what, () => limiter.run(() => once(bodyFor(req, mode), req.signal)), {
            ...(opts.retry ? { policy: opts.retry } : {}),
            ...(req.signal ? { signal: req.signal } : {}),
            log: opts.log,
          });
          if (!tableMode && foundModes.get(modeKey) !== mode) {
            foundModes.set(modeKey, mode);
            opts.log.info({ server, model: opts.model, outputMode: mode }, `${who} at ${server} is not in config/models.json; it accepts ${MODE_WORDS[mode]}, which later calls use`);
          }
          return answer;
        } catch (err) {
          const simpler = tableMode ? undefined : SIMPLER[mode];
          if (!simpler || !refusesMode(err)) throw providerErrorFrom(err, what);
          opts.log.debug({ server, model: opts.model, refused: mode, next: simpler }, `${who}: the server refuses ${MODE_WORDS[mode]} (${(err as Error).message}); trying ${MODE_WORDS[simpler]}`);
          mode = simpler;
        }
      }
    },
    async check(signal) {
      try {
        if (opts.name === "openai") {
          try {
            await (await sdkClient()).models.retrieve(opts.model, signal ? { signal } : {});
            return;
          } catch (err) {
            // A server behind a custom OPENAI_BASE_URL may have no GET /models/{id}: check it as any compatible server.
            if (!opts.baseURL || statusOf(err) !== 404) throw err;
          }
        }
        await checkByListing(signal);
      } catch (err) {
        throw providerErrorFrom(err, `${who}: checking the credentials and the model`);
      }
    },
  };
}
