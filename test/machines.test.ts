import { describe, expect, it } from "vitest";
import {
  createActor,
  createMachine,
  fromCallback,
  fromPromise,
  getInitialMicrosteps,
  getMicrosteps,
  getNextTransitions,
  SimulatedClock,
  toPromise,
  waitFor,
  type ActorRefFrom,
  type AnyEventObject,
  type AnyMachineSnapshot,
  type AnyStateMachine,
} from "xstate";
import { getShortestPaths, getStateNodes } from "xstate/graph";
import type { Idea, Review, RunRecord, Verdict } from "../bus/schemas.js";
import { machines, type Role } from "../machines/index.js";
import type { ChairEvent, ReceivedReview } from "../machines/areaChair.js";
import type { PlannedRun, PlotAttempt, RunAttempt } from "../machines/coder.js";
import { toMermaid } from "../machines/mermaid.js";
import type { GateEvent, JobEvent } from "../machines/idea.js";
import type { PipelineEvent } from "../machines/pipeline.js";
import type { CriticStep, Decision } from "../machines/critic.js";
import { sectionMachine, type Citation, type CompileReport, type SectionOutput, type Written } from "../machines/writer.js";
import { LiteratureError } from "../agents/literature/errors.js";
import { BudgetReachedError, ModelBehaviorError, ProviderError } from "../agents/llm/errors.js";
import { BusError, type Failure } from "../bus/errors.js";

const idea = (name: string): Idea => ({ Name: name, Title: `On ${name}`, Experiment: "fit it", Interestingness: 6, Feasibility: 7, Novelty: 5 });
const verdict = (v: Verdict["verdict"], reason = "because"): Verdict => ({ verdict: v, reason, evidence: [], queries: [] });
const review: Review = {
  Summary: "s",
  Strengths: [],
  Weaknesses: [],
  Originality: 2,
  Quality: 2,
  Clarity: 2,
  Significance: 2,
  Questions: [],
  Limitations: [],
  Ethical_Concerns: false,
  Soundness: 2,
  Presentation: 2,
  Contribution: 2,
  Overall: 5,
  Confidence: 3,
  Decision: "Reject",
};
const received = (reviewer: number): ReceivedReview => ({ reviewer, node: "n1", identity: "reviewer", review });
const baseline: RunRecord = { run: "run_0", description: "baseline", ok: true, attempts: 1 };
const cited = (key: string): Citation => ({ key, title: `On ${key}`, authors: ["A. Author"], bibtex: `@article{${key}, title={On ${key}}}` });
const experimented = { runs: [baseline], figures: ["fit.png"], notes: "notes" };
const decision = (d: "Accept" | "Reject") => ({ decision: d, metaReview: "m", scores: { Overall: 5 }, reviews: 1, round: 0, reviewers: [{ reviewer: 0, node: "n1", identity: "reviewer", overall: 5, decision: d }] });

/** The id xstate gives the actor invoked by a state: `<index>.<state id>` unless the machine names it. */
function invokeId(machine: AnyStateMachine, state: string): string {
  const node = machine.root.states[state];
  const id = node?.invoke[0]?.id;
  if (!id) throw new Error(`${machine.id}.${state} invokes nothing`);
  return id;
}

/** The events a spawned actor raises in its parent when it ends, either way. */
function spawned(actorId: string, outputs: unknown[]): AnyEventObject[] {
  return [
    ...outputs.map((output) => ({ type: `xstate.done.actor.${actorId}`, actorId, output })),
    { type: `xstate.error.actor.${actorId}`, actorId, error: new Error(`${actorId} broke`) },
  ];
}

/** The events an invoked actor's completion and failure raise in its parent. */
function outcomes(machine: AnyStateMachine, state: string, outputs: unknown[], failure = true): AnyEventObject[] {
  const id = invokeId(machine, state);
  return [
    ...outputs.map((output) => ({ type: `xstate.done.actor.${id}`, output })),
    ...(failure ? [{ type: `xstate.error.actor.${id}`, error: new Error(`${state} broke`) }] : []),
  ];
}

interface Traversal {
  input: unknown;
  /** Inputs that take another path from the start (the writer's revision), walked as well. */
  otherInputs?: unknown[];
  events: (m: AnyStateMachine) => AnyEventObject[];
}

