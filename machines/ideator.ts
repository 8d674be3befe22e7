import { assign, setup } from "xstate";
import type { Idea, Verdict } from "../bus/schemas.js";
import { failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

export interface IdeaRecord {
  ideaId: string;
  idea: Idea;
  verdict?: Verdict;
  /** "undecided": the critic could not reach the literature, so the idea was neither judged nor experimented on. */
  status: "accepted" | "rejected" | "undecided" | "failed";
  history: string[];
  /** Why a `failed` idea failed. */
  failure?: Failure;
}

interface Context {
  target: number;
  maxReflections: number;
  maxRevisions: number;
  proposed: number;
  ideaId: string;
  idea: Idea | undefined;
  reflections: number;
  revisions: number;
  verdict: Verdict | undefined;
  history: string[];
  records: IdeaRecord[];
  /** Proposals that never became an idea, and why. */
  failures: Failure[];
}

/** A stable, unique, snake_case id for an idea from its Name. */
export function toIdeaId(name: string, taken: string[]): string {
  const base = name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 48) || "idea";
  let id = base;
  for (let n = 2; taken.includes(id); n++) id = `${base}_${n}`;
  return id;
}

function recordOf(ctx: Context, status: IdeaRecord["status"], note: string): IdeaRecord {
  return {
    ideaId: ctx.ideaId,
    idea: ctx.idea!,
    ...(ctx.verdict ? { verdict: ctx.verdict } : {}),
    status,
    history: [...ctx.history, note],
  };
}

/** A failed idea: its history says what failed, its failure whose fault it was. */
function failedRecordOf(ctx: Context, error: unknown, during: string): IdeaRecord {
  const failure = failureOf(error, during);
  return { ...recordOf(ctx, "failed", failure.message), failure };
}

/**
 * The PhD student: drafts an idea, reflects on it until satisfied (at least once), drops it if it nearly
 * repeats an idea already had, puts it to the novelty critic, revises it when the critic asks, hands novel
 * ideas to the coder, keeps those the critic could not judge aside, and goes on to the next.
 */
