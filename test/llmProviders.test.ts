import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Limiter } from "../agents/llm/retry.js";
import { pino } from "pino";
import { z } from "zod";
import { natsForSuite } from "./helpers/nats.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";
import { openAiProvider } from "../agents/llm/openaiProvider.js";
import { anthropicProvider } from "../agents/llm/anthropicProvider.js";
import { createLlm, MAX_REPAIRS } from "../agents/llm/client.js";
import { modelInfo } from "../agents/llm/models.js";
import { ModelBehaviorError, ProviderError } from "../agents/llm/errors.js";
import { watchEvents } from "../bus/events.js";
import { subjects } from "../bus/subjects.js";
import { LlmExchange } from "../bus/schemas.js";
import type { LlmProvider } from "../agents/llm/types.js";
import "../agents/offline.js";

const log = pino({ level: "silent" });
const KEY = "sk-test-0123456789abcdefghij";
const retry = { attempts: 3, baseMs: 20, maxMs: 5000 };
const Answer = z.object({ title: z.string(), score: z.number().int().min(1).max(10) });
const good = { title: "A study", score: 7 };

let nats: Awaited<ReturnType<typeof natsForSuite>>;
let server: FakeModelServer;
beforeAll(async () => {
  nats = await natsForSuite();
  server = await startFakeModelServer({ apiKey: KEY });
});
afterAll(async () => {
  await server?.close();
  await nats?.close();
});
beforeEach(() => {
  server.requests.length = 0;
  server.script = [];
});

const providers: Record<string, (timeoutMs?: number) => LlmProvider> = {
  openai: (timeoutMs = 5000) =>
    openAiProvider({ name: "openai", model: "gpt-4o-mini", apiKey: KEY, baseURL: `${server.url}/v1`, info: modelInfo("openai", "gpt-4o-mini"), timeoutMs, retry, limiter: new Limiter(4), log }),
  anthropic: (timeoutMs = 5000) =>
    anthropicProvider({ model: "claude-3-5-sonnet-20241022", apiKey: KEY, baseURL: server.url, info: modelInfo("anthropic", "claude-3-5-sonnet-20241022"), timeoutMs, retry, limiter: new Limiter(4), log }),
};

let run = 0;
function llmFor(provider: LlmProvider) {
  const runId = `llm-test-${++run}`;
  return { runId, llm: createLlm(provider, { bus: nats.bus, runId, by: { agent: "tester", node: "test" }, log }) };
}
const ask = (llm: ReturnType<typeof llmFor>["llm"], signal?: AbortSignal) =>
  llm.ask({ task: "test.answer", messages: [{ role: "system", content: "be brief" }, { role: "user", content: `rate this; my key is ${KEY}` }], schema: Answer, data: {}, ...(signal ? { signal } : {}) });

async function exchanges(runId: string, n: number): Promise<LlmExchange[]> {
  const stream = await watchEvents(nats.bus, subjects.llms(runId), LlmExchange);
  const out: LlmExchange[] = [];
  for await (const { value } of stream) {
    out.push(value);
    if (out.length === n) break;
  }
  await stream.close();
  return out;
}

