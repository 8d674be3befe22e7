import { assign, setup } from "xstate";
import type { Evidence } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

/** A work the paper cites, as the literature search found it, with the BibTeX entry its bibliography gets. */
export interface Citation extends Evidence {
  key: string;
  bibtex: string;
}

/** What the prompts are told of a citation. */
export interface CitationRef {
  key: string;
  title: string;
}

/** The paper's sections as written so far: section name → LaTeX body. */
export type Written = Record<string, string>;

/** Everything the TeX is assembled from. */
export interface PaperParts {
  written: Written;
  bibtex: string[];
}

export interface CompileReport {
  ok: boolean;
  errors: string[];
}

/** A revision: the area chair's meta-review and the version it reviewed. */
export interface Revision {
  metaReview: string;
  sections: Written;
  citations: Citation[];
}

export interface WriterInput {
  sections: string[];
  citeRounds: number;
  maxFixes: number;
  revision?: Revision | undefined;
}

interface Context {
  sections: string[];
  citeRounds: number;
  maxFixes: number;
  /** The meta-review being answered, on the revise path. */
  metaReview: string | undefined;
  citeRound: number;
  citations: Citation[];
  written: Written;
  sectionIndex: number;
  fixes: number;
  claimFixes: number;
  errors: string[];
  error: Failure | undefined;
}

const refs = (ctx: Context): CitationRef[] => ctx.citations.map((c) => ({ key: c.key, title: c.title }));
const section = (ctx: Context) => ctx.sections[ctx.sectionIndex]!;
const parts = (ctx: Context): PaperParts => ({ written: ctx.written, bibtex: ctx.citations.map((c) => c.bibtex) });
/** New citations join the chosen ones; a key already chosen is kept once. */
const withFound = (ctx: Context, found: Citation[]) => [...ctx.citations, ...found.filter((f) => !ctx.citations.some((c) => c.key === f.key))];

/**
 * The writer. A first version: rounds of finding citations, then the paper section by section. A revision:
 * each section of the version before, revised in answer to the meta-review. Either way each section is refined
 * against a checklist; then compile, with LaTeX errors, lint and the page limit going back to the writer while
 * attempts are left; then the claim check, which sends every number that matches no run artifact back the same
 * way. The sections and the citations live in the context, so a writer that stops goes on from them.
 */
