import { assign, setup } from "xstate";
import type { FigureCritique, FigureProblem, FigureToCheck } from "../bus/schemas.js";
import { failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

export type { FigureCritique, FigureToCheck } from "../bus/schemas.js";

/** What a model that looked at one figure says of it. */
export interface SeenFigure {
  shows: string;
  problems: FigureProblem[];
  /** false: no image could be shown (the file is not there), and the check's word stands. */
  seen?: boolean;
}

interface Context {
  figures: FigureToCheck[];
  /** The model sees images: each figure is shown to it after the check. */
  sees: boolean;
  critiques: FigureCritique[];
  /** 0-based index of the figure being looked at. */
  index: number;
  seen: boolean;
  error: Failure | undefined;
}

/** The model's look joins the check's: the check's problems stay, the model's are added, and what it saw is what the figure shows. */
const joined = (checked: FigureCritique, look: SeenFigure): FigureCritique => {
  const problems = [...checked.problems, ...look.problems.filter((p) => !checked.problems.some((c) => c.kind === p.kind && c.detail === p.detail))];
  if (look.seen === false) return checked;
  return { ...checked, shows: look.shows, problems, ok: problems.length === 0, seen: true };
};

/**
 * The figure critic: the deterministic check of every figure (blank, too small, a caption naming a run with no
 * data), which always runs; then, when its model sees images, one look per figure, the image attached, whose
 * answer adds what the figure shows and what a reader would miss (a legend, readable axes, a caption that claims
 * more than the figure shows).
 */
export const figureCriticMachine = setup({
  types: {
    input: {} as { figures: FigureToCheck[]; sees: boolean },
    context: {} as Context,
    output: {} as { critiques: FigureCritique[]; seen: boolean; error?: Failure },
  },
  actors: {
    checkFigures: declared<FigureCritique[], { figures: FigureToCheck[] }>("checkFigures"),
    /** One figure shown to the model, with what the check found of it. */
    seeFigure: declared<SeenFigure, { figure: FigureToCheck; checked: FigureCritique }>("seeFigure"),
  },
  guards: {
    sees: ({ context }) => context.sees && context.figures.length > 0,
    moreFigures: ({ context }) => context.index + 1 < context.figures.length,
  },
}).createMachine({
  id: "figureCritic",
  context: ({ input }) => ({ ...input, critiques: [], index: 0, seen: false, error: undefined }),
  initial: "checking",
  states: {
    checking: {
      invoke: {
        src: "checkFigures",
        input: ({ context }) => ({ figures: context.figures }),
        onDone: [
          { guard: "sees", target: "seeing", actions: assign({ critiques: ({ event }) => event.output }) },
          { target: "done", actions: assign({ critiques: ({ event }) => event.output }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "the figure check failed") }) },
      },
    },
    seeing: {
      invoke: {
        src: "seeFigure",
        input: ({ context }) => ({ figure: context.figures[context.index]!, checked: context.critiques[context.index]! }),
        onDone: [
          {
            guard: "moreFigures",
            target: "seeing",
            reenter: true,
            actions: assign(({ context, event }) => ({
              critiques: context.critiques.map((c, i) => (i === context.index ? joined(c, event.output) : c)),
              index: context.index + 1,
              seen: context.seen || event.output.seen !== false,
            })),
          },
          {
            target: "done",
            actions: assign(({ context, event }) => ({
              critiques: context.critiques.map((c, i) => (i === context.index ? joined(c, event.output) : c)),
              seen: context.seen || event.output.seen !== false,
            })),
          },
        ],
        // The job fails with the model's failure, which says whether it is worth trying again (an outage is).
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "looking at the figure failed") }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({ critiques: context.critiques, seen: context.seen, ...(context.error ? { error: context.error } : {}) }),
});
