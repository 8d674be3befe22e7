import { describe, expect, it } from "vitest";
import { parseSections, renderSections } from "../agents/llm/sections.js";
import { extractJson } from "../agents/llm/extractJson.js";
import { backoffMs, isRetryable, retryAfterMs } from "../agents/llm/retry.js";
import { redact } from "../agents/llm/redact.js";
import { parseLlm } from "../agents/llm/providers.js";
import { costOf, modelInfo } from "../agents/llm/models.js";
import "../agents/offline.js";
import { offlineTasks } from "../agents/llm/offline/registry.js";
import { ProviderConfigError, ProviderError, providerErrorFrom, unreadableAnswer } from "../agents/llm/errors.js";

describe("labelled sections", () => {
  it("render and parse back to the same data, whatever the strings hold", () => {
    const data = {
      code: "x = 1\n```\nnot a fence end\n````\n",
      empty: "",
      notes: "ünïcode — and ### not a header",
      runs: [{ run: "run_1", ok: true, results: { a: { means: { acc: 0.91 } } } }],
      n: 3,
      flag: false,
    };
    expect(parseSections(renderSections(data))).toEqual(data);
  });

  it("put a task's stable data first, in a turn marked for the prompt cache, so that calls sharing it share a prefix", async () => {
    const { defineTask } = await import("../agents/llm/task.js");
    const { z } = await import("zod");
    const material = { paper: "a long paper ".repeat(100), code: "print(1)" };
    const spec = { system: "You review.", answer: z.object({ ok: z.boolean() }), shape: "{}", stable: ["paper", "code"] as const };
    const first = defineTask({ ...spec, name: "t.first", data: z.object({ paper: z.string(), code: z.string(), round: z.number() }), instructions: () => "Review it." });
    const second = defineTask({ ...spec, name: "t.second", data: z.object({ paper: z.string(), code: z.string(), review: z.string() }), instructions: () => "Reflect." });
    const a = first.render({ ...material, round: 1 });
    const b = second.render({ ...material, review: "fine" });
    expect(a.slice(0, 2)).toEqual(b.slice(0, 2));
    expect(a[1]).toMatchObject({ role: "user", cache: true });
    expect(a[2]!.content).toMatch(/^Review it\./);
    // Every field is still there, once, and reads back.
    expect(parseSections(a.map((m) => m.content).join("\n\n"))).toEqual({ ...material, round: 1 });
    expect(a[2]!.content).not.toContain("a long paper");
  });

  it("give every offline task a distinct set of section names, so a reader can tell tasks apart", () => {
    const keys = offlineTasks().map((t) => Object.keys(t.data.shape).sort().join(","));
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("extractJson", () => {
  it("takes a fenced block, or the first balanced object with braces inside strings", () => {
    expect(extractJson('Here:\n```json\n{"a": 1}\n```')).toEqual({ ok: true, value: { a: 1 } });
    expect(extractJson('Sure. {"a": "x}y{", "b": [1, {"c": 2}]} trailing')).toEqual({ ok: true, value: { a: "x}y{", b: [1, { c: 2 }] } });
  });

  it("says a cut-off answer looks truncated, and garbage has no JSON", () => {
    const cut = extractJson('{"a": 1, "b": "unfinished');
    expect(cut.ok).toBe(false);
    if (!cut.ok) expect(cut.error).toMatch(/truncated/);
    expect(extractJson("I cannot help with that").ok).toBe(false);
  });
});

describe("retries", () => {
  it("read Retry-After in seconds, as a date, and retry-after-ms", () => {
    const headers = (h: Record<string, string>) => ({ status: 429, headers: new Headers(h) });
    expect(retryAfterMs(headers({ "retry-after": "3" }))).toBe(3000);
    expect(retryAfterMs(headers({ "retry-after-ms": "250" }))).toBe(250);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs(headers({ "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }), now)).toBe(5000);
  });

  it("retry rate limits, server errors and dropped connections, not bad requests or bad keys", () => {
    expect(isRetryable({ status: 429 })).toBe(true);
    expect(isRetryable({ status: 503 })).toBe(true);
    expect(isRetryable({ name: "APIConnectionError", message: "Connection error." })).toBe(true);
    expect(isRetryable({ name: "Error", message: "Request timed out." })).toBe(true);
    expect(isRetryable({ status: 400 })).toBe(false);
    expect(isRetryable({ status: 401 })).toBe(false);
    expect(isRetryable({ name: "APIUserAbortError", message: "Request was aborted." })).toBe(false);
  });

  it("take an error's own word on whether it is retryable, over its status", () => {
    expect(isRetryable({ status: 400, retryable: true })).toBe(true);
    expect(isRetryable({ status: 503, retryable: false })).toBe(false);
  });

  it("count a 200 body that is cut off or whose connection closed as retryable, not any SDK error", () => {
    const socket = Object.assign(new TypeError("terminated"), { cause: { code: "UND_ERR_SOCKET" } });
    for (const err of [new SyntaxError("Unterminated string in JSON at position 40"), socket]) {
      const e = unreadableAnswer(err);
      expect(e).toBeInstanceOf(ProviderError);
      expect(isRetryable(e)).toBe(true);
    }
    expect(unreadableAnswer(new TypeError("Cannot read properties of undefined"))).toBeUndefined();
    expect(unreadableAnswer({ status: 400, message: "bad request" })).toBeUndefined();
  });

  it("keep a deeper ProviderError's status, hint and retryability when they say who failed", () => {
    const wrapped = providerErrorFrom(unreadableAnswer(new SyntaxError("Unexpected end of JSON input")), "vllm/qwen ideas.generate");
    expect(wrapped.message).toMatch(/^vllm\/qwen ideas\.generate: the server's answer was cut off/);
    expect(wrapped.retryable).toBe(true);
    expect(providerErrorFrom({ status: 401, message: "401 Invalid API Key" }, "x").retryable).toBe(false);
  });

  it("back off exponentially with jitter, capped, unless the server names a wait", () => {
    const policy = { attempts: 6, baseMs: 1000, maxMs: 8000 };
    expect(backoffMs(1, policy, {}, () => 0.999)).toBeLessThan(1000);
    expect(backoffMs(3, policy, {}, () => 0.999)).toBeGreaterThan(3900);
    expect(backoffMs(10, policy, {}, () => 0.999)).toBeLessThanOrEqual(8000);
    expect(backoffMs(1, policy, { status: 429, headers: new Headers({ "retry-after": "2" }) }, () => 0)).toBe(2000);
  });
});

describe("redaction", () => {
  it("removes key-shaped strings and the values of key variables, deep in a record", () => {
    const env = { OPENAI_API_KEY: "plainsecretvalue123" };
    const out = redact({ a: ["sk-ant-abcdefghijklmnopqrstu", { b: "key plainsecretvalue123 here" }] }, env);
    expect(JSON.stringify(out)).not.toMatch(/sk-ant|plainsecret/);
  });
});

describe("choosing a model", () => {
  it("parses provider/model with defaults, and refuses an unknown provider", () => {
    expect(parseLlm("openai")).toEqual({ provider: "openai", model: "gpt-4o-2024-08-06" });
    expect(parseLlm("openai-compatible/llama3.1:8b")).toEqual({ provider: "openai-compatible", model: "llama3.1:8b" });
    expect(() => parseLlm("openai-compatible")).toThrow(ProviderConfigError);
    expect(() => parseLlm("gpt5")).toThrow(/unknown provider/);
  });

  it("costs tokens from the model table, cached input at its own price", () => {
    const info = modelInfo("openai", "gpt-4o-mini");
    expect(costOf(info, { inputTokens: 1_000_000, outputTokens: 1_000_000, cachedTokens: 500_000, estimated: false })).toBeCloseTo(0.075 + 0.0375 + 0.6, 10);
  });
});
