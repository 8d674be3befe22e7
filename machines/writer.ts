import { assign, enqueueActions, setup } from "xstate";
import type { Citation, FigureProblem } from "../bus/schemas.js";
import { failure, failureOf, type Failure } from "../bus/errors.js";
import { declared } from "./declare.js";

export type { Citation };

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

/** A figure whose caption the figure critic found claims what the figure does not show. */
export interface FlaggedCaption {
  figure: string;
  /** The caption as the paper has it (LaTeX). */
  caption: string;
  /** What the critic says the figure shows. */
  shows: string;
  problems: FigureProblem[];
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
  /** The sections each one is drafted from (a section not named needs none): a section starts once they are written. */
  needs?: Record<string, string[]> | undefined;
  citeRounds: number;
  maxFixes: number;
  revision?: Revision | undefined;
  /** Citations chosen before the paper is written (the idea's cite job): no search is made. */
  citations?: Citation[] | undefined;
  /** Only search the literature for citations, then end: the cite job. */
  citeOnly?: boolean | undefined;
  /** Rounds in which the figure critic reads the paper's captions, and a flagged caption is rewritten; 0: none. */
  figureRounds?: number | undefined;
}

/** What one section's machine is given: a draft sees only the sections it is drafted from. */
export interface SectionInput {
  section: string;
  citations: CitationRef[];
  /** The keys a \cite may use besides the template's own. */
  citationKeys: string[];
  /** The finished sections this one is drafted from. */
  given: Written;
  /** On the revise path: the section as it was, and the meta-review. */
  revision?: { latex: string; metaReview: string } | undefined;
}

export interface SectionOutput {
  section: string;
  latex: string;
  error?: Failure;
}

interface SectionContext extends SectionInput {
  latex: string;
  problems: string[];
  error: Failure | undefined;
}

/**
 * One section of the paper: its draft (or, on the revise path, its revision), then the checklist, and a
 * refinement only when the checklist found something. A refinement that fails keeps the draft; the compile loop
 * still checks it. The writer runs one such machine per section, as many at once as are ready.
 */
export const sectionMachine = setup({
  types: {
    input: {} as SectionInput,
    context: {} as SectionContext,
    output: {} as SectionOutput,
  },
  actors: {
    /** `written`: only the sections this one is drafted from. */
    writeSection: declared<string, { section: string; citations: CitationRef[]; written: Written }>("writeSection"),
    /** The agent shows it the whole version being revised, which is the same for every section. */
    reviseSection: declared<string, { section: string; latex: string; metaReview: string; citations: CitationRef[] }>("reviseSection"),
    /** The checklist's problems with one section; none when it passes. */
    checkSection: declared<string[], { section: string; latex: string; citationKeys: string[] }>("checkSection"),
    refineSection: declared<string, { section: string; latex: string; problems: string[] }>("refineSection"),
  },
  guards: {
    revises: ({ context }) => context.revision !== undefined,
    foundProblems: (_, { problems }: { problems: number }) => problems > 0,
  },
}).createMachine({
  id: "section",
  context: ({ input }) => ({ ...input, latex: input.revision?.latex ?? "", problems: [], error: undefined }),
  initial: "routing",
  states: {
    routing: {
      always: [{ guard: "revises", target: "revising" }, { target: "drafting" }],
    },
    drafting: {
      invoke: {
        src: "writeSection",
        input: ({ context }) => ({ section: context.section, citations: context.citations, written: context.given }),
        onDone: { target: "checking", actions: assign({ latex: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => failureOf(event.error, `writing ${context.section} failed`) }) },
      },
    },
    revising: {
      invoke: {
        src: "reviseSection",
        input: ({ context }) => ({
          section: context.section, latex: context.latex, metaReview: context.revision?.metaReview ?? "", citations: context.citations,
        }),
        onDone: { target: "checking", actions: assign({ latex: ({ event }) => event.output }) },
        onError: { target: "failed", actions: assign({ error: ({ context, event }) => failureOf(event.error, `revising ${context.section} failed`) }) },
      },
    },
    // The checklist: math, escapes, headings, figures, references. The model is asked again only for what it found.
    checking: {
      invoke: {
        src: "checkSection",
        input: ({ context }) => ({ section: context.section, latex: context.latex, citationKeys: context.citationKeys }),
        onDone: [
          {
            guard: { type: "foundProblems", params: ({ event }) => ({ problems: event.output.length }) },
            target: "refining",
            actions: assign({ problems: ({ event }) => event.output }),
          },
          { target: "done" },
        ],
        onError: { target: "done" },
      },
    },
    refining: {
      invoke: {
        src: "refineSection",
        input: ({ context }) => ({ section: context.section, latex: context.latex, problems: context.problems }),
        onDone: { target: "done", actions: assign({ latex: ({ event }) => event.output }) },
        onError: { target: "done" },
      },
    },
    done: { type: "final" },
    failed: { type: "final" },
  },
  output: ({ context }) => ({ section: context.section, latex: context.latex, ...(context.error ? { error: context.error } : {}) }),
});

