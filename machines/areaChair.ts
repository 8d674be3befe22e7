import { assign, setup } from "xstate";
import type { Review } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared, declaredCallback } from "./declare.js";

export interface ReceivedReview {
  reviewer: number;
  node: string;
  /** The identity that published it, as the server vouched for it. */
  identity: string;
  review: Review;
}

export type ChairEvent =
  | { type: "REVIEW"; review: ReceivedReview }
  | { type: "REVIEW_FAILED"; reviewer: number; failure: Failure };

interface Context {
  reviewers: number;
  quorum: number;
  deadlineMs: number;
  reviews: ReceivedReview[];
  /** The reviewers heard from, either way: a chair that goes on after a restart hears their outcomes again. */
  answered: number[];
  /** Reviews that failed, each named by its reviewer. */
  failures: Failure[];
  decision: { decision: "Accept" | "Reject"; metaReview: string; scores: Record<string, number> } | undefined;
  error: Failure | undefined;
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
    output: {} as { decision?: Context["decision"]; reviews: ReceivedReview[]; error?: Failure },
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
    heardFrom: ({ context }, { reviewer }: { reviewer: number }) => context.answered.includes(reviewer),
  },
  actions: {
    noteFailure: assign(({ context }, { reviewer, failure }: { reviewer: number; failure: Failure }) => ({
      failures: [...context.failures, { ...failure, message: `reviewer ${reviewer}: ${failure.message}` }],
      answered: [...context.answered, reviewer],
    })),
    noteReview: assign(({ context }, { review }: { review: ReceivedReview }) => ({
      reviews: [...context.reviews, review],
      answered: [...context.answered, review.reviewer],
    })),
  },
  delays: {
    reviewDeadline: ({ context }) => context.deadlineMs,
  },
}).createMachine({
  id: "areaChair",
  context: ({ input }) => ({ ...input, reviews: [], answered: [], failures: [], decision: undefined, error: undefined }),
  initial: "requesting",
  states: {
    requesting: {
      invoke: {
        src: "requestReviews",
        input: ({ context }) => ({ reviewers: context.reviewers }),
        onDone: { target: "collecting" },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "asking for reviews failed") }) },
      },
    },
    collecting: {
      // The agent's collector listens to review outcomes on the bus and sends them here as events.
      invoke: { src: "collectReviews" },
      on: {
        REVIEW: [
          { guard: { type: "heardFrom", params: ({ event }) => ({ reviewer: event.review.reviewer }) } },
          { guard: "quorumWithThis", target: "deciding", actions: { type: "noteReview", params: ({ event }) => event } },
          { guard: "allAnswered", target: "judgingWhatCame", actions: { type: "noteReview", params: ({ event }) => event } },
          { actions: { type: "noteReview", params: ({ event }) => event } },
        ],
        REVIEW_FAILED: [
          { guard: { type: "heardFrom", params: ({ event }) => ({ reviewer: event.reviewer }) } },
          {
            guard: "allAnswered",
            target: "judgingWhatCame",
            actions: { type: "noteFailure", params: ({ event }) => event },
          },
          { actions: { type: "noteFailure", params: ({ event }) => event } },
        ],
      },
      after: { reviewDeadline: { target: "judgingWhatCame" } },
    },
    judgingWhatCame: {
      always: [
        { guard: "hasReviews", target: "deciding" },
        // Whose fault the reviews' failures were, or nobody's but the deadline's; the chair's job is not redone
        // for it, since its reviews would fail or be late the same way.
        {
          target: "failed",
          actions: assign({
            error: ({ context }) =>
              failure(context.failures[0]?.kind ?? "environment", `no review arrived (${context.failures.map((f) => f.message).join("; ") || "deadline passed"})`, {
                hint: context.failures[0]?.hint ?? "start more reviewers (npm run node -- --roles reviewer) or give them longer (--review-deadline)",
              }),
          }),
        },
      ],
    },
    deciding: {
      invoke: {
        src: "writeMetaReview",
        input: ({ context }) => ({ reviews: context.reviews }),
        onDone: { target: "done", actions: assign({ decision: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "writing the meta-review failed") }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    reviews: context.reviews,
    ...(context.decision ? { decision: context.decision } : { error: context.error ?? failure("internal", "the area chair ended without a decision") }),
  }),
});
