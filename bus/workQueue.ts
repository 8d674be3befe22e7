import { JetStreamError, type JsMsg } from "@nats-io/jetstream";
import type { KvEntry } from "@nats-io/kv";
import { errors as natsErrors } from "@nats-io/transport-node";
import { z } from "zod";
import { ACK_WAIT_MS, askHolder, isKvConflict, type Bus } from "./connection.js";
import { leaseState } from "./lease.js";
import { STREAMS, durableName, kvKeys, subjects } from "./subjects.js";
import { jobSchemas, type Actor, type Job, type JobInput, type JobKind, type JobResult, resultSchemas } from "./schemas.js";
import { publishOutcome } from "./events.js";
import { isTransientBusError, retryBus } from "./retryBus.js";
import type { Logger } from "./logger.js";
import { JobFailedError, failureOf, type Failure } from "./errors.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Puts a job on its work queue. The job id is the msgID, so publishing it again is harmless. */
export async function publishJob<K extends JobKind>(bus: Bus, kind: K, job: JobInput<K>): Promise<void> {
  const parsed = jobSchemas[kind].parse(job);
  const subject = subjects.job(parsed.runId, kind);
  const data = enc.encode(JSON.stringify(parsed));
  await retryBus(`publish of ${kind} job ${parsed.jobId}`, () => bus.js.publish(subject, data, { msgID: parsed.jobId }), { log: bus.log });
}

export interface JobContext {
  /** Aborted when the worker stops, or when another worker took the job over; long work should pass it on. */
  signal: AbortSignal;
  /**
   * Which attempt at the job this is (1 the first time): a retry after a retryable failure and a takeover
   * from a worker that died count, waiting does not.
   */
  attempt: number;
  /** Which of the worker's parallel slots took the job (a GPU node runs one slot per GPU). */
  slot: number;
  log: Logger;
}

export type JobHandler<K extends JobKind> = (job: Job<K>, ctx: JobContext) => Promise<JobResult<K>>;

/** A job's failure, carrying the Failure of its cause: retried by redelivery when that is retryable, else final. */
export { JobFailedError };

/** How long a retryable failure waits before the job is tried again: doubling from a second, at most half a minute. */
export function redeliveryDelayMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** (attempt - 1));
}

/**
 * How many times a job is taken up before its failure is final. A retryable failure uses one, and so does a
 * worker that died holding it (so a job that kills its worker each time ends); waiting for a run's swarm or
 * for a slow holder does not, which is why JetStream's own delivery count is not bounded (ensureTopology).
 */
export const MAX_ATTEMPTS = 5;

const NATS_ERRORS = [...Object.values(natsErrors), JetStreamError];

/** What a handler's error says about its job. The NATS client's errors are the bus's; retried while the bus is only away. */
function jobFailureOf(err: unknown): Failure {
  if (isTransientBusError(err)) return { kind: "bus", retryable: true, message: (err as Error).message };
  if (NATS_ERRORS.some((E) => err instanceof E)) return { kind: "bus", retryable: false, message: (err as Error).message };
  return failureOf(err);
}

const doneKey = kvKeys.done;
const claimKey = kvKeys.claim;

/** `<runId>.claim.<kind>.<jobId>` in KV: who is doing the job. Written by create or compare-and-set only. */
export const Claim = z.object({
  /** The holding connection's instanceId; null once it let go (a failure to retry, a worker leaving). */
  holder: z.string().min(1).nullable(),
  node: z.string(),
  at: z.iso.datetime(),
  /** Attempts that ended without an outcome. */
  failures: z.number().int().min(0),
});
export type Claim = z.infer<typeof Claim>;

export function readClaim(entry: KvEntry | null): Claim | undefined {
  if (!entry || entry.operation !== "PUT") return undefined;
  try {
    return Claim.safeParse(entry.json()).data;
  } catch {
    return undefined;
  }
}

/** Per connection, the runs reported as waiting for their swarm, so that each is reported once. */
const reportedLapsed = new WeakMap<Bus, Set<string>>();

export interface Worker {
  stop(): Promise<void>;
}

export interface ServeOptions<K extends JobKind = JobKind> {
  concurrency: number;
  /**
   * Why this worker would rather another took the job (it is handed back at once), or undefined to take it. Asked
   * for the first DECLINES deliveries only: a job nobody else takes is done here after all.
   */
  decline?: (job: Job<K>) => Promise<string | undefined>;
  by: Actor;
  log: Logger;
  /** The clock leases and claims are judged by. */
  now?: () => number;
}

