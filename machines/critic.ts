import { assign, setup } from "xstate";
import type { Evidence, Idea, Verdict } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

/** The verdicts the model may give. "undecided" is the critic's own: it is never asked to judge without evidence. */
export type Judgement = Exclude<Verdict["verdict"], "undecided">;

export interface Decision {
  verdict: Judgement;
  reason: string;
}

export interface CriticStep {
  query?: string;
  decision?: Decision;
}

/** A search that failed, and its failure as data, so a snapshot can hold it. */
export interface SearchFailure extends Failure {
  query: string;
}

interface Context {
  idea: Idea;
  maxRounds: number;
  round: number;
  queries: string[];
  found: Evidence[];
  /** Searches that returned (with hits or none). */
  answered: number;
  failures: SearchFailure[];
  pendingQuery: string;
  verdict: Verdict | undefined;
  error: Failure | undefined;
}

const dedupe = (items: Evidence[]) => items.filter((e, i) => items.findIndex((o) => o.title === e.title) === i);

/**
 * The novelty critic: rounds of thinking and searching the literature, then a verdict with its evidence.
 * It searches before it may decide (with the idea's title when the model offers no query), and decides only
 * on a search that returned: when every search failed it is undecided, with the last failure as its reason.
 * When the rounds run out it must decide on what it found.
 */
export const criticMachine = setup({
  types: {
    input: {} as { idea: Idea; maxRounds: number },
    context: {} as Context,
    output: {} as { verdict?: Verdict; error?: Failure },
  },
  actors: {
    think: declared<CriticStep, { idea: Idea; round: number; maxRounds: number; queries: string[]; found: Evidence[] }>("think"),
    searchLiterature: declared<Evidence[], { query: string }>("searchLiterature"),
    decide: declared<Decision, { idea: Idea; queries: string[]; found: Evidence[] }>("decide"),
  },
  guards: {
    decidesOnEvidence: ({ context }, { step }: { step: CriticStep }) => step.decision !== undefined && context.answered > 0,
    wantsSearch: ({ context }, { step }: { step: CriticStep }) => step.query !== undefined && context.round < context.maxRounds,
    notSearchedYet: ({ context }) => context.queries.length === 0,
    noSearchAnswered: ({ context }) => context.answered === 0,
  },
  actions: {
    searchTitle: assign({ pendingQuery: ({ context }) => context.idea.Title }),
    beUndecided: assign({
      verdict: ({ context }) => {
        const last = context.failures.at(-1);
        return {
          verdict: "undecided" as const,
          reason: `undecided: literature unreachable (${last ? last.message : "no search returned"})`,
          evidence: [],
          queries: context.queries,
        };
      },
    }),
  },
}).createMachine({
  id: "critic",
  context: ({ input }) => ({
    ...input,
    round: 0,
    queries: [],
    found: [],
    answered: 0,
    failures: [],
    pendingQuery: "",
    verdict: undefined,
    error: undefined,
  }),
  initial: "thinking",
  states: {
    thinking: {
      invoke: {
        src: "think",
        input: ({ context }) => ({
          idea: context.idea,
          round: context.round,
          maxRounds: context.maxRounds,
          queries: context.queries,
          found: context.found,
        }),
        onDone: [
          {
            guard: { type: "decidesOnEvidence", params: ({ event }) => ({ step: event.output }) },
            target: "decided",
            actions: assign(({ context, event }) => ({
              verdict: { ...event.output.decision!, evidence: context.found, queries: context.queries },
            })),
          },
          {
            guard: { type: "wantsSearch", params: ({ event }) => ({ step: event.output }) },
            target: "searching",
            actions: assign({ pendingQuery: ({ event }) => event.output.query! }),
          },
          // A decision before any search is an impression: the critic looks the idea's title up first.
          { guard: "notSearchedYet", target: "searching", actions: "searchTitle" },
          { guard: "noSearchAnswered", target: "undecided", actions: "beUndecided" },
          { target: "deciding" },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error) }) },
      },
    },
    searching: {
      invoke: {
        src: "searchLiterature",
        input: ({ context }) => ({ query: context.pendingQuery }),
        onDone: {
          target: "thinking",
          actions: assign(({ context, event }) => ({
            round: context.round + 1,
            queries: [...context.queries, context.pendingQuery],
            found: dedupe([...context.found, ...event.output]),
            answered: context.answered + 1,
          })),
        },
        onError: {
          target: "thinking",
          actions: assign(({ context, event }) => ({
            round: context.round + 1,
            queries: [...context.queries, `${context.pendingQuery} (failed)`],
            failures: [...context.failures, { query: context.pendingQuery, ...failureOf(event.error) }],
          })),
        },
      },
    },
    deciding: {
      invoke: {
        src: "decide",
        input: ({ context }) => ({ idea: context.idea, queries: context.queries, found: context.found }),
        onDone: {
          target: "decided",
          actions: assign(({ context, event }) => ({ verdict: { ...event.output, evidence: context.found, queries: context.queries } })),
        },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error) }) },
      },
    },
    decided: { type: "final" },
    // Every search failed: no verdict the literature could back, and no model asked to make one up.
    undecided: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => (context.verdict ? { verdict: context.verdict } : { error: context.error ?? failure("internal", "the critic ended without a verdict") }),
});
