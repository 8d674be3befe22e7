import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";

const KEY = "sk-e2e-abcdefghijklmnopqrstuvwx";
const out = mkdtempSync(join(tmpdir(), "swarm-resume-"));
let server: FakeModelServer;
beforeAll(async () => {
  // Every answer takes a moment, as a real model's does: a kill lands between two answers, not inside one's last
  // millisecond. The introduction is drafted together with the conclusion and the related work: they answer well
  // after it, so the kill when the introduction is written finds them still asked, not answered and unrecorded.
  server = await startFakeModelServer({ apiKey: KEY, delayFor: (body) => (/Write the (conclusion|related) section/.test(JSON.stringify(body)) ? 3000 : 300) });
});
afterAll(async () => {
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

const completions = (list: FakeModelServer["requests"]) => list.filter((r) => r.path.startsWith("/v1/chat/completions")).map((r) => JSON.stringify(r.body));
const env = () => ({ OPENAI_BASE_URL: `${server.url}/v1`, OPENAI_API_KEY: KEY, SWARM_ACK_WAIT_MS: "3000" });

describe("--resume after every process of a swarm was killed", () => {
  it("completes the run, and the model is asked nothing it had answered before the kill", async () => {
    const args = ["--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local", "--reviewers", "2"];
    // Its own process group: the swarm, its node and its nats-server, killed together as by a power cut.
    const first = runScript("swarm", args, { env: env(), detached: true });
    const runLine = await waitForLine(first, /^Run \S+ on template/, 120_000);
    const runId = /^Run (\S+)/.exec(runLine)![1]!;
    await waitForLine(first, /writer@local .*: wrote the introduction/, 120_000);
    process.kill(-first.pid!, "SIGKILL");
    await first;
    const answered = new Set(completions(server.answered));
    const seen = server.requests.length;
    expect(answered.size).toBeGreaterThan(5);
    expect(existsSync(join(out, runId, "status.json"))).toBe(false);

    const res = await runScript("swarm", ["--out", out, "--resume", runId], { env: env() });
    expect(res.exitCode, res.all).toBe(0);
    expect(res.all).toMatch(new RegExp(`Resuming run ${runId}`));
    const status = JSON.parse(readFileSync(join(out, runId, "status.json"), "utf8"));
    expect(status.status, res.all).toBe("completed");
    expect(status.counts).toMatchObject({ novel: 1, experimented: 1, written: 1, decided: 1 });

    const after = completions(server.requests.slice(seen));
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((body) => answered.has(body))).toEqual([]);
    // Nothing before the paper is done again: no experiment run, no idea, no novelty check.
    expect(res.all).not.toMatch(/running run_\d/);
    expect(res.all).not.toMatch(/drafting idea/);
    // The paper goes on where it was: the sections written before the kill are not written again (the last one
    // may be, if the kill came before its step was persisted, and then from the log, at no cost).
    expect(res.all).not.toMatch(/wrote the (title|abstract)\b/);
    expect(res.all).toMatch(/the paper compiles/);
    const llm = readFileSync(join(out, runId, "llm.jsonl"), "utf8").trim().split("\n");
    // The log holds every answer once: those of both lives, none twice.
    expect(llm.length).toBe(answered.size + after.length);
  }, 300_000);

  it("refuses to resume a run that has ended, or one that does not exist", async () => {
    const missing = await runScript("swarm", ["--out", out, "--resume", "20990101-000000-ffff"]);
    expect(missing.exitCode).toBe(2);
    expect(missing.all).toMatch(/no run to resume/);
    const ended = readdirSync(out).find((d) => existsSync(join(out, d, "status.json")))!;
    const again = await runScript("swarm", ["--out", out, "--resume", ended]);
    expect(again.exitCode).toBe(2);
    expect(again.all).toMatch(/has already ended \(completed\); there is nothing to resume/);
  }, 60_000);
});