export const writerMachine = setup({
  types: {
    input: {} as WriterInput,
    context: {} as Context,
    output: {} as { citations: Citation[]; written: Written; fixes: number; error?: Failure },
  },
  actors: {
    findCitations: declared<{ found: Citation[]; more: boolean }, { round: number; have: CitationRef[] }>("findCitations"),
    writeSection: declared<string, { section: string; citations: CitationRef[]; written: Written }>("writeSection"),
    reviseSection: declared<string, { section: string; latex: string; metaReview: string; citations: CitationRef[] }>("reviseSection"),
    refineSection: declared<string, { section: string; latex: string; citationKeys: string[] }>("refineSection"),
    compile: declared<CompileReport, PaperParts>("compile"),
    checkClaims: declared<{ unmatched: string[] }, PaperParts>("checkClaims"),
    /** The sections it changed. */
    fixClaims: declared<Written, { unmatched: string[]; attempt: number; written: Written }>("fixClaims"),
    fixLatex: declared<Written, { errors: string[]; attempt: number; written: Written }>("fixLatex"),
  },
  guards: {
    revises: ({ context }) => context.metaReview !== undefined,
    moreCitations: ({ context }, { more }: { more: boolean }) => more && context.citeRound + 1 < context.citeRounds,
    moreSections: ({ context }) => context.sectionIndex + 1 < context.sections.length,
    compiled: (_, { ok }: { ok: boolean }) => ok,
    claimsHold: (_, { unmatched }: { unmatched: number }) => unmatched === 0,
    fixesLeft: ({ context }) => context.fixes < context.maxFixes,
    claimFixesLeft: ({ context }) => context.claimFixes < context.maxFixes,
  },
  actions: {
    setSection: assign(({ context }, { latex }: { latex: string }) => ({ written: { ...context.written, [section(context)]: latex } })),
    mergeSections: assign(({ context }, { changed }: { changed: Written }) => ({ written: { ...context.written, ...changed } })),
    advance: assign({ sectionIndex: ({ context }) => context.sectionIndex + 1 }),
  },
}).createMachine({
  id: "writer",
  context: ({ input }) => ({
    sections: input.sections,
    citeRounds: input.citeRounds,
    maxFixes: input.maxFixes,
    metaReview: input.revision?.metaReview,
    citeRound: 0,
    citations: input.revision?.citations ?? [],
    written: input.revision?.sections ?? {},
    sectionIndex: 0,
    fixes: 0,
    claimFixes: 0,
    errors: [],
    error: undefined,
  }),
  initial: "routing",
  states: {
    // A revision keeps the citations of the version before and rewrites its sections; a first version starts from the literature.
    routing: {
      always: [{ guard: "revises", target: "revising" }, { target: "citing" }],
    },
    citing: {
      invoke: {
        src: "findCitations",
        input: ({ context }) => ({ round: context.citeRound, have: refs(context) }),
        onDone: [
          {
            guard: { type: "moreCitations", params: ({ event }) => ({ more: event.output.more }) },
            target: "citing",
            reenter: true,
            actions: assign(({ context, event }) => ({ citations: withFound(context, event.output.found), citeRound: context.citeRound + 1 })),
          },
          { target: "drafting", actions: assign(({ context, event }) => ({ citations: withFound(context, event.output.found) })) },
        ],
        // Without the literature the paper is still written, with the template's own references.
        onError: { target: "drafting" },
      },
    },
    drafting: {
      invoke: {
        src: "writeSection",
        input: ({ context }) => ({ section: section(context), citations: refs(context), written: context.written }),
        onDone: { target: "refining", actions: { type: "setSection", params: ({ event }) => ({ latex: event.output }) } },
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => failureOf(event.error, `writing ${section(context)} failed`) }) },
      },
    },
    revising: {
      invoke: {
        src: "reviseSection",
        input: ({ context }) => ({
          section: section(context),
          latex: context.written[section(context)] ?? "",
          metaReview: context.metaReview ?? "",
          citations: refs(context),
        }),
        onDone: { target: "refining", actions: { type: "setSection", params: ({ event }) => ({ latex: event.output }) } },
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => failureOf(event.error, `revising ${section(context)} failed`) }) },
      },
    },
    // Each section is checked against the checklist (math, escapes, figures, references) and revised.
    refining: {
      invoke: {
        src: "refineSection",
        input: ({ context }) => ({ section: section(context), latex: context.written[section(context)] ?? "", citationKeys: context.citations.map((c) => c.key) }),
        onDone: [
          {
            guard: "moreSections",
            target: "nextSection",
            actions: [{ type: "setSection", params: ({ event }) => ({ latex: event.output }) }, "advance"],
          },
          { target: "compiling", actions: { type: "setSection", params: ({ event }) => ({ latex: event.output }) } },
        ],
        // A refinement that fails keeps the draft; the compile loop still checks it.
        onError: [{ guard: "moreSections", target: "nextSection", actions: "advance" }, { target: "compiling" }],
      },
    },
    nextSection: {
      always: [{ guard: "revises", target: "revising" }, { target: "drafting" }],
    },
    compiling: {
      invoke: {
        src: "compile",
        input: ({ context }) => parts(context),
        onDone: [
          { guard: { type: "compiled", params: ({ event }) => ({ ok: event.output.ok }) }, target: "checkingClaims" },
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
        input: ({ context }) => parts(context),
        onDone: [
          { guard: { type: "claimsHold", params: ({ event }) => ({ unmatched: event.output.unmatched.length }) }, target: "done" },
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
        input: ({ context }) => ({ unmatched: context.errors, attempt: context.claimFixes + 1, written: context.written }),
        onDone: {
          target: "compiling",
          actions: [{ type: "mergeSections", params: ({ event }) => ({ changed: event.output }) }, assign({ claimFixes: ({ context }) => context.claimFixes + 1 })],
        },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "fixing the claims failed") }) },
      },
    },
    fixing: {
      invoke: {
        src: "fixLatex",
        input: ({ context }) => ({ errors: context.errors, attempt: context.fixes + 1, written: context.written }),
        onDone: {
          target: "compiling",
          actions: [{ type: "mergeSections", params: ({ event }) => ({ changed: event.output }) }, assign({ fixes: ({ context }) => context.fixes + 1 })],
        },
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "fixing LaTeX failed") }) },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({
    citations: context.citations,
    written: context.written,
    fixes: context.fixes,
    ...(context.error ? { error: context.error } : {}),
  }),
});
