import { z } from "zod";
import { defineTask } from "../llm/task.js";

// The coder's prompts for a `--topic` run: the template written from the topic, and fixed from what went wrong.

const SYSTEM =
  "You are an ML research engineer. You write small, honest, runnable experiments that answer one question with controlled comparisons, several seeds and error bars, and you never fake results.";

const Prompt = z.object({ system: z.string().min(1), task_description: z.string().min(1) });

/** The four files of a template, as the coder writes them. */
export const TemplateFiles = z.object({
  experiment_py: z.string().min(1),
  plot_py: z.string().min(1),
  prompt_json: Prompt,
  template_tex: z.string().min(1),
});
export type TemplateFiles = z.infer<typeof TemplateFiles>;

/** Where each of the answer's fields goes in the template's folder. */
export const TEMPLATE_FILES = { experiment_py: "experiment.py", plot_py: "plot.py", prompt_json: "prompt.json", template_tex: "latex/template.tex" } as const;

const FORMAT = [
  "The template format (the rest of the pipeline reads exactly this):",
  "- experiment.py runs as `python experiment.py --out_dir=run_i`, needs nothing but the Python standard library and the `python` modules given, no network and no files from outside its folder, finishes well within `timeLimitS` seconds on one CPU core, and writes <out_dir>/final_info.json as {\"<dataset or setting>\": {\"means\": {\"<metric>\": number, …}, \"stderrs\": {\"<metric>\": number, …}}}, means over several seeds. It may write more files into <out_dir> for plot.py.",
  "- Its settings are module-level UPPER_SNAKE constants with literal values, one a line with a comment saying what each is, between a line `# --- knobs ---` and a line `# --- end knobs ---`, the setting the topic's question is about first; later runs change them to test ideas. Command-line flags, if any, default to these constants.",
  "- plot.py runs with no arguments in the folder that holds the run_* folders, plots the runs named in a module-level dict `labels = {\"run_0\": \"Baseline\"}` (run folder to legend label; later edits add runs to it), skips a listed folder that has no final_info.json, and saves at least one .png figure in the current folder.",
  "- prompt.json: `system`, the researcher the ideator is to be, and `task_description`, which starts \"You are given experiment.py, …\", states the topic's question, and describes the code, its data, its settings with their defaults, its metrics (which way is better) and how long a run takes.",
  "- template_tex is latex/template.tex: a complete LaTeX article that compiles with pdflatex and bibtex, with its bibliography in a filecontents block (references.bib) holding a few real, relevant references, `\\graphicspath{{../}}`, and these placeholders as the bodies, each exactly once: TITLE HERE (in \\title), ABSTRACT HERE, INTRO HERE, RELATED WORK HERE, BACKGROUND HERE, METHOD HERE, EXPERIMENTAL SETUP HERE, RESULTS HERE, CONCLUSIONS HERE. `latexExample` is one that works: keep its structure.",
].join("\n");

export const writeTemplate = defineTask({
  name: "coder.scaffold",
  // The topic and the example stay the same across a run's scaffold calls.
  stable: ["topic", "latexExample"],
  data: z.object({ topic: z.string(), python: z.array(z.string()), timeLimitS: z.number(), latexExample: z.string() }),
  answer: TemplateFiles,
  system: SYSTEM,
  instructions: () =>
    [
      "`topic` describes a research area. Write a research template for it from scratch: a small, real experiment that answers the topic's stated question (synthetic or generated data is fine; it must really train and measure), in the AI Scientist's template format, so that ideas for the topic can be tested by changing its code. Its first run, unchanged, is the baseline every idea is compared with.",
      FORMAT,
    ].join("\n\n"),
  shape: `{"experiment_py": "the whole file", "plot_py": "the whole file", "prompt_json": {"system": "...", "task_description": "..."}, "template_tex": "the whole file"}`,
});

export const fixTemplate = defineTask({
  name: "coder.scaffoldFix",
  stable: ["topic"],
  data: z.object({ topic: z.string(), files: TemplateFiles, feedback: z.string(), fix: z.number().int().min(1), python: z.array(z.string()), timeLimitS: z.number() }),
  answer: z.object({
    explanation: z.string(),
    experiment_py: z.string().min(1).optional(),
    plot_py: z.string().min(1).optional(),
    prompt_json: Prompt.optional(),
    template_tex: z.string().min(1).optional(),
  }),
  system: SYSTEM,
  instructions: (d) =>
    [
      `\`files\` is a research template you wrote for \`topic\`; it does not work yet (this is fix ${d.fix}). \`feedback\` says what went wrong: the end of experiment.py's stderr when run as \`python experiment.py --out_dir=run_0\`, or what a check of the files found. Fix the cause. Give back the whole of each file you change, and leave out the ones you do not.`,
      FORMAT,
    ].join("\n\n"),
  shape: `{"explanation": "what was wrong and what you changed", "experiment_py": "the whole fixed file, if changed", "plot_py": "…", "prompt_json": {"system": "...", "task_description": "..."}, "template_tex": "…"}`,
});
