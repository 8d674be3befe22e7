import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { RECONNECT_SETTLE_MS, askHolder, connectBus, type Bus } from "../bus/connection.js";
import { MAX_ATTEMPTS, publishJob, serveJobs, type Worker } from "../bus/workQueue.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { ProviderError } from "../agents/llm/errors.js";
import { review } from "./helpers/review.js";
import { subjects } from "../bus/subjects.js";
import { capturingLog, countLines, startWorkerProcess, until, type WorkerProcess } from "./helpers/workerProcess.js";

// Short, so that JetStream hands a silent holder's job to another worker within the test.
const ACK_WAIT_MS = 1_500;
const silent = pino({ level: "silent" });

let dir: string;
let server: LocalNats;
let bus: Bus;
const processes: WorkerProcess[] = [];
const workers: Worker[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "swarm-claims-"));
  server = await startLocalNats({ storeDir: join(dir, "nats") });
  // The first connection creates the consumers, with the short ack wait.
  bus = await connectBus(server.url, { ackWaitMs: ACK_WAIT_MS, log: silent });
});
afterEach(async () => {
  await Promise.allSettled(workers.splice(0).map((w) => w.stop()));
  for (const p of processes.splice(0)) {
    p.child.kill("SIGCONT");
    p.child.kill("SIGKILL");
    await p.child;
  }
});
afterAll(async () => {
  await bus?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function workerProcess(node: string, handlerMs: number): Promise<{ proc: WorkerProcess; count: string }> {
  const count = join(dir, `${node}.count`);
  const proc = await startWorkerProcess({ NATS_URL: server.url, WORKER_NODE: node, COUNT_FILE: count, HANDLER_MS: String(handlerMs) });
  processes.push(proc);
  return { proc, count };
}

/** A worker in this process, with its log and its handler's calls for the test to read. */
function localWorker(node: string, handle: (attempt: number) => Promise<void> = async () => undefined) {
  const { log, records } = capturingLog();
  const attempts: number[] = [];
  workers.push(
    serveJobs(bus, "review", async (_job, ctx) => {
      attempts.push(ctx.attempt);
      await handle(ctx.attempt);
      return { review, reflections: 0 };
    }, { concurrency: 1, by: { agent: "reviewer", node }, log }),
  );
  return { records, attempts };
}

const job = (runId: string, jobId: string) => ({ jobId, runId, ideaId: "idea_c", pdf: "p", reviewer: 0 });

describe("a job belongs to the worker that claimed it", () => {
  it("stays with a holder that is only stopped: the worker given the redelivery leaves it, and it is done once", async () => {
    const a = await workerProcess("node-a", 4_000);
    await publishJob(bus, "review", job("run-s", "stopped-1"));
    await until(() => countLines(a.count).includes("node-a start stopped-1"), 10_000, "node-a taking the job");
    // Node B joins once A holds the job, so that B only ever gets A's job redelivered.
    const b = localWorker("node-b");
    const stoppedAt = Date.now();
    a.proc.child.kill("SIGSTOP");
    const waitsOnA = () => b.records.filter((r) => r.msg === "review job waits: a worker on node-a is doing it (it does not answer, but its connection is open)");
    await until(() => waitsOnA().length >= 1, 10_000, "node-b being given the stopped holder's job");
    const firstRedelivery = Date.now() - stoppedAt;
    await until(() => waitsOnA().length >= 2, 10_000, "a second redelivery");
    expect(await askHolder(bus, a.proc.instanceId, "run-s.claim.review.stopped-1")).toBe("silent");
    a.proc.child.kill("SIGCONT");
    const outcome = await awaitOutcome(bus, "run-s", "review", "stopped-1");
    const stoppedFor = Date.now() - stoppedAt;
    expect(outcome.by.node).toBe("node-a");
    // Any redelivery still under way finds the job done.
    await sleep(2 * ACK_WAIT_MS);
    expect(b.attempts).toEqual([]);
    expect(countLines(a.count)).toEqual(["node-a start stopped-1", "node-a end stopped-1"]);
    console.info(`SIGSTOP: first redelivery to node-b ${firstRedelivery} ms after the stop; node-b left the job ${waitsOnA().length} times; done by node-a ${stoppedFor} ms after the stop`);
  });

  it("is taken over at its first redelivery when its holder was killed, without waiting for any TTL", async () => {
    const a = await workerProcess("node-c", 60_000);
    await publishJob(bus, "review", job("run-k", "killed-1"));
    await until(() => countLines(a.count).includes("node-c start killed-1"), 10_000, "node-c taking the job");
    const b = localWorker("node-d");
    const killedAt = Date.now();
    a.proc.child.kill("SIGKILL");
    await a.proc.child;
    expect(await askHolder(bus, a.proc.instanceId, "run-k.claim.review.killed-1")).toBe("gone");
    const outcome = await awaitOutcome(bus, "run-k", "review", "killed-1");
    const takeover = Date.now() - killedAt;
    expect(outcome.by.node).toBe("node-d");
    // The killed holder's attempt counts: this is the second.
    expect(b.attempts).toEqual([2]);
    expect(b.records.some((r) => r.msg === "taking over a review job from node-c, whose worker is gone")).toBe(true);
    // One ack wait for JetStream to redeliver, then no more than the time to ask and claim.
    expect(takeover).toBeLessThan(ACK_WAIT_MS + 1_500);
    console.info(`kill -9: node-d finished the job ${takeover} ms after node-c was killed (ack wait ${ACK_WAIT_MS} ms)`);
  });

  it("is stopped, and not concluded, by a holder that finds its claim taken over", async () => {
    const a = await workerProcess("node-e", 3_000);
    await publishJob(bus, "review", job("run-t", "taken-1"));
    await until(() => countLines(a.count).includes("node-e start taken-1"), 10_000, "node-e taking the job");
    // What a worker that judged node-e gone writes. This connection does not hold the job, so when it comes
    // back, the worker given it (node-e, the only one) takes it up again as its second attempt.
    const entry = await bus.kv.get("run-t.claim.review.taken-1");
    await bus.kv.update("run-t.claim.review.taken-1", JSON.stringify({ holder: bus.instanceId, node: "elsewhere", at: new Date().toISOString(), failures: 1 }), entry!.revision);
    await until(() => countLines(a.count).includes("node-e aborted taken-1"), 5_000, "node-e stopping the job");
    const outcome = await awaitOutcome(bus, "run-t", "review", "taken-1");
    expect(outcome.ok).toBe(true);
    await sleep(ACK_WAIT_MS);
    expect(countLines(a.count)).toEqual(["node-e start taken-1", "node-e aborted taken-1", "node-e start taken-1", "node-e end taken-1"]);
    const info = await bus.jsm.streams.info("SCI_CONV", { subjects_filter: subjects.outcome("run-t", "review", "taken-1") });
    // One outcome, published under the worker process's own name (it has no credentials: "local").
    expect(info.state.subjects).toEqual({ [subjects.outcome("run-t", "review", "taken-1", "local")]: 1 });
  });

  it("bounds attempts itself: retryable failures, and holders that died with the job, end it after MAX_ATTEMPTS", async () => {
    // Two jobs with MAX_ATTEMPTS - 1 failed attempts behind them: one whose holder let go after a failure, one whose holder died.
    const at = new Date().toISOString();
    await bus.kv.put("run-m.claim.review.failing-1", JSON.stringify({ holder: null, node: "n", at, failures: MAX_ATTEMPTS - 1 }));
    await bus.kv.put("run-m.claim.review.poison-1", JSON.stringify({ holder: "0000000000000000deadbeef", node: "crashed", at, failures: MAX_ATTEMPTS - 1 }));
    const b = localWorker("node-g", async () => {
      throw new ProviderError("openai/gpt: HTTP 503: overloaded", 503);
    });
    await publishJob(bus, "review", job("run-m", "failing-1"));
    await publishJob(bus, "review", job("run-m", "poison-1"));
    const failing = await awaitOutcome(bus, "run-m", "review", "failing-1");
    const poison = await awaitOutcome(bus, "run-m", "review", "poison-1");
    expect(failing).toMatchObject({ ok: false, failure: { kind: "provider", retryable: true } });
    expect(poison).toMatchObject({
      ok: false,
      failure: { kind: "environment", retryable: false, message: `the review job was taken up ${MAX_ATTEMPTS} times, and each time its worker died before it finished` },
    });
    expect(b.attempts).toEqual([MAX_ATTEMPTS]);
  });

  it("judges no holder gone right after its own connection came back: the others are still coming back", async () => {
    const nobody = "0000000000000000deadbeef";
    expect(await askHolder(bus, nobody, "run-r.claim.any")).toBe("gone");
    await server.stop();
    server = await startLocalNats({ storeDir: join(dir, "nats"), port: server.port });
    await until(() => bus.reconnectedAt() > 0, 10_000, "this connection coming back");
    expect(await askHolder(bus, nobody, "run-r.claim.any")).toBe("silent");
    expect(await askHolder(bus, nobody, "run-r.claim.any", Date.now() + RECONNECT_SETTLE_MS)).toBe("gone");
  });
});
