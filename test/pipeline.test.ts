import { describe, expect, it } from "vitest";
import { createActor, fromCallback, toPromise, waitFor, type ActorRefFrom, type Snapshot } from "xstate";
import type { Idea, JobKind } from "../bus/schemas.js";
import { ideaMachine, type JobEvent, type JobRequest } from "../machines/idea.js";
import { pipelineMachine, type AcceptedEvent, type PipelineInput, type RewindEvent } from "../machines/pipeline.js";

const idea = (name: string): Idea => ({ Name: name, Title: `On ${name}`, Experiment: "fit it", Interestingness: 6, Feasibility: 7, Novelty: 5 });
const baseline = { run: "run_0", description: "baseline", ok: true, attempts: 1 };
const decision = (d: "Accept" | "Reject", round: number) => ({
  decision: d, metaReview: `meta ${round}`, scores: { Overall: d === "Accept" ? 6 : 3 }, reviews: 1, round, reviewers: [{ reviewer: 0, node: "n1", identity: "reviewer", overall: 5, decision: d }],
});
const citation = { key: "smith2017", title: "On fitting", authors: ["A. Smith"], bibtex: "@article{smith2017, title={On fitting}}" };
const input: PipelineInput = { runId: "r1", ideas: 2, baselineKind: "baseline", experimentKind: "experiment", revisionRounds: 1 };

/**
 * Stands in for the bus: records every job the pipeline asks for and answers it as `answer` says, at once or
 * (returning undefined) never, as a worker that has not finished yet.
 */
function fakeBus(answer: (req: JobRequest) => JobEvent | undefined, accepted: AcceptedEvent[] = [], rewinds: { at: string; rewind: RewindEvent }[] = []) {
  const asked: string[] = [];
  const listeners: ((jobId: string) => void)[] = [];
  const job = fromCallback<JobEvent, JobRequest>(({ input, sendBack }) => {
    asked.push(input.job.jobId);
    for (const l of listeners) l(input.job.jobId);
    const event = answer(input);
    if (event) queueMicrotask(() => sendBack(event));
  });
  const watchIdeas = fromCallback<AcceptedEvent, { runId: string }>(({ sendBack }) => {
    for (const a of accepted) queueMicrotask(() => sendBack(a));
  });
  // A person's rewind, said once the job named in `at` has been asked for.
  const watchRewinds = fromCallback<RewindEvent, { runId: string }>(({ sendBack }) => {
    for (const { at, rewind } of rewinds) listeners.push((jobId) => jobId === at && queueMicrotask(() => sendBack(rewind)));
  });
  const machine = pipelineMachine.provide({ actors: { job, watchIdeas, watchRewinds, idea: ideaMachine.provide({ actors: { job } }) } });
  /** Resolves once every job named has been asked for. */
  const askedFor = (jobIds: string[]) =>
    new Promise<void>((resolve) => {
      const check = () => jobIds.every((j) => asked.includes(j)) && resolve();
      listeners.push(check);
      check();
    });
  return { machine, asked, askedFor };
}

/** A swarm where every worker answers: ideas are rejected on their first round while `reject` says so. */
function answers(opts: { reject?: (ideaId: string, round: number) => boolean; spentUsd?: number; ideate?: JobKind[] } = {}) {
  return (req: JobRequest): JobEvent | undefined => {
    switch (req.kind) {
      case "baseline":
        return { type: "BASELINE_DONE", result: { run: baseline, cached: false, ms: 5 } };
      case "ideate":
        return {
          type: "IDEATED",
          result: { ideas: ["alpha", "beta"].map((n) => ({ ideaId: n, idea: idea(n), status: "accepted" as const, history: [] })) },
        };
      case "experiment":
        return { type: "EXPERIMENTED", result: { runs: [baseline], figures: ["fit.png"], notes: "n" } };
      case "cite":
        return { type: "CITED", result: { citations: [citation] } };
      case "write":
        return { type: "WRITTEN", result: { pdf: `r1/${req.job.ideaId}/paper/${req.job.ideaId}.pdf`, tex: "t" } };
      case "chair": {
        const round = req.job.round ?? 0;
        const reject = opts.reject?.(req.job.ideaId, round) ?? false;
        return { type: "DECIDED", result: decision(reject ? "Reject" : "Accept", round), spentUsd: opts.spentUsd ?? 0 };
      }
      default:
        return undefined;
    }
  };
}

