import { assign, setup } from "xstate";
import type { Review } from "../bus/schemas.js";
import { declared, declaredCallback } from "./declare.js";

export interface ReceivedReview {
  reviewer: number;
  node: string;
  review: Review;
}

export type ChairEvent =
  | { type: "REVIEW"; review: ReceivedReview }
  | { type: "REVIEW_FAILED"; reviewer: number; error: string };

interface Context {
  reviewers: number;
  quorum: number;
  deadlineMs: number;
  reviews: ReceivedReview[];
  failures: string[];
  decision: { decision: "Accept" | "Reject"; metaReview: string; scores: Record<string, number> } | undefined;
  error: string | undefined;
}

/**
 * The area chair: asks K reviewers (jobs on the review queue, any node), collects their reviews until a
 * quorum or the deadline, then writes the meta-review and the decision.
 */
export const areaChairMachine = setup({
  types: {
    input: {} as { reviewers: number; quorum: number; deadlineMs: number },
    context: {} as Context,
    events: {} as ChairEvent,
    output: {} as { decision?: Context["decision"]; reviews: ReceivedReview[]; error?: string },
  },
  actors: {
    requestReviews: declared<void, { reviewers: number }>("requestReviews"),
    collectReviews: declaredCallback<ChairEvent>("collectReviews"),
    writeMetaReview: declared<NonNullable<Context["decision"]>, { reviews: ReceivedReview[] }>("writeMetaReview"),
  },
  guards: {
    quorumWithThis: ({ context }) => context.reviews.length + 1 >= context.quorum,
    allAnswered: ({ context }) => context.reviews.length + context.failures.length + 1 >= context.reviewers,
    hasReviews: ({ context }) => context.reviews.length > 0,
  },
  delays: {
    reviewDeadline: ({ context }) => context.deadlineMs,
  },
}).createMachine({
  id: "areaChair",
  context: ({ input }) => ({ ...input, reviews: [], failures: [], decision: undefined, error: undefined }),
  initial: "requesting",
  states: {
    requesting: {
      invoke: {
        src: "requestReviews",
        input: ({ context }) => ({ reviewers: context.reviewers }),
        onDone: { target: "collecting" },
        onError: { target: "failed", actions: assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    collecting: {
      // The agent's collector listens to review outcomes on the bus and sends them here as events.
      invoke: { src: "collectReviews" },
      on: {
        REVIEW: [
          { guard: "quorumWithThis", target: "deciding", actions: assign({ reviews: ({ context, event }) => [...context.reviews, event.review] }) },
          { guard: "allAnswered", target: "judgingWhatCame", actions: assign({ reviews: ({ context, event }) => [...context.reviews, event.review] }) },
          { actions: assign({ reviews: ({ context, event }) => [...context.reviews, event.review] }) },
        ],
        REVIEW_FAILED: [
          {
            guard: "allAnswered",
            target: "judgingWhatCame",
            actions: assign({ failures: ({ context, event }) => [...context.failures, `reviewer ${event.reviewer}: ${event.error}`] }),
          },
          { actions: assign({ failures: ({ context, event }) => [...context.failures, `reviewer ${event.reviewer}: ${event.error}`] }) },
        ],
      },
      after: { reviewDeadline: { target: "judgingWhatCame" } },
    },
    judgingWhatCame: {
      always: [
        { guard: "hasReviews", target: "deciding" },
        { target: "failed", actions: assign({ error: ({ context }) => `no review arrived (${context.failures.join("; ") || "deadline passed"})` }) },
      ],
    },
    deciding: {
      invoke: {
        src: "writeMetaReview",
        input: ({ context }) => ({ reviews: context.reviews }),
        onDone: { target: "done", actions: assign({ decision: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    reviews: context.reviews,
    ...(context.decision ? { decision: context.decision } : { error: context.error ?? "no decision" }),
  }),
});
