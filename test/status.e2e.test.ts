import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { runScript } from "./helpers/cli.js";
import { RunConfig } from "../bus/schemas.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { advertiseNode } from "../agents/runtime/nodeRegistry.js";
import { SNAPSHOT_VERSION, snapshotKey } from "../agents/runtime/snapshots.js";
import { addSpend } from "../agents/llm/budget.js";
import { publishJob, serveJobs } from "../bus/workQueue.js";
import { holdRunLease } from "../bus/lease.js";

const log = pino({ level: "silent" });
const runId = "20261201-120000-abcd";
let nats: Awaited<ReturnType<typeof natsForSuite>>;
beforeAll(async () => {
  nats = await natsForSuite();
});
afterAll(async () => {
  await nats?.close();
});

describe("npm run status", () => {
  it("lists the nodes alive with the jobs in their hands, and each run's lease, queue, ideas in flight and spend", async () => {
    const config = RunConfig.parse({
      runId, template: "nanofit", profile: "full", ideas: 1, reviewers: 2, quorum: 2, reviewDeadlineMs: 60_000, maxRuns: 2, maxFixes: 1,
      maxReflections: 1, maxRevisions: 1, revisionRounds: 0, fewShot: 0, noveltyRounds: 1, reviewReflections: 1, citeRounds: 1,
      experimentTimeoutMs: 60_000, literatureWaitS: 5, llm: { provider: "offline", model: "offline" }, roleLlm: {}, literature: "local",
      startedAt: "2026-12-01T12:00:00.000Z",
    });
    await putRunConfig(nats.bus, config);
    const lease = await holdRunLease(nats.bus, runId, { log, node: "lab-laptop" });
    await addSpend(nats.bus, runId, 0.125);
    // A run's pipeline with its idea in the middle of writing (the snapshot fixture of this release).
    await nats.bus.kv.put(snapshotKey(runId, "pipeline"), readFileSync(new URL(`./fixtures/snapshots/pipeline.v${SNAPSHOT_VERSION}.json`, import.meta.url), "utf8"));
    const advert = await advertiseNode(nats.bus, { nodeId: "gpu-box-1", roles: { reviewer: 2 }, gpus: [], startedAt: new Date().toISOString() }, log);
    // One review job in a reviewer's hands (its handler waits), one still queued.
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let started = () => {};
    const inHand = new Promise<void>((r) => (started = r));
    const worker = serveJobs(nats.bus, "review", async () => {
      started();
      await held;
      throw new Error("not reviewed");
    }, { concurrency: 1, by: { agent: "reviewer", node: "gpu-box-1" }, log });
    for (const i of [0, 1]) await publishJob(nats.bus, "review", { jobId: `${runId}.review.alpha.${i}`, runId, ideaId: "alpha", pdf: "p.pdf", reviewer: i });
    await inHand;

    const res = await runScript("status", [], { env: { NATS_URL: nats.server.url } });
    expect(res.exitCode, res.all).toBe(0);
    expect(res.all).toMatch(/nodes alive: 1/);
    expect(res.all).toMatch(new RegExp(`gpu-box-1 on \\S+: reviewer=2; seen \\d+ s ago; holds ${runId}_review_alpha_\\d`));
    expect(res.all).toMatch(new RegExp(`${runId} \\(nanofit, started 2026-12-01T12:00:00.000Z\\): swarm held; pipeline finishing; jobs queued: review 2; spent \\$0\\.1250`));
    expect(res.all).toMatch(/^ {4}alpha: writing$/m);
    const json = JSON.parse((await runScript("status", ["--json"], { env: { NATS_URL: nats.server.url } })).stdout as string);
    expect(json.runs[0]).toMatchObject({ runId, lease: "held", queued: { review: 2 }, ideas: [{ ideaId: "alpha", state: "writing" }] });

    release();
    await worker.stop();
    await advert.stop();
    await lease.stop();
  }, 60_000);

  it("says how to point it at a swarm", async () => {
    const res = await runScript("status", [], { env: { NATS_URL: "" } });
    expect(res.exitCode).toBe(2);
    expect(res.all).toMatch(/NATS_URL is not set/);
  }, 30_000);
});