/**
 * Serves one job kind with `concurrency` parallel slots on the kind's durable pull consumer. A job is
 * validated, then handled only if its run's swarm holds the run's lease (or no lease was ever taken) and
 * this worker wins the job's claim: a claim held by a worker that is still there, however slow, makes the job
 * wait; one held by a worker that is gone is taken over. While the job is handled, `working()` keeps it
 * ours and the claim is refreshed; a worker that finds its claim taken over stops the job and publishes
 * nothing. The outcome is published on the conversation stream, then the job is acked. A job whose outcome
 * is already recorded is acked without being redone. A job that waits comes back after the consumer's ack
 * wait.
 */
/**
 * Deliveries of a job that a worker may hand back (ServeOptions.decline), each time a little later (0.5 s, 1 s, …,
 * about 10 s in all): long enough for another worker to finish the job it is busy with and take this one.
 */
export const DECLINES = 6;
const DECLINE_STEP_MS = 500;

export function serveJobs<K extends JobKind>(bus: Bus, kind: K, handler: JobHandler<K>, opts: ServeOptions<K>): Worker {
  const controller = new AbortController();
  // A pull waits up to its expiry for a job: stopping must not wait it out with it (the swarm's exit did, 2 s).
  const stopped = new Promise<null>((resolve) => controller.signal.addEventListener("abort", () => resolve(null), { once: true }));
  const { log } = opts;
  const now = opts.now ?? Date.now;
  const lapsedRuns = reportedLapsed.get(bus) ?? new Set<string>();
  reportedLapsed.set(bus, lapsedRuns);
  const isDone = (key: string) => bus.kv.get(key).then((e) => e?.operation === "PUT").catch(() => false);
  const claimRecord = (failures: number, holder: string | null = bus.instanceId) =>
    JSON.stringify({ holder, node: opts.by.node, at: new Date(now()).toISOString(), failures } satisfies Claim);

  /**
   * Takes over the job's claim `entry`, which a first try to create it found there, or says why the job waits:
   * a claim is taken over only from a holder that let go or is gone.
   */
  async function takeOver(key: string, entry: KvEntry, jobLog: Logger): Promise<{ revision: number; failures: number } | string> {
    const held = readClaim(entry);
    let failures = held?.failures ?? 0;
    if (held?.holder) {
      const answer = await askHolder(bus, held.holder, key, now());
      if (answer === "holds" || answer === "silent") {
        return held.holder === bus.instanceId ? "this worker is doing it" : `a worker on ${held.node} is doing it${answer === "silent" ? " (it does not answer, but its connection is open)" : ""}`;
      }
      if (answer === "gone") {
        failures++;
        jobLog.warn({ from: held.node, attempt: failures + 1 }, `taking over a ${kind} job from ${held.node}, whose worker is gone`);
      }
    }
    return { revision: await bus.kv.update(key, claimRecord(failures), entry.revision), failures };
  }

  /** The claim made for a job that nobody claimed before: its revision, or null when a claim is there already. */
  const createClaim = (key: string) =>
    bus.kv.create(key, claimRecord(0)).then(
      (revision) => revision,
      (err: unknown) => {
        if (isKvConflict(err)) return null;
        throw err;
      },
    );

  async function handle(msg: JsMsg, slot: number, ackWaitMs: number): Promise<void> {
    // A rejected job is acked, which removes it from the work queue: nats-server 2.9 ignores a term() that
    // carries a reason, so such a job stayed pending, came back forever, and 1,000 of them filled the
    // consumer's max_ack_pending and wedged the queue.
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(msg.data));
    } catch {
      log.warn({ subject: msg.subject, bytes: msg.data.length }, "rejected a job that is not JSON; it is dropped");
      msg.ack();
      return;
    }
    const parsed = jobSchemas[kind].safeParse(raw);
    if (!parsed.success) {
      log.warn({ subject: msg.subject, issues: parsed.error.issues.slice(0, 5) }, `rejected a malformed ${kind} job; it is dropped`);
      msg.ack();
      return;
    }
    const job = parsed.data as Job<K>;
    const { runId } = job;
    const done = doneKey(runId, kind, job.jobId);
    const key = claimKey(runId, kind, job.jobId);
    const ideaId = "ideaId" in job ? (job.ideaId as string) : undefined;
    const jobLog = log.child({ jobId: job.jobId, ...(ideaId ? { ideaId } : {}) });
    // A job that waits comes back after an ack wait: by then a slow holder has usually finished, and the done key says so.
    const wait = (why: string) => {
      jobLog.debug({ delivery: msg.info.deliveryCount, waitMs: ackWaitMs }, `${kind} job waits: ${why}`);
      msg.nak(ackWaitMs);
    };

    if (opts.decline && msg.info.deliveryCount <= DECLINES) {
      const why = await opts.decline(job).catch(() => undefined);
      if (why) {
        jobLog.debug({ delivery: msg.info.deliveryCount }, `${kind} job handed back: ${why}`);
        msg.nak(DECLINE_STEP_MS * msg.info.deliveryCount);
        return;
      }
    }
    let claimed: { revision: number; failures: number };
    try {
      // Asking a holder that does not answer takes a while; the job must stay ours meanwhile.
      msg.working();
      // The usual job is new: its claim is created at once, beside the reads that may yet turn it down, so that
      // taking a job costs one round trip to the server rather than four.
      const [created, isDoneAlready, lease] = await Promise.all([createClaim(key), isDone(done), leaseState(bus, runId, now())]);
      /** A claim this worker made for a job it turns down is let go of again, for the next worker to take without asking. */
      const unclaim = () => (created === null ? undefined : bus.kv.update(key, claimRecord(0, null), created).catch(() => undefined));
      if (isDoneAlready) {
        jobLog.debug("job already done; acking the redelivery");
        await unclaim();
        msg.ack();
        return;
      }
      if (lease === "ended") {
        jobLog.debug(`run ${runId} has ended; dropping its leftover ${kind} job`);
        await unclaim();
        msg.ack();
        return;
      }
      if (lease === "lapsed") {
        if (!lapsedRuns.has(runId)) {
          lapsedRuns.add(runId);
          log.warn({ runId }, `run ${runId}'s swarm is gone; its jobs wait for \`npm run swarm -- --resume ${runId}\``);
        }
        await unclaim();
        wait("its run's swarm is gone");
        return;
      }
      if (lapsedRuns.delete(runId)) log.info({ runId }, `run ${runId} has its swarm again; serving its jobs`);
      if (created !== null) {
        claimed = { revision: created, failures: 0 };
      } else {
        const entry = await bus.kv.get(key);
        // Let go of between the create and this read (a holder that was stopping): tried again at the next delivery.
        const got = entry && entry.operation === "PUT" ? await takeOver(key, entry, jobLog) : "its claim changed while it was read";
        if (typeof got === "string") {
          wait(got);
          return;
        }
        claimed = got;
        // The holder it was taken from may have finished it just before it went.
        if (await isDone(done)) {
          msg.ack();
          return;
        }
      }
    } catch (err) {
      if (isKvConflict(err)) {
        wait("another worker claimed it at the same moment");
      } else {
        jobLog.warn({ err: (err as Error).message }, `could not claim a ${kind} job; it comes back later`);
        msg.nak(ackWaitMs);
      }
      return;
    }

    /**
     * Records the job's end, either way, then acks it: its outcome says why, and the done key keeps it from being
     * redone. `ours` is the check that the claim is still this worker's, made while the outcome goes out rather
     * than before it (a round trip less on every job): an outcome from a worker that lost its claim is one that
     * waiters pass over (bus/outcomes.ts vets every outcome against the claim), and such a worker writes no done
     * key, so the worker that took the job over does it and concludes it.
     */
    const conclude = async (end: { ok: true; result: JobResult<K> } | { ok: false; error: string; failure: Failure }, ours: Promise<boolean> = Promise.resolve(true)) => {
      const [held] = await Promise.all([ours, publishOutcome(bus, kind, { jobId: job.jobId, runId, ideaId, by: opts.by, ...end })]);
      if (!held) return;
      await bus.kv.put(done, end.ok ? "ok" : "failed");
      msg.ack();
    };

    const { failures } = claimed;
    if (failures >= MAX_ATTEMPTS) {
      const failure: Failure = {
        kind: "environment",
        retryable: false,
        message: `the ${kind} job was taken up ${failures} times, and each time its worker died before it finished`,
        hint: "see the logs of the nodes that took it (out of memory? killed?)",
      };
      jobLog.error({ failures }, `${kind} job failed: ${failure.message}`);
      // Acked, not term()ed: nats-server 2.9 ignores a term() that carries a reason.
      await conclude({ ok: false, error: failure.message, failure });
      return;
    }

    bus.held.add(key);
    const lost = new AbortController();
    let revision = claimed.revision;
    /** Writes the claim again if it is still this worker's, and says whether it was; throws while the bus is away. */
    async function refresh(holder: string | null = bus.instanceId, failed = failures): Promise<boolean> {
      try {
        revision = await bus.kv.update(key, claimRecord(failed, holder), revision);
        return true;
      } catch (err) {
        if (!isKvConflict(err)) throw err;
        const entry = await bus.kv.get(key);
        // Still ours: an earlier write went through while its answer was lost.
        if (entry && readClaim(entry)?.holder === bus.instanceId) {
          revision = entry.revision;
          return refresh(holder, failed);
        }
        return false;
      }
    }
    /** Lets go of the claim, so that the next worker takes the job without asking this one. */
    const release = (failed: number) =>
      refresh(null, failed).catch((err: Error) => jobLog.debug({ err: err.message }, "could not let go of the job's claim"));
    let refreshing: Promise<void> | undefined;
    const heartbeat = setInterval(() => {
      msg.working();
      refreshing ??= refresh()
        .then((ours) => {
          if (ours || lost.signal.aborted) return;
          jobLog.warn(`another worker took this ${kind} job over; stopping it here`);
          lost.abort();
        })
        .catch((err: Error) => jobLog.debug({ err: err.message }, "could not refresh the job's claim; trying again"))
        .finally(() => (refreshing = undefined));
    }, ackWaitMs / 3);
    /** Whether this worker may conclude the job: one that took it over concludes it instead. */
    async function stillOurs(): Promise<boolean> {
      await refreshing;
      if (lost.signal.aborted) return false;
      const ours = await retryBus(`the claim of ${kind} job ${job.jobId}`, () => refresh(), { log: jobLog, signal: controller.signal });
      if (!ours) jobLog.warn(`another worker took this ${kind} job over while it was done here; that worker's outcome counts, not this one`);
      return ours;
    }

    const attempt = failures + 1;
    try {
      const result = resultSchemas[kind].parse(
        await handler(job, { signal: AbortSignal.any([controller.signal, lost.signal]), attempt, slot, log: jobLog }),
      ) as JobResult<K>;
      await conclude({ ok: true, result }, stillOurs());
    } catch (err) {
      // Taken over: the new holder does the job and acks it.
      if (lost.signal.aborted) return;
      if (controller.signal.aborted) {
        // Stopping: give the job back at once so another worker takes it.
        await release(failures);
        msg.nak();
        return;
      }
      const failure = jobFailureOf(err);
      const why = { err: failure.message, kind: failure.kind, retryable: failure.retryable, attempt };
      if (failure.retryable && attempt < MAX_ATTEMPTS) {
        const delayMs = redeliveryDelayMs(attempt);
        jobLog.warn({ ...why, delayMs }, `${kind} job failed (${failure.kind}); it will be tried again (attempt ${attempt + 1} of ${MAX_ATTEMPTS})`);
        await release(failures + 1);
        msg.nak(delayMs);
        return;
      }
      jobLog.error(why, `${kind} job failed (${failure.kind}${failure.retryable ? `, after ${attempt} attempts` : ""})`);
      await conclude({ ok: false, error: failure.message, failure }, stillOurs().catch(() => false));
    } finally {
      clearInterval(heartbeat);
      bus.held.delete(key);
    }
  }

  const loops: Promise<void>[] = [];
  for (let slot = 0; slot < opts.concurrency; slot++) {
    loops.push(
      (async () => {
        const consumer = await retryBus(`the ${kind} queue`, () => bus.js.consumers.get(STREAMS.jobs.name, durableName(kind)), {
          log,
          signal: controller.signal,
        });
        // The consumer's own ack wait, whoever created it: heartbeats and waits are paced by it.
        const ackWaitNs = (await retryBus(`the ${kind} queue`, () => consumer.info(true), { log, signal: controller.signal })).config.ack_wait;
        const ackWaitMs = ackWaitNs ? ackWaitNs / 1_000_000 : ACK_WAIT_MS;
        // While the server is away every pull fails: say so once, and once more when pulling works again.
        let failingSince: number | undefined;
        while (!controller.signal.aborted) {
          let msg: JsMsg | null;
          const pulled = consumer.next({ expires: 2_000 });
          try {
            msg = await Promise.race([pulled, stopped]);
            if (controller.signal.aborted) {
              // A job that still reaches the pull left behind goes back to the queue at once.
              void pulled.then((late) => late?.nak(), () => undefined);
              return;
            }
          } catch (err) {
            if (controller.signal.aborted || bus.nc.isClosed()) return;
            if (failingSince === undefined) {
              failingSince = Date.now();
              log.warn({ err: (err as Error).message }, `pulling ${kind} jobs failed; retrying`);
            } else {
              log.debug({ err: (err as Error).message }, `pulling ${kind} jobs failed again`);
            }
            await new Promise((r) => setTimeout(r, 1000));
            continue;
          }
          if (failingSince !== undefined) {
            log.info({ downMs: Date.now() - failingSince }, `pulling ${kind} jobs again`);
            failingSince = undefined;
          }
          if (msg) await handle(msg, slot, ackWaitMs);
        }
      })().catch((err) => {
        if (!controller.signal.aborted) log.error({ err: (err as Error).message }, `${kind} worker stopped`);
      }),
    );
  }
  return {
    async stop() {
      controller.abort();
      await Promise.allSettled(loops);
    },
  };
}
