import { assign, setup } from "xstate";
import type { Review } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

interface Context {
  maxReflections: number;
  text: string;
  review: Review | undefined;
  reflections: number;
  error: Failure | undefined;
}

/** One reviewer: reads the paper's text, writes a NeurIPS-form review, and reflects on it until done. */
export const reviewerMachine = setup({
  types: {
    input: {} as { maxReflections: number },
    context: {} as Context,
    output: {} as { review?: Review; reflections: number; error?: Failure },
  },
  actors: {
    readPaper: declared<string, void>("readPaper"),
    writeReview: declared<Review, { text: string }>("writeReview"),
    reflect: declared<{ review: Review; done: boolean }, { text: string; review: Review; round: number }>("reflect"),
  },
  guards: {
    keepReflecting: ({ context }, { done }: { done: boolean }) => !done && context.reflections + 1 < context.maxReflections,
  },
}).createMachine({
  id: "reviewer",
  context: ({ input }) => ({ ...input, text: "", review: undefined, reflections: 0, error: undefined }),
  initial: "reading",
  states: {
    reading: {
      invoke: {
        src: "readPaper",
        onDone: { target: "reviewing", actions: assign({ text: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "reading the paper failed") }) },
      },
    },
    reviewing: {
      invoke: {
        src: "writeReview",
        input: ({ context }) => ({ text: context.text }),
        onDone: { target: "reflecting", actions: assign({ review: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "writing the review failed") }) },
      },
    },
    reflecting: {
      invoke: {
        src: "reflect",
        input: ({ context }) => ({ text: context.text, review: context.review!, round: context.reflections + 1 }),
        onDone: [
          {
            guard: { type: "keepReflecting", params: ({ event }) => ({ done: event.output.done }) },
            target: "reflecting",
            reenter: true,
            actions: assign(({ context, event }) => ({ review: event.output.review, reflections: context.reflections + 1 })),
          },
          {
            target: "done",
            actions: assign(({ context, event }) => ({ review: event.output.review, reflections: context.reflections + 1 })),
          },
        ],
        // A reflection that fails keeps the review it started from.
        onError: { target: "done" },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) =>
    context.review
      ? { review: context.review, reflections: context.reflections }
      : { reflections: context.reflections, error: context.error ?? failure("internal", "the reviewer ended without a review") },
});
