import { assign, setup } from "xstate";
import type { Evidence, Idea, Verdict } from "../bus/schemas.js";
import { declared } from "./declare.js";

export interface CriticStep {
  query?: string;
  decision?: { verdict: Verdict["verdict"]; reason: string };
}

interface Context {
  idea: Idea;
  maxRounds: number;
  round: number;
  queries: string[];
  found: Evidence[];
  pendingQuery: string;
  verdict: Verdict | undefined;
  error: string | undefined;
}

const dedupe = (items: Evidence[]) => items.filter((e, i) => items.findIndex((o) => o.title === e.title) === i);

/**
 * The novelty critic: rounds of thinking and searching the literature, then a verdict with its evidence.
 * When the rounds run out it must decide on what it found.
 */
export const criticMachine = setup({
  types: {
    input: {} as { idea: Idea; maxRounds: number },
    context: {} as Context,
    output: {} as { verdict?: Verdict; error?: string },
  },
  actors: {
    think: declared<CriticStep, { idea: Idea; round: number; maxRounds: number; queries: string[]; found: Evidence[] }>("think"),
    searchLiterature: declared<Evidence[], { query: string }>("searchLiterature"),
    decide: declared<{ verdict: Verdict["verdict"]; reason: string }, { idea: Idea; queries: string[]; found: Evidence[] }>("decide"),
  },
  guards: {
    hasDecision: ({ event }) => (event as unknown as { output: CriticStep }).output.decision !== undefined,
    wantsSearch: ({ context, event }) =>
      (event as unknown as { output: CriticStep }).output.query !== undefined && context.round < context.maxRounds,
  },
}).createMachine({
  id: "critic",
  context: ({ input }) => ({
    ...input,
    round: 0,
    queries: [],
    found: [],
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
            guard: "hasDecision",
            target: "decided",
            actions: assign(({ context, event }) => ({
              verdict: { ...event.output.decision!, evidence: context.found, queries: context.queries },
            })),
          },
          { guard: "wantsSearch", target: "searching", actions: assign({ pendingQuery: ({ event }) => event.output.query! }) },
          { target: "deciding" },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
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
          })),
        },
        onError: {
          target: "thinking",
          actions: assign(({ context }) => ({ round: context.round + 1, queries: [...context.queries, `${context.pendingQuery} (failed)`] })),
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
        onError: { target: "failed", actions: assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    decided: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => (context.verdict ? { verdict: context.verdict } : { error: context.error ?? "no verdict" }),
});
