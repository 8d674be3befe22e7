import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, type Bus } from "../bus/connection.js";
import { UserError } from "../bus/errors.js";
import { awaitDecision, decideGate, gateStates, generationTag, listGates, listRewinds, requestRewind, waitingGate, type GateEntry } from "../bus/gates.js";
import type { Idea } from "../bus/schemas.js";
import { kvKeys } from "../bus/subjects.js";
import { natsForSuite } from "./helpers/nats.js";

const idea: Idea = { Name: "wider", Title: "Wider layers", Experiment: "Set WIDTH to 64", Interestingness: 5, Feasibility: 8, Novelty: 4 };
const ask = (ideaId: string, request: string, proposal: GateEntry["proposal"] = { gate: "ideas", idea }) => ({ runId: "r1", ideaId, request, proposal, askedAt: new Date().toISOString() });

let suite: Awaited<ReturnType<typeof natsForSuite>>;
let person: Bus;
beforeAll(async () => {
  suite = await natsForSuite();
  // The person deciding has a connection of their own, as `npm run gate` does.
  person = await connectBus(suite.server.url);
});
afterAll(async () => {
  await person?.close();
  await suite?.close();
});

describe("gates on the bus", () => {
  it("a gate waits until a person decides, and says once that it waits", async () => {
    let waited = 0;
    const decided = awaitDecision(suite.bus, ask("alpha", "ideas.g0"), new AbortController().signal, async () => void waited++);
    // The gate is asked before the person looks.
    await expect.poll(async () => (await listGates(person, "r1")).filter((g) => g.ideaId === "alpha" && !g.decided).length).toBe(1);
    const edited = { ...idea, Title: "Wider layers, as a person put it" };
    await decideGate(person, "r1", "alpha", { choice: "edit", idea: edited }, "ada@lab");
    const { decision, by } = await decided;
    expect(decision).toEqual({ choice: "edit", idea: edited });
    expect(by).toBe("ada@lab");
    expect(waited).toBe(1);
    // Asked again (a restart, a rewound idea's same gate): the decision is there, and nobody is told it waits.
    const again = await awaitDecision(suite.bus, ask("alpha", "ideas.g0"), new AbortController().signal, async () => void waited++);
    expect(again.decision.choice).toBe("edit");
    expect(waited).toBe(1);
  });

  it("refuses a decision where nothing waits, an edit of the wrong thing, and a paper sent back too often", async () => {
    await expect(decideGate(person, "r1", "nobody", { choice: "approve" }, "ada@lab")).rejects.toThrow(/is not waiting at a gate/);
    const stop = new AbortController();
    const plan = awaitDecision(suite.bus, ask("beta", "plan.g0", { gate: "plan", idea, plan: [{ description: "WIDTH = 64" }] }), stop.signal);
    await expect.poll(async () => (await listGates(person, "r1")).some((g) => g.ideaId === "beta")).toBe(true);
    const wrong = decideGate(person, "r1", "beta", { choice: "edit", idea }, "ada@lab");
    await expect(wrong).rejects.toBeInstanceOf(UserError);
    await expect(wrong).rejects.toThrow(/at the plan gate gives the plan/);
    await decideGate(person, "r1", "beta", { choice: "reject", reason: "WIDTH is not the question" }, "ada@lab");
    expect((await plan).decision).toEqual({ choice: "reject", reason: "WIDTH is not the question" });

    const paper = awaitDecision(suite.bus, ask("gamma", "paper.r3.g0", { gate: "paper", idea, pdf: "r1/gamma/paper.pdf", round: 3, amendmentsLeft: 0 }), stop.signal);
    await expect.poll(async () => (await listGates(person, "r1")).some((g) => g.ideaId === "gamma")).toBe(true);
    await expect(decideGate(person, "r1", "gamma", { choice: "edit", notes: "once more" }, "ada@lab")).rejects.toThrow(/as often as it may be/);
    await decideGate(person, "r1", "gamma", { choice: "approve" }, "ada@lab");
    expect((await paper).decision.choice).toBe("approve");
  });

  it("of two people deciding at once, one wins and the other is told", async () => {
    const decided = awaitDecision(suite.bus, ask("delta", "ideas.g0"), new AbortController().signal);
    await expect.poll(async () => (await listGates(person, "r1")).some((g) => g.ideaId === "delta")).toBe(true);
    const other = await connectBus(suite.server.url);
    try {
      const results = await Promise.allSettled([
        decideGate(person, "r1", "delta", { choice: "approve" }, "ada@lab"),
        decideGate(other, "r1", "delta", { choice: "reject", reason: "no" }, "bob@lab"),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(UserError);
      const { by } = await decided;
      const winner = results[0]!.status === "fulfilled" ? "ada@lab" : "bob@lab";
      expect(by).toBe(winner);
    } finally {
      await other.close();
    }
  });

  it("a stopped wait lets go, and leaves the gate asked", async () => {
    const stop = new AbortController();
    const waiting = awaitDecision(suite.bus, ask("epsilon", "ideas.g0"), stop.signal);
    await expect.poll(async () => (await listGates(person, "r1")).some((g) => g.ideaId === "epsilon")).toBe(true);
    stop.abort();
    await expect(waiting).rejects.toThrow(/stopped waiting/);
    expect((await listGates(person, "r1")).find((g) => g.ideaId === "epsilon")?.decided).toBeUndefined();
  });

  it("a gate a rewind passed by is superseded: the one asked since is the one decided; a note too long is refused and lost nothing", async () => {
    const stop = new AbortController();
    void awaitDecision(suite.bus, ask("zeta", "plan.g0", { gate: "plan", idea, plan: [{ description: "WIDTH = 64" }] }), stop.signal).catch(() => undefined);
    await expect.poll(async () => (await waitingGate(person, "r1", "zeta"))?.request).toBe("plan.g0");
    stop.abort();
    // Rewound past its plan, the idea wrote its paper again and waits there.
    const paper = awaitDecision(suite.bus, { ...ask("zeta", "paper.r0.g1", { gate: "paper", idea, pdf: "r1/zeta/paper.pdf", round: 0, amendmentsLeft: 3 }), askedAt: new Date(Date.now() + 1000).toISOString() }, new AbortController().signal);
    await expect.poll(async () => (await waitingGate(person, "r1", "zeta"))?.request).toBe("paper.r0.g1");
    await expect(decideGate(person, "r1", "zeta", { choice: "edit", notes: "x".repeat(20_001) }, "ada@lab")).rejects.toThrow(/cannot be recorded/);
    await decideGate(person, "r1", "zeta", { choice: "edit", notes: "say what the figure shows" }, "ada@lab");
    expect((await paper).decision).toEqual({ choice: "edit", notes: "say what the figure shows" });
    expect(await waitingGate(person, "r1", "zeta")).toBeUndefined();
    expect((await listGates(person, "r1")).find((g) => g.request === "plan.g0" && g.ideaId === "zeta")?.decided).toBeUndefined();
  });

  it("a gate of a stage rewound since is superseded, and a decision names the gate it was made on", async () => {
    const stop = new AbortController();
    void awaitDecision(suite.bus, ask("eta", "paper.r0.g0", { gate: "paper", idea, pdf: "r1/eta/paper.pdf", round: 0, amendmentsLeft: 3 }), stop.signal).catch(() => undefined);
    await expect.poll(async () => (await waitingGate(person, "r1", "eta"))?.request).toBe("paper.r0.g0");
    await expect(decideGate(person, "r1", "eta", { choice: "approve" }, "ada@lab", "plan.g0")).rejects.toThrow(/no longer waits at plan\.g0 but at paper\.r0\.g0/);
    // Rewound to its experiments while its paper waited: the idea will write and ask again, under generation 1.
    await requestRewind(person, "r1", "eta", "experiment", "ada@lab");
    expect(await waitingGate(person, "r1", "eta")).toBeUndefined();
    expect((await gateStates(person, "r1")).find((g) => g.ideaId === "eta")?.state).toBe("superseded");
    await expect(decideGate(person, "r1", "eta", { choice: "approve" }, "ada@lab")).rejects.toThrow(/is not waiting at a gate/);
    stop.abort();
  });

  it("names a rewound job's generation, and only from the tokens after the idea", () => {
    expect(generationTag({ jobId: "r1.write.alpha.g2" })).toBe(".g2");
    expect(generationTag({ jobId: "r1.chair.alpha.r1.g3" })).toBe(".g3");
    expect(generationTag({ jobId: "r1.experiment.alpha.g1.n4" })).toBe(".g1");
    expect(generationTag({ jobId: "r1.write.g1" })).toBe("");
    expect(generationTag({ jobId: "r1.write.alpha.r1" })).toBe("");
  });

  it("rewinds are numbered, and each keeps the generation of every stage, earlier rewinds' included", async () => {
    const first = await requestRewind(person, "r2", "alpha", "experiment", "ada@lab");
    expect(first).toMatchObject({ generation: 1, stages: { experiment: 1, writing: 1, review: 1 } });
    expect(first.stages.plan).toBeUndefined();
    const second = await requestRewind(person, "r2", "alpha", "writing", "ada@lab");
    expect(second).toMatchObject({ generation: 2, stages: { experiment: 1, writing: 2, review: 2 } });
    expect(await listRewinds(person, "r2")).toEqual([second]);
    // Another run's ideas are not this run's.
    expect((await listRewinds(person, "r1")).filter((r) => r.ideaId === "alpha")).toEqual([]);
    // A key written by hand that is not a rewind is passed over.
    await person.kv.put(kvKeys.rewind("r2", "beta"), "not json");
    expect(await listRewinds(person, "r2")).toEqual([second]);
  });
});
