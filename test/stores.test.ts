import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { natsForSuite } from "./helpers/nats.js";
import { connectBus } from "../bus/connection.js";
import { startLocalNats } from "../bus/server.js";
import { publishJob, serveJobs } from "../bus/workQueue.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { BUCKETS, STREAMS, subjects } from "../bus/subjects.js";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { JOB_KINDS } from "../bus/schemas.js";
import { review } from "./helpers/review.js";

const log = pino({ level: "silent" });
const by = { agent: "reviewer", node: "test" };
const DAY_NS = 24 * 60 * 60 * 1e9;

describe("bounded streams on a real nats-server", () => {
  let env: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    env = await natsForSuite();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("bounds both streams by age and size, and the jobs stream takes the known kinds only", async () => {
    const jobs = (await env.bus.jsm.streams.info(STREAMS.jobs.name)).config;
    expect([...jobs.subjects].sort()).toEqual(JOB_KINDS.map(subjects.anyJob).sort());
    expect(jobs).toMatchObject({ max_age: 30 * DAY_NS, max_bytes: 1024 ** 3 / 4, discard: "new", retention: "workqueue" });
    const conv = (await env.bus.jsm.streams.info(STREAMS.conversation.name)).config;
    expect(conv).toMatchObject({ max_age: 30 * DAY_NS, max_bytes: 1024 ** 3, discard: "old" });
  });

  it("keeps run state and artifacts a month after their last write, by age and not by size", async () => {
    for (const bucket of [`KV_${BUCKETS.runs}`, `OBJ_${BUCKETS.artifacts}`]) {
      const config = (await env.bus.jsm.streams.info(bucket)).config;
      expect(config.max_age, bucket).toBe(30 * DAY_NS);
      expect(config.max_bytes, bucket).toBe(-1);
    }
  });

  it("refuses a job of an unknown kind at publish, and stores nothing for it", async () => {
    // No stream takes the subject, so nats-server 2.9 has no one to answer the publish: no responders.
    await expect(env.bus.js.publish("sci.run-u.jobs.mine", new TextEncoder().encode("{}"), { timeout: 2_000 })).rejects.toThrow();
    const info = await env.bus.jsm.streams.info(STREAMS.jobs.name, { subjects_filter: "sci.run-u.>" });
    expect(info.state.messages).toBe(0);
  });

  it("drops 1,200 malformed review jobs (more than max_ack_pending) and then handles a good one at once", async () => {
    const junk = new TextEncoder().encode('{"nope":1}');
    const subject = subjects.job("run-j", "review");
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => env.bus.js.publish(subject, i % 2 ? junk : new TextEncoder().encode(`not json ${i}`))));
    let handled = 0;
    const worker = serveJobs(env.bus, "review", async () => {
      handled++;
      return { review, reflections: 0 };
    }, { concurrency: 1, by, log });
    await publishJob(env.bus, "review", { jobId: "good", runId: "run-j", ideaId: "idea_j", pdf: "p", reviewer: 0 });
    const started = Date.now();
    const outcome = await awaitOutcome(env.bus, "run-j", "review", "good");
    const tookMs = Date.now() - started;
    await worker.stop();
    expect(outcome.ok).toBe(true);
    expect(handled).toBe(1);
    // Well under one ack wait (10 s): nothing rejected waited to come back.
    expect(tookMs).toBeLessThan(8_000);
    await new Promise((r) => setTimeout(r, 200));
    expect((await env.bus.jsm.streams.info(STREAMS.jobs.name, { subjects_filter: subject })).state.messages).toBe(0);
    expect((await env.bus.jsm.consumers.info(STREAMS.jobs.name, "jobs-review")).num_ack_pending).toBe(0);
  }, 30_000);
});

describe("buckets made by this release", () => {
  it("are made with their age limit, with nothing to bring up to date", async () => {
    const dir = mkdtempSync(join(tmpdir(), "swarm-stores-"));
    const server = await startLocalNats({ storeDir: join(dir, "nats") });
    const said: string[] = [];
    try {
      const bus = await connectBus(server.url, { log: pino({ level: "info" }, { write: (line: string) => void said.push(line) }) });
      for (const bucket of [`KV_${BUCKETS.runs}`, `OBJ_${BUCKETS.artifacts}`]) expect((await bus.jsm.streams.info(bucket)).config.max_age, bucket).toBe(30 * DAY_NS);
      expect(said.filter((l) => l.includes("keeps entries"))).toEqual([]);
      await bus.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("streams made by an earlier release", () => {
  it("are brought to this release's subjects and limits when a swarm connects", async () => {
    const dir = mkdtempSync(join(tmpdir(), "swarm-stores-"));
    const server = await startLocalNats({ storeDir: join(dir, "nats") });
    try {
      const nc = await connect({ servers: server.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: STREAMS.jobs.name, subjects: ["sci.*.jobs.*"], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
      await jsm.streams.add({ name: STREAMS.conversation.name, subjects: ["sci.*.conv.>"], retention: RetentionPolicy.Limits, storage: StorageType.File });
      // Buckets kept forever, as the release before made them.
      await new Kvm(nc).create(BUCKETS.runs, { history: 1 });
      await new Objm(nc).create(BUCKETS.artifacts);
      await nc.close();
      const bus = await connectBus(server.url, { log });
      const jobs = (await bus.jsm.streams.info(STREAMS.jobs.name)).config;
      expect([...jobs.subjects].sort()).toEqual(JOB_KINDS.map(subjects.anyJob).sort());
      expect(jobs).toMatchObject({ max_age: 30 * DAY_NS, discard: "new" });
      expect((await bus.jsm.streams.info(STREAMS.conversation.name)).config).toMatchObject({ max_age: 30 * DAY_NS, discard: "old" });
      for (const bucket of [`KV_${BUCKETS.runs}`, `OBJ_${BUCKETS.artifacts}`]) expect((await bus.jsm.streams.info(bucket)).config.max_age, bucket).toBe(30 * DAY_NS);
      await bus.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
