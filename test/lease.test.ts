import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { connectBus, type Bus } from "../bus/connection.js";
import { LEASE_RENEW_MS, LEASE_TTL_MS, holdRunLease, leaseLapsed, leaseState, type RunLease } from "../bus/lease.js";
import { MAX_ATTEMPTS, publishJob, serveJobs, type Worker } from "../bus/workQueue.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { STREAMS, durableName } from "../bus/subjects.js";
import { review } from "./helpers/review.js";
import { capturingLog, startWorkerProcess, until } from "./helpers/workerProcess.js";
import { waitForLine } from "./helpers/cli.js";

const ACK_WAIT_MS = 1_500;
const silent = pino({ level: "silent" });

let dir: string;
let server: LocalNats;
let bus: Bus;
/** A second swarm's connection. */
let other: Bus;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "swarm-lease-"));
  server = await startLocalNats({ storeDir: join(dir, "nats") });
  bus = await connectBus(server.url, { ackWaitMs: ACK_WAIT_MS, log: silent });
  other = await connectBus(server.url, { log: silent });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});
afterAll(async () => {
  await other?.close();
  await bus?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function worker(node: string) {
  const { log, records } = capturingLog();
  let handled = 0;
  const w: Worker = serveJobs(bus, "review", async () => {
    handled++;
    return { review, reflections: 0 };
  }, { concurrency: 1, by: { agent: "reviewer", node }, log });
  cleanups.push(() => w.stop());
  return { records, handled: () => handled };
}

function hold(on: Bus, runId: string, opts: Partial<Parameters<typeof holdRunLease>[2]> = {}): Promise<RunLease> {
  return holdRunLease(on, runId, { log: silent, ...opts }).then((lease) => {
    cleanups.push(() => lease.stop());
    return lease;
  });
}

const job = (runId: string, jobId: string) => ({ jobId, runId, ideaId: "idea_l", pdf: "p", reviewer: 0 });

describe("a run's lease", () => {
  it("lapses when its swarm is stopped past the TTL, by the clock it is judged by; a --resume then takes it, and the stopped swarm, continued, lets go", async () => {
    const swarm = await startWorkerProcess({ NATS_URL: server.url, WORKER_NODE: "swarm-1", LEASE_RUN: "run-ttl", SERVE: "0" });
    cleanups.push(async () => {
      swarm.child.kill("SIGKILL");
      await swarm.child;
    });
    expect(await leaseState(bus, "run-ttl")).toBe("held");
    swarm.child.kill("SIGSTOP");
    // It was renewed at most LEASE_RENEW_MS before now; a stopped holder does not answer, its connection stays.
    const now = Date.now();
    expect(await leaseState(bus, "run-ttl", now + LEASE_TTL_MS - LEASE_RENEW_MS - 1_000)).toBe("held");
    expect(await leaseLapsed(bus, "run-ttl", now + LEASE_TTL_MS + 1)).toBe(true);
    await expect(hold(bus, "run-ttl", { node: "swarm-2" })).rejects.toThrow(/run run-ttl is driven by a live swarm on swarm-1/);
    await hold(bus, "run-ttl", { node: "swarm-2", now: () => Date.now() + LEASE_TTL_MS + 1 });
    const lostLine = waitForLine(swarm.child, /run run-ttl was taken over by the swarm on swarm-2; this swarm no longer drives it/, 10_000);
    swarm.child.kill("SIGCONT");
    await lostLine;
    expect(await leaseState(other, "run-ttl")).toBe("held");
  });

  it("does not lapse while its holder answers, however old its renewal, and lapses at once when the holder lets go", async () => {
    const first = await hold(other, "run-two", { node: "first" });
    await expect(hold(bus, "run-two", { node: "second" })).rejects.toThrow(/run run-two is driven by a live swarm on first/);
    expect(await leaseState(bus, "run-two", Date.now() + 10 * LEASE_TTL_MS)).toBe("held");
    await first.stop();
    expect(await leaseState(bus, "run-two")).toBe("lapsed");
    await hold(bus, "run-two", { node: "second" });
    expect(await leaseState(other, "run-two")).toBe("held");
  });

  it("keeps a run's jobs waiting while its swarm is gone, through more deliveries than MAX_ATTEMPTS, until a new swarm takes the lease", async () => {
    const swarm = await startWorkerProcess({ NATS_URL: server.url, WORKER_NODE: "swarm-1", LEASE_RUN: "run-gone", SERVE: "0" });
    cleanups.push(async () => {
      swarm.child.kill("SIGKILL");
      await swarm.child;
    });
    expect(await leaseState(bus, "run-gone")).toBe("held");
    swarm.child.kill("SIGKILL");
    await swarm.child;
    expect(await leaseState(bus, "run-gone")).toBe("lapsed");

    const w = worker("node-w");
    await publishJob(bus, "review", job("run-gone", "waiting-1"));
    const waits = () => w.records.filter((r) => r.msg === "review job waits: its run's swarm is gone");
    await until(() => waits().some((r) => (r.delivery as number) > MAX_ATTEMPTS + 1), 30_000, "the job waiting through its deliveries");
    expect(w.handled()).toBe(0);
    expect(w.records.filter((r) => /^run run-gone's swarm is gone; its jobs wait for `npm run swarm -- --resume run-gone`$/.test(r.msg))).toHaveLength(1);

    const resumedAt = Date.now();
    await hold(other, "run-gone", { node: "swarm-2" });
    const outcome = await awaitOutcome(bus, "run-gone", "review", "waiting-1");
    const pickedUp = Date.now() - resumedAt;
    expect(outcome.ok).toBe(true);
    expect(w.handled()).toBe(1);
    expect(w.records.some((r) => r.msg === "run run-gone has its swarm again; serving its jobs")).toBe(true);
    expect(pickedUp).toBeLessThan(ACK_WAIT_MS + 1_500);
    console.info(`lease: the job waited through ${Math.max(...waits().map((r) => r.delivery as number))} deliveries; done ${pickedUp} ms after the new swarm took the lease`);
  });

  it("drops the leftover jobs of a run that has ended", async () => {
    const lease = await hold(other, "run-over");
    await lease.end();
    expect(await leaseState(bus, "run-over")).toBe("ended");
    const w = worker("node-e");
    await publishJob(bus, "review", job("run-over", "leftover-1"));
    await until(() => w.records.some((r) => r.msg === "run run-over has ended; dropping its leftover review job"), 10_000, "the leftover being dropped");
    await sleep(200);
    expect(w.handled()).toBe(0);
    const info = await bus.jsm.consumers.info(STREAMS.jobs.name, durableName("review"));
    expect(info.num_ack_pending + info.num_pending).toBe(0);
  });
});