// Small inputs keep every loop short; the outputs offered per event take each guard's branches.
const traversals: Record<Role, Traversal> & { section?: Traversal } = {
  ideator: {
    input: { target: 2, maxReflections: 2, maxRevisions: 1 },
    events: (m) => [
      ...outcomes(m, "proposing", [idea("alpha")]),
      ...outcomes(m, "reflecting", [
        { idea: idea("alpha"), done: false, thought: "sharpen" },
        { idea: idea("alpha"), done: true, thought: "fine" },
      ]),
      ...outcomes(m, "screening", [{}, { duplicateOf: "beta" }]),
      ...outcomes(m, "askingCritic", [undefined]),
      ...outcomes(m, "awaitingVerdict", [verdict("novel"), verdict("revise"), verdict("not novel"), verdict("undecided")]),
      ...outcomes(m, "revising", [idea("alpha")]),
      ...outcomes(m, "handingOff", [undefined]),
    ],
  },
  critic: {
    input: { idea: idea("alpha"), maxRounds: 1 },
    events: (m) => [
      ...outcomes(m, "thinking", [{ decision: { verdict: "novel", reason: "nothing close" } }, { query: "alpha fitting" }, {}]),
      ...outcomes(m, "searching", [[{ title: "Prior work", authors: ["A. Author"] }], []]),
      ...outcomes(m, "deciding", [{ verdict: "not novel", reason: "Prior work" }]),
    ],
  },
  coder: {
    input: { idea: idea("alpha"), maxRuns: 2, maxFixes: 1, figureRounds: 1 },
    events: (m) => [
      ...outcomes(m, "baseline", [baseline]),
      ...outcomes(m, "planning", [[{ description: "wider" }, { description: "deeper" }] satisfies PlannedRun[], []]),
      ...outcomes(m, "editing", [undefined]),
      ...outcomes(m, "running", [{ ok: true, stderrTail: "" }, { ok: false, stderrTail: "Traceback" }] satisfies RunAttempt[]),
      ...outcomes(m, "fixing", [undefined]),
      ...outcomes(m, "runFailed", [undefined]),
      ...outcomes(m, "plotting", ["plot code"]),
      ...outcomes(m, "runningPlot", [{ figures: ["fig.png"], stderrTail: "" }, { figures: [], stderrTail: "Traceback" }] satisfies PlotAttempt[]),
      ...outcomes(m, "noting", ["notes"]),
      ...outcomes(m, "critiquing", [
        [{ figure: "fig.png", ok: true, shows: "s", problems: [], seen: false }],
        [{ figure: "fig.png", ok: false, shows: "s", problems: [{ kind: "blank", detail: "d" }], seen: false }],
      ]),
    ],
  },
  writer: {
    input: { sections: ["introduction"], citeRounds: 2, maxFixes: 1, figureRounds: 1 },
    otherInputs: [
      { sections: ["introduction"], citeRounds: 2, maxFixes: 1, revision: { metaReview: "too thin", sections: { introduction: "x" }, citations: [] } },
      { sections: [], citeRounds: 2, maxFixes: 0, citeOnly: true },
      { sections: ["introduction"], citeRounds: 2, maxFixes: 1, citations: [cited("a")] },
    ],
    events: (m) => [
      ...outcomes(m, "citing", [
        { found: [cited("a")], more: true },
        { found: [], more: false },
      ]),
      // Each section's machine is spawned as section.<name>.
      ...spawned("section.introduction", [
        { section: "introduction", latex: "drafted" },
        { section: "introduction", latex: "", error: { kind: "model", retryable: false, message: "writing introduction failed: garbage" } },
      ] satisfies SectionOutput[]),
      ...outcomes(m, "compiling", [
        { ok: true, errors: [] },
        { ok: false, errors: ["Undefined control sequence"] },
      ]),
      ...outcomes(m, "fixing", [{ method: "fixed" }] satisfies Written[]),
      ...outcomes(m, "checkingClaims", [{ unmatched: [] }, { unmatched: ["0.97 in the abstract"] }]),
      ...outcomes(m, "fixingClaims", [{ introduction: "fixed" }] satisfies Written[]),
      ...outcomes(m, "critiquingCaptions", [[], [{ figure: "fig.png", caption: "c", shows: "s", problems: [{ kind: "caption-claims", detail: "d" }] }]]),
      ...outcomes(m, "recaptioning", [{ introduction: "recaptioned" }] satisfies Written[]),
    ],
  },
  section: {
    input: { section: "method", citations: [], citationKeys: [], given: {} },
    otherInputs: [{ section: "method", citations: [], citationKeys: [], given: {}, revision: { latex: "v1", metaReview: "too thin" } }],
    events: (m) => [
      ...outcomes(m, "drafting", ["drafted"]),
      ...outcomes(m, "revising", ["revised"]),
      ...outcomes(m, "checking", [[], ["method: unbalanced braces { }"]]),
      ...outcomes(m, "refining", ["refined"]),
    ],
  },
  reviewer: {
    input: { maxReflections: 2 },
    events: (m) => [
      ...outcomes(m, "reading", ["the paper"]),
      ...outcomes(m, "reviewing", [review]),
      ...outcomes(m, "reflecting", [
        { review, done: false },
        { review, done: true },
      ]),
    ],
  },
  areaChair: {
    input: { reviewers: 2, quorum: 2, deadlineMs: 1000 },
    events: (m) => [
      ...outcomes(m, "requesting", [undefined]),
      { type: "REVIEW", review: received(0) } satisfies ChairEvent,
      { type: "REVIEW_FAILED", reviewer: 1, failure: { kind: "provider", retryable: true, message: "timeout" } } satisfies ChairEvent,
      // The delayed transition's event, as xstate names it: xstate.after.<delay>.<state id>.
      { type: "xstate.after.reviewDeadline.areaChair.collecting" },
      ...outcomes(m, "deciding", [{ decision: "Accept", metaReview: "good", scores: { Overall: 6 } }]),
    ],
  },
  idea: {
    input: { runId: "r1", ideaId: "alpha", idea: idea("alpha"), experimentKind: "experiment", revisionRounds: 1 },
    otherInputs: [{
      runId: "r1", ideaId: "alpha", idea: idea("alpha"), experimentKind: "experiment", revisionRounds: 0, search: "tree",
      tree: { budget: { implement: 1, tune: 0, research: 0, ablate: 0, maxDebugDepth: 0, seeds: 1 }, seeded: false },
    }, {
      runId: "r1", ideaId: "alpha", idea: idea("alpha"), experimentKind: "experiment", revisionRounds: 0, gates: ["ideas", "plan", "paper"],
    }],
    events: () => [
      ...([
        { type: "APPROVED", by: "ada@lab" },
        { type: "EDITED", by: "ada@lab", decision: { choice: "edit", notes: "say what the figure shows" } },
        { type: "REJECTED", by: "ada@lab", reason: "done before" },
      ] satisfies GateEvent[]),
      ...([
        { type: "PLANNED", result: { runs: [{ description: "wider" }] } },
        { type: "EXPERIMENTED", result: experimented },
        { type: "CITED", result: { citations: [cited("a")] } },
        { type: "JOB_FAILED", kind: "cite", failure: { kind: "environment", retryable: true, message: "the literature is down" } },
        { type: "WRITTEN", result: { pdf: "r1/alpha/paper/alpha.pdf", tex: "r1/alpha/paper/template.tex" } },
        { type: "DECIDED", result: decision("Reject"), spentUsd: 0 },
        { type: "DECIDED", result: decision("Accept"), spentUsd: 0 },
        { type: "JOB_FAILED", kind: "write", failure: { kind: "model", retryable: false, message: "LaTeX still fails" } },
      ] satisfies JobEvent[]),
      ...spawned("tree", [
        { status: "done", result: experimented, tree: { metric: { name: "acc", goal: "max" }, seeded: false, seeds: 1, stages: [], nodes: [], seedRuns: [] } },
        { status: "failed", failure: { kind: "model", retryable: false, message: "no implementation of the idea ran" }, tree: { metric: { name: "acc", goal: "max" }, seeded: false, seeds: 1, stages: [], nodes: [], seedRuns: [] } },
      ]).filter((e) => !e.type.startsWith("xstate.error")),
    ],
  },
  variant: {
    input: { edits: true, maxFixes: 1 },
    otherInputs: [{ edits: false, maxFixes: 0 }],
    events: (m) => [
      ...outcomes(m, "editing", ["Set WIDTH = 32 (parent: 16)"]),
      { type: `xstate.error.actor.${invokeId(m, "editing")}`, error: new ProviderError("openai: HTTP 503: busy", 503) },
      ...outcomes(m, "running", [{ ok: true, stderrTail: "", results: { d: { means: { acc: 0.9 } } } }, { ok: false, stderrTail: "Traceback" }]),
      { type: `xstate.error.actor.${invokeId(m, "running")}`, error: new BusError("the bus is down", { retryable: true }) },
    ],
  },
  figureCritic: {
    input: { figures: [{ name: "a.png", caption: "A", references: [] }, { name: "b.png", caption: "B", references: [] }], sees: true },
    otherInputs: [{ figures: [{ name: "a.png", caption: "A", references: [] }], sees: false }],
    events: (m) => [
      ...outcomes(m, "checking", [[
        { figure: "a.png", ok: true, shows: "a line", problems: [], seen: false },
        { figure: "b.png", ok: false, shows: "nothing", problems: [{ kind: "blank", detail: "one colour" }], seen: false },
      ]]),
      ...outcomes(m, "seeing", [{ shows: "x", problems: [] }, { shows: "y", problems: [{ kind: "no-legend", detail: "z" }] }]),
    ],
  },
  scaffold: {
    input: { maxFixes: 1 },
    events: (m) => [
      ...outcomes(m, "writing", [undefined]),
      ...outcomes(m, "running", [{ ok: true, stderrTail: "", results: { d: { means: { acc: 0.9 } } } }, { ok: false, stderrTail: "Traceback" }]),
      ...outcomes(m, "fixing", [undefined]),
      ...outcomes(m, "checking", [[], ["latex/template.tex lacks RESULTS HERE"]]),
      ...outcomes(m, "publishing", [["experiment.py"]]),
    ],
  },
  tree: {
    input: {
      runId: "r1", ideaId: "alpha", idea: idea("alpha"), experimentKind: "experiment", seeded: false, metric: { name: "acc", goal: "max" },
      budget: { implement: 1, tune: 1, research: 0, ablate: 1, maxDebugDepth: 1, seeds: 1 },
    },
    events: (m) => [
      ...outcomes(m, "sizing", [1]),
      ...["n1", "n2", "n3"].flatMap((node): JobEvent[] => [
        { type: "EXPERIMENTED", result: { node, ok: true, description: `made ${node}`, value: 0.5 }, by: "host-a" },
        { type: "EXPERIMENTED", result: { node, ok: false, description: `made ${node}`, error: "Traceback" }, by: "host-a" },
      ]),
      { type: "JOB_FAILED", kind: "experiment", failure: { kind: "provider", retryable: false, message: "no key" }, jobId: "r1.experiment.alpha.n1" },
      ...["n1", "n2", "n3", "root"].map((of): JobEvent => ({ type: "EXPERIMENTED", result: { node: `${of}-s1000`, ok: true, description: "again", value: 0.5 }, by: "host-b" })),
      { type: "JOB_FAILED", kind: "experiment", failure: { kind: "budget", retryable: false, message: "spent" }, jobId: "r1.experiment.alpha.n1" },
      { type: "EXPERIMENTED", result: experimented, jobId: "r1.experiment.alpha.report" },
    ],
  },
  pipeline: {
    input: { runId: "r1", ideas: 1, baselineKind: "baseline", experimentKind: "experiment", revisionRounds: 0 },
    otherInputs: [{ runId: "r1", ideas: 1, baselineKind: "baseline", experimentKind: "experiment", revisionRounds: 0, scaffold: true }],
    events: () => [
      { type: "SCAFFOLDED", result: { prefix: "r1/template", files: ["experiment.py"], baseline, attempts: 1 } },
      { type: "JOB_FAILED", kind: "scaffold", failure: { kind: "model", retryable: false, message: "it never ran" } },
      { type: "REWIND", ideaId: "alpha", generation: 1, stages: { writing: 1, review: 1 } },
      { type: "BASELINE_DONE", result: { run: baseline, cached: false, ms: 800 } },
      { type: "JOB_FAILED", kind: "baseline", failure: { kind: "template", retryable: false, message: "no numpy" } },
      { type: "IDEA_ACCEPTED", ideaId: "alpha", idea: idea("alpha") },
      { type: "IDEATED", result: { ideas: [] } },
      { type: "xstate.done.actor.alpha", actorId: "alpha", output: { ideaId: "alpha", status: "decided", round: 0, decisions: [] } },
    ] satisfies PipelineEvent[],
  },
};

