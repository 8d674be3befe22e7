import { hostname } from "node:os";
import { z } from "zod";
import type { KvEntry } from "@nats-io/kv";
import { askHolder, isKvConflict, recentlyReconnected, type Bus } from "./connection.js";
import { UserError } from "./errors.js";
import type { Logger } from "./logger.js";
import { retryBus } from "./retryBus.js";
import { kvKeys } from "./subjects.js";

/** How often the holder renews its lease. */
export const LEASE_RENEW_MS = 5_000;
/**
 * How long a lease lasts without renewal although its holder's connection is still open (a swarm that is
 * stopped or hung): after that its run's jobs wait, and a `--resume` may take the lease over.
 */
export const LEASE_TTL_MS = 60_000;

const leaseKey = kvKeys.lease;

/** `<runId>.lease` in KV: which swarm drives the run. */
const Lease = z.object({
  /** The holding connection's instanceId. */
  holder: z.string().min(1),
  node: z.string(),
  renewedAt: z.iso.datetime(),
  /** The run is over: its leftover jobs are dropped rather than kept for a `--resume`. */
  ended: z.boolean().default(false),
});
type Lease = z.infer<typeof Lease>;

/**
 * What workers do with a run's jobs: `none` (no swarm took a lease: served, as jobs published by hand or
 * by tests are), `held` (served), `lapsed` (they wait for `--resume`), `ended` (leftovers, dropped).
 */
export type LeaseState = "none" | "held" | "lapsed" | "ended";

function readLease(entry: KvEntry | null): Lease | "none" | "malformed" {
  if (!entry || entry.operation !== "PUT") return "none";
  try {
    return Lease.safeParse(entry.json()).data ?? "malformed";
  } catch {
    return "malformed";
  }
}

/**
 * A lease has lapsed when its holder no longer holds it (gone, or let go), or when the holder is silent (stopped,
 * hung) and has not renewed it for LEASE_TTL_MS. A holder that answers lives, however late its renewal (an
 * outage it rides out).
 */
async function lapsed(bus: Bus, runId: string, lease: Lease, now: number): Promise<boolean> {
  const answer = await askHolder(bus, lease.holder, leaseKey(runId), now);
  if (answer === "silent") return now - Date.parse(lease.renewedAt) > LEASE_TTL_MS && !recentlyReconnected(bus, now);
  return answer !== "holds";
}

/** What workers are to do with the jobs of `runId` (see LeaseState). `now` is injectable for tests. */
export async function leaseState(bus: Bus, runId: string, now = Date.now()): Promise<LeaseState> {
  const lease = readLease(await bus.kv.get(leaseKey(runId)));
  if (lease === "none") return "none";
  // Only a swarm writes a lease; one that is not a lease is nobody's, and the run waits for a --resume to write a good one.
  if (lease === "malformed") return "lapsed";
  if (lease.ended) return "ended";
  return (await lapsed(bus, runId, lease, now)) ? "lapsed" : "held";
}

/** Whether the run's swarm is gone (or stopped past LEASE_TTL_MS): its jobs wait for `npm run swarm -- --resume <runId>`. */
export async function leaseLapsed(bus: Bus, runId: string, now = Date.now()): Promise<boolean> {
  return (await leaseState(bus, runId, now)) === "lapsed";
}

export interface RunLease {
  /** Stops renewing, for a run that stops unfinished (Ctrl-C, the budget): its jobs wait for a `--resume`. */
  stop(): Promise<void>;
  /** Stops renewing and marks the run over: workers drop its leftover jobs instead of keeping them for a `--resume`. */
  end(): Promise<void>;
}

export interface HoldLeaseOptions {
  log: Logger;
  /** Names the holder for people reading the lease or the logs; the host name unless told. */
  node?: string;
  /**
   * Told, once, that another swarm took the lease over (a `--resume` elsewhere found this one gone) and on
   * which node ("" if the lease was removed): stop driving the run.
   */
  onLost?: (by: { node: string }) => void;
  renewMs?: number;
  now?: () => number;
}

