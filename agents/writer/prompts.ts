import { z } from "zod";
import { FigureCritique, FigureProblem, Idea, Metric, RunRecord, TreeStage } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

/** The paper's parts; SECTION_NEEDS says which are drafted from which. */
export const SECTIONS = ["title", "abstract", "introduction", "background", "method", "experimental", "results", "conclusion", "related"] as const;
export type Section = (typeof SECTIONS)[number];

/**
 * The sections drafted from the material alone (idea, runs, notes, figures, citations), all at once. The title and
 * the abstract are among them, as the reference writes them first, from the notes and results.
 */
const FROM_MATERIAL: Section[] = ["title", "abstract", "background", "method", "experimental", "results"];

/**
 * What each section is drafted from besides the material: the sections it is given, which must be done first.
 * The introduction, the conclusion and the related work frame the body, so they are written once it is.
 */
export const SECTION_NEEDS: Record<Section, Section[]> = {
  title: [],
  abstract: [],
  background: [],
  method: [],
  experimental: [],
  results: [],
  introduction: FROM_MATERIAL,
  conclusion: FROM_MATERIAL,
  related: FROM_MATERIAL,
};

/** The reference's placeholders in latex/template.tex, which the sections replace. */
export const PLACEHOLDERS: Record<Section, string> = {
  title: "TITLE HERE",
  abstract: "ABSTRACT HERE",
  introduction: "INTRO HERE",
  related: "RELATED WORK HERE",
  background: "BACKGROUND HERE",
  method: "METHOD HERE",
  experimental: "EXPERIMENTAL SETUP HERE",
  results: "RESULTS HERE",
  conclusion: "CONCLUSIONS HERE",
};

const GUIDANCE: Record<Section, string> = {
  title: "A concise, informative title. Plain text, no LaTeX commands.",
  abstract: "One paragraph: the question, what was done, the main quantitative result, and why it matters. No citations.",
  introduction: "Motivate the question, state the contribution as a short list, and point to the results.",
  background: "The concepts and notation the reader needs; cite foundational work where it applies.",
  method: "What was changed and why, precisely enough to reproduce.",
  experimental: "Datasets, model, training settings, metrics, seeds, exactly as in the code and notes.",
  results: "Report only numbers that appear in the runs' results, with the baseline for comparison; include the figures with captions and refer to each; say what the results do not show.",
  conclusion: "What was learned, its limits, and what to try next.",
  related: "Compare with the cited papers: how they differ from this work. Cite each with \\citet or \\citep using exactly the given keys.",
};

const Interval = z.object({ n: z.number().int(), mean: z.number(), lo: z.number(), hi: z.number(), level: z.number() });
const Gain = z.object({ diff: z.number(), lo: z.number(), hi: z.number(), level: z.number() });

/** A tree search's account (its tree.json's statistics), with each node shown in the paper named by its run. */
export const SearchSummary = z.object({
  metric: Metric,
  variantsTried: z.number().int(),
  variantsWorking: z.number().int(),
  debugged: z.number().int(),
  seeded: z.boolean(),
  chosen: z.array(z.object({ run: z.string(), node: z.string(), stage: z.union([TreeStage, z.enum(["baseline", "final"])]), description: z.string(), summary: Interval })),
  searchGain: Gain.optional(),
  ablations: z.array(z.object({ run: z.string(), node: z.string(), description: z.string(), value: z.number(), worth: z.number() })),
  confirmation: z.object({ seeds: z.array(z.number()), final: Interval, baseline: Interval, gain: Gain, holds: z.boolean(), independent: z.boolean() }).optional(),
  figure: z.string().optional(),
});
export type SearchSummary = z.infer<typeof SearchSummary>;

const SourceMaterial = z.object({
  /** The template's task description (its prompt.json): what the program studies, its data and its metrics. */
  task: z.string(),
  idea: Idea,
  runs: z.array(RunRecord),
  notes: z.string(),
  figures: z.array(z.string()),
  citations: z.array(z.object({ key: z.string(), title: z.string() })),
  disclosure: z.string(),
  /** When the experiments were a tree search: what it tried and what held up. */
  search: SearchSummary.optional(),
  /** The figure critic's last word on each figure: what it shows, and the problems left unresolved. */
  figureCritiques: z.array(FigureCritique).optional(),
});

