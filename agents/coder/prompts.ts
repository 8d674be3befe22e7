import { z } from "zod";
import { FigureCritique, FinalInfo, Idea, RunRecord, TreeStage } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";
import { Edit } from "./searchReplace.js";

const EDITS_SHAPE = `{"explanation": "...", "edits": [{"search": "exact lines from the current file", "replace": "new lines"}]}`;
const Edits = z.object({ explanation: z.string(), edits: z.array(Edit).min(1) });
const SYSTEM = "You are an ML research engineer. You change experiment code precisely and minimally, and you never fake results.";
const EDIT_RULES = "Each search is copied exactly from the current file and occurs in it once.";

export const planRuns = defineTask({
  name: "coder.plan",
  data: z.object({ idea: Idea, code: z.string(), maxRuns: z.number().int(), baseline: RunRecord }),
  answer: z.object({ runs: z.array(z.object({ description: z.string().min(1) })).min(1) }),
  system: SYSTEM,
  instructions: (d) =>
    `Plan at most ${d.maxRuns} runs (run_1, run_2, …) that test \`idea\` against \`baseline\` (run_0, the unchanged \`code\`). Each run changes the code from the baseline; describe exactly what it changes (the setting and its new value).`,
  shape: `{"runs": [{"description": "what run_i changes, precisely"}]}`,
});

export const editCode = defineTask({
  name: "coder.edit",
  // The idea and the template's own code stay the same across every edit and fix of an idea's runs.
  stable: ["idea", "baselineCode"],
  data: z.object({ idea: Idea, run: z.string(), planned: z.string(), code: z.string(), baselineCode: z.string(), feedback: z.string() }),
  answer: Edits,
  system: SYSTEM,
  instructions: (d) =>
    `Implement ${d.run} as \`planned\`, by SEARCH/REPLACE edits on the current experiment.py (\`code\`; it will be run as \`python experiment.py --out_dir=${d.run}\`). ${EDIT_RULES} Change only what this run needs; keep the command line and the final_info.json format.${d.feedback ? " Your previous edit did not apply: see `feedback`." : ""}`,
  shape: EDITS_SHAPE,
});

export const fixCode = defineTask({
  name: "coder.fix",
  stable: ["idea", "baselineCode"],
  data: z.object({ idea: Idea, run: z.string(), planned: z.string(), code: z.string(), baselineCode: z.string(), stderrTail: z.string() }),
  answer: Edits,
  system: SYSTEM,
  instructions: (d) =>
    `${d.run} (\`planned\`) failed; \`stderrTail\` is the end of its stderr. Fix the failure with SEARCH/REPLACE edits on the current file (\`code\`), keeping the run's intended change; \`baselineCode\` is the version that runs. ${EDIT_RULES}`,
  shape: EDITS_SHAPE,
});

export const editPlot = defineTask({
  name: "coder.plot",
  data: z.object({
    plotCode: z.string(),
    runs: z.array(z.object({ run: z.string(), description: z.string(), ok: z.boolean() })),
    feedback: z.string(),
    /** The figure critic's word on the figures the last attempt made, for those it found wanting. */
    critiques: z.array(FigureCritique).default([]),
  }),
  answer: Edits,
  system: SYSTEM,
  instructions: (d) =>
    [
      `\`plotCode\` (plot.py) makes the paper's figures from the run folders. Edit it with SEARCH/REPLACE edits so that it plots the baseline and every successful run in \`runs\`, each with a short legend label that says what the run changed; every figure needs labelled axes, a legend, and a size a reader can read (at least 200 px each way). ${EDIT_RULES}`,
      d.critiques.length
        ? "The figure critic looked at the figures the last attempt made and found the problems in `critiques` (what each figure shows, and what is wrong with it): fix every one, in plot.py, so that the figures show the runs' real data."
        : d.feedback ? "The last attempt failed: see `feedback`." : "",
    ].filter(Boolean).join(" "),
  shape: EDITS_SHAPE,
});

export const writeNotes = defineTask({
  name: "coder.notes",
  data: z.object({ idea: Idea, runs: z.array(RunRecord), figures: z.array(z.string()) }),
  answer: z.object({ notes: z.string().min(1) }),
  system: SYSTEM,
  instructions: () =>
    "Write notes.txt for the person who will write the paper on `idea`: what each of `runs` changed and what it measured (the exact numbers), and for each of `figures`, its file name and what it shows. State only what the results support.",
  shape: `{"notes": "..."}`,
});

export const makeVariant = defineTask({
  name: "coder.variant",
  // The idea and the template's code stay the same across every node of an idea's tree.
  stable: ["idea", "baselineCode"],
  data: z.object({
    idea: Idea,
    stage: TreeStage,
    goal: z.string(),
    /** The parent node's experiment.py, which this node changes. */
    code: z.string(),
    baselineCode: z.string(),
    parent: z.object({ description: z.string(), results: FinalInfo.optional() }),
    tried: z.array(z.string()),
    sibling: z.number().int().min(0),
    feedback: z.string(),
  }),
  answer: z.object({ description: z.string().min(1), edits: z.array(Edit).min(1) }),
  system: SYSTEM,
  instructions: (d) =>
    [
      `You are making one node of a tree search over experiments on \`idea\`, in its ${d.stage} stage: ${d.goal}`,
      `Change \`code\` (the parent node's experiment.py: ${d.parent.description}; its results are \`parent.results\`) by SEARCH/REPLACE edits into this node's code. ${EDIT_RULES}`,
      `\`tried\` lists what the parent's other children changed: do something different. This is child ${d.sibling + 1}; siblings made at the same time take other directions, so prefer the ${d.sibling + 1}${["st", "nd", "rd"][d.sibling] ?? "th"} most promising change.`,
      "Keep the command line and the final_info.json format. `description` says exactly what this node changes from its parent (the setting and its new value).",
      d.feedback ? "Your previous edit did not apply: see `feedback`." : "",
    ].filter(Boolean).join(" "),
  shape: `{"description": "what this node changes, precisely", "edits": [{"search": "exact lines from the current file", "replace": "new lines"}]}`,
});
