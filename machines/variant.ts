import { assign, setup } from "xstate";
import type { TreeStepResult } from "../bus/schemas.js";
import { failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

export interface VariantRun {
  ok: boolean;
  /** The tail of stderr (or why the results do not count) when it failed. */
  stderrTail: string;
  results?: TreeStepResult["results"];
}

interface Context {
  /** A seed run takes its node's code as it is; every other step edits it first. */
  edits: boolean;
  maxFixes: number;
  attempts: number;
  feedback: string;
  description: string;
  run: VariantRun | undefined;
  error: Failure | undefined;
}

const message = (e: unknown) => String((e as Error)?.message ?? e);

/**
 * One node of a tree search, on the coder that took its job: the edit that makes it from its parent's code
 * (made again, told why, while an edit does not apply), then its run. A run that fails is the node's result
 * (a buggy node, for the tree to debug), not this machine's failure; only work that is nobody's fault in the
 * code (a provider's outage) fails it, for the job to be tried again.
 */
export const variantMachine = setup({
  types: {
    input: {} as { edits: boolean; maxFixes: number },
    context: {} as Context,
    output: {} as { description: string; run: VariantRun; error?: Failure },
  },
  actors: {
    /** Writes the node's code from its parent's; returns what it changes. */
    makeVariant: declared<string, { feedback: string }>("makeVariant"),
    runVariant: declared<VariantRun, void>("runVariant"),
  },
  guards: {
    edits: ({ context }) => context.edits,
    fixesLeft: ({ context }) => context.attempts < context.maxFixes,
    passing: (_, { error }: { error: unknown }) => failureOf(error).retryable,
  },
}).createMachine({
  id: "variant",
  context: ({ input }) => ({ ...input, attempts: 0, feedback: "", description: "", run: undefined, error: undefined }),
  initial: "starting",
  states: {
    starting: { always: [{ guard: "edits", target: "editing" }, { target: "running" }] },
    editing: {
      invoke: {
        src: "makeVariant",
        input: ({ context }) => ({ feedback: context.feedback }),
        onDone: { target: "running", actions: assign({ description: ({ event }) => event.output }) },
        onError: [
          { guard: { type: "passing", params: ({ event }) => ({ error: event.error }) }, target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "editing the node failed") }) },
          { guard: "fixesLeft", target: "editing", reenter: true, actions: assign(({ context, event }) => ({ attempts: context.attempts + 1, feedback: message(event.error) })) },
          // An edit that never applies makes a buggy node: the tree may debug it.
          { target: "done", actions: assign({ run: ({ event }) => ({ ok: false, stderrTail: `the edit did not apply: ${message(event.error)}` }) }) },
        ],
      },
    },
    running: {
      invoke: {
        src: "runVariant",
        onDone: { target: "done", actions: assign({ run: ({ event }) => event.output }) },
        onError: [
          { guard: { type: "passing", params: ({ event }) => ({ error: event.error }) }, target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "running the node failed") }) },
          { target: "done", actions: assign({ run: ({ event }) => ({ ok: false, stderrTail: message(event.error) }) }) },
        ],
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    description: context.description,
    run: context.run ?? { ok: false, stderrTail: "the node never ran" },
    ...(context.error ? { error: context.error } : {}),
  }),
});
