import { createActor, toPromise, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine, type InputFrom, type OutputFrom } from "xstate";
import { publishStates } from "../../bus/events.js";
import type { StateEvent } from "../../bus/schemas.js";
import type { AgentContext } from "./agentContext.js";
import { SNAPSHOT_VERSION, readSnapshot, snapshotKey, type PersistedActor } from "./snapshots.js";

/** State events wait this long to go out together, so that a burst of transitions is one message. */
const FLUSH_MS = 100;

export interface RunWho {
  actorId: string;
  ideaId?: string | undefined;
  /**
   * The persisted actor to go on from (see `restoreFrom`): its machine continues in the state it was in,
   * with its context, re-invoking only the step that was under way.
   */
  snapshot?: PersistedActor | undefined;
}

/**
 * The persisted actor of this instance when it had not ended: what a redelivered job goes on from. One that
 * had ended (done, failed) is started afresh, as a new job would be.
 */
export async function restoreFrom(ctx: Pick<AgentContext, "bus" | "runId" | "log">, actorId: string, machine: AnyStateMachine): Promise<PersistedActor | undefined> {
  const persisted = await readSnapshot(ctx.bus, ctx.runId, actorId, machine.id);
  if (!persisted || persisted.snapshot.status !== "active") return undefined;
  ctx.log.info({ actor: actorId, state: persisted.value }, `going on from the persisted ${machine.id} in ${JSON.stringify(persisted.value)}`);
  return persisted;
}

/**
 * Runs an agent's machine (already given its implementations) to its final state. Every transition of the
 * machine, and of the machines it spawns or invokes, is published as a state event on the bus (batched), with
 * the event that caused it; every new state is logged and the actor's persisted snapshot (children included) is
 * written to KV, so a run can be watched live and resumed. Given a snapshot, the machine goes on from it.
 */
export async function runMachine<M extends AnyStateMachine>(
  machine: M,
  input: InputFrom<M>,
  ctx: Pick<AgentContext, "bus" | "runId" | "by" | "log" | "signal">,
  who: RunWho,
): Promise<OutputFrom<M>> {
  const key = snapshotKey(ctx.runId, who.actorId);
  const pending: StateEvent[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  let publishes = Promise.resolve();
  const flush = () => {
    flushTimer = undefined;
    const events = pending.splice(0);
    if (!events.length) return;
    publishes = publishes.then(() => publishStates(ctx.bus, ctx.runId, events)).catch((err: Error) => {
      ctx.log.warn({ err: err.message }, "could not publish state events");
    });
  };
  // Per actor instance: its transition count and its last state, so that a snapshot without a new state is not an event.
  const seen = new Map<AnyActorRef, { seq: number; last: string }>();
  let writes = Promise.resolve();
  const persist = () => {
    const snapshot = actor.getSnapshot() as AnyMachineSnapshot;
    const persisted = JSON.stringify({
      version: SNAPSHOT_VERSION, machine: machine.id, value: snapshot.value, snapshot: actor.getPersistedSnapshot(), at: new Date().toISOString(),
    });
    writes = writes.then(() => ctx.bus.kv.put(key, persisted).then(() => undefined)).catch((err: Error) => {
      ctx.log.warn({ err: err.message }, "could not persist the actor snapshot");
    });
  };
  const actor = createActor(machine, {
    input,
    ...(who.snapshot ? { snapshot: who.snapshot.snapshot } : {}),
    inspect: (ev) => {
      if (ev.type !== "@xstate.snapshot") return;
      const ref = ev.actorRef as AnyActorRef;
      const snapshot = ev.snapshot as AnyMachineSnapshot;
      // Machines only (the root and the machines it spawns): promises and callbacks have no states to show.
      if (ref !== actor && !(typeof snapshot === "object" && snapshot !== null && "value" in snapshot && "context" in snapshot)) return;
      const state = JSON.stringify(snapshot.value);
      const mine = seen.get(ref) ?? { seq: 0, last: "" };
      seen.set(ref, mine);
      if (state === mine.last) return;
      mine.last = state;
      const root = ref === actor;
      const childIdea = root ? who.ideaId : ((snapshot.context as { ideaId?: unknown }).ideaId as string | undefined);
      const actorId = root ? who.actorId : `${who.actorId}/${ref.id}`;
      const machineId = root ? machine.id : ((ref as unknown as { logic?: { id?: string } }).logic?.id ?? ref.id);
      ctx.log.debug({ actor: actorId, state: snapshot.value, event: ev.event.type }, `${machineId} → ${state}`);
      pending.push({
        runId: ctx.runId, ...(childIdea ? { ideaId: childIdea } : {}), by: ctx.by, actor: actorId, machine: machineId,
        seq: mine.seq++, state: snapshot.value, event: ev.event.type, done: snapshot.status === "done", at: new Date().toISOString(),
      });
      flushTimer ??= setTimeout(flush, FLUSH_MS);
      // The root's persisted snapshot holds its children's: one key for the whole tree, written after every change.
      persist();
    },
  });
  actor.subscribe({ error() {} });
  let rejectStopped: (err: Error) => void = () => {};
  const stopped = new Promise<never>((_, reject) => (rejectStopped = reject));
  stopped.catch(() => undefined);
  // One listener per run, removed after it: a worker's signal outlives many jobs.
  const onAbort = () => {
    actor.stop();
    rejectStopped(new Error("stopped"));
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  actor.start();
  try {
    if (ctx.signal.aborted) throw new Error("stopped");
    const output = await Promise.race([toPromise(actor), stopped]);
    return output as OutputFrom<M>;
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    if (flushTimer) clearTimeout(flushTimer);
    flush();
    await Promise.all([writes, publishes]);
  }
}
