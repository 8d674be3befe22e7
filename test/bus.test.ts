import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { publishJob, serveJobs, JobFailedError } from "../bus/workQueue.js";
import { awaitOutcome, publishProgress, watchEvents } from "../bus/events.js";
import { getArtifact, putArtifact } from "../bus/artifacts.js";
import { subjects } from "../bus/subjects.js";
import { Progress, type Review } from "../bus/schemas.js";
import { connectBus } from "../bus/connection.js";
import { startLocalNats } from "../bus/server.js";

const log = pino({ level: "silent" });
const by = { agent: "reviewer", node: "test" };
const review: Review = {
  Summary: "s", Strengths: ["a"], Weaknesses: ["b"], Originality: 2, Quality: 2, Clarity: 3, Significance: 2,
  Questions: [], Limitations: [], Ethical_Concerns: false, Soundness: 2, Presentation: 3, Contribution: 2,
  Overall: 4, Confidence: 3, Decision: "Reject",
};

describe("bus against a real nats-server", () => {
  let env: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    env = await natsForSuite();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("delivers a job to a worker and records its outcome", async () => {
    const worker = serveJobs(env.bus, "review", async (job) => ({ review: { ...review, Summary: job.pdf }, reflections: 1 }), {
      concurrency: 1, by, log,
    });
    await publishJob(env.bus, "review", { jobId: "r1", runId: "run-a", ideaId: "idea_a", pdf: "paper.pdf", reviewer: 0 });
    const outcome = await awaitOutcome(env.bus, "run-a", "review", "r1");
    await worker.stop();
    expect(outcome.ok).toBe(true);
    if (outcome.ok) expect(outcome.result.review.Summary).toBe("paper.pdf");
    expect(outcome.by).toEqual(by);
  });

  it("redelivers a job whose worker failed, and a second worker finishes it", async () => {
    let attempts = 0;
    const flaky = serveJobs(env.bus, "review", async () => {
      attempts++;
      throw new Error("worker crashed");
    }, { concurrency: 1, by: { agent: "reviewer", node: "flaky" }, log });
    await publishJob(env.bus, "review", { jobId: "r2", runId: "run-a", ideaId: "idea_a", pdf: "p", reviewer: 1 });
    while (attempts === 0) await new Promise((r) => setTimeout(r, 50));
    await flaky.stop();
    const healthy = serveJobs(env.bus, "review", async () => ({ review, reflections: 0 }), { concurrency: 1, by, log });
    const outcome = await awaitOutcome(env.bus, "run-a", "review", "r2");
    await healthy.stop();
    expect(outcome.ok).toBe(true);
    expect(outcome.by.node).toBe("test");
  });

  it("reports a job's own failure once, without retrying it", async () => {
    let attempts = 0;
    const worker = serveJobs(env.bus, "review", async () => {
      attempts++;
      throw new JobFailedError("the paper has no text");
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "r3", runId: "run-a", ideaId: "idea_a", pdf: "p", reviewer: 2 });
    const outcome = await awaitOutcome(env.bus, "run-a", "review", "r3");
    await worker.stop();
    expect(outcome).toMatchObject({ ok: false, error: "the paper has no text" });
    expect(attempts).toBe(1);
  });

  it("refuses a malformed job before publishing, and a worker skips malformed messages", async () => {
    await expect(publishJob(env.bus, "review", { jobId: "x", runId: "bad run id", ideaId: "a", pdf: "p", reviewer: 0 })).rejects.toThrow();
    await env.bus.js.publish(subjects.job("run-b", "review"), new TextEncoder().encode('{"nope":1}'));
    let handled = 0;
    const worker = serveJobs(env.bus, "review", async () => {
      handled++;
      return { review, reflections: 0 };
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "r4", runId: "run-b", ideaId: "idea_b", pdf: "p", reviewer: 0 });
    await awaitOutcome(env.bus, "run-b", "review", "r4");
    await worker.stop();
    expect(handled).toBe(1);
  });

  it("addresses each outcome to its job's own subject, and refuses a job id that is not subject tokens", async () => {
    const worker = serveJobs(env.bus, "review", async () => ({ review, reflections: 0 }), { concurrency: 1, by, log });
    for (const id of ["run-e.review.idea_e.0", "run-e.review.idea_e.1", "run-e.review.idea_e.r1.0"]) {
      await publishJob(env.bus, "review", { jobId: id, runId: "run-e", ideaId: "idea_e", pdf: "p", reviewer: 0 });
    }
    const last = await awaitOutcome(env.bus, "run-e", "review", "run-e.review.idea_e.r1.0");
    await worker.stop();
    expect(last.jobId).toBe("run-e.review.idea_e.r1.0");
    const info = await env.bus.jsm.streams.info("SCI_CONV", { subjects_filter: subjects.outcomes("run-e", "review") });
    expect(info.state.subjects).toEqual({
      "sci.run-e.conv.review.run-e.review.idea_e.0": 1,
      "sci.run-e.conv.review.run-e.review.idea_e.1": 1,
      "sci.run-e.conv.review.run-e.review.idea_e.r1.0": 1,
    });
    for (const jobId of ["a b", "a.*", "a.>", "a..b", ""]) {
      await expect(publishJob(env.bus, "review", { jobId, runId: "run-e", ideaId: "idea_e", pdf: "p", reviewer: 0 }), jobId).rejects.toThrow();
    }
  });

  it("does not store a job twice under the same id", async () => {
    const job = { jobId: "dup", runId: "run-c", ideaId: "idea_c", pdf: "p", reviewer: 0 };
    await publishJob(env.bus, "review", job);
    await publishJob(env.bus, "review", job);
    let handled = 0;
    const worker = serveJobs(env.bus, "review", async () => {
      handled++;
      return { review, reflections: 0 };
    }, { concurrency: 2, by, log });
    await awaitOutcome(env.bus, "run-c", "review", "dup");
    await new Promise((r) => setTimeout(r, 500));
    await worker.stop();
    expect(handled).toBe(1);
  });

  it("replays a run's conversation from the stream", async () => {
    await publishProgress(env.bus, { runId: "run-d", by, text: "one" });
    await publishProgress(env.bus, { runId: "run-d", by, text: "two" });
    const stream = await watchEvents(env.bus, subjects.progress("run-d"), Progress);
    const seen: string[] = [];
    for await (const { value } of stream) {
      seen.push(value.text);
      if (seen.length === 2) break;
    }
    await stream.close();
    expect(seen).toEqual(["one", "two"]);
  });

  it("keeps blobs in the object store, over the 1 MiB message cap", async () => {
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    await putArtifact(env.bus, "run-e/idea/big.bin", big);
    const back = await getArtifact(env.bus, "run-e/idea/big.bin");
    expect(back.length).toBe(big.length);
    expect(back[12345]).toBe(big[12345]);
  });
});

describe("local server", () => {
  it("stops its nats-server, and a client then cannot connect", async () => {
    const env = await natsForSuite();
    const { url } = env.server;
    await env.close();
    await expect(connectBus(url)).rejects.toThrow(/cannot connect to NATS/);
  });

  it("says which Debian package to install when nats-server is missing", async () => {
    await expect(startLocalNats({ storeDir: "/tmp/never", binary: "nats-server-that-is-not-there" })).rejects.toThrow(/not installed/);
  });
});
