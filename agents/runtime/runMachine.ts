import { createActor, toPromise, type AnyStateMachine, type InputFrom, type OutputFrom } from "xstate";
import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";

/**
 * Runs an agent's machine (already given its implementations) to its final state. Every new state is
 * logged and the actor's persisted snapshot is written to KV, so a run can be inspected live and resumed.
 */
export async function runMachine<M extends AnyStateMachine>(
  machine: M,
  input: InputFrom<M>,
  opts: { bus: Bus; snapshotKey: string; log: Logger; signal: AbortSignal },
): Promise<OutputFrom<M>> {
  const actor = createActor(machine, { input });
  let last = "";
  let writes = Promise.resolve();
  actor.subscribe({
    next(snap) {
      const snapshot = snap as { value: unknown };
      const state = JSON.stringify(snapshot.value);
      if (state === last) return;
      last = state;
      opts.log.debug({ state: snapshot.value }, `${machine.id} → ${state}`);
      const persisted = JSON.stringify({ machine: machine.id, value: snapshot.value, snapshot: actor.getPersistedSnapshot(), at: new Date().toISOString() });
      writes = writes.then(() => opts.bus.kv.put(opts.snapshotKey, persisted).then(() => undefined)).catch((err: Error) => {
        opts.log.warn({ err: err.message }, "could not persist the actor snapshot");
      });
    },
    error() {},
  });
  let rejectStopped: (err: Error) => void = () => {};
  const stopped = new Promise<never>((_, reject) => (rejectStopped = reject));
  stopped.catch(() => undefined);
  // One listener per run, removed after it: a worker's signal outlives many jobs.
  const onAbort = () => {
    actor.stop();
    rejectStopped(new Error("stopped"));
  };
  opts.signal.addEventListener("abort", onAbort, { once: true });
  actor.start();
  try {
    if (opts.signal.aborted) throw new Error("stopped");
    const output = await Promise.race([toPromise(actor), stopped]);
    return output as OutputFrom<M>;
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    await writes;
  }
}
