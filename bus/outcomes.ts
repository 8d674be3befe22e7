import type { Bus } from "./connection.js";
import { outcomePublishers } from "./auth.js";
import { BusError } from "./errors.js";
import { LIVE_POLL_MS, Wakeup, nextStored } from "./storedReads.js";
import type { Logger } from "./logger.js";
import { outcomeSchema, type JobKind, type Outcome } from "./schemas.js";
import { STREAMS, kvKeys, publisherOf, subjects } from "./subjects.js";
import { readClaim } from "./workQueue.js";

const dec = new TextDecoder();

/**
 * Why an outcome read from the conversation is not to be believed, or undefined when it is: it must be published
 * by an identity that serves its kind (the server vouches for the name in its subject), and by the connection
 * that holds the job's claim, which is the worker that did it. So a reviewer's credentials cannot answer a job
 * another reviewer holds, nor any other role's job.
 */
export async function vetOutcome(bus: Bus, kind: JobKind, subject: string, outcome: Outcome<JobKind>): Promise<string | undefined> {
  const identity = publisherOf(subject) ?? "(none)";
  if (!outcomePublishers(kind).includes(identity)) return `published by ${identity}, which does not do ${kind} jobs`;
  const claim = readClaim(await bus.kv.get(kvKeys.claim(outcome.runId, kind, outcome.jobId)));
  if (!claim) return "published for a job that no worker claimed";
  if (claim.holder !== outcome.instance) return `published by a connection that does not hold the job (${claim.node} does)`;
  return undefined;
}

/**
 * Waits for the vetted outcome of one job, whether it is already recorded or still to come; others are logged
 * and passed over. An outcome said while the wait is on is taken from its live message, which carries the very
 * subject and bytes the stream stores (so the vetting is the same), with no read of the stream after it; what
 * was said before the wait began, or while this connection was away, is read from the stream.
 */
export async function awaitOutcome<K extends JobKind>(
  bus: Bus,
  runId: string,
  kind: K,
  jobId: string,
  opts: { signal?: AbortSignal; log?: Logger } = {},
): Promise<Outcome<K>> {
  const log = opts.log ?? bus.log;
  // Only this job's subject is read: as cheap at the ten-thousandth job of a run as at the first.
  const filter = subjects.outcome(runId, kind, jobId);
  const schema = outcomeSchema(kind);
  const said: { subject: string; data: Uint8Array }[] = [];
  const wakeup = new Wakeup();
  const sub = bus.nc.subscribe(filter, {
    callback: (err, m) => {
      if (err) return;
      said.push({ subject: m.subject, data: m.data });
      wakeup.wake();
    },
  });
  const onAbort = () => wakeup.wake();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  /** Each outcome turned down is said once, though it is seen both live and stored. */
  const distrusted = new Set<string>();
  async function vetted(subject: string, data: Uint8Array): Promise<Outcome<K> | undefined> {
    let parsed: ReturnType<typeof schema.safeParse>;
    try {
      parsed = schema.safeParse(JSON.parse(dec.decode(data)));
    } catch {
      return undefined;
    }
    if (!parsed.success || parsed.data.jobId !== jobId) return undefined;
    const outcome = parsed.data as Outcome<K>;
    const distrust = await vetOutcome(bus, kind, subject, outcome);
    if (!distrust) return outcome;
    const seen = `${subject} ${outcome.instance} ${outcome.at}`;
    if (!distrusted.has(seen)) log.warn({ subject, jobId }, `ignored an outcome of ${kind} job ${jobId}: ${distrust}`);
    distrusted.add(seen);
    return undefined;
  }
  const ended = () => opts.signal?.aborted || bus.nc.isClosed();
  try {
    // Once the server has the subscription, nothing said after the first read below can be missed.
    await bus.nc.flush().catch(() => undefined);
    let next = 1;
    while (!ended()) {
      for (let m = said.shift(); m; m = said.shift()) {
        const outcome = await vetted(m.subject, m.data);
        if (outcome) return outcome;
      }
      const stored = await nextStored(bus, STREAMS.conversation.name, filter, next, opts.signal ? { signal: opts.signal } : {}).catch((err: unknown) => {
        if (ended()) return null;
        throw err instanceof BusError ? err : new BusError(`reading ${filter} failed: ${(err as Error).message}`, { cause: err });
      });
      if (stored) {
        next = stored.seq + 1;
        const outcome = await vetted(stored.subject, stored.data);
        if (outcome) return outcome;
        continue;
      }
      if (said.length) continue;
      // A live message wakes the wait; the stream is read again now and then, for one lost while the connection was away.
      await wakeup.wait(LIVE_POLL_MS, ended);
    }
    throw new BusError(opts.signal?.aborted ? `stopped while waiting for ${kind} job ${jobId}` : `the connection closed before ${kind} job ${jobId} ended`);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    if (!sub.isClosed()) sub.unsubscribe();
  }
}