/** What every section is written from, the same for all of a paper's sections: one cached prefix for them. */
const MATERIAL = ["task", "idea", "runs", "notes", "figures", "citations", "disclosure", "search", "figureCritiques"] as const;

export const writeSection = defineTask({
  name: "writer.section",
  stable: MATERIAL,
  data: SourceMaterial.extend({ section: z.enum(SECTIONS), written: z.record(z.string(), z.string()) }),
  answer: z.object({ latex: z.string().min(1) }),
  system: "You are writing an ML workshop paper in LaTeX from real experimental results. Never invent a number, a setting or a citation.",
  instructions: (d) =>
    [
      `Write the ${d.section} section of the paper on \`idea\`. ${GUIDANCE[d.section]}`,
      "`task` describes the program the experiments ran, its data and its metrics: say what it is in the paper's own words, without its instructions to you.",
      "Use only the results in `runs` (each run's final_info.json) and `notes`; put figures from `figures` in figure environments with \\includegraphics{<file>}; cite only keys from `citations`.",
      d.figureCritiques?.length
        ? "`figureCritiques` says what each figure actually shows (`shows`) and what is still wrong with it (`problems`): a caption says only what its figure shows, and a figure's problems are said plainly (never claim a run the figure lacks)."
        : "",
      Object.keys(d.written).length
        ? `\`written\` holds the finished sections this one builds on (${Object.keys(d.written).join(", ")}); the other sections are being written at the same time, so do not repeat or quote them.`
        : "The other sections are being written at the same time from the same material: write this one from the material alone.",
      d.section === "abstract" ? "End the abstract with `disclosure`, verbatim." : "",
      d.search && (d.section === "results" || d.section === "abstract" || d.section === "conclusion")
        ? `The runs come from a tree search (\`search\`): say how many variants it tried (${d.search.variantsTried}), and report the confirmation on fresh seeds as the result the claim rests on${d.search.confirmation && !d.search.confirmation.holds ? "; it did not hold, so write the gain as not confirmed, never as a gain" : ""}.${d.section === "results" ? " Give a table of the chosen variants with mean and confidence interval over seeds (\`search.chosen\`), a subsection \\subsection{Ablations} from \`search.ablations\`, and the search's figure (\`search.figure\`) with a caption saying what it shows." : ""}`
        : "",
      "Give only the section's body (no \\section command). Escape LaTeX special characters in text.",
    ].filter(Boolean).join(" "),
  shape: `{"latex": "..."}`,
});

export const chooseQuery = defineTask({
  name: "writer.citeQuery",
  data: z.object({ idea: Idea, round: z.number().int(), have: z.array(z.object({ key: z.string(), title: z.string() })) }),
  answer: z.object({ query: z.string().min(1).nullable() }),
  system: "You are finding the related work a paper must cite.",
  instructions: () => "Give one literature search query for work the paper on `idea` should cite and does not yet (`have`), or null when nothing important is missing.",
  shape: `{"query": "..." | null}`,
});

export const pickCitations = defineTask({
  name: "writer.citePick",
  data: z.object({
    idea: Idea,
    query: z.string(),
    candidates: z.array(z.object({ key: z.string(), title: z.string(), authors: z.array(z.string()), year: z.number().optional(), abstract: z.string().optional() })),
  }),
  answer: z.object({ keys: z.array(z.string()) }),
  system: "You are choosing which search results a paper should cite.",
  instructions: () => "`candidates` are the results of searching for `query`. List the keys of those genuinely related to `idea` and worth citing (possibly none).",
  shape: `{"keys": ["..."]}`,
});

