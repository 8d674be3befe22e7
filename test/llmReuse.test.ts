import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Limiter } from "../agents/llm/retry.js";
import { pino } from "pino";
import { z } from "zod";
import { natsForSuite } from "./helpers/nats.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";
import { openAiProvider } from "../agents/llm/openaiProvider.js";
import { createLlm } from "../agents/llm/client.js";
import { modelInfo } from "../agents/llm/models.js";
import { spentUsd } from "../agents/llm/budget.js";
import type { ChatMessage } from "../agents/llm/types.js";
import { watchEvents } from "../bus/events.js";
import { STREAMS, subjects } from "../bus/subjects.js";
import { LlmExchange } from "../bus/schemas.js";

// A job redone after a crash asks the same requests in the same order under the same job id: every answer it
// had already received comes from the run's conversation stream, and the model server sees nothing new.

const log = pino({ level: "silent" });
const KEY = "sk-test-0123456789abcdefghij";
const Answer = z.object({ title: z.string(), score: z.number().int().min(1).max(10) });

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

let run = 0;
const newRun = () => `reuse-test-${++run}`;
const provider = () =>
  openAiProvider({ name: "openai", model: "gpt-4o-mini", apiKey: KEY, baseURL: `${server.url}/v1`, info: modelInfo("openai", "gpt-4o-mini"), timeoutMs: 5000, retry: { attempts: 1, baseMs: 10, maxMs: 10 }, limiter: new Limiter(4), log });
const llmFor = (runId: string, scope: string) => createLlm(provider(), { bus: nats.bus, runId, by: { agent: "tester", node: "test" }, log, scope });
const prompt = (text: string): ChatMessage[] => [{ role: "system", content: "answer with a title and a score" }, { role: "user", content: text }];
const ask = (llm: ReturnType<typeof llmFor>, text: string) => llm.ask({ task: "test.rate", messages: prompt(text), schema: Answer, data: {} });

/** Every exchange recorded in the run, with the subject it is on. */
async function recorded(runId: string): Promise<{ subject: string; value: LlmExchange }[]> {
  const { state } = await nats.bus.jsm.streams.info(STREAMS.conversation.name, { subjects_filter: subjects.llms(runId) });
  const n = Object.values(state.subjects ?? {}).reduce((a, b) => a + b, 0);
  const out: { subject: string; value: LlmExchange }[] = [];
  if (n === 0) return out;
  const stream = await watchEvents(nats.bus, subjects.llms(runId), LlmExchange);
  for await (const e of stream) {
    out.push(e);
    if (out.length === n) break;
  }
  await stream.close();
  return out;
}

