import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, toPromise } from "xstate";
import type { Idea, TreeStep, TreeStepResult } from "../bus/schemas.js";
import { treeMachine } from "../machines/tree.js";
import { chooseMetric, valueOf } from "../machines/metric.js";
import type { JobEvent, JobRequest } from "../machines/idea.js";

const idea: Idea = { Name: "lr", Title: "On the step size", Experiment: "sweep it", Interestingness: 5, Feasibility: 8, Novelty: 4 };
const experimented = { runs: [], figures: ["fit.png"], notes: "notes" };

/**
 * The tree machine with a fake swarm of `slots` coders: each job answers after a few turns of the event loop,
 * its value from `value(step)`, from coder `host-0` or `host-1`; a step for which `fails` says so is buggy.
 */
function runTree(opts: { slots: number; value: (step: TreeStep) => number; fails?: (step: TreeStep) => boolean; lost?: (step: TreeStep) => boolean }) {
  const steps: TreeStep[] = [];
  let inFlight = 0;
  let most = 0;
  const job = fromCallback<JobEvent, JobRequest>(({ input, sendBack }) => {
    const step = (input.job as { step: TreeStep }).step;
    steps.push(step);
    inFlight++;
    most = Math.max(most, inFlight);
    const host = `host-${steps.length % 2}`;
    let stopped = false;
    const answer = () => {
      if (stopped) return;
      inFlight--;
      if (step.action === "report") return sendBack({ type: "EXPERIMENTED", result: experimented, jobId: input.job.jobId, by: host });
      if (opts.lost?.(step)) {
        return sendBack({ type: "JOB_FAILED", kind: "experiment", jobId: input.job.jobId, failure: { kind: "environment", retryable: false, message: "python3 lacks numpy", hint: "apt-get install python3-numpy" } });
      }
      const ok = !opts.fails?.(step);
      const result: TreeStepResult = { node: step.node, ok, description: `${step.action} ${step.node}`, ...(ok ? { value: opts.value(step) } : { error: "Traceback" }) };
      sendBack({ type: "EXPERIMENTED", result, jobId: input.job.jobId, by: host });
    };
    // Jobs answer out of order: after one to three turns of the event loop, no clock involved.
    const turns = 1 + (steps.length % 3);
    const later = (n: number) => setImmediate(() => (n > 1 ? later(n - 1) : answer()));
    later(turns);
    return () => {
      stopped = true;
    };
  });
  const machine = treeMachine.provide({ actors: { job, coderSlots: fromPromise(async () => opts.slots) } });
  const actor = createActor(machine, {
    input: {
      runId: "r1", ideaId: "lr", idea, experimentKind: "experiment", seeded: true, metric: { name: "acc", goal: "max" },
      budget: { implement: 2, tune: 3, research: 2, ablate: 1, maxDebugDepth: 2, seeds: 3 },
    },
  });
  actor.start();
  return { done: toPromise(actor), steps, most: () => most };
}

describe("the tree machine", () => {
  it("keeps as many jobs in flight as the swarm has coder slots, and improves the best node so far", async () => {
    // A node's value grows with its id: the newest working node is always the best.
    const t = runTree({ slots: 3, value: (s) => ("node" in s ? Number(/\d+/.exec(s.node)![0]) : 0) });
    const out = await t.done;
    expect(out.status).toBe("done");
    expect(t.most()).toBe(3);
    const nodes = out.tree.nodes;
    expect(nodes.filter((n) => n.stage === "implement").every((n) => n.parent === "root" && n.action === "draft")).toBe(true);
    for (const n of nodes.filter((m) => m.action === "improve")) {
      // Its parent was the best node that had finished when it was made: a node made earlier than it.
      expect(Number(n.parent.slice(1))).toBeLessThan(Number(n.id.slice(1)));
    }
    // The final node is the best one before the ablations: here the last improvement made.
    expect(out.tree.final).toBe(nodes.filter((n) => n.action !== "ablate").at(-1)!.id);
    expect(nodes.filter((n) => n.stage === "ablate").map((n) => n.parent)).toEqual([out.tree.final]);
  });

  it("debugs a buggy draft up to its depth, re-runs the chosen nodes over seeds, and confirms the final one elsewhere", async () => {
    // The second draft fails, and so does its first debug step; the second debug step works.
    const t = runTree({ slots: 2, value: () => 0.5, fails: (s) => (s.action === "draft" && s.sibling === 1) || (s.action === "debug" && s.parent === "n2") });
    const out = await t.done;
    expect(out.status).toBe("done");
    const debug = out.tree.nodes.filter((n) => n.action === "debug");
    expect(debug.map((n) => [n.parent, n.debugDepth, n.status])).toEqual([["n2", 1, "buggy"], [debug[0]!.id, 2, "works"]]);
    // The budget counts drafts, not the debug steps of a buggy one.
    expect(out.tree.nodes.filter((n) => n.action === "draft")).toHaveLength(2);
    const seeds = t.steps.filter((s): s is Extract<TreeStep, { action: "seed" }> => s.action === "seed");
    const replicate = seeds.filter((s) => s.seed < 1000);
    expect(new Set(replicate.map((s) => s.seed))).toEqual(new Set([1, 2]));
    expect(replicate.some((s) => s.of === "root")).toBe(true);
    const confirm = seeds.filter((s) => s.seed >= 1000);
    expect(confirm.map((s) => `${s.of}:${s.seed}`).sort()).toEqual([`${out.tree.final}:1000`, `${out.tree.final}:1001`, `${out.tree.final}:1002`, "root:1000", "root:1001", "root:1002"].sort());
    const finder = out.tree.nodes.find((n) => n.id === out.tree.final)!.by;
    expect(confirm.every((s) => s.avoid === finder)).toBe(true);
    expect(t.steps.at(-1)!.action).toBe("report");
  });

  it("fails with the jobs' own failure when every draft was lost to it, not as the model's fault", async () => {
    const t = runTree({ slots: 2, value: () => 0, lost: () => true });
    const out = await t.done;
    expect(out.status).toBe("failed");
    expect(out.failure).toEqual({ kind: "environment", retryable: false, message: "python3 lacks numpy", hint: "apt-get install python3-numpy" });
    expect(out.tree.nodes.map((n) => n.status)).toEqual(["lost", "lost"]);
  });

  it("goes by a measure read from the baseline's results when the template names none", () => {
    expect(chooseMetric({ moons: { means: { train_time_s: 1, final_loss: 0.3, val_acc: 0.9 } } })).toEqual({ name: "val_acc", goal: "max" });
    expect(chooseMetric({ d: { means: { train_time_s: 1, kl_divergence: 0.3 } } })).toEqual({ name: "kl_divergence", goal: "min" });
    expect(chooseMetric({ d: { means: { train_time_s: 1 } } })).toEqual({ name: "train_time_s", goal: "min" });
    expect(chooseMetric({ d: { means: {} } })).toBeUndefined();
    expect(valueOf({ a: { means: { acc: 0.5 } }, b: { means: { acc: 0.7 } }, c: { means: { loss: 1 } } }, { name: "acc", goal: "max" })).toBeCloseTo(0.6, 12);
  });

  it("fails when no draft runs, with a failure that says whose fault it is", async () => {
    const t = runTree({ slots: 2, value: () => 0, fails: (s) => s.action === "draft" || s.action === "debug" });
    const out = await t.done;
    expect(out.status).toBe("failed");
    expect(out.failure).toMatchObject({ kind: "model", message: "no implementation of the idea ran" });
    expect(t.steps.some((s) => s.action === "report")).toBe(false);
  });
});
