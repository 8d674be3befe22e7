import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { publishJob, serveJobs, JobFailedError } from "../bus/workQueue.js";
import { publishProgress, watchEvents } from "../bus/events.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { getArtifact, getDirectory, putArtifact } from "../bus/artifacts.js";
import { followStored } from "../bus/storedReads.js";
import { BUCKET_STREAMS, STREAMS, durableName, subjects } from "../bus/subjects.js";
import { Progress } from "../bus/schemas.js";
import { review } from "./helpers/review.js";
import { connectBus, describeBusStatus, type BusStatus } from "../bus/connection.js";
import { startLocalNats } from "../bus/server.js";
import { isTransientBusError, retryBus } from "../bus/retryBus.js";
import { BusError } from "../bus/errors.js";
import { ModelBehaviorError, ProviderError } from "../agents/llm/errors.js";
import { errors as natsErrors, NoRespondersError, RequestError } from "@nats-io/transport-node";
import { z } from "zod";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const log = pino({ level: "silent" });
const by = { agent: "reviewer", node: "test" };

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
      throw new BusError("the worker lost the bus");
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

  it("stops without waiting out its open pull, and a job that reaches the pull left behind goes back to the queue at once", async () => {
    let handledByLeaving = 0;
    const leaving = serveJobs(env.bus, "review", async () => (handledByLeaving++, { review, reflections: 0 }), { concurrency: 1, by: { agent: "reviewer", node: "leaving" }, log });
    const waiting = async () => (await env.bus.jsm.consumers.info(STREAMS.jobs.name, durableName("review"))).num_waiting;
    await vi.waitFor(async () => expect(await waiting()).toBeGreaterThan(0));
    await leaving.stop();
    // Stopped while the server still holds its pull (it expires 2 s after it was made): the stop did not wait for it.
    expect(await waiting(), "the pull is still open on the server").toBeGreaterThan(0);
    await publishJob(env.bus, "review", { jobId: "r-late", runId: "run-a", ideaId: "idea_a", pdf: "p", reviewer: 0 });
    const staying = serveJobs(env.bus, "review", async () => ({ review, reflections: 0 }), { concurrency: 1, by: { agent: "reviewer", node: "staying" }, log });
    // Well inside the ack wait (10 s), which a job left unanswered in that pull would have waited out.
    const outcome = await Promise.race([
      awaitOutcome(env.bus, "run-a", "review", "r-late"),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the job was not back on the queue within 5 s")), 5_000)),
    ]);
    await staying.stop();
    expect(outcome.by.node).toBe("staying");
    expect(handledByLeaving).toBe(0);
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
    expect(outcome).toMatchObject({ ok: false, error: "the paper has no text", failure: { kind: "internal", retryable: false, message: "the paper has no text" } });
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
      "sci.run-e.conv.review.local.run-e.review.idea_e.0": 1,
      "sci.run-e.conv.review.local.run-e.review.idea_e.1": 1,
      "sci.run-e.conv.review.local.run-e.review.idea_e.r1.0": 1,
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

  it("reads the conversation and the object store by sequence, with no consumer, woken by each message said", async () => {
    await publishProgress(env.bus, { runId: "run-s", by, text: "said before" });
    // A poll too slow for the test to wait out: the live message must come by the wake-up.
    const follower = followStored(env.bus, STREAMS.conversation.name, subjects.progress("run-s"), { pollMs: 600_000 });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const m of follower) {
        seen.push(Progress.parse(JSON.parse(new TextDecoder().decode(m.data))).text);
        if (seen.length === 2) break;
      }
    })();
    await vi.waitFor(() => expect(seen).toEqual(["said before"]));
    expect((await env.bus.jsm.streams.info(STREAMS.conversation.name)).state.consumer_count, "while it reads").toBe(0);
    await publishProgress(env.bus, { runId: "run-s", by, text: "said live" });
    await reading;
    await follower.close();
    expect(seen).toEqual(["said before", "said live"]);

    const blob = new Uint8Array(200 * 1024).map((_, i) => i % 13);
    await putArtifact(env.bus, "run-s/idea/a.bin", blob);
    await putArtifact(env.bus, "run-s/idea/sub/b.txt", "bee");
    const dir = mkdtempSync(join(tmpdir(), "swarm-mirror-"));
    try {
      expect((await getDirectory(env.bus, "run-s/idea", dir)).map((f) => f.slice(dir.length + 1)).sort()).toEqual(["a.bin", "sub/b.txt"]);
      expect(readFileSync(join(dir, "sub", "b.txt"), "utf8")).toBe("bee");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const name of [STREAMS.conversation.name, BUCKET_STREAMS.artifacts.name, BUCKET_STREAMS.runs.name]) {
      expect((await env.bus.jsm.streams.info(name)).state.consumer_count, name).toBe(0);
    }
  });

  it("refuses an artifact whose bytes do not match its digest", async () => {
    await putArtifact(env.bus, "run-s/idea/c.txt", "the real text");
    const info = (await env.bus.obj.info("run-s/idea/c.txt"))!;
    // Anyone who may upload may also write a meta record by hand: one that names another digest.
    const meta = `${BUCKET_STREAMS.artifacts.subjects}.M.${Buffer.from("run-s/idea/c.txt").toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;
    const record = (await env.bus.jsm.streams.getMessage(BUCKET_STREAMS.artifacts.name, { last_by_subj: meta }))!.json<{ digest: string }>();
    expect(record.digest).toBe(info.digest);
    await env.bus.js.publish(meta, JSON.stringify({ ...record, digest: `SHA-256=${Buffer.alloc(32, 1).toString("base64url")}=` }));
    await expect(getArtifact(env.bus, "run-s/idea/c.txt")).rejects.toThrow(/damaged in the object store: its digest does not match/);
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

describe("retrying bus operations across an outage", () => {
  const noSleep = () => {
    const pauses: number[] = [];
    return { pauses, sleep: async (ms: number) => void pauses.push(ms) };
  };

  it("runs an operation again while the bus is away, with growing pauses, until it goes through", async () => {
    const { pauses, sleep } = noSleep();
    let calls = 0;
    const value = await retryBus("test op", async () => {
      calls++;
      if (calls === 1) throw new natsErrors.TimeoutError();
      if (calls === 2) throw new RequestError("no responders", { cause: new NoRespondersError("$JS.API.INFO") });
      return "stored";
    }, { sleep });
    expect(value).toBe("stored");
    expect(calls).toBe(3);
    expect(pauses).toHaveLength(2);
    expect(pauses[1]!).toBeGreaterThan(pauses[0]!);
  });

  it("does not retry a real error: a schema failure, a closed connection, a missing object", async () => {
    const { pauses, sleep } = noSleep();
    for (const err of [
      (() => { try { z.object({ a: z.string() }).parse({}); } catch (e) { return e; } })(),
      new natsErrors.ClosedConnectionError(),
      new BusError("artifact x is not in the object store"),
    ]) {
      let calls = 0;
      await expect(retryBus("test op", async () => {
        calls++;
        throw err;
      }, { sleep })).rejects.toBe(err);
      expect(calls).toBe(1);
      expect(isTransientBusError(err)).toBe(false);
    }
    expect(pauses).toEqual([]);
  });

  it("gives up after its bound with a BusError that says what failed, and stops when aborted", async () => {
    let clock = 0;
    const sleep = async (ms: number) => void (clock += ms);
    const failing = async () => {
      throw new natsErrors.TimeoutError();
    };
    await expect(retryBus("upload of a/b", failing, { sleep, now: () => clock, maxWaitMs: 60_000 })).rejects.toThrow(
      /upload of a\/b failed for 60 s while NATS was unreachable/,
    );
    const controller = new AbortController();
    let calls = 0;
    const aborted = retryBus("publish", async () => {
      if (++calls === 3) controller.abort();
      throw new natsErrors.TimeoutError();
    }, { sleep: async () => undefined, signal: controller.signal });
    await expect(aborted).rejects.toThrow(/stopped while retrying publish/);
    expect(calls).toBe(3);
  });

  it("rides out a restart of the server: publishes, uploads, jobs and watchers go on, nothing twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "swarm-outage-"));
    const storeDir = join(dir, "nats");
    let server = await startLocalNats({ storeDir });
    const statuses: BusStatus[] = [];
    const bus = await connectBus(server.url, { log, onStatus: (s) => statuses.push(s) });
    try {
      const worker = serveJobs(bus, "review", async (job) => ({ review: { ...review, Summary: job.pdf }, reflections: 0 }), { concurrency: 1, by, log });
      const seen: string[] = [];
      const watcher = await watchEvents(bus, subjects.progress("run-o"), Progress);
      const reading = (async () => {
        for await (const { value } of watcher) seen.push(value.text);
      })();
      const outcome = awaitOutcome(bus, "run-o", "review", "o1");
      await publishProgress(bus, { runId: "run-o", by, text: "before" });
      await putArtifact(bus, "run-o/idea/before.txt", "before");
      while (!seen.includes("before")) await new Promise((r) => setTimeout(r, 20));

      await server.stop();
      while (!statuses.some((s) => s.type === "lost")) await new Promise((r) => setTimeout(r, 20));
      const during = Promise.all([
        publishProgress(bus, { runId: "run-o", by, text: "during" }),
        putArtifact(bus, "run-o/idea/during.txt", "during"),
        publishJob(bus, "review", { jobId: "o1", runId: "run-o", ideaId: "idea_o", pdf: "written during the outage", reviewer: 0 }),
      ]);
      await new Promise((r) => setTimeout(r, 3_000));
      server = await startLocalNats({ storeDir, port: server.port });
      await during;

      const done = await outcome;
      expect(done.ok && done.result.review.Summary).toBe("written during the outage");
      expect(new TextDecoder().decode(await getArtifact(bus, "run-o/idea/during.txt"))).toBe("during");
      expect(new TextDecoder().decode(await getArtifact(bus, "run-o/idea/before.txt"))).toBe("before");
      await publishProgress(bus, { runId: "run-o", by, text: "after" });
      while (!seen.includes("after")) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual(["before", "during", "after"]);
      const back = statuses.find((s) => s.type === "back");
      expect(back && describeBusStatus(back)).toMatch(/^NATS back after \d+ s$/);
      expect(describeBusStatus(statuses.find((s) => s.type === "lost")!)).toBe("NATS connection lost; reconnecting (the run waits)…");
      await watcher.close();
      await reading;
      await worker.stop();
    } finally {
      await bus.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("typed failures decide a job's fate", () => {
  let env: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    env = await natsForSuite();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("redelivers a job whose provider failed with a retryable error, and its outcome is the second try's", async () => {
    const deliveries: number[] = [];
    const worker = serveJobs(env.bus, "review", async (_job, ctx) => {
      deliveries.push(ctx.attempt);
      if (ctx.attempt === 1) throw new ProviderError("openai/gpt: HTTP 503: overloaded", 503);
      return { review, reflections: 0 };
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "t1", runId: "run-t", ideaId: "idea_t", pdf: "p", reviewer: 0 });
    const outcome = await awaitOutcome(env.bus, "run-t", "review", "t1");
    await worker.stop();
    expect(outcome.ok).toBe(true);
    expect(deliveries).toEqual([1, 2]);
    // One outcome on the job's subject: the retry left no failed one behind.
    const info = await env.bus.jsm.streams.info("SCI_CONV", { subjects_filter: subjects.outcome("run-t", "review", "t1") });
    expect(info.state.messages).toBe(1);
  });

  it("ends a job at once on a failure that is not retryable, with whose fault it was", async () => {
    const deliveries: number[] = [];
    const worker = serveJobs(env.bus, "review", async (_job, ctx) => {
      deliveries.push(ctx.attempt);
      throw new ModelBehaviorError("the model gave no usable review after 2 repair turns", { hint: "a stronger model" });
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "t2", runId: "run-t", ideaId: "idea_t", pdf: "p", reviewer: 1 });
    const outcome = await awaitOutcome(env.bus, "run-t", "review", "t2");
    // Long enough for a redelivery (the first waits a second) to have come, had there been one.
    await new Promise((r) => setTimeout(r, 1_500));
    await worker.stop();
    expect(outcome).toMatchObject({
      ok: false,
      error: "the model gave no usable review after 2 repair turns",
      failure: { kind: "model", retryable: false, message: "the model gave no usable review after 2 repair turns", hint: "a stronger model" },
    });
    expect(deliveries).toEqual([1]);
  });

  it("ends a job on a provider's refusal (a bad key) without retrying, and the JobFailedError of an agent carries its cause's failure", async () => {
    const deliveries: number[] = [];
    const worker = serveJobs(env.bus, "review", async (_job, ctx) => {
      deliveries.push(ctx.attempt);
      const cause = new ProviderError("openai/gpt: HTTP 401: bad key", 401, { hint: "check the API key" });
      throw new JobFailedError(`reviewer 2 could not review idea_t: ${cause.message}`, cause.toFailure(), { cause });
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "t3", runId: "run-t", ideaId: "idea_t", pdf: "p", reviewer: 2 });
    const outcome = await awaitOutcome(env.bus, "run-t", "review", "t3");
    await worker.stop();
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.failure).toEqual({ kind: "provider", retryable: false, message: "reviewer 2 could not review idea_t: openai/gpt: HTTP 401: bad key", hint: "check the API key" });
    expect(deliveries).toEqual([1]);
  });
});
