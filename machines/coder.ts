import { assign, setup } from "xstate";
import type { FigureCritique, Idea, PlannedRun, RunRecord } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

export type { PlannedRun } from "../bus/schemas.js";

export interface RunAttempt {
  ok: boolean;
  /** The tail of stderr when it failed, for the fix. */
  stderrTail: string;
  results?: RunRecord["results"];
}

export interface PlotAttempt {
  /** The new figures plot.py wrote; none when it failed. */
  figures: string[];
  /** The tail of stderr (or why no figure counts) when it failed, for the next edit. */
  stderrTail: string;
}

/** What plot.py is told about each run. */
export interface PlotRun {
  run: string;
  description: string;
  ok: boolean;
}

interface Context {
  idea: Idea;
  /** Runs made already, elsewhere: a tree search's chosen nodes, which only want plotting and notes. */
  given?: RunRecord[] | undefined;
  /** The plan a person approved or edited at the plan gate: run as it is, not planned again. */
  approved?: PlannedRun[] | undefined;
  maxRuns: number;
  maxFixes: number;
  plan: PlannedRun[];
  /** 0-based index into the plan; the run folder is run_<index + 1>. */
  runIndex: number;
  /** Attempts at the current run, or at plot.py once the runs are done. */
  attempts: number;
  feedback: string;
  records: RunRecord[];
  /** plot.py as the model last edited it, to be run. */
  plotCode: string;
  figures: string[];
  notes: string;
  /** Rounds in which the figure critic's critique may send the figures back to plot.py; 0: no critic. */
  figureRounds: number;
  /** Figure critiques made so far. */
  figureRound: number;
  /** The figure critic's last word on the figures. */
  critiques: FigureCritique[];
  error: Failure | undefined;
}

const message = (e: unknown) => String((e as Error)?.message ?? e);
const runName = (ctx: Context) => `run_${ctx.runIndex + 1}`;
/** The last run that worked (run_0, the baseline, when none has yet): its code is where each run's edit starts and a failed run goes back to. */
const lastGood = (ctx: Context) => ctx.records.filter((r) => r.ok).at(-1)?.run ?? "run_0";
const plotFailed = (ctx: Context, feedback: string) => failure("model", `plot.py failed after ${ctx.attempts + 1} attempts: ${feedback.slice(-500)}`);
const plotRuns = (ctx: Context): PlotRun[] => ctx.records.map((r) => ({ run: r.run, description: r.description, ok: r.ok }));
/** Problems plot.py can mend: a caption that claims too much is the writer's to mend, not the plot's. */
const plotProblems = (critiques: FigureCritique[]) => critiques.flatMap((c) => c.problems).filter((p) => p.kind !== "caption-claims").length;
const critiqueLines = (critiques: FigureCritique[]) => critiques.flatMap((c) => c.problems.map((p) => `${c.figure}: ${p.kind}: ${p.detail}`)).join("\n");

/**
 * The coder: baseline run_0 (computed once per template), a plan of runs, then for each run an edit, the run,
 * and fixes from stderr while attempts are left; a failed run is set aside and the others are kept. Then the
 * plot script, edited and run again with its stderr while attempts are left, and notes on each figure. Then the
 * figure critic looks at each figure with its note: a figure it finds wanting goes back to the plot script with
 * the critique, while figure rounds are left. Given runs
 * made elsewhere (a tree search's chosen nodes), it goes from the baseline straight to the plot; given a plan a
 * person approved (the plan gate), straight to its first run.
 */
