import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";

const KEY = "sk-ensemble-abcdefghijklmnopqrstu";
const out = mkdtempSync(join(tmpdir(), "swarm-ensemble-"));
let model: FakeModelServer;
beforeAll(async () => {
  // Reviews take a few seconds, so that a reviewer can be killed in the middle of one.
  model = await startFakeModelServer({ apiKey: KEY, delayFor: (body) => (JSON.stringify(body.messages ?? "").includes("### persona") ? 2500 : 0) });
});
afterAll(async () => {
  await model?.close();
  rmSync(out, { recursive: true, force: true });
});

describe("a K=5 review ensemble across two reviewer processes", () => {
  it("completes with reviews from both, and meets its quorum when one is killed mid-review", async () => {
    const env = { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: KEY, SWARM_ACK_WAIT_MS: "3000" };
    const swarm = runScript("swarm", ["--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local", "--reviewers", "5", "--roles", "ideator,critic,coder,writer,areaChair"], { env });
    const url = (await waitForLine(swarm, /^NATS: /)).split(/\s+/)[1]!;
    const a = runScript("node", ["--roles", "reviewer=1", "--name", "node-a"], { env: { ...env, NATS_URL: url } });
    const b = runScript("node", ["--roles", "reviewer=2", "--name", "node-b"], { env: { ...env, NATS_URL: url } });
    // Node A finishes one review, then dies while reading its second paper.
    await waitForLine(swarm, /reviewer@node-a .*: Overall/, 120_000);
    await waitForLine(swarm, /reviewer@node-a .*is reading the paper/, 120_000).catch(() => undefined);
    a.kill("SIGKILL");
    const res = await swarm;
    b.kill("SIGINT");
    await Promise.allSettled([a, b]);

    expect(res.exitCode, res.all).toBe(0);
    const runId = /^Run (\S+) on template/m.exec(res.all ?? "")![1]!;
    const { ideaId } = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")).ideas[0];
    const reviews = readdirSync(join(out, runId, ideaId, "reviews")).map((f) => JSON.parse(readFileSync(join(out, runId, ideaId, "reviews", f), "utf8")));
    expect(reviews).toHaveLength(5);
    const nodes = reviews.map((r) => r.node);
    expect(nodes).toContain("node-a");
    expect(nodes).toContain("node-b");
    const meta = JSON.parse(readFileSync(join(out, runId, ideaId, "meta_review.json"), "utf8"));
    expect(meta.reviews).toBe(5);
    // Node A took more review jobs than it finished: JetStream gave the one it died on to node B.
    const startedOnA = (res.all ?? "").split("\n").filter((l) => /reviewer@node-a .*is reading the paper/.test(l)).length;
    const finishedOnA = nodes.filter((n) => n === "node-a").length;
    expect(startedOnA).toBeGreaterThan(finishedOnA);
  }, 180_000);
});