/** State ids a snapshot is in, including ancestors. */
function activeIds(machine: AnyStateMachine, snapshot: AnyMachineSnapshot): string[] {
  return getStateNodes(machine.root)
    .filter((node) => snapshot.matches(node.path.join(".") as never))
    .map((node) => node.id);
}

/**
 * Every state entered on the shortest path to every reachable snapshot. Transient states (`always`) never
 * rest in a snapshot, so each step is replayed microstep by microstep to see them too.
 */
function reachedStates(machine: AnyStateMachine, { input, events }: Traversal) {
  const offered = events(machine);
  // Only what the snapshot listens to: an actor's error event in a state that does not invoke it would
  // fail the whole machine, and xstate's traversal sends whatever it is given.
  const listened = (snapshot: AnyMachineSnapshot) => {
    if (snapshot.status !== "active") return [];
    const types = getNextTransitions(snapshot).map((t) => t.eventType);
    // A descriptor ending in `.*` takes every event whose type begins with what comes before it.
    const takes = (type: string) => types.some((t) => t === type || (t.endsWith(".*") && type.startsWith(t.slice(0, -1))));
    return offered.filter((e) => takes(e.type));
  };
  const paths = getShortestPaths(machine, { input, events: listened } as never);
  const reached = new Set<string>();
  const replayed = new Set<string>();
  for (const [snapshot] of getInitialMicrosteps(machine, input as never)) activeIds(machine, snapshot).forEach((id) => reached.add(id));
  for (const path of paths) {
    path.steps.forEach((step, i) => {
      if (i === 0) return;
      const prev = path.steps[i - 1]!.state as AnyMachineSnapshot;
      // Shortest paths share prefixes: each (snapshot, event) edge is replayed once.
      const key = JSON.stringify([prev.value, prev.context, step.event]);
      if (replayed.has(key)) return;
      replayed.add(key);
      for (const [snapshot] of getMicrosteps(machine, prev, step.event)) activeIds(machine, snapshot).forEach((id) => reached.add(id));
    });
  }
  return { reached, paths: paths.length, broken: paths.filter((p) => p.state.status === "error").map((p) => p.state.value) };
}

describe("every state of every machine is reachable", () => {
  for (const role of Object.keys(machines) as Role[]) {
    it(role, () => {
      const machine: AnyStateMachine = machines[role];
      const all = getStateNodes(machine.root).map((node) => node.id);
      const traversal = traversals[role];
      const reached = new Set<string>();
      for (const input of [traversal.input, ...(traversal.otherInputs ?? [])]) {
        const walked = reachedStates(machine, { ...traversal, input });
        expect(walked.paths).toBeGreaterThan(0);
        // An error event no transition takes stops the machine in status "error" rather than in a state.
        expect(walked.broken).toEqual([]);
        walked.reached.forEach((id) => reached.add(id));
      }
      expect([...reached].sort()).toEqual([...all].sort());
    });
  }
});

// The writer's section machine is a child of the writer; walked here whether or not machines/index.ts lists it.
describe("every state of the writer's section machine is reachable", () => {
  it("section", () => {
    const traversal = traversals.section!;
    const all = getStateNodes(sectionMachine.root).map((node) => node.id);
    const reached = new Set<string>();
    for (const input of [traversal.input, ...(traversal.otherInputs ?? [])]) {
      const walked = reachedStates(sectionMachine, { ...traversal, input });
      expect(walked.broken).toEqual([]);
      walked.reached.forEach((id) => reached.add(id));
    }
    expect([...reached].sort()).toEqual([...all].sort());
  });
});

/**
 * The statements toMermaid emits, as Mermaid's stateDiagram grammar lexes them: ids are word characters and a
 * label runs from ':' to the end of the line, so it may hold neither ':' nor ';' (nor '#' or '%', read as
 * entities and comments).
 */
