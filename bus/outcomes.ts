import type { Bus } from "./connection.js";
import { outcomePublishers } from "./auth.js";
import { BusError } from "./errors.js";
import { watchEvents } from "./events.js";
import type { Logger } from "./logger.js";
import { outcomeSchema, type JobKind, type Outcome } from "./schemas.js";
import { kvKeys, publisherOf, subjects } from "./subjects.js";
import { readClaim } from "./workQueue.js";

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

/** Waits for the vetted outcome of one job, whether it is already recorded or still to come; others are logged and passed over. */
export async function awaitOutcome<K extends JobKind>(
  bus: Bus,
  runId: string,
  kind: K,
  jobId: string,
  opts: { signal?: AbortSignal; log?: Logger } = {},
): Promise<Outcome<K>> {
  // Only this job's subject is read: as cheap at the ten-thousandth job of a run as at the first.
  const stream = await watchEvents(bus, subjects.outcome(runId, kind, jobId), outcomeSchema(kind), opts.log);
  const onAbort = () => void stream.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const { subject, value } of stream) {
      if (value.jobId !== jobId) continue;
      const distrust = await vetOutcome(bus, kind, subject, value as Outcome<K>);
      if (!distrust) return value as Outcome<K>;
      (opts.log ?? bus.log).warn({ subject, jobId }, `ignored an outcome of ${kind} job ${jobId}: ${distrust}`);
    }
    throw new BusError(
      opts.signal?.aborted ? `stopped while waiting for ${kind} job ${jobId}` : `the conversation stream closed before ${kind} job ${jobId} ended`,
    );
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await stream.close();
  }
}
