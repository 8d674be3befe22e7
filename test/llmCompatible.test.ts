import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Limiter } from "../agents/llm/retry.js";
import { pino } from "pino";
import { z } from "zod";
import { natsForSuite } from "./helpers/nats.js";
import { startCompatServer, type CompatKind, type CompatModel, type CompatServer } from "./helpers/compatServers.js";
import { openAiProvider } from "../agents/llm/openaiProvider.js";
import { createLlm } from "../agents/llm/client.js";
import { modelInfo } from "../agents/llm/models.js";
import { ProviderError } from "../agents/llm/errors.js";
import type { LlmProvider } from "../agents/llm/types.js";

const KEY = "sk-test-compat-0123456789abcdef";
// Waits of a few milliseconds: the retries are real, the test stays fast.
const retry = { attempts: 3, baseMs: 5, maxMs: 50 };
const Answer = z.object({ title: z.string(), score: z.number().int().min(1).max(10) });
const good = { title: "A study", score: 7 };

const SERVERS: Record<CompatKind, { models: CompatModel[]; apiKey?: string }> = {
  vllm: { models: [{ id: "Qwen/Qwen2.5-7B-Instruct" }], apiKey: KEY },
  "llama.cpp": { models: [{ id: "gemma-3-4b-it-Q4_K_M.gguf" }], apiKey: KEY },
  "llama.cpp-old": { models: [{ id: "gemma-3-4b-it-Q4_K_M.gguf" }], apiKey: KEY },
  openrouter: {
    models: [
      { id: "qwen/qwen-2.5-72b-instruct" },
      { id: "deepseek/deepseek-chat-v3", jsonSchema: "reject" },
      { id: "acme/tiny-chat", jsonSchema: "reject", jsonObject: "reject" },
    ],
    apiKey: KEY,
  },
  // Ollama takes no key.
  ollama: { models: [{ id: "llama3.1:8b" }, { id: "qwen2.5:7b" }, { id: "gpt-oss:120b-cloud", jsonSchema: "ignore" }] },
  bare: { models: [{ id: "mistral-small" }], apiKey: KEY },
};

let nats: Awaited<ReturnType<typeof natsForSuite>>;
const servers = {} as Record<CompatKind, CompatServer>;
beforeAll(async () => {
  nats = await natsForSuite();
  for (const [kind, s] of Object.entries(SERVERS) as [CompatKind, (typeof SERVERS)[CompatKind]][]) {
    servers[kind] = await startCompatServer({ kind, models: s.models, ...(s.apiKey ? { apiKey: s.apiKey } : {}), answer: good });
  }
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.close()));
  await nats?.close();
});
beforeEach(() => {
  for (const s of Object.values(servers)) {
    s.requests.length = 0;
    s.script = [];
  }
});