export const coderMachine = setup({
  types: {
    input: {} as {
      idea: Idea; maxRuns: number; maxFixes: number; given?: RunRecord[] | undefined; approved?: PlannedRun[] | undefined; figureRounds?: number | undefined;
    },
    context: {} as Context,
    output: {} as { runs: RunRecord[]; figures: string[]; notes: string; critiques: FigureCritique[]; error?: Failure },
  },
  actors: {
    ensureBaseline: declared<RunRecord, void>("ensureBaseline"),
    planRuns: declared<PlannedRun[], { idea: Idea; maxRuns: number; baseline: RunRecord }>("planRuns"),
    /** Edits the code of run `from` (the last good one) into this run's. */
    editCode: declared<void, { run: string; planned: PlannedRun; feedback: string; from: string }>("editCode"),
    runExperiment: declared<RunAttempt, { run: string }>("runExperiment"),
    fixCode: declared<void, { run: string; planned: PlannedRun; stderrTail: string }>("fixCode"),
    /** Puts the code of run `restore` back and removes the failed run's folder. */
    discardRun: declared<void, { run: string; restore: string }>("discardRun"),
    /** plot.py edited for these runs, with the last attempt's stderr as feedback. */
    editPlot: declared<string, { runs: PlotRun[]; feedback: string; critiques: FigureCritique[] }>("editPlot"),
    runPlot: declared<PlotAttempt, { plotCode: string }>("runPlot"),
    writeNotes: declared<string, { runs: RunRecord[]; figures: string[] }>("writeNotes"),
    /** The figures and their notes to the figure critic (a `figures` job), and its critique of each. */
    critiqueFigures: declared<FigureCritique[], { figures: string[]; notes: string; runs: PlotRun[]; round: number }>("critiqueFigures"),
  },
  guards: {
    runsGiven: ({ context }) => (context.given?.length ?? 0) > 0,
    planGiven: ({ context }) => (context.approved?.length ?? 0) > 0,
    hasPlan: ({ context }, { planned }: { planned: number }) => Math.min(planned, context.maxRuns) > 0,
    runSucceeded: (_, { ok }: { ok: boolean }) => ok,
    plotted: (_, { figures }: { figures: number }) => figures > 0,
    fixesLeft: ({ context }) => context.attempts < context.maxFixes,
    moreRuns: ({ context }) => context.runIndex + 1 < context.plan.length,
    anySucceeded: ({ context }) => context.records.some((r) => r.run !== "run_0" && r.ok),
    criticOn: ({ context }) => context.figureRounds > 0,
    /** The figures plotted before (in the object store still) were critiqued: a plot round that fails falls back on them. */
    critiqued: ({ context }) => context.figureRound > 0,
    /** A figure the critic found wanting, and a plot round left to mend it. */
    replot: ({ context }, { problems }: { problems: number }) => problems > 0 && context.figureRound < context.figureRounds,
    /** No fault of the code (a provider's outage, the bus): the job is retried rather than the run set aside. */
    passing: (_, { error }: { error: unknown }) => failureOf(error).retryable,
  },
  actions: {
    failWith: assign((_, { error, during }: { error: unknown; during: string }) => ({ error: failureOf(error, during) })),
  },
}).createMachine({
  id: "coder",
  context: ({ input }) => ({
    ...input,
    plan: [],
    runIndex: 0,
    attempts: 0,
    feedback: "",
    records: [],
    plotCode: "",
    figures: [],
    notes: "",
    figureRounds: input.figureRounds ?? 0,
    figureRound: 0,
    critiques: [],
    error: undefined,
  }),
  initial: "baseline",
  states: {
    baseline: {
      invoke: {
        src: "ensureBaseline",
        onDone: [
          { guard: "runsGiven", target: "plotting", actions: assign({ records: ({ context, event }) => [event.output, ...context.given!] }) },
          { guard: "planGiven", target: "editing", actions: assign({ records: ({ event }) => [event.output], plan: ({ context }) => context.approved!.slice(0, context.maxRuns) }) },
          { target: "planning", actions: assign({ records: ({ event }) => [event.output] }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "baseline run_0 failed") }) },
      },
    },
    planning: {
      invoke: {
        src: "planRuns",
        input: ({ context }) => ({ idea: context.idea, maxRuns: context.maxRuns, baseline: context.records[0]! }),
        onDone: [
          {
            guard: { type: "hasPlan", params: ({ event }) => ({ planned: event.output.length }) },
            target: "editing",
            actions: assign({ plan: ({ context, event }) => event.output.slice(0, context.maxRuns) }),
          },
          { target: "failed", actions: assign({ error: failure("model", "the plan has no runs") }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "planning failed") }) },
      },
    },
    editing: {
      invoke: {
        src: "editCode",
        input: ({ context }) => ({ run: runName(context), planned: context.plan[context.runIndex]!, feedback: context.feedback, from: lastGood(context) }),
        onDone: { target: "running", actions: assign({ feedback: "" }) },
        onError: [
          {
            guard: { type: "passing", params: ({ event }) => ({ error: event.error }) },
            target: "failed",
            actions: { type: "failWith", params: ({ context, event }) => ({ error: event.error, during: `editing ${runName(context)} failed` }) },
          },
          {
            guard: "fixesLeft",
            target: "editing",
            reenter: true,
            actions: assign(({ context, event }) => ({ attempts: context.attempts + 1, feedback: message(event.error) })),
          },
          { target: "runFailed", actions: assign({ feedback: ({ event }) => message(event.error) }) },
        ],
      },
    },
    running: {
      invoke: {
        src: "runExperiment",
        input: ({ context }) => ({ run: runName(context) }),
        onDone: [
          {
            guard: { type: "runSucceeded", params: ({ event }) => ({ ok: event.output.ok }) },
            target: "nextRun",
            actions: assign(({ context, event }) => ({
              records: [
                ...context.records,
                {
                  run: runName(context),
                  description: context.plan[context.runIndex]!.description,
                  ok: true,
                  attempts: context.attempts + 1,
                  ...(event.output.results ? { results: event.output.results } : {}),
                },
              ],
            })),
          },
          { guard: "fixesLeft", target: "fixing", actions: assign({ feedback: ({ event }) => event.output.stderrTail }) },
          { target: "runFailed", actions: assign({ feedback: ({ event }) => event.output.stderrTail }) },
        ],
        onError: [
          {
            guard: { type: "passing", params: ({ event }) => ({ error: event.error }) },
            target: "failed",
            actions: { type: "failWith", params: ({ context, event }) => ({ error: event.error, during: `running ${runName(context)} failed` }) },
          },
          { target: "runFailed", actions: assign({ feedback: ({ event }) => message(event.error) }) },
        ],
      },
    },
    fixing: {
      invoke: {
        src: "fixCode",
        input: ({ context }) => ({ run: runName(context), planned: context.plan[context.runIndex]!, stderrTail: context.feedback }),
        onDone: { target: "running", actions: assign({ attempts: ({ context }) => context.attempts + 1 }) },
        onError: [
          {
            guard: { type: "passing", params: ({ event }) => ({ error: event.error }) },
            target: "failed",
            actions: { type: "failWith", params: ({ context, event }) => ({ error: event.error, during: `fixing ${runName(context)} failed` }) },
          },
          { target: "runFailed", actions: assign({ feedback: ({ event }) => message(event.error) }) },
        ],
      },
    },
    runFailed: {
      entry: assign(({ context }) => ({
        records: [
          ...context.records,
          {
            run: runName(context),
            description: context.plan[context.runIndex]!.description,
            ok: false,
            attempts: context.attempts + 1,
            error: context.feedback.slice(-2000),
          },
        ],
      })),
      invoke: {
        src: "discardRun",
        input: ({ context }) => ({ run: runName(context), restore: lastGood(context) }),
        onDone: { target: "nextRun" },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "could not restore the last good code") }) },
      },
    },
    nextRun: {
      always: [
        {
          guard: "moreRuns",
          target: "editing",
          actions: assign(({ context }) => ({ runIndex: context.runIndex + 1, attempts: 0, feedback: "" })),
        },
        { guard: "anySucceeded", target: "plotting", actions: assign({ attempts: 0, feedback: "" }) },
        { target: "failed", actions: assign({
            error: failure("model", "no planned run succeeded", { hint: "each run's error is in runs.json; a stronger model edits the code more reliably" }),
          }) },
      ],
    },
    plotting: {
      invoke: {
        src: "editPlot",
        input: ({ context }) => ({ runs: plotRuns(context), feedback: context.feedback, critiques: (context.critiques ?? []).filter((c) => !c.ok) }),
        onDone: { target: "runningPlot", actions: assign({ plotCode: ({ event }) => event.output }) },
        onError: [
          {
            guard: { type: "passing", params: ({ event }) => ({ error: event.error }) },
            target: "failed",
            actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "plotting failed" }) },
          },
          // An edit that does not apply is the model's to fix, as a plot that fails is.
          {
            guard: "fixesLeft",
            target: "plotting",
            reenter: true,
            actions: assign(({ context, event }) => ({ attempts: context.attempts + 1, feedback: message(event.error) })),
          },
          // A plot round the critic asked for that cannot be made keeps the figures it was asked about, and says so in their critique.
          { guard: "critiqued", target: "done" },
          { target: "failed", actions: assign({ error: ({ context, event }) => plotFailed(context, message(event.error)) }) },
        ],
      },
    },
    runningPlot: {
      invoke: {
        src: "runPlot",
        input: ({ context }) => ({ plotCode: context.plotCode }),
        onDone: [
          {
            guard: { type: "plotted", params: ({ event }) => ({ figures: event.output.figures.length }) },
            target: "noting",
            actions: assign({ figures: ({ event }) => event.output.figures }),
          },
          {
            guard: "fixesLeft",
            target: "plotting",
            actions: assign(({ context, event }) => ({ attempts: context.attempts + 1, feedback: event.output.stderrTail })),
          },
          { guard: "critiqued", target: "done" },
          { target: "failed", actions: assign({ error: ({ context, event }) => plotFailed(context, event.output.stderrTail) }) },
        ],
        onError: { target: "failed", actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "plotting failed" }) } },
      },
    },
    noting: {
      invoke: {
        src: "writeNotes",
        input: ({ context }) => ({ runs: context.records, figures: context.figures }),
        onDone: [
          { guard: "criticOn", target: "critiquing", actions: assign({ notes: ({ event }) => event.output }) },
          { target: "done", actions: assign({ notes: ({ event }) => event.output }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "notes failed") }) },
      },
    },
    critiquing: {
      invoke: {
        src: "critiqueFigures",
        input: ({ context }) => ({ figures: context.figures, notes: context.notes, runs: plotRuns(context), round: context.figureRound }),
        onDone: [
          {
            guard: { type: "replot", params: ({ event }) => ({ problems: plotProblems(event.output) }) },
            target: "plotting",
            actions: assign(({ context, event }) => ({
              critiques: event.output, figureRound: context.figureRound + 1, attempts: 0, feedback: `The figure critic found:\n${critiqueLines(event.output)}`,
            })),
          },
          { target: "done", actions: assign(({ context, event }) => ({ critiques: event.output, figureRound: context.figureRound + 1 })) },
        ],
        onError: [
          {
            guard: { type: "passing", params: ({ event }) => ({ error: event.error }) },
            target: "failed",
            actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "the figure critique failed" }) },
          },
          // The figures stand as plotted when the critic cannot judge them: the paper is still written.
          { target: "done" },
        ],
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    runs: context.records,
    figures: context.figures,
    notes: context.notes,
    critiques: context.critiques,
    ...(context.error ? { error: context.error } : {}),
  }),
});