const MERMAID_LINE = /^ *(\[\*\] --> \w+|\w+ --> (\w+|\[\*\])( : [^:;#%"\n]+)?|\w+ : [^:;#%"\n]+|state "[^"\n]*" as \w+|state \w+ \{|\}|--)$/;

describe("mermaid", () => {
  for (const role of Object.keys(machines) as Role[]) {
    it(`draws every state and edge of ${role}`, () => {
      const machine: AnyStateMachine = machines[role];
      const text = toMermaid(machine);
      expect(text.startsWith("stateDiagram-v2\n")).toBe(true);
      expect(text).toContain(`[*] --> ${machine.root.initial.target[0]!.key}`);
      for (const node of getStateNodes(machine.root)) expect(text).toContain(node.key);
      for (const line of text.trimEnd().split("\n").slice(1)) expect(line).toMatch(MERMAID_LINE);
    });
  }

  it("labels invocations, guards, delays and eventless transitions", () => {
    const chair = toMermaid(machines.areaChair);
    expect(chair).toContain("requesting : invoke requestReviews");
    expect(chair).toContain("requesting --> collecting : done(requestReviews)");
    expect(chair).toContain("requesting --> failed : error(requestReviews)");
    expect(chair).toContain("collecting --> deciding : REVIEW [quorumWithThis]");
    expect(chair).toContain("collecting --> collecting : REVIEW");
    expect(chair).toContain("collecting --> judgingWhatCame : after reviewDeadline");
    expect(chair).toContain("judgingWhatCame --> deciding : always [hasReviews]");
    expect(chair).toContain("done --> [*]");
    expect(toMermaid(machines.ideator)).toContain("reflecting --> reflecting : done(reflectOnIdea) [keepReflecting]");
    // Guards given params from the event still draw by name.
    const critic = toMermaid(machines.critic);
    expect(critic).toContain("thinking --> decided : done(think) [decidesOnEvidence]");
    expect(critic).toContain("thinking --> searching : done(think) [notSearchedYet]");
    expect(critic).toContain("thinking --> undecided : done(think) [noSearchAnswered]");
  });
  it("draws nested and parallel states with ids Mermaid cannot misread", () => {
    const nested = createMachine({
      id: "nested",
      initial: "default",
      states: {
        default: { on: { "GO-ON": { target: "busy", guard: ({ event }) => event.type === "GO-ON" } } },
        busy: {
          type: "parallel",
          states: {
            left: { initial: "a", states: { a: { after: { 100: "b" } }, b: { type: "final" } } },
            right: { initial: "c", states: { c: {} } },
          },
          onDone: "end",
        },
        end: { type: "final" },
      },
    });
    const text = toMermaid(nested);
    for (const line of text.trimEnd().split("\n").slice(1)) expect(line).toMatch(MERMAID_LINE);
    expect(text).toContain('state "default" as s_default');
    expect(text).toContain("s_default --> busy : GO-ON [inline guard]");
    expect(text).toContain("state busy {");
    expect(text).toContain("busy_left_a --> busy_left_b : after 100ms");
    expect(text).toContain("busy --> s_end : done");
  });
});

describe("the loops that matter", () => {
  it("ideator: reflects before the critic, revises on 'revise', is judged again, and records each idea", async () => {
    const calls: string[] = [];
    const names = ["alpha", "beta"];
    const machine = machines.ideator.provide({
      actors: {
        proposeIdea: fromPromise(async ({ input }) => {
          calls.push("propose");
          return idea(names[input.proposed]!);
        }),
        reflectOnIdea: fromPromise(async ({ input }) => {
          calls.push(`reflect ${input.round}`);
          return { idea: input.idea, done: input.round >= 2, thought: "tighter" };
        }),
        screenIdea: fromPromise(async () => ({})),
        askCritic: fromPromise(async ({ input }) => {
          calls.push(`critic ${input.ideaId} turn ${input.turn}`);
        }),
        awaitVerdict: fromPromise(async ({ input }) => {
          if (input.ideaId === "beta") return verdict("not novel", "done before");
          return verdict(input.turn === 0 ? "revise" : "novel");
        }),
        reviseIdea: fromPromise(async ({ input }) => {
          calls.push("revise");
          return { ...input.idea, Title: `${input.idea.Title}, revised` };
        }),
        handOff: fromPromise(async ({ input }) => {
          calls.push(`hand off ${input.ideaId}`);
        }),
      },
    });
    const actor = createActor(machine, { input: { target: 2, maxReflections: 3, maxRevisions: 1 } }).start();
    const { records } = await toPromise(actor);

    expect(calls).toEqual([
      "propose",
      "reflect 1",
      "reflect 2",
      "critic alpha turn 0",
      "revise",
      "critic alpha turn 1",
      "hand off alpha",
      "propose",
      "reflect 1",
      "reflect 2",
      "critic beta turn 0",
    ]);
    expect(records.map((r) => [r.ideaId, r.status])).toEqual([
      ["alpha", "accepted"],
      ["beta", "rejected"],
    ]);
    expect(records[0]!.idea.Title).toBe("On alpha, revised");
    expect(records[0]!.history.some((h) => h.startsWith("critic: revise"))).toBe(true);
  });

  it("ideator: an idea the critic is undecided on is kept with its verdict and never handed to the coder", async () => {
    const handed: string[] = [];
    const machine = machines.ideator.provide({
      actors: {
        proposeIdea: fromPromise(async () => idea("alpha")),
        reflectOnIdea: fromPromise(async ({ input }) => ({ idea: input.idea, done: true, thought: "fine" })),
        screenIdea: fromPromise(async () => ({})),
        askCritic: fromPromise(async () => {}),
        awaitVerdict: fromPromise(async () => verdict("undecided", "undecided: literature unreachable (Semantic Scholar answered 429)")),
        reviseIdea: fromPromise(async ({ input }) => input.idea),
        handOff: fromPromise(async ({ input }) => {
          handed.push(input.ideaId);
        }),
      },
    });
    const { records } = await toPromise(createActor(machine, { input: { target: 1, maxReflections: 1, maxRevisions: 1 } }).start());
    expect(handed).toEqual([]);
    expect(records).toHaveLength(1);
    expect(records[0]!.status).toBe("undecided");
    expect(records[0]!.verdict?.verdict).toBe("undecided");
    expect(records[0]!.history.at(-1)).toBe("critic: undecided: literature unreachable (Semantic Scholar answered 429)");
  });

  /** The critic with scripted thoughts and searches; records what it was asked. */
  function critic(steps: (input: { round: number; queries: string[] }) => CriticStep, search: (query: string) => Promise<{ title: string; authors: string[] }[]>) {
    const calls: string[] = [];
    const machine = machines.critic.provide({
      actors: {
        think: fromPromise(async ({ input }) => {
          calls.push(`think ${input.round}`);
          return steps(input);
        }),
        searchLiterature: fromPromise(async ({ input }) => {
          calls.push(`search ${input.query}`);
          return search(input.query);
        }),
        decide: fromPromise(async (): Promise<Decision> => {
          calls.push("decide");
          return { verdict: "novel", reason: "decided" };
        }),
      },
    });
    return { machine, calls };
  }

  it("critic: a decision offered before any search is ignored; it searches the idea's title, then decides", async () => {
    const { machine, calls } = critic(
      () => ({ decision: { verdict: "novel", reason: "sounds new" } }),
      async () => [{ title: "Prior work", authors: ["A. Author"] }],
    );
    const actor = createActor(machine, { input: { idea: idea("alpha"), maxRounds: 3 } }).start();
    const out = await toPromise(actor);
    expect(calls).toEqual(["think 0", "search On alpha", "think 1"]);
    expect(actor.getSnapshot().value).toBe("decided");
    expect(out.verdict).toEqual({ verdict: "novel", reason: "sounds new", evidence: [{ title: "Prior work", authors: ["A. Author"] }], queries: ["On alpha"] });
  });

  it("critic: a search that returned nothing is still evidence for 'novel'", async () => {
    const { machine, calls } = critic(
      ({ queries }) => (queries.length ? { decision: { verdict: "novel", reason: "nothing found" } } : { query: "alpha fitting" }),
      async () => [],
    );
    const out = await toPromise(createActor(machine, { input: { idea: idea("alpha"), maxRounds: 2 } }).start());
    expect(calls).toEqual(["think 0", "search alpha fitting", "think 1"]);
    expect(out.verdict).toMatchObject({ verdict: "novel", evidence: [], queries: ["alpha fitting"] });
  });

  it("critic: when no search returns, it is undecided on the last failure, keeps each failure typed, and never asks the model to decide", async () => {
    let n = 0;
    const { machine, calls } = critic(
      // The model would call it novel, and asks for more searches while it may.
      ({ round }) => ({ query: `query ${round}`, decision: { verdict: "novel", reason: "nothing found" } }),
      async (query) => {
        throw new LiteratureError(`Semantic Scholar search for "${query}" failed (try ${++n})`, "Semantic Scholar", n === 1 ? 503 : 429, { hint: "set S2_API_KEY" });
      },
    );
    const actor = createActor(machine, { input: { idea: idea("alpha"), maxRounds: 2 } }).start();
    const out = await toPromise(actor);
    expect(calls).toEqual(["think 0", "search query 0", "think 1", "search query 1", "think 2"]);
    expect(actor.getSnapshot().value).toBe("undecided");
    expect(out.verdict).toEqual({
      verdict: "undecided",
      reason: 'undecided: literature unreachable (Semantic Scholar search for "query 1" failed (try 2))',
      evidence: [],
      queries: ["query 0 (failed)", "query 1 (failed)"],
    });
    expect(actor.getSnapshot().context.failures).toEqual([
      { query: "query 0", message: 'Semantic Scholar search for "query 0" failed (try 1)', kind: "literature", retryable: true, hint: "set S2_API_KEY" },
      { query: "query 1", message: 'Semantic Scholar search for "query 1" failed (try 2)', kind: "literature", retryable: true, hint: "set S2_API_KEY" },
    ]);
  });

  it("critic: with its rounds spent and one search answered, the model decides on what was found", async () => {
    let n = 0;
    const { machine, calls } = critic(
      ({ round }) => ({ query: `query ${round}` }),
      async () => {
        if (++n === 1) throw new LiteratureError("Semantic Scholar could not be reached", "Semantic Scholar", undefined);
        return [{ title: "Prior work", authors: [] }];
      },
    );
    const out = await toPromise(createActor(machine, { input: { idea: idea("alpha"), maxRounds: 2 } }).start());
    expect(calls).toEqual(["think 0", "search query 0", "think 1", "search query 1", "think 2", "decide"]);
    expect(out.verdict).toMatchObject({ verdict: "novel", reason: "decided", queries: ["query 0 (failed)", "query 1"] });
  });

  it("coder: keeps run_1 and run_2 when run_3 fails every fix, then plots", async () => {
    const runs: string[] = [];
    const edits: string[] = [];
    const fixes: string[] = [];
    let plotted: { run: string }[] = [];
    const discarded: string[] = [];
    const machine = machines.coder.provide({
      actors: {
        ensureBaseline: fromPromise(async () => baseline),
        planRuns: fromPromise(async () => [{ description: "wider" }, { description: "deeper" }, { description: "broken" }]),
        editCode: fromPromise(async ({ input }) => {
          edits.push(`${input.run} from ${input.from}`);
        }),
        runExperiment: fromPromise(async ({ input }): Promise<RunAttempt> => {
          runs.push(input.run);
          return input.run === "run_3"
            ? { ok: false, stderrTail: "ZeroDivisionError" }
            : { ok: true, stderrTail: "", results: { nanofit: { means: { loss: 0.1 } } } };
        }),
        fixCode: fromPromise(async ({ input }) => {
          fixes.push(`${input.run}: ${input.stderrTail}`);
        }),
        discardRun: fromPromise(async ({ input }) => {
          discarded.push(`${input.run} back to ${input.restore}`);
        }),
        editPlot: fromPromise(async ({ input }) => {
          plotted = input.runs;
          return "plot code";
        }),
        runPlot: fromPromise(async (): Promise<PlotAttempt> => ({ figures: ["loss.png"], stderrTail: "" })),
        writeNotes: fromPromise(async () => "loss.png: loss per run"),
      },
    });
    const actor = createActor(machine, { input: { idea: idea("alpha"), maxRuns: 3, maxFixes: 2 } }).start();
    const out = await toPromise(actor);

    expect(out.error).toBeUndefined();
    expect(runs).toEqual(["run_1", "run_2", "run_3", "run_3", "run_3"]);
    // Each run's edit starts from the last run that worked; a failed run goes back to it.
    expect(edits).toEqual(["run_1 from run_0", "run_2 from run_1", "run_3 from run_2"]);
    expect(fixes).toEqual(["run_3: ZeroDivisionError", "run_3: ZeroDivisionError"]);
    expect(discarded).toEqual(["run_3 back to run_2"]);
    expect(out.runs.map((r) => [r.run, r.ok, r.attempts])).toEqual([
      ["run_0", true, 1],
      ["run_1", true, 1],
      ["run_2", true, 1],
      ["run_3", false, 3],
    ]);
    expect(out.runs[3]!.error).toContain("ZeroDivisionError");
    expect(plotted.map((r) => r.run)).toEqual(["run_0", "run_1", "run_2", "run_3"]);
    expect(out.figures).toEqual(["loss.png"]);
  });

  /** A coder whose one run works, with scripted plot steps. */
  function plotter(editPlot: (input: { feedback: string }) => Promise<string>, runPlot: (input: { plotCode: string }) => Promise<PlotAttempt>) {
    return machines.coder.provide({
      actors: {
        ensureBaseline: fromPromise(async () => baseline),
        planRuns: fromPromise(async () => [{ description: "wider" }]),
        editCode: fromPromise(async () => {}),
        runExperiment: fromPromise(async (): Promise<RunAttempt> => ({ ok: true, stderrTail: "", results: { d: { means: { loss: 1 } } } })),
        fixCode: fromPromise(async () => {}),
        discardRun: fromPromise(async () => {}),
        editPlot: fromPromise(async ({ input }) => editPlot(input)),
        runPlot: fromPromise(async ({ input }) => runPlot(input)),
        writeNotes: fromPromise(async () => "notes"),
      },
    });
  }

  it("coder: plot.py is edited again with its stderr until it plots; an edit that does not apply counts as an attempt", async () => {
    const asked: string[] = [];
    const ran: string[] = [];
    const machine = plotter(
      async ({ feedback }) => {
        asked.push(feedback);
        if (asked.length === 1) throw new ModelBehaviorError("the SEARCH text matches nowhere in plot.py");
        return `plot ${asked.length}`;
      },
      async ({ plotCode }) => {
        ran.push(plotCode);
        return ran.length === 1 ? { figures: [], stderrTail: "KeyError: 'run_1'" } : { figures: ["loss.png"], stderrTail: "" };
      },
    );
    const actor = createActor(machine, { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 2 } }).start();
    const out = await toPromise(actor);
    expect(asked).toEqual(["", "the SEARCH text matches nowhere in plot.py", "KeyError: 'run_1'"]);
    expect(ran).toEqual(["plot 2", "plot 3"]);
    expect(actor.getSnapshot().value).toBe("done");
    expect(out.figures).toEqual(["loss.png"]);
  });

  it("coder: a plot.py that never plots is the model's failure; a provider outage while editing it fails the job for redelivery", async () => {
    const failing = plotter(async () => "plot code", async () => ({ figures: [], stderrTail: "Traceback: no such file run_1/all_results.npy" }));
    const failed = await toPromise(createActor(failing, { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 1 } }).start());
    expect(failed.error).toEqual({ kind: "model", retryable: false, message: "plot.py failed after 2 attempts: Traceback: no such file run_1/all_results.npy" });
    expect(failed.runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", true]]);

    let ran = 0;
    const down = plotter(
      async () => {
        throw new ProviderError("openai: HTTP 503: busy", 503);
      },
      async () => {
        ran++;
        return { figures: ["loss.png"], stderrTail: "" };
      },
    );
    const outage = await toPromise(createActor(down, { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 3 } }).start());
    expect(outage.error).toEqual({ kind: "provider", retryable: true, message: "plotting failed: openai: HTTP 503: busy" });
    expect(ran).toBe(0);
  });

  it("coder: restored from its persisted snapshot while editing run_3, it edits and runs only run_3 and plans nothing again", async () => {
    const calls: string[] = [];
    const coder = (stopAtRun3: boolean) =>
      machines.coder.provide({
        actors: {
          ensureBaseline: fromPromise(async () => {
            calls.push("baseline");
            return baseline;
          }),
          planRuns: fromPromise(async () => {
            calls.push("plan");
            return [{ description: "wider" }, { description: "deeper" }, { description: "longer" }];
          }),
          editCode: fromPromise(async ({ input }) => {
            calls.push(`edit ${input.run} from ${input.from}`);
            // The process "dies" here: the step never ends.
            if (stopAtRun3 && input.run === "run_3") await new Promise(() => undefined);
          }),
          runExperiment: fromPromise(async ({ input }): Promise<RunAttempt> => {
            calls.push(`run ${input.run}`);
            return { ok: true, stderrTail: "", results: { d: { means: { loss: 1 } } } };
          }),
          fixCode: fromPromise(async () => {}),
          discardRun: fromPromise(async () => {}),
          editPlot: fromPromise(async ({ input }) => {
            calls.push(`plot ${input.runs.map((r) => r.run).join(" ")}`);
            return "plot code";
          }),
          runPlot: fromPromise(async (): Promise<PlotAttempt> => ({ figures: ["loss.png"], stderrTail: "" })),
          writeNotes: fromPromise(async () => "notes"),
        },
      });
    const input = { idea: idea("alpha"), maxRuns: 3, maxFixes: 1 };
    const first = createActor(coder(true), { input }).start();
    await waitFor(first, (s) => s.matches("editing") && s.context.runIndex === 2);
    // As runMachine keeps it: JSON, in KV.
    const persisted = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();
    expect(calls).toEqual(["baseline", "plan", "edit run_1 from run_0", "run run_1", "edit run_2 from run_1", "run run_2", "edit run_3 from run_2"]);

    calls.length = 0;
    const out = await toPromise(createActor(coder(false), { input, snapshot: persisted }).start());
    expect(calls).toEqual(["edit run_3 from run_2", "run run_3", "plot run_0 run_1 run_2 run_3"]);
    expect(out.error).toBeUndefined();
    expect(out.runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", true], ["run_2", true], ["run_3", true]]);
  });

  /**
   * The writer with fakes that say what they were asked. `hold` keeps one step from ever ending; `gate`, when
   * given, keeps every draft from answering until it is opened; `problems` is what the checklist finds, by section.
   */
  function writer(calls: string[], opts: { hold?: string; gate?: Promise<void>; problems?: Record<string, string[]> } = {}) {
    const step = async (name: string) => {
      calls.push(name);
      if (name === opts.hold) await new Promise(() => undefined);
    };
    const section = sectionMachine.provide({
      actors: {
        writeSection: fromPromise(async ({ input }) => {
          await step(`write ${input.section} given ${Object.keys(input.written).join(",") || "nothing"}`);
          await opts.gate;
          return `${input.section} drafted`;
        }),
        reviseSection: fromPromise(async ({ input }) => {
          await step(`revise ${input.section} for "${input.metaReview}" from "${input.latex}"`);
          await opts.gate;
          return `${input.latex}, revised`;
        }),
        checkSection: fromPromise(async ({ input }) => {
          await step(`check ${input.section} citing ${input.citationKeys.join(",")}`);
          return opts.problems?.[input.section] ?? [];
        }),
        refineSection: fromPromise(async ({ input }) => {
          await step(`refine ${input.section} for ${input.problems.join("; ")}`);
          return `${input.latex}, refined`;
        }),
      },
    });
    return machines.writer.provide({
      actors: {
        findCitations: fromPromise(async ({ input }) => {
          await step(`cite ${input.round} having ${input.have.map((c) => c.key).join(",") || "none"}`);
          return { found: input.round === 0 ? [cited("smith2017")] : [], more: input.round === 0 };
        }),
        section,
        compile: fromPromise(async ({ input }): Promise<CompileReport> => {
          await step(`compile ${Object.keys(input.written).sort().join(",")} with ${input.bibtex.length} entries`);
          return { ok: true, errors: [] };
        }),
        checkClaims: fromPromise(async (): Promise<{ unmatched: string[] }> => ({ unmatched: [] })),
        fixClaims: fromPromise(async (): Promise<Written> => ({})),
        fixLatex: fromPromise(async (): Promise<Written> => ({})),
      },
    });
  }

  /** A gate the test opens: the steps that wait on it have all been asked for, and none has answered. */
  function gate() {
    let open = () => {};
    const closed = new Promise<void>((resolve) => (open = resolve));
    return { closed, open };
  }

  const needs = { introduction: ["method", "results"] };

  it("writer: a first version cites, then drafts every section whose inputs are ready at once, each given only what it needs", async () => {
    const calls: string[] = [];
    const drafts = gate();
    const actor = createActor(writer(calls, { gate: drafts.closed }), { input: { sections: ["introduction", "method", "results"], needs, citeRounds: 3, maxFixes: 1 } }).start();
    await waitFor(actor, (s) => s.context.steps.results === "writing");
    // Both body sections were asked for while neither had answered; the introduction waits for them.
    expect(calls).toEqual(["cite 0 having none", "cite 1 having smith2017", "write method given nothing", "write results given nothing"]);
    expect(actor.getSnapshot().context.steps).toEqual({ method: "writing", results: "writing" });
    drafts.open();
    const out = await toPromise(actor);
    expect(calls.slice(4)).toEqual([
      "check method citing smith2017",
      "check results citing smith2017",
      "write introduction given method,results",
      "check introduction citing smith2017",
      "compile introduction,method,results with 1 entries",
    ]);
    expect(out.written).toEqual({ introduction: "introduction drafted", method: "method drafted", results: "results drafted" });
    expect(out.citations).toEqual([cited("smith2017")]);
  });

  it("writer: a section is refined only when the checklist found something, and with what it found", async () => {
    const calls: string[] = [];
    const problems = { results: ["results: unescaped & in the text (write \\&)"] };
    const out = await toPromise(createActor(writer(calls, { problems }), { input: { sections: ["method", "results"], citeRounds: 1, maxFixes: 1 } }).start());
    expect(calls.filter((c) => c.startsWith("refine"))).toEqual(["refine results for results: unescaped & in the text (write \\&)"]);
    expect(out.written).toEqual({ method: "method drafted", results: "results drafted, refined" });
  });

  it("writer: with the citations given (the idea's cite job), it searches nothing; with citeOnly, it only searches", async () => {
    const calls: string[] = [];
    await toPromise(createActor(writer(calls), { input: { sections: ["method"], citeRounds: 3, maxFixes: 1, citations: [] } }).start());
    expect(calls).toEqual(["write method given nothing", "check method citing ", "compile method with 0 entries"]);
    const searched: string[] = [];
    const cite = createActor(writer(searched), { input: { sections: [], citeRounds: 3, maxFixes: 0, citeOnly: true } }).start();
    const out = await toPromise(cite);
    expect(searched).toEqual(["cite 0 having none", "cite 1 having smith2017"]);
    expect(cite.getSnapshot().value).toBe("done");
    expect(out.citations).toEqual([cited("smith2017")]);
  });

  it("writer: a revision revises every section at once, each from its version before; keeps its citations and looks for none", async () => {
    const calls: string[] = [];
    const drafts = gate();
    const revision = { metaReview: "too thin", sections: { introduction: "intro v1", method: "method v1" }, citations: [cited("smith2017")] };
    const actor = createActor(writer(calls, { gate: drafts.closed }), { input: { sections: ["introduction", "method"], needs, citeRounds: 3, maxFixes: 1, revision } }).start();
    await waitFor(actor, (s) => s.context.steps.method === "writing");
    expect(calls).toEqual(['revise introduction for "too thin" from "intro v1"', 'revise method for "too thin" from "method v1"']);
    drafts.open();
    const out = await toPromise(actor);
    expect(calls.slice(2)).toEqual(["check introduction citing smith2017", "check method citing smith2017", "compile introduction,method with 1 entries"]);
    expect(actor.getSnapshot().value).toBe("done");
    expect(out.written).toEqual({ introduction: "intro v1, revised", method: "method v1, revised" });
    expect(out.citations).toEqual([cited("smith2017")]);
  });

  it("writer: restored from its persisted snapshot in the middle of a wave, it redoes no section that was done and goes on with the rest", async () => {
    const calls: string[] = [];
    const input = { sections: ["introduction", "method", "results"], needs, citeRounds: 2, maxFixes: 1 };
    const problems = { results: ["results: unbalanced braces { }"] };
    const first = createActor(writer(calls, { hold: "refine results for results: unbalanced braces { }", problems }), { input }).start();
    await waitFor(first, (s) => s.context.steps.method === "done");
    await waitFor(first.getSnapshot().children["section.results"] as ActorRefFrom<typeof sectionMachine>, (s) => s.matches("refining"));
    const persisted = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();

    const again: string[] = [];
    const out = await toPromise(createActor(writer(again), { input, snapshot: persisted }).start());
    // Only the refinement under way is asked again; the method, drafted and checked, is not.
    expect(again).toEqual([
      "refine results for results: unbalanced braces { }",
      "write introduction given method,results",
      "check introduction citing smith2017",
      "compile introduction,method,results with 1 entries",
    ]);
    expect(out.written).toEqual({ introduction: "introduction drafted", method: "method drafted", results: "results drafted, refined" });
  });

  function chair(send: (sendBack: (e: ChairEvent) => void) => void) {
    let judged: ReceivedReview[] = [];
    const machine = machines.areaChair.provide({
      actors: {
        requestReviews: fromPromise(async () => {}),
        // Sent after the callback starts, as reviews arrive from the bus.
        collectReviews: fromCallback<ChairEvent, void>(({ sendBack }) => void queueMicrotask(() => send(sendBack))),
        writeMetaReview: fromPromise(async ({ input }) => {
          judged = input.reviews;
          return { decision: "Accept" as const, metaReview: `${input.reviews.length} reviews`, scores: { Overall: 6 } };
        }),
      },
    });
    return { machine, judged: () => judged };
  }

  it("area chair: decides as soon as a quorum of K reviews has come", async () => {
    const { machine, judged } = chair((sendBack) => {
      sendBack({ type: "REVIEW", review: received(0) });
      sendBack({ type: "REVIEW_FAILED", reviewer: 1, failure: { kind: "model", retryable: false, message: "LLM refused" } });
      sendBack({ type: "REVIEW", review: received(2) });
    });
    // The deadline is far away and the clock never moves: only the quorum can end the collection.
    const actor = createActor(machine, { input: { reviewers: 4, quorum: 2, deadlineMs: 60_000 }, clock: new SimulatedClock() }).start();
    const out = await toPromise(actor);
    expect(judged().map((r) => r.reviewer)).toEqual([0, 2]);
    expect(out.decision?.decision).toBe("Accept");
  });

  it("area chair: at the deadline, decides on what came", async () => {
    const clock = new SimulatedClock();
    const { machine, judged } = chair((sendBack) => sendBack({ type: "REVIEW", review: received(1) }));
    const actor = createActor(machine, { input: { reviewers: 3, quorum: 3, deadlineMs: 50 }, clock }).start();
    await new Promise((resolve) => setImmediate(resolve));
    expect(actor.getSnapshot().value).toBe("collecting");
    expect(actor.getSnapshot().context.reviews).toHaveLength(1);
    clock.increment(50);
    const out = await toPromise(actor);
    expect(judged().map((r) => r.reviewer)).toEqual([1]);
    expect(out.decision?.metaReview).toBe("1 reviews");
  });

  it("area chair: with no review by the deadline, fails and says why", async () => {
    const clock = new SimulatedClock();
    const { machine } = chair(() => undefined);
    const actor = createActor(machine, { input: { reviewers: 2, quorum: 2, deadlineMs: 50 }, clock }).start();
    await new Promise((resolve) => setImmediate(resolve));
    clock.increment(50);
    const out = await toPromise(actor);
    expect(out.decision).toBeUndefined();
    expect(out.error).toEqual({
      kind: "environment",
      retryable: false,
      message: "no review arrived (deadline passed)",
      hint: "start more reviewers (npm run node -- --roles reviewer) or give them longer (--review-deadline)",
    });
  });

  it("area chair: when every review failed, its failure is theirs, each named by its reviewer", async () => {
    const { machine } = chair((sendBack) => {
      sendBack({ type: "REVIEW_FAILED", reviewer: 0, failure: { kind: "model", retryable: false, message: "garbage", hint: "a stronger model" } });
      sendBack({ type: "REVIEW_FAILED", reviewer: 1, failure: { kind: "provider", retryable: true, message: "HTTP 503" } });
    });
    const actor = createActor(machine, { input: { reviewers: 2, quorum: 2, deadlineMs: 60_000 }, clock: new SimulatedClock() }).start();
    const out = await toPromise(actor);
    expect(actor.getSnapshot().context.failures.map((f: Failure) => f.message)).toEqual(["reviewer 0: garbage", "reviewer 1: HTTP 503"]);
    // The reviews were retried already; the chair's job is not redone for them.
    expect(out.error).toEqual({ kind: "model", retryable: false, message: "no review arrived (reviewer 0: garbage; reviewer 1: HTTP 503)", hint: "a stronger model" });
  });
});

describe("failures are typed in context and output", () => {
  const coderWith = (editCode: () => Promise<void>) =>
    machines.coder.provide({
      actors: {
        ensureBaseline: fromPromise(async () => baseline),
        planRuns: fromPromise(async () => [{ description: "wider" }]),
        editCode: fromPromise(editCode),
        runExperiment: fromPromise(async (): Promise<RunAttempt> => ({ ok: true, stderrTail: "", results: { d: { means: { loss: 1 } } } })),
        fixCode: fromPromise(async () => {}),
        discardRun: fromPromise(async () => {}),
        editPlot: fromPromise(async () => "plot code"),
        runPlot: fromPromise(async (): Promise<PlotAttempt> => ({ figures: ["loss.png"], stderrTail: "" })),
        writeNotes: fromPromise(async () => "notes"),
      },
    });

  it("critic: a provider that stays down fails the critic with a retryable provider failure; garbage after repairs does not retry", async () => {
    for (const [error, expected] of [
      [new ProviderError("openai/gpt: HTTP 503: busy", 503), { kind: "provider", retryable: true, message: "openai/gpt: HTTP 503: busy" }],
      [new ModelBehaviorError("no usable answer", { hint: "a stronger model" }), { kind: "model", retryable: false, message: "no usable answer", hint: "a stronger model" }],
    ] as const) {
      const machine = machines.critic.provide({
        actors: {
          think: fromPromise(async (): Promise<CriticStep> => {
            throw error;
          }),
          searchLiterature: fromPromise(async (): Promise<{ title: string; authors: string[] }[]> => []),
          decide: fromPromise(async (): Promise<Decision> => ({ verdict: "novel", reason: "r" })),
        },
      });
      const actor = createActor(machine, { input: { idea: idea("alpha"), maxRounds: 1 } }).start();
      const out = await toPromise(actor);
      expect(actor.getSnapshot().value).toBe("failed");
      expect(actor.getSnapshot().context.error).toEqual(expected);
      expect(out).toEqual({ error: expected });
    }
  });

  it("coder: a provider outage while editing ends the machine with its retryable failure, and sets no run aside", async () => {
    const actor = createActor(coderWith(async () => {
      throw new ProviderError("anthropic: HTTP 529: overloaded", 529);
    }), { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 2 } }).start();
    const out = await toPromise(actor);
    expect(actor.getSnapshot().value).toBe("failed");
    expect(out.error).toEqual({ kind: "provider", retryable: true, message: "editing run_1 failed: anthropic: HTTP 529: overloaded" });
    expect(out.runs.map((r) => r.run)).toEqual(["run_0"]);
  });

  it("coder: an edit that does not apply is the model's to fix, and a run that never works is the model's failure", async () => {
    let edits = 0;
    const actor = createActor(coderWith(async () => {
      edits++;
      throw new Error("the SEARCH text matches nowhere");
    }), { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 1 } }).start();
    const out = await toPromise(actor);
    expect(edits).toBe(2);
    expect(out.runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", false]]);
    expect(out.error).toMatchObject({ kind: "model", retryable: false, message: "no planned run succeeded" });
  });

  it("coder: a bus error while running is the bus's, not the run's", async () => {
    const machine = coderWith(async () => {}).provide({
      actors: {
        runExperiment: fromPromise(async (): Promise<RunAttempt> => {
          throw new BusError("could not upload run_1: connection closed");
        }),
      },
    });
    const out = await toPromise(createActor(machine, { input: { idea: idea("alpha"), maxRuns: 1, maxFixes: 1 } }).start());
    expect(out.error).toEqual({ kind: "bus", retryable: true, message: "running run_1 failed: could not upload run_1: connection closed" });
    expect(out.runs).toHaveLength(1);
  });

  it("ideator: a spent budget is a typed failure of each proposal, and a failed novelty check keeps its failure on the record", async () => {
    let proposals = 0;
    const machine = machines.ideator.provide({
      actors: {
        proposeIdea: fromPromise(async () => {
          if (proposals++ > 0) throw new BudgetReachedError("budget reached: $1 of $1");
          return idea("alpha");
        }),
        reflectOnIdea: fromPromise(async ({ input }) => ({ idea: input.idea, done: true, thought: "fine" })),
        screenIdea: fromPromise(async () => ({})),
        askCritic: fromPromise(async () => {}),
        awaitVerdict: fromPromise(async (): Promise<Verdict> => {
          throw new ModelBehaviorError("the critic's model gave garbage");
        }),
        reviseIdea: fromPromise(async ({ input }) => input.idea),
        handOff: fromPromise(async () => {}),
      },
    });
    const out = await toPromise(createActor(machine, { input: { target: 2, maxReflections: 1, maxRevisions: 1 } }).start());
    expect(out.failures).toEqual([{ kind: "budget", retryable: false, message: "proposal 2 failed: budget reached: $1 of $1" }]);
    expect(out.records).toHaveLength(1);
    expect(out.records[0]).toMatchObject({
      status: "failed",
      failure: { kind: "model", retryable: false, message: "novelty check failed: the critic's model gave garbage" },
    });
    expect(out.records[0]!.history.at(-1)).toBe("novelty check failed: the critic's model gave garbage");
  });

  it("writer and reviewer: failures they make themselves say whose fault they are", async () => {
    const writer = machines.writer.provide({
      actors: {
        findCitations: fromPromise(async (): Promise<{ found: Citation[]; more: boolean }> => ({ found: [], more: false })),
        section: sectionMachine.provide({
          actors: {
            writeSection: fromPromise(async () => "draft"),
            reviseSection: fromPromise(async ({ input }) => input.latex),
            checkSection: fromPromise(async (): Promise<string[]> => []),
            refineSection: fromPromise(async ({ input }) => input.latex),
          },
        }),
        checkClaims: fromPromise(async (): Promise<{ unmatched: string[] }> => ({ unmatched: [] })),
        fixClaims: fromPromise(async (): Promise<Written> => ({})),
        compile: fromPromise(async (): Promise<CompileReport> => ({ ok: false, errors: ["Undefined control sequence"] })),
        fixLatex: fromPromise(async (): Promise<Written> => ({})),
      },
    });
    const written = await toPromise(createActor(writer, { input: { sections: ["introduction"], citeRounds: 1, maxFixes: 1 } }).start());
    expect(written.error).toEqual({ kind: "model", retryable: false, message: "LaTeX still fails: Undefined control sequence" });

    const reviewer = machines.reviewer.provide({
      actors: {
        readPaper: fromPromise(async () => "the paper"),
        writeReview: fromPromise(async (): Promise<Review> => {
          throw new ProviderError("openai: HTTP 429: slow down", 429, { hint: "lower the concurrency" });
        }),
        reflect: fromPromise(async ({ input }) => ({ review: input.review, done: true })),
      },
    });
    const reviewed = await toPromise(createActor(reviewer, { input: { maxReflections: 1 } }).start());
    expect(reviewed.error).toEqual({ kind: "provider", retryable: true, message: "writing the review failed: openai: HTTP 429: slow down", hint: "lower the concurrency" });
  });
});
