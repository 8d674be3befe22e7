import { createActor, toPromise, type AnyMachineSnapshot, type AnyStateMachine, type InputFrom, type OutputFrom } from "xstate";
import { publishStates } from "../../bus/events.js";
import type { StateEvent } from "../../bus/schemas.js";
import type { AgentContext } from "./agentContext.js";
import { SNAPSHOT_VERSION, snapshotKey } from "./snapshots.js";

/** State events wait this long to go out together, so that a burst of transitions is one message. */
const FLUSH_MS = 100;

/**
 * Runs an agent's machine (already given its implementations) to its final state. Every transition is
 * published as a state event on the bus (batched), with the event that caused it; every new state is logged
 * and the actor's persisted snapshot is written to KV, so a run can be watched live and resumed.
 */
export async function runMachine<M extends AnyStateMachine>(
  machine: M,
  input: InputFrom<M>,
  ctx: Pick<AgentContext, "bus" | "runId" | "by" | "log" | "signal">,
  who: { actorId: string; ideaId?: string | undefined },
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
  let seq = 0;
  let last = "";
  let writes = Promise.resolve();
  const actor = createActor(machine, {
    input,
    inspect: (ev) => {
      if (ev.type !== "@xstate.snapshot" || ev.actorRef !== actor) return;
      // The root actor of a machine: its snapshots are machine snapshots.
      const snapshot = ev.snapshot as AnyMachineSnapshot;
      const state = JSON.stringify(snapshot.value);
      if (state === last) return;
      last = state;
      ctx.log.debug({ state: snapshot.value, event: ev.event.type }, `${machine.id} → ${state}`);
      pending.push({
        runId: ctx.runId, ...(who.ideaId ? { ideaId: who.ideaId } : {}), by: ctx.by, actor: who.actorId, machine: machine.id,
        seq: seq++, state: snapshot.value, event: ev.event.type, done: snapshot.status === "done", at: new Date().toISOString(),
      });
      flushTimer ??= setTimeout(flush, FLUSH_MS);
      const persisted = JSON.stringify({
        version: SNAPSHOT_VERSION, machine: machine.id, value: snapshot.value, snapshot: actor.getPersistedSnapshot(), at: new Date().toISOString(),
      });
      writes = writes.then(() => ctx.bus.kv.put(key, persisted).then(() => undefined)).catch((err: Error) => {
        ctx.log.warn({ err: err.message }, "could not persist the actor snapshot");
      });
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