interface Context {
  sections: string[];
  needs: Record<string, string[]>;
  citeRounds: number;
  maxFixes: number;
  citeOnly: boolean;
  citationsGiven: boolean;
  /** The meta-review being answered, on the revise path. */
  metaReview: string | undefined;
  /** Rounds of citation search made so far. */
  citeRound: number;
  citations: Citation[];
  written: Written;
  /** The sections started, and those of them done: a restored writer redoes none that is done. */
  steps: Record<string, "writing" | "done">;
  fixes: number;
  claimFixes: number;
  figureRounds: number;
  /** Caption rounds made so far. */
  captionRound: number;
  flagged: FlaggedCaption[];
  errors: string[];
  error: Failure | undefined;
}

/** Each section's machine is spawned as `section.<name>`; XState reports its end by that id. */
type SectionDone = { type: `xstate.done.actor.section.${string}`; actorId: string; output: SectionOutput };
type SectionBroke = { type: `xstate.error.actor.section.${string}`; actorId: string; error: unknown };

const refs = (ctx: Context): CitationRef[] => ctx.citations.map((c) => ({ key: c.key, title: c.title }));
const parts = (ctx: Context): PaperParts => ({ written: ctx.written, bibtex: ctx.citations.map((c) => c.bibtex) });
/** New citations join the chosen ones; a key already chosen is kept once. */
const withFound = (ctx: Context, found: Citation[]) => [...ctx.citations, ...found.filter((f) => !ctx.citations.some((c) => c.key === f.key))];
/** What a draft may see of the paper: the sections it is drafted from, and nothing else. */
const given = (ctx: Context, section: string): Written =>
  Object.fromEntries((ctx.needs[section] ?? []).flatMap((s) => (ctx.written[s] !== undefined ? [[s, ctx.written[s]!]] : [])));
/** A first version drafts a section once the sections it needs are done; a revision starts every section at once. */
const ready = (ctx: Context, section: string) =>
  ctx.steps[section] === undefined && (ctx.metaReview !== undefined || (ctx.needs[section] ?? []).every((s) => ctx.steps[s] === "done"));

/**
 * The sections, the same while drafting and while revising: each section's machine that ends keeps its text,
 * which may make other sections ready to start; when every section is done the paper is compiled.
 */
const sectionsUnderWay = {
  entry: "startReady",
  on: {
    "xstate.done.actor.section.*": [
      {
        guard: { type: "sectionFailed", params: ({ event }: { event: SectionDone }) => ({ failed: event.output.error !== undefined }) },
        target: "failed",
        actions: { type: "failWith", params: ({ event }: { event: SectionDone }) => ({ error: event.output.error }) },
      },
      { actions: [{ type: "keepSection", params: ({ event }: { event: SectionDone }) => ({ section: event.output.section, latex: event.output.latex }) }, "startReady"] },
    ],
    "xstate.error.actor.section.*": {
      target: "failed",
      actions: { type: "failWith", params: ({ event }: { event: SectionBroke }) => ({ error: failureOf(event.error, `${event.actorId} failed`) }) },
    },
  },
  always: { guard: "allWritten", target: "compiling" },
} as const;

