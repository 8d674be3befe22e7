import type { JsMsg } from "@nats-io/jetstream";
import type { Bus } from "./connection.js";
import { ACK_WAIT_MS, MAX_DELIVER } from "./connection.js";
import { STREAMS, durableName, subjects } from "./subjects.js";
import { jobSchemas, type Actor, type Job, type JobInput, type JobKind, type JobResult, resultSchemas } from "./schemas.js";
import { publishOutcome } from "./events.js";
import type { Logger } from "./logger.js";
import { SwarmError } from "./errors.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Puts a job on its work queue. The job id is the msgID, so publishing it again is harmless. */
export async function publishJob<K extends JobKind>(bus: Bus, kind: K, job: JobInput<K>): Promise<void> {
  const parsed = jobSchemas[kind].parse(job);
  await bus.js.publish(subjects.job(parsed.runId, kind), enc.encode(JSON.stringify(parsed)), { msgID: parsed.jobId });
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

/**
 * A failure that is the job's own (bad data, a model that never answered usefully): reported as the
 * job's outcome and not retried. Any other error is retried by redelivery until MAX_DELIVER.
 */
export class JobFailedError extends SwarmError {}

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
      const message = err instanceof Error ? err.message : String(err);
      if (controller.signal.aborted) {
        // Stopping: give the job back at once so another worker takes it.
        msg.nak();
        return;
      }
      const last = msg.info.deliveryCount >= MAX_DELIVER;
      if (err instanceof JobFailedError || last) {
        jobLog.error({ err: message }, `${kind} job failed`);
        await publishOutcome(bus, kind, { jobId: job.jobId, runId: job.runId, ideaId, by: opts.by, ok: false, error: message });
        await bus.kv.put(key, "failed");
        msg.term(message.slice(0, 200));
      } else {
        jobLog.warn({ err: message, delivery: msg.info.deliveryCount }, `${kind} job errored; it will be redelivered`);
        msg.nak(1000 * msg.info.deliveryCount);
      }
    } finally {
      clearInterval(heartbeat);
    }
  }

  const loops: Promise<void>[] = [];
  for (let slot = 0; slot < opts.concurrency; slot++) {
    loops.push(
      (async () => {
        const consumer = await bus.js.consumers.get(STREAMS.jobs.name, durableName(kind));
        while (!controller.signal.aborted) {
          let msg: JsMsg | null;
          try {
            msg = await consumer.next({ expires: 2_000 });
          } catch (err) {
            if (controller.signal.aborted || bus.nc.isClosed()) return;
            log.warn({ err: (err as Error).message }, `pulling ${kind} jobs failed; retrying`);
            await new Promise((r) => setTimeout(r, 1000));
            continue;
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
