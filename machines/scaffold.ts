import { assign, setup } from "xstate";
import type { RunRecord } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

/** One run of the written experiment.py as run_0. */
export interface ScaffoldRun {
  ok: boolean;
  /** The tail of stderr (or why the run does not count) when it failed, for the fix. */
  stderrTail: string;
  results?: RunRecord["results"];
}

interface Context {
  maxFixes: number;
  /** Fixes made so far: each one is followed by another run. */
  fixes: number;
  /** What the last run or check found wrong, for the next fix. */
  feedback: string;
  baseline: RunRecord | undefined;
  /** The files of the written template, once published. */
  files: string[];
  error: Failure | undefined;
}

export interface ScaffoldOutput {
  files: string[];
  baseline?: RunRecord;
  /** Runs of experiment.py it took, the working one included. */
  attempts: number;
  error?: Failure;
}

const attempts = (c: Context) => c.fixes + 1;
const gaveUp = (c: Context, what: string) =>
  failure("model", `the coder could not write a template for the topic that ${what} after ${attempts(c)} attempt${attempts(c) === 1 ? "" : "s"}: ${c.feedback.slice(-1500)}`, {
    hint: "give a stronger model to the coder (--role-llm coder=…), more time (--run-timeout), or a narrower topic; no idea was proposed yet",
  });

/**
 * A `--topic` run's first work: the coder writes the template (experiment.py, plot.py, prompt.json and
 * latex/template.tex) from the topic, runs experiment.py as run_0, fixes it from its stderr while fixes are left,
 * checks the files the rest of the pipeline reads (prompt.json, the LaTeX placeholders, final_info.json), and
 * publishes the template with its working run: that run is the baseline.
 */
export const scaffoldMachine = setup({
  types: {
    input: {} as { maxFixes: number },
    context: {} as Context,
    output: {} as ScaffoldOutput,
  },
  actors: {
    writeTemplate: declared<void, void>("writeTemplate"),
    runExperiment: declared<ScaffoldRun, void>("runExperiment"),
    /** Rewrites what the feedback (a run's stderr, or the check's findings) says is wrong. */
    fixTemplate: declared<void, { feedback: string; fix: number }>("fixTemplate"),
    /** What is wrong with the written files and the run's final_info.json: nothing when they will serve. */
    checkTemplate: declared<string[], void>("checkTemplate"),
    /** Uploads the template and keeps its run as the baseline's run_0; the template's files. */
    publishTemplate: declared<string[], { baseline: RunRecord }>("publishTemplate"),
  },
  guards: {
    ran: (_, { ok }: { ok: boolean }) => ok,
    sound: (_, { problems }: { problems: number }) => problems === 0,
    fixesLeft: ({ context }) => context.fixes < context.maxFixes,
  },
  actions: {
    failWith: assign((_, { error, during }: { error: unknown; during: string }) => ({ error: failureOf(error, during) })),
  },
}).createMachine({
  id: "scaffold",
  context: ({ input }) => ({ ...input, fixes: 0, feedback: "", baseline: undefined, files: [], error: undefined }),
  initial: "writing",
  states: {
    writing: {
      invoke: {
        src: "writeTemplate",
        onDone: { target: "running" },
        onError: { target: "failed", actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "writing the template failed" }) } },
      },
    },
    running: {
      invoke: {
        src: "runExperiment",
        onDone: [
          {
            guard: { type: "ran", params: ({ event }) => ({ ok: event.output.ok }) },
            target: "checking",
            actions: assign({
              baseline: ({ context, event }) => ({
                run: "run_0", description: "Baseline: the template as the coder first wrote it to work", ok: true, attempts: attempts(context),
                ...(event.output.results ? { results: event.output.results } : {}),
              }),
            }),
          },
          { guard: "fixesLeft", target: "fixing", actions: assign({ feedback: ({ event }) => event.output.stderrTail }) },
          {
            target: "failed",
            actions: assign(({ context, event }) => ({ feedback: event.output.stderrTail, error: gaveUp({ ...context, feedback: event.output.stderrTail }, "runs") })),
          },
        ],
        onError: { target: "failed", actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "running the written experiment.py failed" }) } },
      },
    },
    fixing: {
      invoke: {
        src: "fixTemplate",
        input: ({ context }) => ({ feedback: context.feedback, fix: context.fixes + 1 }),
        onDone: { target: "running", actions: assign({ fixes: ({ context }) => context.fixes + 1 }) },
        onError: { target: "failed", actions: { type: "failWith", params: ({ context, event }) => ({ error: event.error, during: `fix ${context.fixes + 1} of the template failed` }) } },
      },
    },
    checking: {
      invoke: {
        src: "checkTemplate",
        onDone: [
          { guard: { type: "sound", params: ({ event }) => ({ problems: event.output.length }) }, target: "publishing" },
          { guard: "fixesLeft", target: "fixing", actions: assign({ feedback: ({ event }) => event.output.join("\n") }) },
          {
            target: "failed",
            actions: assign(({ context, event }) => ({ error: gaveUp({ ...context, feedback: event.output.join("; ") }, "passes its checks") })),
          },
        ],
        onError: { target: "failed", actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "checking the written template failed" }) } },
      },
    },
    publishing: {
      invoke: {
        src: "publishTemplate",
        input: ({ context }) => ({ baseline: context.baseline! }),
        onDone: { target: "done", actions: assign({ files: ({ event }) => event.output }) },
        onError: { target: "failed", actions: { type: "failWith", params: ({ event }) => ({ error: event.error, during: "publishing the written template failed" }) } },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    files: context.files,
    attempts: attempts(context),
    ...(context.baseline ? { baseline: context.baseline } : {}),
    ...(context.error ? { error: context.error } : {}),
  }),
});