for (const name of ["openai", "anthropic"] as const) {
  describe(`${name} through its official SDK, over loopback`, () => {
    it("returns a validated answer and records tokens and cost, keys redacted", async () => {
      server.script = [{ json: good }];
      const { llm, runId } = llmFor(providers[name]!());
      expect(await ask(llm)).toEqual(good);
      const [record] = await exchanges(runId, 1);
      expect(record!.usage.inputTokens).toBeGreaterThan(0);
      expect(record!.costUsd).toBeGreaterThan(0);
      expect(JSON.stringify(record)).not.toContain(KEY);
      expect(JSON.stringify(record)).toContain("[redacted]");
      const body = server.requests[0]!.body;
      if (name === "openai") expect(body.response_format).toMatchObject({ type: "json_schema" });
      else expect(body.tool_choice).toMatchObject({ type: "tool", name: "test_answer" });
    });

    it("waits as a 429's Retry-After asks, then succeeds", async () => {
      server.script = [{ status: 429, headers: { "retry-after": "1" } }, { json: good }];
      const { llm } = llmFor(providers[name]!());
      const started = Date.now();
      expect(await ask(llm)).toEqual(good);
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      expect(server.requests).toHaveLength(2);
    });

    it("retries a 500 and succeeds", async () => {
      server.script = [{ status: 500 }, { json: good }];
      const { llm } = llmFor(providers[name]!());
      expect(await ask(llm)).toEqual(good);
      expect(server.requests).toHaveLength(2);
    });

    it("retries a 200 whose body is cut off or whose connection closes mid-body, and succeeds", async () => {
      server.script = [{ cut: "truncated", json: good }, { cut: "dropped", json: good }, { json: good }];
      const { llm } = llmFor(providers[name]!());
      expect(await ask(llm)).toEqual(good);
      expect(server.requests).toHaveLength(3);
    });

    it("retries a 200 whose JSON is not the API's answer at all", async () => {
      server.script = [
        { body: name === "openai" ? { error: { message: "upstream reset", code: 502 } } : { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } },
        { json: good },
      ];
      const { llm } = llmFor(providers[name]!());
      expect(await ask(llm)).toEqual(good);
      expect(server.requests).toHaveLength(2);
    });

    it("times out a request that hangs, and retries it", async () => {
      server.script = [{ delayMs: 3000 }, { json: good }];
      const { llm } = llmFor(providers[name]!(400));
      const started = Date.now();
      expect(await ask(llm)).toEqual(good);
      expect(Date.now() - started).toBeLessThan(2500);
      expect(server.requests).toHaveLength(2);
    });

    it("repairs a schema-invalid answer in one turn that quotes the error", async () => {
      server.script = [{ json: { title: "A study", score: 42 } }, { json: good }];
      const { llm } = llmFor(providers[name]!());
      expect(await ask(llm)).toEqual(good);
      expect(server.requests).toHaveLength(2);
      expect(JSON.stringify(server.requests[1]!.body.messages)).toMatch(/score: Too big/);
    });

    it("gives a typed error for garbage that never validates", async () => {
      server.script = Array.from({ length: MAX_REPAIRS + 1 }, () => ({ json: { nonsense: true } }));
      const { llm } = llmFor(providers[name]!());
      await expect(ask(llm)).rejects.toBeInstanceOf(ModelBehaviorError);
      expect(server.requests).toHaveLength(MAX_REPAIRS + 1);
    });

    it("cancels the request when the actor's signal aborts", async () => {
      server.script = [{ delayMs: 3000 }];
      const { llm } = llmFor(providers[name]!());
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const started = Date.now();
      await expect(ask(llm, controller.signal)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(1500);
    });

    it("refuses a wrong key at the credential check, saying what to fix", async () => {
      const bad = name === "openai"
        ? openAiProvider({ name: "openai", model: "gpt-4o-mini", apiKey: "wrong", baseURL: `${server.url}/v1`, info: undefined, timeoutMs: 2000, retry, limiter: new Limiter(1), log })
        : anthropicProvider({ model: "claude-3-5-sonnet-20241022", apiKey: "wrong", baseURL: server.url, info: undefined, timeoutMs: 2000, retry, limiter: new Limiter(1), log });
      const err = await bad.check().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as ProviderError).status).toBe(401);
      expect((err as ProviderError).hint).toMatch(/API key/);
      await expect(providers[name]!().check()).resolves.toBeUndefined();
    });
  });
}

describe("OpenAI-compatible servers without schema enforcement", () => {
  const compatible = () =>
    openAiProvider({ name: "openai-compatible", model: "llama3.1:8b", apiKey: KEY, baseURL: `${server.url}/v1`, info: modelInfo("openai-compatible", "llama3.1:8b"), timeoutMs: 5000, retry, limiter: new Limiter(2), log });

  it("sends no response_format and extracts fenced JSON from prose", async () => {
    server.script = [{ text: 'Sure! Here it is:\n```json\n{"title": "A study", "score": 7}\n```\nHope this helps.' }];
    const { llm } = llmFor(compatible());
    expect(await ask(llm)).toEqual(good);
    expect(server.requests[0]!.body.response_format).toBeUndefined();
  });

  it("repairs truncated JSON in one turn", async () => {
    server.script = [{ text: '{"title": "A study", "sco' }, { text: '{"title": "A study", "score": 7}' }];
    const { llm } = llmFor(compatible());
    expect(await ask(llm)).toEqual(good);
    expect(JSON.stringify(server.requests[1]!.body.messages)).toMatch(/truncated/);
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    server.script = Array.from({ length: 4 }, () => ({ delayMs: 200, json: good }));
    const { llm } = llmFor(compatible());
    const started = Date.now();
    await Promise.all(Array.from({ length: 4 }, () => ask(llm)));
    // Four 200 ms requests two at a time take two rounds.
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
  });
});
