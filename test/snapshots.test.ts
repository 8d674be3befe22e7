import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { createActor, fromCallback, fromPromise, toPromise } from "xstate";
import type { JobEvent, JobRequest } from "../machines/idea.js";
import { machines } from "../machines/index.js";
import type { CriticStep, Decision } from "../machines/critic.js";
import type { Evidence } from "../bus/schemas.js";
import { SNAPSHOT_VERSION, parseSnapshot } from "../agents/runtime/snapshots.js";

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/snapshots/${name}`, import.meta.url), "utf8")) as unknown;
// A critic persisted by this release in "thinking", after its first search returned (test/fixtures/snapshots/).
const FIXTURE = fixture(`critic.v${SNAPSHOT_VERSION}.json`);

describe("persisted actors", () => {
  it("restores a critic of this version from its fixture and runs it to its end, keeping what it had found", async () => {
    const persisted = parseSnapshot(FIXTURE, "fixture", "critic");
    expect(persisted.version).toBe(SNAPSHOT_VERSION);
    const thoughts: { round: number; queries: string[] }[] = [];
    const machine = machines.critic.provide({
      actors: {
        think: fromPromise(async ({ input }): Promise<CriticStep> => {
          thoughts.push({ round: input.round, queries: input.queries });
          return { decision: { verdict: "novel", reason: "nothing this close" } };
        }),
        searchLiterature: fromPromise(async (): Promise<Evidence[]> => {
          throw new Error("a restored critic searches nothing it already searched");
        }),
        decide: fromPromise(async (): Promise<Decision> => ({ verdict: "not novel", reason: "unused" })),
      },
    });
    const idea = { Name: "alpha", Title: "On alpha", Experiment: "Set ALPHA to 2.", Interestingness: 5, Feasibility: 8, Novelty: 6 };
    const actor = createActor(machine, { input: { idea, maxRounds: 3 }, snapshot: persisted.snapshot }).start();
    const out = await toPromise(actor);
    // The interrupted thought is made again, with the search it had done; nothing before it is repeated.
    expect(thoughts).toEqual([{ round: 1, queries: ["alpha fitting"] }]);
    expect(out.verdict).toEqual({
      verdict: "novel", reason: "nothing this close", evidence: [{ title: "Beta fitting", authors: ["B. Author"], year: 2020 }], queries: ["alpha fitting"],
    });
  });

  it("refuses a snapshot of another version or machine, or a malformed one, saying which", () => {
    const raw = FIXTURE as Record<string, unknown>;
    expect(() => parseSnapshot({ ...raw, version: 1 }, "run/critic.a.0", "critic")).toThrow(/has version 1, and this release reads version 3/);
    expect(() => parseSnapshot({ ...raw, version: undefined }, "run/critic.a.0", "critic")).toThrow(/has version null/);
    expect(() => parseSnapshot(raw, "run/critic.a.0", "coder")).toThrow(/of machine critic, not coder/);
    expect(() => parseSnapshot({ ...raw, snapshot: { status: "sleeping" } }, "run/critic.a.0", "critic")).toThrow(/is malformed: snapshot\.status/);
  });

  it("restores a run's pipeline of this version, its idea in the middle of writing, and runs it to its end asking only for what was under way", async () => {
    const persisted = parseSnapshot(fixture(`pipeline.v${SNAPSHOT_VERSION}.json`), "fixture", "pipeline");
    const asked: string[] = [];
    const job = fromCallback<JobEvent, JobRequest>(({ input, sendBack }) => {
      asked.push(input.job.jobId);
      if (input.kind === "write") queueMicrotask(() => sendBack({ type: "WRITTEN", result: { pdf: "r/alpha/paper/alpha.pdf", tex: "r/alpha/paper/template.tex" } }));
      if (input.kind === "chair") {
        const result = { decision: "Accept" as const, metaReview: "m", scores: { Overall: 6 }, reviews: 1, round: 0, reviewers: [{ reviewer: 0, node: "n", overall: 6, decision: "Accept" as const }] };
        queueMicrotask(() => sendBack({ type: "DECIDED", result, spentUsd: 0 }));
      }
    });
    const machine = machines.pipeline.provide({ actors: { job, watchIdeas: fromCallback(() => {}), idea: machines.idea.provide({ actors: { job } }) } });
    const out = await toPromise(createActor(machine, {
      // Read only when starting afresh: the snapshot's context holds the run's own.
      input: { runId: "unused", ideas: 1, baselineKind: "baseline", experimentKind: "experiment", revisionRounds: 0 },
      snapshot: persisted.snapshot,
    }).start());
    expect(asked).toEqual(["20261201-120000-abcd.write.alpha", "20261201-120000-abcd.chair.alpha"]);
    expect(out.ideas).toMatchObject([{ ideaId: "alpha", status: "decided", experiment: { notes: "run_1 fits better" }, decisions: [{ decision: "Accept" }] }]);
    expect(out.baseline?.ms).toBe(1400);
  });
});
