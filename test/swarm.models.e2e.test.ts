import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";

const KEY = "sk-e2e-abcdefghijklmnopqrstuvwx";
const out = mkdtempSync(join(tmpdir(), "swarm-models-"));
let server: FakeModelServer;
beforeAll(async () => {
  server = await startFakeModelServer({ apiKey: KEY });
});
afterAll(async () => {
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";
const readJson = (...p: string[]) => JSON.parse(readFileSync(join(out, ...p), "utf8"));
const openaiEnv = () => ({ OPENAI_BASE_URL: `${server.url}/v1`, OPENAI_API_KEY: KEY });
const prices = JSON.parse(readFileSync(new URL("../config/models.json", import.meta.url), "utf8"));

function decisions(runId: string): Record<string, string> {
  const ideas = readJson(runId, "ideas.json").ideas as { ideaId: string; status: string }[];
  return Object.fromEntries(ideas.filter((i) => i.status === "accepted").map((i) => [i.ideaId, readJson(runId, i.ideaId, "meta_review.json").decision]));
}

describe("a whole swarm run against a model server on loopback", () => {
  let openaiRun = "";

  it("completes with --llm openai, base URL and key from the environment, as for Ollama", async () => {
    const res = await runScript("swarm", ["--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local"], { env: openaiEnv() });
    expect(res.exitCode, res.all).toBe(0);
    openaiRun = runIdOf(res.all ?? "");
    expect(readJson(openaiRun, "status.json").status).toBe("completed");
    expect(Object.values(decisions(openaiRun))).toHaveLength(1);
    expect(res.all).toMatch(/✓ openai\/gpt-4o-mini: credentials and model accepted/);
    expect(readFileSync(join(out, openaiRun, "llm.jsonl"), "utf8")).not.toContain(KEY);
  }, 120_000);

  it("writes cost.json equal to the sum over llm.jsonl of tokens times prices", () => {
    const lines = readFileSync(join(out, openaiRun, "llm.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const p = prices["openai/gpt-4o-mini"];
    const expected = lines.reduce(
      (sum, e) => sum + ((e.usage.inputTokens - e.usage.cachedTokens) * p.input + e.usage.cachedTokens * p.cachedInput + e.usage.outputTokens * p.output) / 1e6,
      0,
    );
    const cost = readJson(openaiRun, "cost.json");
    expect(expected).toBeGreaterThan(0);
    expect(cost.total.costUsd).toBeCloseTo(expected, 10);
    expect(cost.total.calls).toBe(lines.length);
    const byAgent = Object.values(cost.byAgent as Record<string, { costUsd: number }>).reduce((s, a) => s + a.costUsd, 0);
    expect(byAgent).toBeCloseTo(expected, 10);
  });

  it("replays a finished run with no HTTP call, to the same ideas and decisions", async () => {
    const before = server.requests.length;
    const res = await runScript("swarm", ["--out", out, "--replay", openaiRun], { env: { OPENAI_API_KEY: "unused" } });
    expect(res.exitCode, res.all).toBe(0);
    expect(server.requests.length).toBe(before);
    const replayRun = runIdOf(res.all ?? "");
    const names = (run: string) => (readJson(run, "ideas.json").ideas as { idea: { Name: string } }[]).map((i) => i.idea.Name);
    expect(names(replayRun)).toEqual(names(openaiRun));
    expect(decisions(replayRun)).toEqual(decisions(openaiRun));
  }, 120_000);

  it("completes with --llm anthropic", async () => {
    const res = await runScript("swarm", ["--out", out, "--llm", "anthropic", "--literature", "local"], { env: { ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: KEY } });
    expect(res.exitCode, res.all).toBe(0);
    const run = runIdOf(res.all ?? "");
    expect(readJson(run, "status.json").status).toBe("completed");
    expect(readJson(run, "cost.json").byAgent.reviewer.calls).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("stops cleanly at a small --budget, keeping what it made", async () => {
    const res = await runScript("swarm", ["--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local", "--budget", "0.001"], { env: openaiEnv() });
    expect(res.exitCode, res.all).toBe(0);
    const run = runIdOf(res.all ?? "");
    const status = readJson(run, "status.json");
    expect(status.status).toBe("budget reached");
    expect(res.all).toMatch(/budget reached in/);
    expect(readdirSync(join(out, run))).toEqual(expect.arrayContaining(["ideas.json", "llm.jsonl", "cost.json", "config.json"]));
    expect(readJson(run, "ideas.json").ideas.length + (readJson(run, "ideas.json").error ? 1 : 0)).toBeGreaterThan(0);
  }, 120_000);

  it("refuses a wrong key before anything is spent", async () => {
    const res = await runScript("swarm", ["--out", out, "--llm", "openai/gpt-4o-mini"], { env: { ...openaiEnv(), OPENAI_API_KEY: "wrong" } });
    expect(res.exitCode).toBe(1);
    expect(res.all).toMatch(/HTTP 401/);
    expect(res.all).toMatch(/check the API key/);
  }, 60_000);
});
