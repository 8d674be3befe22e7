import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromPromise } from "xstate";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { machines } from "../machines/index.js";
import type { CriticStep, Decision } from "../machines/critic.js";
import { runMachine } from "../agents/runtime/runMachine.js";
import { readSnapshot, snapshotKey } from "../agents/runtime/snapshots.js";
import { watchEvents } from "../bus/events.js";
import { subjects } from "../bus/subjects.js";
import { StateBatch, type Idea, type StateEvent } from "../bus/schemas.js";

const log = pino({ level: "silent" });
const idea: Idea = { Name: "alpha", Title: "On alpha", Experiment: "Set ALPHA to 2.", Interestingness: 5, Feasibility: 8, Novelty: 6 };

describe("every actor's transitions go on the bus as state events", () => {
  let env: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    env = await natsForSuite();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("publishes each state the critic enters, with the event that caused it, and persists its snapshot", async () => {
    const runId = "run-states";
    const machine = machines.critic.provide({
      actors: {
        think: fromPromise(async ({ input }): Promise<CriticStep> => (input.queries.length ? { decision: { verdict: "novel", reason: "nothing close" } } : { query: "alpha" })),
        searchLiterature: fromPromise(async () => [{ title: "Beta", authors: ["B. Author"] }]),
        decide: fromPromise(async (): Promise<Decision> => ({ verdict: "novel", reason: "unused" })),
      },
    });
    const by = { agent: "critic", node: "test-node" };
    const ctx = { bus: env.bus, runId, by, log, signal: new AbortController().signal };
    const out = await runMachine(machine, { idea, maxRounds: 2 }, ctx, { actorId: "critic.alpha.0", ideaId: "alpha" });
    expect(out.verdict?.verdict).toBe("novel");

    const stream = await watchEvents(env.bus, subjects.state(runId), StateBatch, log);
    const events: StateEvent[] = [];
    for await (const { value } of stream) {
      events.push(...value.events);
      if (events.some((e) => e.done)) break;
    }
    await stream.close();
    expect(events.map((e) => [e.seq, e.state, e.event])).toEqual([
      [0, "thinking", "xstate.init"],
      [1, "searching", expect.stringMatching(/^xstate\.done\.actor\./)],
      [2, "thinking", expect.stringMatching(/^xstate\.done\.actor\./)],
      [3, "decided", expect.stringMatching(/^xstate\.done\.actor\./)],
    ]);
    expect(events.every((e) => e.actor === "critic.alpha.0" && e.machine === "critic" && e.ideaId === "alpha" && e.by.node === "test-node")).toBe(true);
    expect(events.map((e) => e.done)).toEqual([false, false, false, true]);
    // The four transitions came in fewer messages than four: batched.
    const info = await env.bus.jsm.streams.info("SCI_CONV", { subjects_filter: subjects.state(runId) });
    expect(info.state.subjects?.[subjects.state(runId)]).toBeLessThan(4);
    const snap = await env.bus.kv.get(snapshotKey(runId, "critic.alpha.0"));
    expect(snap?.json<{ value: unknown }>().value).toBe("decided");
    expect((await readSnapshot(env.bus, runId, "critic.alpha.0", "critic"))?.snapshot.status).toBe("done");
  });
});
