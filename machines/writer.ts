import { assign, setup } from "xstate";
import { declared } from "./declare.js";

export interface Citation {
  key: string;
  title: string;
}

export interface CompileReport {
  ok: boolean;
  errors: string[];
}

interface Context {
  sections: string[];
  citeRounds: number;
  maxFixes: number;
  citeRound: number;
  citations: Citation[];
  sectionIndex: number;
  fixes: number;
  errors: string[];
  error: string | undefined;
}

const message = (e: unknown) => String((e as Error)?.message ?? e);

/**
 * The writer: rounds of finding citations, then the paper section by section, then compile; LaTeX errors go
 * back to the writer to fix while attempts are left.
 */
export const writerMachine = setup({
  types: {
    input: {} as { sections: string[]; citeRounds: number; maxFixes: number },
    context: {} as Context,
    output: {} as { citations: Citation[]; fixes: number; error?: string },
  },
  actors: {
    findCitations: declared<{ found: Citation[]; more: boolean }, { round: number; citations: Citation[] }>("findCitations"),
    writeSection: declared<void, { section: string; citations: Citation[] }>("writeSection"),
    compile: declared<CompileReport, void>("compile"),
    fixLatex: declared<void, { errors: string[]; attempt: number }>("fixLatex"),
  },
  guards: {
    moreCitations: ({ context, event }) =>
      (event as unknown as { output: { more: boolean } }).output.more && context.citeRound + 1 < context.citeRounds,
    moreSections: ({ context }) => context.sectionIndex + 1 < context.sections.length,
    compiled: ({ event }) => (event as unknown as { output: CompileReport }).output.ok,
    fixesLeft: ({ context }) => context.fixes < context.maxFixes,
  },
}).createMachine({
  id: "writer",
  context: ({ input }) => ({ ...input, citeRound: 0, citations: [], sectionIndex: 0, fixes: 0, errors: [], error: undefined }),
  initial: "citing",
  states: {
    citing: {
      invoke: {
        src: "findCitations",
        input: ({ context }) => ({ round: context.citeRound, citations: context.citations }),
        onDone: [
          {
            guard: "moreCitations",
            target: "citing",
            reenter: true,
            actions: assign(({ context, event }) => ({ citations: [...context.citations, ...event.output.found], citeRound: context.citeRound + 1 })),
          },
          { target: "drafting", actions: assign(({ context, event }) => ({ citations: [...context.citations, ...event.output.found] })) },
        ],
        // Without the literature the paper is still written, with the template's own references.
        onError: { target: "drafting" },
      },
    },
    drafting: {
      invoke: {
        src: "writeSection",
        input: ({ context }) => ({ section: context.sections[context.sectionIndex]!, citations: context.citations }),
        onDone: [
          { guard: "moreSections", target: "drafting", reenter: true, actions: assign({ sectionIndex: ({ context }) => context.sectionIndex + 1 }) },
          { target: "compiling" },
        ],
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => `writing ${context.sections[context.sectionIndex]} failed: ${message(event.error)}` }) },
      },
    },
    compiling: {
      invoke: {
        src: "compile",
        onDone: [
          { guard: "compiled", target: "done" },
          { guard: "fixesLeft", target: "fixing", actions: assign({ errors: ({ event }) => event.output.errors }) },
          { target: "failed", actions: assign({ error: ({ event }) => `LaTeX still fails: ${event.output.errors.slice(0, 3).join("; ")}` }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => `compiling failed: ${message(event.error)}` }) },
      },
    },
    fixing: {
      invoke: {
        src: "fixLatex",
        input: ({ context }) => ({ errors: context.errors, attempt: context.fixes + 1 }),
        onDone: { target: "compiling", actions: assign({ fixes: ({ context }) => context.fixes + 1 }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => `fixing LaTeX failed: ${message(event.error)}` }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({ citations: context.citations, fixes: context.fixes, ...(context.error ? { error: context.error } : {}) }),
});
