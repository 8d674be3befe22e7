import { JetStreamError, type JsMsg } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";
import type { Bus } from "./connection.js";
import { ACK_WAIT_MS, MAX_DELIVER } from "./connection.js";
import { STREAMS, durableName, subjects } from "./subjects.js";
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
  /** Aborted when the worker stops; long work should pass it on. */
  signal: AbortSignal;
  /** How many times JetStream has delivered this job (1 the first time). */
  delivery: number;
  /** Which of the worker's parallel slots took the job (a GPU node runs one slot per GPU). */
  slot: number;
  log: Logger;
}

export type JobHandler<K extends JobKind> = (job: Job<K>, ctx: JobContext) => Promise<JobResult<K>>;

/** A job's failure, carrying the Failure of its cause: retried by redelivery when that is retryable, else final. */
export { JobFailedError };

/** How long a retryable failure waits before its redelivery: doubling from a second, at most half a minute. */
export function redeliveryDelayMs(delivery: number): number {
  return Math.min(30_000, 1000 * 2 ** (delivery - 1));
}

const NATS_ERRORS = [...Object.values(natsErrors), JetStreamError];

/** What a handler's error says about its job. The NATS client's errors are the bus's; retried while the bus is only away. */
function jobFailureOf(err: unknown): Failure {
  if (isTransientBusError(err)) return { kind: "bus", retryable: true, message: (err as Error).message };
  if (NATS_ERRORS.some((E) => err instanceof E)) return { kind: "bus", retryable: false, message: (err as Error).message };
  return failureOf(err);
}

const doneKey = (runId: string, jobId: string) => `${runId}.done.${jobId.replace(/[^A-Za-z0-9_=-]/g, "_")}`;

export interface Worker {
  stop(): Promise<void>;
}

/**
 * Serves one job kind with `concurrency` parallel slots on the kind's durable pull consumer. Each job is
 * validated, handled while `working()` keeps it ours, then acked; its outcome is published on the
 * conversation stream. A job whose outcome is already recorded is acked without being redone.
 */
export function serveJobs<K extends JobKind>(
  bus: Bus,
  kind: K,
  handler: JobHandler<K>,
  opts: { concurrency: number; by: Actor; log: Logger },
): Worker {
  const controller = new AbortController();
  const { log } = opts;

  async function handle(msg: JsMsg, slot: number): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(msg.data));
    } catch {
      log.warn({ subject: msg.subject }, "rejected a job that is not JSON");
      msg.term("not JSON");
      return;
    }
    const parsed = jobSchemas[kind].safeParse(raw);
    if (!parsed.success) {
      log.warn({ subject: msg.subject, issues: parsed.error.issues }, `rejected a malformed ${kind} job`);
      msg.term("schema");
      return;
    }
    const job = parsed.data as Job<K>;
    const key = doneKey(job.runId, job.jobId);
    if (await bus.kv.get(key).then((e) => e?.operation === "PUT").catch(() => false)) {
      log.debug({ jobId: job.jobId }, "job already done; acking the redelivery");
      msg.ack();
      return;
    }
    const heartbeat = setInterval(() => msg.working(), ACK_WAIT_MS / 3);
    const ideaId = "ideaId" in job ? (job.ideaId as string) : undefined;
    const jobLog = log.child({ jobId: job.jobId, ...(ideaId ? { ideaId } : {}) });
    try {
      const result = resultSchemas[kind].parse(
        await handler(job, { signal: controller.signal, delivery: msg.info.deliveryCount, slot, log: jobLog }),
      ) as JobResult<K>;
      await publishOutcome(bus, kind, { jobId: job.jobId, runId: job.runId, ideaId, by: opts.by, ok: true, result });
      await bus.kv.put(key, "ok");
      msg.ack();
    } catch (err) {
      if (controller.signal.aborted) {
        // Stopping: give the job back at once so another worker takes it.
        msg.nak();
        return;
      }
      const failure = jobFailureOf(err);
      const delivery = msg.info.deliveryCount;
      const why = { err: failure.message, kind: failure.kind, retryable: failure.retryable, delivery };
      if (failure.retryable && delivery < MAX_DELIVER) {
        const delayMs = redeliveryDelayMs(delivery);
        jobLog.warn({ ...why, delayMs }, `${kind} job failed (${failure.kind}); it will be redelivered (delivery ${delivery + 1} of ${MAX_DELIVER})`);
        msg.nak(delayMs);
        return;
      }
      jobLog.error(why, `${kind} job failed (${failure.kind}${failure.retryable ? `, after ${delivery} deliveries` : ""})`);
      await publishOutcome(bus, kind, { jobId: job.jobId, runId: job.runId, ideaId, by: opts.by, ok: false, error: failure.message, failure });
      await bus.kv.put(key, "failed");
      msg.term(failure.message.slice(0, 200));
    } finally {
      clearInterval(heartbeat);
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
        // While the server is away every pull fails: say so once, and once more when pulling works again.
        let failingSince: number | undefined;
        while (!controller.signal.aborted) {
          let msg: JsMsg | null;
          try {
            msg = await consumer.next({ expires: 2_000 });
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
          if (msg) await handle(msg, slot);
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
