import type { Snapshot } from "xstate";
import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import { UserError } from "../../bus/errors.js";
import { kvKeys } from "../../bus/subjects.js";

/** Where an actor's persisted snapshot lives in KV: one key per actor instance of a run. */
export const snapshotKey = kvKeys.snapshot;

/** Bumped whenever what a persisted actor holds changes shape; fixtures of every version live in test/fixtures/snapshots/. */
// 3: the writer drafts its sections in child machines, and an idea searches its citations beside its experiments.
export const SNAPSHOT_VERSION = 3;

/** An actor as runMachine writes it to KV: enough to look at it (machine, state) and to restore it (the snapshot). */
export const PersistedActor = z.object({
  version: z.literal(SNAPSHOT_VERSION),
  machine: z.string().min(1),
  value: z.unknown(),
  /** XState's persisted snapshot, as `actor.getPersistedSnapshot()` gives it: checked here, then typed as XState's to restore. */
  snapshot: z
    .object({ status: z.enum(["active", "done", "error", "stopped"]), value: z.unknown(), context: z.unknown() })
    .passthrough()
    .transform((s) => s as unknown as Snapshot<unknown> & { status: string }),
  at: z.string(),
});
export type PersistedActor = z.infer<typeof PersistedActor>;

/**
 * The persisted actor of one instance of a run, validated; undefined when none was written. One written by
 * another version, or of another machine, is refused with what it is, never restored half-read.
 */
export async function readSnapshot(bus: Bus, runId: string, actorId: string, machine: string): Promise<PersistedActor | undefined> {
  const entry = await bus.kv.get(snapshotKey(runId, actorId));
  if (!entry || entry.operation !== "PUT") return undefined;
  return parseSnapshot(entry.json(), `${runId}/${actorId}`, machine);
}

export function parseSnapshot(raw: unknown, where: string, machine: string): PersistedActor {
  const version = (raw as { version?: unknown } | null)?.version;
  if (version !== SNAPSHOT_VERSION) {
    throw new UserError(`the snapshot of ${where} has version ${JSON.stringify(version ?? null)}, and this release reads version ${SNAPSHOT_VERSION}`, {
      hint: "finish or resume the run with the release that started it",
    });
  }
  const parsed = PersistedActor.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`the snapshot of ${where} is malformed: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  if (parsed.data.machine !== machine) throw new UserError(`the snapshot of ${where} is of machine ${parsed.data.machine}, not ${machine}`);
  return parsed.data;
}