export const ideatorMachine = setup({
  types: {
    input: {} as { target: number; maxReflections: number; maxRevisions: number },
    context: {} as Context,
    output: {} as { records: IdeaRecord[]; failures: Failure[] },
  },
  actors: {
    proposeIdea: declared<Idea, { proposed: number; earlier: IdeaRecord[] }>("proposeIdea"),
    reflectOnIdea: declared<{ idea: Idea; done: boolean; thought: string }, { idea: Idea; round: number }>("reflectOnIdea"),
    screenIdea: declared<{ duplicateOf?: string }, { idea: Idea; earlier: IdeaRecord[] }>("screenIdea"),
    /** Puts the idea on the critic's queue. */
    askCritic: declared<void, { ideaId: string; idea: Idea; turn: number }>("askCritic"),
    /** The critic's verdict, from its job's outcome: the ideator waits in a state of its own, on any node's critic. */
    awaitVerdict: declared<Verdict, { ideaId: string; idea: Idea; turn: number }>("awaitVerdict"),
    reviseIdea: declared<Idea, { idea: Idea; verdict: Verdict }>("reviseIdea"),
    handOff: declared<void, { ideaId: string; idea: Idea }>("handOff"),
  },
  guards: {
    keepReflecting: ({ context }, { done }: { done: boolean }) => !done && context.reflections + 1 < context.maxReflections,
    isDuplicate: (_, { duplicateOf }: { duplicateOf?: string | undefined }) => duplicateOf !== undefined,
    isNovel: (_, { verdict }: { verdict: Verdict }) => verdict.verdict === "novel",
    isUndecided: (_, { verdict }: { verdict: Verdict }) => verdict.verdict === "undecided",
    canRevise: ({ context }, { verdict }: { verdict: Verdict }) => verdict.verdict === "revise" && context.revisions < context.maxRevisions,
    moreToPropose: ({ context }) => context.proposed < context.target,
  },
}).createMachine({
  id: "ideator",
  context: ({ input }) => ({
    ...input,
    proposed: 0,
    ideaId: "",
    idea: undefined,
    reflections: 0,
    revisions: 0,
    verdict: undefined,
    history: [],
    records: [],
    failures: [],
  }),
  initial: "proposing",
  states: {
    proposing: {
      invoke: {
        src: "proposeIdea",
        input: ({ context }) => ({ proposed: context.proposed, earlier: context.records }),
        onDone: {
          target: "reflecting",
          actions: assign(({ context, event }) => ({
            idea: event.output,
            ideaId: toIdeaId(event.output.Name, context.records.map((r) => r.ideaId)),
            proposed: context.proposed + 1,
            reflections: 0,
            revisions: 0,
            verdict: undefined,
            history: [`drafted: ${event.output.Title}`],
          })),
        },
        onError: {
          target: "nextIdea",
          actions: assign(({ context, event }) => ({
            proposed: context.proposed + 1,
            failures: [...context.failures, failureOf(event.error, `proposal ${context.proposed + 1} failed`)],
          })),
        },
      },
    },
    reflecting: {
      invoke: {
        src: "reflectOnIdea",
        input: ({ context }) => ({ idea: context.idea!, round: context.reflections + 1 }),
        onDone: [
          {
            guard: { type: "keepReflecting", params: ({ event }) => ({ done: event.output.done }) },
            target: "reflecting",
            reenter: true,
            actions: assign(({ context, event }) => ({
              idea: event.output.idea,
              reflections: context.reflections + 1,
              history: [...context.history, `reflection ${context.reflections + 1}: ${event.output.thought}`],
            })),
          },
          {
            target: "screening",
            actions: assign(({ context, event }) => ({
              idea: event.output.idea,
              reflections: context.reflections + 1,
              history: [...context.history, `reflection ${context.reflections + 1} (done): ${event.output.thought}`],
            })),
          },
        ],
        onError: { target: "screening" },
      },
    },
    // A near-duplicate of an idea already had (this run, earlier runs, the seeds) costs the critic nothing.
    screening: {
      invoke: {
        src: "screenIdea",
        input: ({ context }) => ({ idea: context.idea!, earlier: context.records }),
        onDone: [
          {
            guard: { type: "isDuplicate", params: ({ event }) => ({ duplicateOf: event.output.duplicateOf }) },
            target: "nextIdea",
            actions: assign(({ context, event }) => ({
              records: [...context.records, recordOf(context, "rejected", `near-duplicate of ${event.output.duplicateOf}: not sent to the critic`)],
            })),
          },
          { target: "askingCritic" },
        ],
        onError: { target: "askingCritic" },
      },
    },
    askingCritic: {
      invoke: {
        src: "askCritic",
        input: ({ context }) => ({ ideaId: context.ideaId, idea: context.idea!, turn: context.revisions }),
        onDone: { target: "awaitingVerdict" },
        onError: {
          target: "nextIdea",
          actions: assign(({ context, event }) => ({
            records: [...context.records, failedRecordOf(context, event.error, "could not ask the critic")],
          })),
        },
      },
    },
    awaitingVerdict: {
      invoke: {
        src: "awaitVerdict",
        input: ({ context }) => ({ ideaId: context.ideaId, idea: context.idea!, turn: context.revisions }),
        onDone: [
          {
            guard: { type: "isNovel", params: ({ event }) => ({ verdict: event.output }) },
            target: "handingOff",
            actions: assign(({ context, event }) => ({
              verdict: event.output,
              history: [...context.history, `critic: novel (${event.output.reason})`],
            })),
          },
          // Not judged is not novel: no experiment is spent on it, and the record keeps the critic's reason.
          {
            guard: { type: "isUndecided", params: ({ event }) => ({ verdict: event.output }) },
            target: "nextIdea",
            actions: assign(({ context, event }) => {
              const next = { ...context, verdict: event.output };
              return { records: [...context.records, recordOf(next, "undecided", `critic: ${event.output.reason}`)] };
            }),
          },
          {
            guard: { type: "canRevise", params: ({ event }) => ({ verdict: event.output }) },
            target: "revising",
            actions: assign(({ context, event }) => ({
              verdict: event.output,
              history: [...context.history, `critic: revise (${event.output.reason})`],
            })),
          },
          {
            target: "nextIdea",
            actions: assign(({ context, event }) => {
              const next = { ...context, verdict: event.output };
              return { records: [...context.records, recordOf(next, "rejected", `critic: ${event.output.verdict} (${event.output.reason})`)] };
            }),
          },
        ],
        onError: {
          target: "nextIdea",
          actions: assign(({ context, event }) => ({
            records: [...context.records, failedRecordOf(context, event.error, "novelty check failed")],
          })),
        },
      },
    },
    revising: {
      invoke: {
        src: "reviseIdea",
        input: ({ context }) => ({ idea: context.idea!, verdict: context.verdict! }),
        onDone: {
          target: "askingCritic",
          actions: assign(({ context, event }) => ({
            idea: event.output,
            revisions: context.revisions + 1,
            history: [...context.history, `revised: ${event.output.Title}`],
          })),
        },
        onError: {
          target: "nextIdea",
          actions: assign(({ context, event }) => ({ records: [...context.records, failedRecordOf(context, event.error, "revision failed")] })),
        },
      },
    },
    handingOff: {
      invoke: {
        src: "handOff",
        input: ({ context }) => ({ ideaId: context.ideaId, idea: context.idea! }),
        onDone: {
          target: "nextIdea",
          actions: assign(({ context }) => ({ records: [...context.records, recordOf(context, "accepted", "accepted: its experiments start")] })),
        },
        onError: {
          target: "nextIdea",
          actions: assign(({ context, event }) => ({ records: [...context.records, failedRecordOf(context, event.error, "could not announce the accepted idea")] })),
        },
      },
    },
    nextIdea: {
      always: [{ guard: "moreToPropose", target: "proposing" }, { target: "done" }],
    },
    done: { type: "final" },
  },
  output: ({ context }) => ({ records: context.records, failures: context.failures }),
});