/**
 * Holds the lease of `runId` for this bus connection, renewing it every LEASE_RENEW_MS until stop() or end().
 * While it is held, workers anywhere serve the run's jobs; once it lapses (this process died, or is stopped
 * past LEASE_TTL_MS), they leave them waiting on the queue, untouched, for a `--resume`.
 *
 * The swarm calls it for a new run before it publishes the run's first job, and on `--resume <runId>` before
 * it publishes anything again: the same call takes over a lease that has lapsed, so the waiting jobs are
 * served again. It throws a UserError while another swarm holds the lease and lives. When the run is
 * complete the swarm calls end(); when it stops unfinished, stop() (or nothing: a process that dies lets go
 * of its lease). If another swarm takes the lease over, this one is told through `onLost` and should stop.
 */
export async function holdRunLease(bus: Bus, runId: string, opts: HoldLeaseOptions): Promise<RunLease> {
  const now = opts.now ?? Date.now;
  const node = opts.node ?? hostname();
  const key = leaseKey(runId);
  const log = opts.log.child({ runId });
  const record = (ended = false): string => JSON.stringify({ holder: bus.instanceId, node, renewedAt: new Date(now()).toISOString(), ended } satisfies Lease);

  const entry = await bus.kv.get(key);
  const current = readLease(entry);
  if (typeof current === "object" && current.holder !== bus.instanceId && !current.ended && !(await lapsed(bus, runId, current, now()))) {
    throw new UserError(`run ${runId} is driven by a live swarm on ${current.node}`, {
      hint: `stop that swarm first; once it is gone (or stopped for ${LEASE_TTL_MS / 1000} s), --resume ${runId} takes its place`,
    });
  }
  // Held before it is written: a worker asking in between must not find the new holder letting go of it.
  bus.held.add(key);
  let revision: number;
  try {
    revision = entry ? await bus.kv.update(key, record(), entry.revision) : await bus.kv.create(key, record());
  } catch (err) {
    bus.held.delete(key);
    if (isKvConflict(err)) {
      throw new UserError(`another swarm took the lease of run ${runId} at the same moment`, { hint: "only one swarm drives a run at a time" });
    }
    throw err;
  }
  if (typeof current === "object" && current.holder !== bus.instanceId) log.info({ from: current.node }, `took over the lease of run ${runId} from ${current.node}`);

  let stopped = false;
  let lost = false;
  let renewing: Promise<void> | undefined;
  /** Writes the lease again if it is still ours, else says who took it ("" when it was removed); throws while the bus is away. */
  async function rewrite(ended = false): Promise<{ by: string } | undefined> {
    try {
      revision = await bus.kv.update(key, record(ended), revision);
      return undefined;
    } catch (err) {
      if (!isKvConflict(err)) throw err;
      const latest = await bus.kv.get(key);
      const lease = readLease(latest);
      if (typeof lease !== "object") return { by: "" };
      // Still ours: an earlier write went through while its answer was lost.
      if (latest && lease.holder === bus.instanceId) {
        revision = latest.revision;
        return rewrite(ended);
      }
      return { by: lease.node };
    }
  }
  async function renew(): Promise<void> {
    let takenBy: { by: string } | undefined;
    try {
      takenBy = await rewrite();
    } catch (err) {
      // The bus is away: the next renewal tries again (a holder that answers is not judged by its renewals).
      log.debug({ err: (err as Error).message }, "could not renew the run's lease");
      return;
    }
    if (!takenBy || stopped) return;
    lost = true;
    halt();
    log.error({ by: takenBy.by }, `run ${runId} ${takenBy.by ? `was taken over by the swarm on ${takenBy.by}` : "lost its lease"}; this swarm no longer drives it`);
    opts.onLost?.({ node: takenBy.by });
  }
  const timer = setInterval(() => {
    renewing ??= renew().finally(() => (renewing = undefined));
  }, opts.renewMs ?? LEASE_RENEW_MS);
  timer.unref();
  function halt(): void {
    stopped = true;
    clearInterval(timer);
    bus.held.delete(key);
  }

  return {
    async stop() {
      halt();
      await renewing;
    },
    async end() {
      halt();
      await renewing;
      if (lost) return;
      const takenBy = await retryBus(`ending the lease of run ${runId}`, () => rewrite(true), { log });
      if (takenBy) log.warn({ by: takenBy.by }, `run ${runId} lost its lease before it ended; it is not marked ended`);
    },
  };
}
