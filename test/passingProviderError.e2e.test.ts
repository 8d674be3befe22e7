import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";

const KEY = "sk-e2e-abcdefghijklmnopqrstuvwx";
/** The provider tries each call twice (SWARM_LLM_RETRIES=1): three 503s outlast one call's tries, and the job's first delivery. */
const OUTAGE = 3;
const out = mkdtempSync(join(tmpdir(), "swarm-passing-"));
let server: FakeModelServer;
let refused = 0;
const isCritic = (body: Record<string, unknown>) => JSON.stringify(body.messages ?? []).includes("judging whether a research idea is novel");

beforeAll(async () => {
  server = await startFakeModelServer({
    apiKey: KEY,
    stepFor: (body) => (isCritic(body) && refused < OUTAGE ? (refused++, { status: 503, error: "the server is overloaded" }) : undefined),
  });
});
afterAll(async () => {
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

describe("a provider error that passes", () => {
  it("retries the critic's job by redelivery, and the idea goes on to its decision", async () => {
    const res = await runScript("swarm", ["--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local"], {
      env: { OPENAI_BASE_URL: `${server.url}/v1`, OPENAI_API_KEY: KEY, SWARM_LLM_RETRIES: "1" },
    });
    expect(res.exitCode, res.all).toBe(0);
    const runId = /^Run (\S+) on template/m.exec(res.all ?? "")?.[1] ?? "";
    const readJson = (...p: string[]) => JSON.parse(readFileSync(join(out, runId, ...p), "utf8"));
    expect(refused).toBe(OUTAGE);
    // The critic asked again after the outage: more critic requests than the ones refused.
    expect(server.requests.filter((r) => isCritic(r.body)).length).toBeGreaterThan(OUTAGE);
    expect(res.all).toMatch(/novelty job failed \(provider\); it will be tried again \(attempt 2 of/);
    const ideas = readJson("ideas.json").ideas as { status: string; verdict?: { verdict: string } }[];
    expect(ideas.map((i) => i.status)).toEqual(["accepted"]);
    expect(readJson("status.json").status).toBe("completed");
  }, 180_000);
});