/** A logger whose lines the test can read. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, infos: () => lines.filter((l) => l.level === 30).map((l) => l.msg) };
}

function provider(kind: CompatKind, model: string, o: { name?: "openai" | "openai-compatible"; apiKey?: string; log?: ReturnType<typeof capture>["log"] } = {}): LlmProvider {
  const name = o.name ?? "openai-compatible";
  return openAiProvider({
    name, model, apiKey: o.apiKey ?? KEY, baseURL: servers[kind].baseURL, info: modelInfo(name, model),
    timeoutMs: 5000, retry, limiter: new Limiter(2), log: o.log ?? capture().log,
  });
}

let run = 0;
const ask = (p: LlmProvider) =>
  createLlm(p, { bus: nats.bus, runId: `compat-test-${++run}`, by: { agent: "tester", node: "test" }, log: pino({ level: "silent" }) }).ask({
    task: "test.answer",
    messages: [{ role: "system", content: "be brief" }, { role: "user", content: 'Rate this. Answer with one JSON object and nothing else, of this shape: {"title": string, "score": integer 1-10}' }],
    schema: Answer,
    data: {},
  });

const formats = (s: CompatServer) => s.completions().map((r) => (r.body.response_format as { type?: string } | undefined)?.type ?? "none");

describe("structured output for a model not in config/models.json is found out", () => {
  it("vLLM: answers with schema-valid JSON through JSON-schema output", async () => {
    expect(modelInfo("openai-compatible", "Qwen/Qwen2.5-7B-Instruct")).toBeUndefined();
    expect(await ask(provider("vllm", "Qwen/Qwen2.5-7B-Instruct"))).toEqual(good);
    const [request] = servers.vllm.completions();
    expect(request!.body.response_format).toMatchObject({
      type: "json_schema",
      json_schema: { name: "test_answer", schema: { type: "object", required: ["title", "score"] } },
    });
    expect(servers.vllm.completions()).toHaveLength(1);
  });

  it("an old llama-server refuses json_schema with a 400: JSON mode is found, logged once, and used straight away after", async () => {
    const { log, infos } = capture();
    const p = provider("llama.cpp-old", "gemma-3-4b-it", { log });
    expect(await ask(p)).toEqual(good);
    expect(await ask(p)).toEqual(good);
    expect(formats(servers["llama.cpp-old"])).toEqual(["json_schema", "json_object", "json_object"]);
    expect(infos().filter((m) => /it accepts JSON mode/.test(m))).toHaveLength(1);
  });

  it("the memory is per server and model: a newer llama-server with the same model starts from json_schema", async () => {
    await ask(provider("llama.cpp-old", "gemma-3-4b-it"));
    expect(await ask(provider("llama.cpp", "gemma-3-4b-it"))).toEqual(good);
    expect(formats(servers["llama.cpp"])).toEqual(["json_schema"]);
  });

  it("OpenRouter: a model whose provider refuses json_schema is answered in JSON mode", async () => {
    expect(await ask(provider("openrouter", "deepseek/deepseek-chat-v3"))).toEqual(good);
    expect(formats(servers.openrouter)).toEqual(["json_schema", "json_object"]);
  });

  it("OpenRouter: a model whose provider refuses both is asked by the prompt alone, its prose answer extracted", async () => {
    const { log, infos } = capture();
    const p = provider("openrouter", "acme/tiny-chat", { log });
    expect(await ask(p)).toEqual(good);
    expect(await ask(p)).toEqual(good);
    expect(formats(servers.openrouter)).toEqual(["json_schema", "json_object", "none", "none"]);
    expect(infos().filter((m) => /it accepts no response_format/.test(m))).toHaveLength(1);
  });

  it("a server that accepts json_schema and ignores it (an Ollama cloud model) still works, by extraction", async () => {
    expect(await ask(provider("ollama", "gpt-oss:120b-cloud"))).toEqual(good);
    expect(formats(servers.ollama)).toEqual(["json_schema"]);
  });

  it("a model in config/models.json keeps its table entry: llama3.1:8b gets no response_format, though Ollama would take one", async () => {
    expect(modelInfo("openai-compatible", "llama3.1:8b")?.jsonSchema).toBe(false);
    expect(await ask(provider("ollama", "llama3.1:8b"))).toEqual(good);
    expect(formats(servers.ollama)).toEqual(["none"]);
  });
});

describe("a 200 that is not a whole answer is retried like a 5xx", () => {
  it("a body cut off mid-JSON: the same request again, then the answer", async () => {
    servers.vllm.script = [{ cut: "truncated" }];
    expect(await ask(provider("vllm", "Qwen/Qwen2.5-7B-Instruct"))).toEqual(good);
    const [first, second] = servers.vllm.completions();
    expect(servers.vllm.completions()).toHaveLength(2);
    expect(second!.body).toEqual(first!.body);
  });

  it("a connection that closes halfway through the body", async () => {
    servers.ollama.script = [{ cut: "dropped" }];
    expect(await ask(provider("ollama", "qwen2.5:7b"))).toEqual(good);
    expect(servers.ollama.completions()).toHaveLength(2);
  });

  it("an error in a 200 body, as OpenRouter sends one that happens while the model writes", async () => {
    servers.openrouter.script = [{ body: { error: { code: 502, message: "Upstream connection reset" } } }];
    expect(await ask(provider("openrouter", "qwen/qwen-2.5-72b-instruct"))).toEqual(good);
    expect(servers.openrouter.completions()).toHaveLength(2);
  });

  it("every try cut off: a retryable ProviderError that says so, after the policy's attempts", async () => {
    servers.vllm.script = Array.from({ length: retry.attempts }, () => ({ cut: "truncated" as const }));
    const err = await ask(provider("vllm", "Qwen/Qwen2.5-7B-Instruct")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).message).toMatch(/answer was cut off/);
    expect((err as ProviderError).retryable).toBe(true);
    expect(servers.vllm.completions()).toHaveLength(retry.attempts);
  });

  it("a whole body whose content is cut-off JSON is no transport failure: it gets a repair turn", async () => {
    servers.vllm.script = [{ content: '{"title": "A study", "sco' }];
    expect(await ask(provider("vllm", "Qwen/Qwen2.5-7B-Instruct"))).toEqual(good);
    const [, second] = servers.vllm.completions();
    expect(JSON.stringify(second!.body.messages)).toMatch(/truncated/);
  });
});

describe("the credential check", () => {
  const paths = (s: CompatServer) => s.requests.map((r) => `${r.method} ${r.path}${r.body.max_tokens === 1 ? " (1 token)" : ""}`);

  it("Ollama: its list names the model; a model not pulled is refused with what it serves", async () => {
    await expect(provider("ollama", "qwen2.5:7b").check()).resolves.toBeUndefined();
    const err = await provider("ollama", "mistral-nemo:12b").check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).message).toMatch(/does not serve mistral-nemo:12b/);
    expect((err as ProviderError).hint).toMatch(/llama3\.1:8b/);
  });

  it("vLLM: its list needs the key, so listing proves key and model, with no completion", async () => {
    await expect(provider("vllm", "Qwen/Qwen2.5-7B-Instruct").check()).resolves.toBeUndefined();
    expect(servers.vllm.completions()).toHaveLength(0);
    const err = await provider("vllm", "Qwen/Qwen2.5-7B-Instruct", { apiKey: "wrong" }).check().catch((e: unknown) => e);
    expect((err as ProviderError).status).toBe(401);
    expect((err as ProviderError).hint).toMatch(/API key/);
  });

  it("openai with a custom OPENAI_BASE_URL on a server without GET /models/{id} falls back to the list", async () => {
    await expect(provider("vllm", "Qwen/Qwen2.5-7B-Instruct", { name: "openai" }).check()).resolves.toBeUndefined();
    expect(paths(servers.vllm)[0]).toBe("GET /v1/models/Qwen%2FQwen2.5-7B-Instruct");
    expect(paths(servers.vllm)).toContain("GET /v1/models");
  });

  it("llama-server: its list is public, so a wrong key is caught by one token of a completion", async () => {
    const err = await provider("llama.cpp", "gemma-3-4b-it", { apiKey: "wrong" }).check().catch((e: unknown) => e);
    expect((err as ProviderError).status).toBe(401);
    expect((err as ProviderError).hint).toMatch(/API key/);
    servers["llama.cpp"].requests.length = 0;
    await expect(provider("llama.cpp", "gemma-3-4b-it").check()).resolves.toBeUndefined();
    expect(paths(servers["llama.cpp"])).toContain("POST /v1/chat/completions (1 token)");
  });

  it("OpenRouter: its list takes any key, so the key is proven by one token", async () => {
    const err = await provider("openrouter", "qwen/qwen-2.5-72b-instruct", { apiKey: "sk-or-v1-wrong" }).check().catch((e: unknown) => e);
    expect((err as ProviderError).status).toBe(401);
    expect((err as ProviderError).hint).toMatch(/API key/);
    await expect(provider("openrouter", "qwen/qwen-2.5-72b-instruct").check()).resolves.toBeUndefined();
  });

  it("a proxy without GET /models at all: one token of a completion, and a wrong key still fails", async () => {
    await expect(provider("bare", "mistral-small").check()).resolves.toBeUndefined();
    expect(paths(servers.bare)).toEqual(["GET /v1/models", "POST /v1/chat/completions (1 token)"]);
    const err = await provider("bare", "mistral-small", { apiKey: "wrong" }).check().catch((e: unknown) => e);
    expect((err as ProviderError).status).toBe(401);
    expect((err as ProviderError).hint).toMatch(/API key/);
  });
});