describe("the run's pipeline", () => {
  it("rewinds an idea from writing on: its experiments and citations are found done under their ids, its paper is written and reviewed anew", async () => {
    const { machine, asked } = fakeBus(answers(), [], [
      { at: "r1.chair.alpha", rewind: { type: "REWIND", ideaId: "alpha", generation: 1, stages: { writing: 1, review: 1 } } },
    ]);
    const out = await toPromise(createActor(machine, { input }).start());
    const alpha = asked.filter((j) => j.includes(".alpha"));
    // Asked again under the same ids: a worker finds them done, and their recorded outcomes come back.
    expect(alpha.filter((j) => j === "r1.experiment.alpha")).toHaveLength(2);
    expect(alpha.filter((j) => j === "r1.cite.alpha")).toHaveLength(2);
    expect(alpha).toContain("r1.write.alpha.g1");
    expect(alpha).toContain("r1.chair.alpha.g1");
    expect(asked.filter((j) => j.includes(".beta")).every((j) => !j.includes(".g"))).toBe(true);
    expect(out.ideas.map((i) => [i.ideaId, i.status])).toEqual([["alpha", "decided"], ["beta", "decided"]]);
    // A rewind said again (a restart reads them all) is not taken up twice.
    const again = fakeBus(answers(), [], [
      { at: "r1.chair.alpha", rewind: { type: "REWIND", ideaId: "alpha", generation: 1, stages: { writing: 1, review: 1 } } },
      { at: "r1.chair.alpha.g1", rewind: { type: "REWIND", ideaId: "alpha", generation: 1, stages: { writing: 1, review: 1 } } },
    ]);
    await toPromise(createActor(again.machine, { input }).start());
    expect(again.asked.filter((j) => j === "r1.write.alpha.g1")).toHaveLength(1);
  });

  it("starts an idea's experiments as soon as it is accepted, revises a rejected paper once, and ends when every idea has", async () => {
    const { machine, asked } = fakeBus(answers({ reject: (id, round) => id === "alpha" && round === 0 }), [
      { type: "IDEA_ACCEPTED", ideaId: "alpha", idea: idea("alpha") },
    ]);
    const out = await toPromise(createActor(machine, { input }).start());
    // alpha's experiment was asked for before the ideation ended; beta, known only from the ideation's record, after.
    expect(asked.indexOf("r1.experiment.alpha")).toBeLessThan(asked.indexOf("r1.experiment.beta"));
    expect(asked.filter((j) => j === "r1.experiment.alpha")).toHaveLength(1);
    expect(asked).toContain("r1.write.alpha.r1");
    expect(asked).toContain("r1.chair.alpha.r1");
    expect(asked).not.toContain("r1.write.beta.r1");
    expect(out.ideas.map((i) => [i.ideaId, i.status, i.round, i.decisions.map((d) => d.decision)])).toEqual([
      ["alpha", "decided", 1, ["Reject", "Accept"]],
      ["beta", "decided", 0, ["Accept"]],
    ]);
  });

  it("searches for an idea's citations while its experiments run, and writes once both are done, with those citations", async () => {
    // The experiments never end here: the citations come while they run, and the paper waits for both.
    const writes: JobRequest[] = [];
    const running = fakeBus((req) => (req.kind === "experiment" ? undefined : answers()(req)));
    const actor = createActor(running.machine, { input }).start();
    await running.askedFor(["r1.cite.alpha", "r1.experiment.alpha"]);
    const alpha = actor.getSnapshot().children.alpha as ActorRefFrom<typeof ideaMachine>;
    await waitFor(alpha, (s) => s.context.citations !== undefined);
    expect(alpha.getSnapshot().value).toBe("experimenting");
    expect(running.asked.filter((j) => j.includes(".write."))).toEqual([]);
    actor.stop();

    const both = fakeBus((req) => {
      if (req.kind === "write") writes.push(req);
      return answers({ reject: (id, round) => id === "alpha" && round === 0 })(req);
    });
    const out = await toPromise(createActor(both.machine, { input }).start());
    expect(out.ideas.map((i) => [i.status, i.round])).toEqual([["decided", 1], ["decided", 0]]);
    const alphaWrites = writes.flatMap((w) => (w.kind === "write" && w.job.ideaId === "alpha" ? [[w.job.jobId, w.job.citations]] : []));
    // A revision keeps the citations of the version before: no new search, and its job carries none of its own.
    expect(alphaWrites).toEqual([["r1.write.alpha", [citation]], ["r1.write.alpha.r1", undefined]]);
    expect(both.asked.filter((j) => j.includes(".cite."))).toEqual(["r1.cite.alpha", "r1.cite.beta"]);
  });

  it("writes the paper with the template's own references when the citation search fails", async () => {
    const writes: JobRequest[] = [];
    const { machine } = fakeBus((req) => {
      if (req.kind === "cite") return { type: "JOB_FAILED", kind: "cite", failure: { kind: "environment", retryable: true, message: "the literature is down" } };
      if (req.kind === "write") writes.push(req);
      return answers({ reject: (id, round) => id === "alpha" && round === 0 })(req);
    });
    const out = await toPromise(createActor(machine, { input }).start());
    expect(out.ideas.map((i) => [i.ideaId, i.status, i.failure])).toEqual([
      ["alpha", "decided", undefined],
      ["beta", "decided", undefined],
    ]);
    const alpha = writes.flatMap((w) => (w.kind === "write" && w.job.ideaId === "alpha" ? [[w.job.jobId, w.job.citations]] : []));
    expect(alpha).toEqual([
      ["r1.write.alpha", []],
      ["r1.write.alpha.r1", undefined],
    ]);
  });

  it("does not revise once the budget is spent, nor past the revision rounds", async () => {
    const spent = fakeBus(answers({ reject: () => true, spentUsd: 2 }));
    const out = await toPromise(createActor(spent.machine, { input: { ...input, budgetUsd: 1 } }).start());
    expect(out.ideas.every((i) => i.round === 0 && i.decisions.length === 1)).toBe(true);
    expect(spent.asked.some((j) => j.endsWith(".r1"))).toBe(false);
    const rounds = fakeBus(answers({ reject: () => true }));
    const twice = await toPromise(createActor(rounds.machine, { input }).start());
    expect(twice.ideas.map((i) => i.decisions.length)).toEqual([2, 2]);
  });

  it("stops before any model call when the baseline fails, and keeps an idea's failure with the step that failed", async () => {
    const broken = fakeBus((req) => (req.kind === "baseline" ? { type: "JOB_FAILED", kind: "baseline", failure: { kind: "template", retryable: false, message: "no numpy" } } : undefined));
    const out = await toPromise(createActor(broken.machine, { input }).start());
    expect(out).toMatchObject({ failedAt: "baseline", failure: { kind: "template" }, ideas: [] });
    expect(broken.asked).toEqual(["r1.baseline"]);
    const failing = fakeBus((req) =>
      req.kind === "write" ? { type: "JOB_FAILED", kind: "write", failure: { kind: "model", retryable: false, message: "LaTeX still fails" } } : answers()(req),
    );
    const run = await toPromise(createActor(failing.machine, { input }).start());
    expect(run.ideas.map((i) => [i.status, i.failedAt, i.failure?.message])).toEqual([
      ["failed", "write", "LaTeX still fails"],
      ["failed", "write", "LaTeX still fails"],
    ]);
  });

  it("goes on from its persisted snapshot: asks again only for what it was waiting for", async () => {
    // The first life: the writers never answer, as when the swarm is killed while papers are written.
    const first = fakeBus((req) => (req.kind === "write" ? undefined : answers()(req)));
    const actor = createActor(first.machine, { input }).start();
    await first.askedFor(["r1.write.alpha", "r1.write.beta"]);
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as Snapshot<unknown>;
    actor.stop();
    expect(first.asked.filter((j) => j.includes(".experiment."))).toHaveLength(2);

    const second = fakeBus(answers());
    const out = await toPromise(createActor(second.machine, { input, snapshot: persisted }).start());
    expect(second.asked.sort()).toEqual(["r1.chair.alpha", "r1.chair.beta", "r1.write.alpha", "r1.write.beta"]);
    expect(out.ideas.map((i) => [i.ideaId, i.status])).toEqual([
      ["alpha", "decided"],
      ["beta", "decided"],
    ]);
  });
});