/**
 * The writer. A first version: rounds of finding citations (unless the idea's cite job found them already), then
 * the sections, each drafted as soon as the sections it is drafted from are done, all that are ready at once. A
 * revision: every section of the version before, revised at once in answer to the meta-review. Either way each
 * section is checked against the checklist and refined only where the check found something; then compile, with
 * LaTeX errors, lint and the page limit going back to the writer while attempts are left; then the claim check,
 * which sends every number that matches no run artifact back the same way; then the caption round, while figure
 * rounds are left: the paper's figures, with their captions and the sentences that refer to them, go to the figure
 * critic, and a caption it finds claiming what its figure does not show is rewritten and the paper compiled again.
 * The sections (each one's machine is a
 * child of this one) and the citations live in the context, so a writer that stops goes on from them. With `citeOnly` (the cite job) it
 * searches for citations and ends.
 */
export const writerMachine = setup({
  types: {
    input: {} as WriterInput,
    context: {} as Context,
    events: {} as SectionDone | SectionBroke,
    output: {} as { citations: Citation[]; written: Written; fixes: number; error?: Failure },
  },
  actors: {
    findCitations: declared<{ found: Citation[]; more: boolean }, { round: number; have: CitationRef[] }>("findCitations"),
    section: sectionMachine,
    compile: declared<CompileReport, PaperParts>("compile"),
    checkClaims: declared<{ unmatched: string[] }, PaperParts>("checkClaims"),
    /** The sections it changed. */
    fixClaims: declared<Written, { unmatched: string[]; attempt: number; written: Written }>("fixClaims"),
    fixLatex: declared<Written, { errors: string[]; attempt: number; written: Written }>("fixLatex"),
    /** The paper's figures and captions to the figure critic (a `figures` job): the captions it flags. */
    critiqueCaptions: declared<FlaggedCaption[], PaperParts & { round: number }>("critiqueCaptions"),
    /** The sections whose flagged captions it rewrote. */
    recaption: declared<Written, { flagged: FlaggedCaption[]; written: Written }>("recaption"),
  },
  guards: {
    revises: ({ context }) => context.metaReview !== undefined,
    /** The citations came with the job (none, when the idea's citation search failed). */
    cited: ({ context }) => context.citationsGiven,
    citesOnly: ({ context }) => context.citeOnly,
    moreCitations: ({ context }, { more }: { more: boolean }) => more && context.citeRound + 1 < context.citeRounds,
    sectionFailed: (_, { failed }: { failed: boolean }) => failed,
    allWritten: ({ context }) => context.sections.every((s) => context.steps[s] === "done"),
    compiled: (_, { ok }: { ok: boolean }) => ok,
    claimsHold: (_, { unmatched }: { unmatched: number }) => unmatched === 0,
    fixesLeft: ({ context }) => context.fixes < context.maxFixes,
    claimFixesLeft: ({ context }) => context.claimFixes < context.maxFixes,
    captionRoundsLeft: ({ context }) => context.captionRound < context.figureRounds,
    captionsFlagged: (_, { flagged }: { flagged: number }) => flagged > 0,
  },
  actions: {
    addFound: assign(({ context }, { found }: { found: Citation[] }) => ({ citations: withFound(context, found), citeRound: context.citeRound + 1 })),
    /** Starts the machine of every section that is ready and not yet started. */
    startReady: enqueueActions(({ context, enqueue }) => {
      const starting = context.sections.filter((s) => ready(context, s));
      for (const section of starting) {
        const revision = context.metaReview !== undefined ? { latex: context.written[section] ?? "", metaReview: context.metaReview } : undefined;
        enqueue.spawnChild("section", {
          id: `section.${section}`,
          input: { section, citations: refs(context), citationKeys: context.citations.map((c) => c.key), given: given(context, section), revision },
        });
      }
      if (starting.length) enqueue.assign({ steps: { ...context.steps, ...Object.fromEntries(starting.map((s) => [s, "writing" as const])) } });
    }),
    keepSection: assign(({ context }, { section, latex }: { section: string; latex: string }) => ({
      written: { ...context.written, [section]: latex },
      steps: { ...context.steps, [section]: "done" as const },
    })),
    failWith: assign((_, { error }: { error: Failure | undefined }) => ({ error })),
    mergeSections: assign(({ context }, { changed }: { changed: Written }) => ({ written: { ...context.written, ...changed } })),
  },
}).createMachine({
  id: "writer",
  context: ({ input }) => ({
    sections: input.sections,
    needs: input.needs ?? {},
    citeRounds: input.citeRounds,
    maxFixes: input.maxFixes,
    citeOnly: input.citeOnly ?? false,
    citationsGiven: input.citations !== undefined,
    metaReview: input.revision?.metaReview,
    citeRound: 0,
    citations: input.revision?.citations ?? input.citations ?? [],
    written: input.revision?.sections ?? {},
    steps: {},
    fixes: 0,
    claimFixes: 0,
    figureRounds: input.figureRounds ?? 0,
    captionRound: 0,
    flagged: [],
    errors: [],
    error: undefined,
  }),
  initial: "routing",
  states: {
    // A revision keeps the citations of the version before and rewrites its sections; a first version starts from
    // the literature, unless the idea's cite job found its citations already (the cite job itself only searches).
    routing: {
      always: [{ guard: "revises", target: "revising" }, { guard: "citesOnly", target: "citing" }, { guard: "cited", target: "drafting" }, { target: "citing" }],
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
            actions: { type: "addFound", params: ({ event }) => ({ found: event.output.found }) },
          },
          { guard: "citesOnly", target: "done", actions: { type: "addFound", params: ({ event }) => ({ found: event.output.found }) } },
          { target: "drafting", actions: { type: "addFound", params: ({ event }) => ({ found: event.output.found }) } },
        ],
        onError: [
          { guard: "citesOnly", target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "the citation search failed") }) },
          // Without the literature the paper is still written, with the template's own references.
          { target: "drafting" },
        ],
      },
    },
    drafting: sectionsUnderWay,
    revising: sectionsUnderWay,
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
          { guard: { type: "claimsHold", params: ({ event }) => ({ unmatched: event.output.unmatched.length }) }, target: "captioning" },
          { guard: "claimFixesLeft", target: "fixingClaims", actions: assign({ errors: ({ event }) => event.output.unmatched }) },
          {
            target: "failed",
            actions: assign({ error: ({ event }) => failure("model", `numbers that match no run artifact: ${event.output.unmatched.slice(0, 5).join("; ")}`) }),
          },
        ],
        onError: { target: "failed", actions: assign({ error: ({ event }) => failureOf(event.error, "checking the claims failed") }) },
      },
    },
    // The caption round: the paper compiled and its numbers hold; what remains is whether its captions say what the figures show.
    captioning: {
      always: [{ guard: "captionRoundsLeft", target: "critiquingCaptions" }, { target: "done" }],
    },
    critiquingCaptions: {
      invoke: {
        src: "critiqueCaptions",
        input: ({ context }) => ({ ...parts(context), round: context.captionRound }),
        onDone: [
          {
            guard: { type: "captionsFlagged", params: ({ event }) => ({ flagged: event.output.length }) },
            target: "recaptioning",
            actions: assign(({ context, event }) => ({ flagged: event.output, captionRound: context.captionRound + 1 })),
          },
          { target: "done", actions: assign(({ context }) => ({ flagged: [], captionRound: context.captionRound + 1 })) },
        ],
        // The paper stands as it compiled when the critic cannot read its captions.
        onError: { target: "done" },
      },
    },
    recaptioning: {
      invoke: {
        src: "recaption",
        input: ({ context }) => ({ flagged: context.flagged, written: context.written }),
        onDone: { target: "compiling", actions: { type: "mergeSections", params: ({ event }) => ({ changed: event.output }) } },
        onError: { target: "done" },
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