export const fixLatex = defineTask({
  name: "writer.fix",
  data: z.object({ errors: z.array(z.string()), sections: z.record(z.string(), z.string()) }),
  answer: z.object({ sections: z.array(z.object({ section: z.enum(SECTIONS), latex: z.string().min(1) })) }),
  system: "You fix LaTeX compile errors without changing what the text says.",
  instructions: () => "The paper whose `sections` are given does not compile (`errors`). Return the corrected sections, only those you changed.",
  shape: `{"sections": [{"section": "results", "latex": "..."}]}`,
});

/** What every section is checked against before the paper is compiled. */
export const CHECKLIST = [
  "math is balanced ($…$ pairs, matching braces and environments)",
  "special characters in text are escaped (\\%, \\&, \\#, \\_)",
  "no \\section command (the template has the headings)",
  "every \\includegraphics names a figure that exists, once in the paper, in a figure with a caption and a label that the text refers to",
  "every \\ref has a \\label and every \\cite a key in the bibliography",
  "every number comes from the runs' results or the notes, at the precision given there",
];

export const refineSection = defineTask({
  name: "writer.refine",
  data: z.object({ section: z.enum(SECTIONS), latex: z.string(), problems: z.array(z.string()), checklist: z.array(z.string()) }),
  answer: z.object({ latex: z.string().min(1) }),
  system: "You are revising one section of an ML paper in LaTeX. Keep what it says; fix what is wrong.",
  instructions: (d) =>
    `Check the ${d.section} section (\`latex\`) against every item of \`checklist\`, and fix what fails, starting with \`problems\`, which an automatic check found. Return the whole revised section.`,
  shape: `{"latex": "..."}`,
});

export const fixClaims = defineTask({
  name: "writer.fixClaims",
  data: z.object({ unmatched: z.array(z.string()), sections: z.record(z.string(), z.string()), runs: z.array(RunRecord), notes: z.string() }),
  answer: z.object({ sections: z.array(z.object({ section: z.enum(SECTIONS), latex: z.string().min(1) })) }),
  system: "You correct an ML paper whose numbers must all come from its experiments. Never invent a number.",
  instructions: () =>
    "The numbers in `unmatched` appear in the paper but in none of the runs' results (`runs`) or `notes`. Replace each with the correct value from the results, or remove the claim. Return only the sections you changed.",
  shape: `{"sections": [{"section": "results", "latex": "..."}]}`,
});

export const reviseSection = defineTask({
  name: "writer.revise",
  stable: [...MATERIAL, "metaReview", "before"],
  data: SourceMaterial.extend({ section: z.enum(SECTIONS), latex: z.string(), metaReview: z.string(), before: z.record(z.string(), z.string()) }),
  answer: z.object({ latex: z.string().min(1) }),
  system: "You are revising an ML paper in LaTeX after review. Address the reviewers' concerns honestly; never invent a number, a setting or a citation.",
  instructions: (d) =>
    `Revise the ${d.section} section (\`latex\`) in answer to the area chair's \`metaReview\`. \`before\` is the whole version under review, every section of which is revised at the same time as this one: keep this section consistent with it. Change what the concerns call for in this section and keep the rest; use only the results in \`runs\` and \`notes\`, the figures in \`figures\` and the keys in \`citations\`. Give only the section's body.`,
  shape: `{"latex": "..."}`,
});

export const rewriteCaption = defineTask({
  name: "writer.caption",
  data: z.object({
    figure: z.string(),
    /** The caption as the paper has it. */
    caption: z.string(),
    /** What the figure critic says the figure shows. */
    shows: z.string(),
    problems: z.array(FigureProblem),
    runs: z.array(RunRecord),
  }),
  answer: z.object({ caption: z.string().min(1) }),
  system: "You write the captions of an ML paper's figures. A caption says what its figure shows, and nothing it does not.",
  instructions: (d) =>
    `The figure critic found that the caption of ${d.figure} (\`caption\`, LaTeX) claims what the figure does not show (\`problems\`); \`shows\` is what the figure shows. Rewrite the caption so that it says only what the figure shows, of the runs in \`runs\` that have results; keep its LaTeX valid, with special characters escaped. Give the caption's text only, without \\caption.`,
  shape: `{"caption": "..."}`,
});
