import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { createActor, fromPromise, toPromise } from "xstate";
import { machines } from "../machines/index.js";
import type { CriticStep, Decision } from "../machines/critic.js";
import type { Evidence } from "../bus/schemas.js";
import { SNAPSHOT_VERSION, parseSnapshot } from "../agents/runtime/snapshots.js";

// A critic persisted by this release in "thinking", after its first search returned (test/fixtures/snapshots/).
const FIXTURE = JSON.parse(readFileSync(new URL("./fixtures/snapshots/critic.v1.json", import.meta.url), "utf8")) as unknown;

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
    expect(() => parseSnapshot({ ...raw, version: 2 }, "run/critic.a.0", "critic")).toThrow(/has version 2, and this release reads version 1/);
    expect(() => parseSnapshot({ ...raw, version: undefined }, "run/critic.a.0", "critic")).toThrow(/has version null/);
    expect(() => parseSnapshot(raw, "run/critic.a.0", "coder")).toThrow(/of machine critic, not coder/);
    expect(() => parseSnapshot({ ...raw, snapshot: { status: "sleeping" } }, "run/critic.a.0", "critic")).toThrow(/is malformed: snapshot\.status/);
  });
});