describe("answers already recorded are reused", () => {
  it("a second client with the same scope gets the same answers, twice-asked requests included, without a request", async () => {
    const runId = newRun();
    server.script = [{ json: { title: "one", score: 1 } }, { json: { title: "two", score: 2 } }, { json: { title: "three", score: 3 } }];
    const first = llmFor(runId, `${runId}.review.0`);
    const answers = [await ask(first, "paper A"), await ask(first, "paper B"), await ask(first, "paper A")];
    // The same request twice in one job is two calls with two answers.
    expect(answers.map((a) => a.title)).toEqual(["one", "two", "three"]);
    expect(server.requests).toHaveLength(3);

    const redo = llmFor(runId, `${runId}.review.0`);
    expect([await ask(redo, "paper A"), await ask(redo, "paper B"), await ask(redo, "paper A")]).toEqual(answers);
    expect(server.requests).toHaveLength(3);
    // A fourth identical request was never answered: it is new work.
    server.script = [{ json: { title: "four", score: 4 } }];
    expect((await ask(redo, "paper A")).title).toBe("four");
    expect(server.requests).toHaveLength(4);
  });

  it("a different scope (another reviewer's job) asks the model", async () => {
    const runId = newRun();
    server.script = [{ json: { title: "one", score: 1 } }, { json: { title: "other", score: 5 } }];
    await ask(llmFor(runId, `${runId}.review.0`), "paper A");
    expect(await ask(llmFor(runId, `${runId}.review.1`), "paper A")).toEqual({ title: "other", score: 5 });
    expect(server.requests).toHaveLength(2);
  });

  it("an answer that failed the schema and the repair turn after it are reproduced from the log", async () => {
    const runId = newRun();
    server.script = [{ json: { title: "too high", score: 99 } }, { json: { title: "repaired", score: 9 } }];
    const scope = `${runId}.ideate`;
    expect(await ask(llmFor(runId, scope), "idea X")).toEqual({ title: "repaired", score: 9 });
    expect(server.requests).toHaveLength(2);
    const [failed, repair] = (await recorded(runId)).map((e) => e.value);
    expect(failed!.error).toMatch(/does not fit the required shape/);
    expect(repair!.messages.at(-2)).toEqual({ role: "assistant", content: JSON.stringify({ title: "too high", score: 99 }) });

    expect(await ask(llmFor(runId, scope), "idea X")).toEqual({ title: "repaired", score: 9 });
    expect(server.requests).toHaveLength(2);
    expect(await recorded(runId)).toHaveLength(2);
  });

  it("a recorded answer that no longer fits the request's schema is asked for again, and that answer is reused next", async () => {
    const runId = newRun();
    const scope = `${runId}.critic`;
    server.script = [{ json: { title: "low", score: 2 } }, { json: { title: "high", score: 8 } }];
    await ask(llmFor(runId, scope), "idea Y");
    const stricter = (llm: ReturnType<typeof llmFor>) =>
      llm.ask({ task: "test.rate", messages: prompt("idea Y"), schema: Answer.extend({ score: z.number().int().min(5) }), data: {} });
    expect(await stricter(llmFor(runId, scope))).toEqual({ title: "high", score: 8 });
    expect(await stricter(llmFor(runId, scope))).toEqual({ title: "high", score: 8 });
    expect(server.requests).toHaveLength(2);
  });

  it("records each exchange on its key's own subject and counts the spend once", async () => {
    const runId = newRun();
    const scope = `${runId}.write`;
    server.script = [{ text: "no JSON here" }, { json: { title: "one", score: 1 } }, { json: { title: "two", score: 2 } }];
    const sequence = async (llm: ReturnType<typeof llmFor>) => [await ask(llm, "paper A"), await ask(llm, "paper B")];
    const answers = await sequence(llmFor(runId, scope));
    const exchanges = await recorded(runId);
    expect(exchanges).toHaveLength(3);
    for (const { subject, value } of exchanges) {
      expect(value.key).toMatch(/^[0-9a-f]{32}$/);
      expect(subject).toBe(subjects.llm(runId, value.key!));
    }
    expect(new Set(exchanges.map((e) => e.value.key)).size).toBe(3);
    const spent = await spentUsd(nats.bus, runId);
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeCloseTo(exchanges.reduce((a, e) => a + e.value.costUsd, 0), 12);

    expect(await sequence(llmFor(runId, scope))).toEqual(answers);
    expect(server.requests).toHaveLength(3);
    expect(await recorded(runId)).toHaveLength(3);
    expect(await spentUsd(nats.bus, runId)).toBe(spent);
  });

  it("a client without a scope records its answers but never reuses them", async () => {
    const runId = newRun();
    server.script = [{ json: { title: "one", score: 1 } }, { json: { title: "two", score: 2 } }];
    const unscoped = () => createLlm(provider(), { bus: nats.bus, runId, by: { agent: "tester", node: "test" }, log });
    await unscoped().ask({ task: "test.rate", messages: prompt("paper A"), schema: Answer, data: {} });
    expect(await unscoped().ask({ task: "test.rate", messages: prompt("paper A"), schema: Answer, data: {} })).toEqual({ title: "two", score: 2 });
    expect(server.requests).toHaveLength(2);
    expect(await recorded(runId)).toHaveLength(2);
  });
});
