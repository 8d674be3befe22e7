import { assign, setup } from "xstate";
import { failure, failureOf, type Failure } from "../bus/errors.js";
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
  claimFixes: number;
  errors: string[];
  error: Failure | undefined;
}

/**
 * The writer: rounds of finding citations, then the paper section by section, each refined against a
 * checklist; then compile, with LaTeX errors, lint and the page limit going back to the writer while attempts are
 * left; then the claim check, which sends every number that matches no run artifact back the same way.
 */
export const writerMachine = setup({
  types: {
    input: {} as { sections: string[]; citeRounds: number; maxFixes: number },
    context: {} as Context,
    output: {} as { citations: Citation[]; fixes: number; error?: Failure },
  },
  actors: {
    findCitations: declared<{ found: Citation[]; more: boolean }, { round: number; citations: Citation[] }>("findCitations"),
    writeSection: declared<void, { section: string; citations: Citation[] }>("writeSection"),
    refineSection: declared<void, { section: string }>("refineSection"),
    checkClaims: declared<{ unmatched: string[] }, void>("checkClaims"),
    fixClaims: declared<void, { unmatched: string[]; attempt: number }>("fixClaims"),
    compile: declared<CompileReport, void>("compile"),
    fixLatex: declared<void, { errors: string[]; attempt: number }>("fixLatex"),
  },
  guards: {
    moreCitations: ({ context, event }) =>
      (event as unknown as { output: { more: boolean } }).output.more && context.citeRound + 1 < context.citeRounds,
    moreSections: ({ context }) => context.sectionIndex + 1 < context.sections.length,
    compiled: ({ event }) => (event as unknown as { output: CompileReport }).output.ok,
    claimsHold: ({ event }) => (event as unknown as { output: { unmatched: string[] } }).output.unmatched.length === 0,
    fixesLeft: ({ context }) => context.fixes < context.maxFixes,
    claimFixesLeft: ({ context }) => context.claimFixes < context.maxFixes,
  },
}).createMachine({
  id: "writer",
  context: ({ input }) => ({ ...input, citeRound: 0, citations: [], sectionIndex: 0, fixes: 0, claimFixes: 0, errors: [], error: undefined }),
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
        onDone: { target: "refining" },
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => failureOf(event.error, `writing ${context.sections[context.sectionIndex]} failed`) }) },
      },
    },
    // Each section is checked against the checklist (math, escapes, figures, references) and revised.
    refining: {
      invoke: {
        src: "refineSection",
        input: ({ context }) => ({ section: context.sections[context.sectionIndex]! }),
        onDone: [
          { guard: "moreSections", target: "drafting", actions: assign({ sectionIndex: ({ context }) => context.sectionIndex + 1 }) },
          { target: "compiling" },
        ],
        // A refinement that fails keeps the draft; the compile loop still checks it.
        onError: [
          { guard: "moreSections", target: "drafting", actions: assign({ sectionIndex: ({ context }) => context.sectionIndex + 1 }) },
          { target: "compiling" },
        ],
      },
    },
    compiling: {
      invoke: {
        src: "compile",
        onDone: [
          { guard: "compiled", target: "checkingClaims" },
          { guard: "fixesLeft", target: "fixing", actions: assign({ errors: ({ event }) => event.output.errors }) },
          { target: "failed", actions: assign({ error: ({ event }) => failure("model", `LaTeX still fails: ${event.output.errors.slice(0, 3).join("; ")}`) }) },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "compiling failed") }) },
      },
    },
    // Every number in the abstract, results, tables and captions must come from a run's artifacts.
    checkingClaims: {
      invoke: {
        src: "checkClaims",
        onDone: [
          { guard: "claimsHold", target: "done" },
          { guard: "claimFixesLeft", target: "fixingClaims", actions: assign({ errors: ({ event }) => event.output.unmatched }) },
          {
            target: "failed",
            actions: assign({ error: ({ event }) => failure("model", `numbers that match no run artifact: ${event.output.unmatched.slice(0, 5).join("; ")}`) }),
          },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "checking the claims failed") }) },
      },
    },
    fixingClaims: {
      invoke: {
        src: "fixClaims",
        input: ({ context }) => ({ unmatched: context.errors, attempt: context.claimFixes + 1 }),
        onDone: { target: "compiling", actions: assign({ claimFixes: ({ context }) => context.claimFixes + 1 }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "fixing the claims failed") }) },
      },
    },
    fixing: {
      invoke: {
        src: "fixLatex",
        input: ({ context }) => ({ errors: context.errors, attempt: context.fixes + 1 }),
        onDone: { target: "compiling", actions: assign({ fixes: ({ context }) => context.fixes + 1 }) },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "fixing LaTeX failed") }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({ citations: context.citations, fixes: context.fixes, ...(context.error ? { error: context.error } : {}) }),
});
