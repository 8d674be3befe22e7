import { z } from "zod";
import { Idea, RunRecord } from "../../bus/schemas.js";
import { answerAs, codeBlock, defineTask, jsonBlock } from "../llm/task.js";
import { Edit } from "./searchReplace.js";

const EDITS_SHAPE = `{"explanation": "...", "edits": [{"search": "exact lines from the current file", "replace": "new lines"}]}`;
const Edits = z.object({ explanation: z.string(), edits: z.array(Edit).min(1) });
const SYSTEM = "You are an ML research engineer. You change experiment code precisely and minimally, and you never fake results.";

export const planRuns = defineTask({
  name: "coder.plan",
  data: z.object({ idea: Idea, code: z.string(), maxRuns: z.number().int(), baseline: RunRecord }),
  answer: z.object({ runs: z.array(z.object({ description: z.string().min(1) })).min(1) }),
  render: (d) => [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content: [
        `The idea to test:\n${jsonBlock(d.idea)}`,
        `The experiment code:\n${codeBlock(d.code)}`,
        `The baseline (run_0, unchanged code) gave:\n${jsonBlock(d.baseline.results)}`,
        `Plan at most ${d.maxRuns} runs (run_1, run_2, …) that test the idea against the baseline. Each run changes the code from the baseline; describe exactly what it changes (the setting and its new value).`,
        answerAs(`{"runs": [{"description": "what run_i changes, precisely"}]}`),
      ].join("\n\n"),
    },
  ],
});

export const editCode = defineTask({
  name: "coder.edit",
  data: z.object({ idea: Idea, run: z.string(), planned: z.string(), code: z.string(), baselineCode: z.string(), feedback: z.string() }),
  answer: Edits,
  render: (d) => [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content: [
        `Idea: ${d.idea.Title}\nNow implement ${d.run}: ${d.planned}`,
        `The current experiment.py (it will be run as \`python experiment.py --out_dir=${d.run}\`):\n${codeBlock(d.code)}`,
        d.feedback ? `Your previous edit did not apply:\n${d.feedback}` : "",
        "Give SEARCH/REPLACE edits. Each search is copied exactly from the current file and occurs in it once. Change only what this run needs; keep the command line and the final_info.json format.",
        answerAs(EDITS_SHAPE),
      ].filter(Boolean).join("\n\n"),
    },
  ],
});

export const fixCode = defineTask({
  name: "coder.fix",
  data: z.object({ idea: Idea, run: z.string(), planned: z.string(), code: z.string(), baselineCode: z.string(), stderrTail: z.string() }),
  answer: Edits,
  render: (d) => [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content: [
        `${d.run} (${d.planned}) failed. The end of its stderr:\n${codeBlock(d.stderrTail, "text")}`,
        `The current experiment.py:\n${codeBlock(d.code)}`,
        `The baseline version, which runs:\n${codeBlock(d.baselineCode)}`,
        "Fix the failure with SEARCH/REPLACE edits on the current file, keeping the run's intended change.",
        answerAs(EDITS_SHAPE),
      ].join("\n\n"),
    },
  ],
});

export const editPlot = defineTask({
  name: "coder.plot",
  data: z.object({ plotCode: z.string(), runs: z.array(z.object({ run: z.string(), description: z.string(), ok: z.boolean() })), feedback: z.string() }),
  answer: Edits,
  render: (d) => [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content: [
        `plot.py makes the paper's figures from the run folders:\n${codeBlock(d.plotCode)}`,
        `The runs (only successful ones have results):\n${jsonBlock(d.runs)}`,
        d.feedback ? `The last attempt failed:\n${d.feedback}` : "",
        "Edit plot.py so that it plots the baseline and every successful run, each with a short legend label that says what the run changed.",
        answerAs(EDITS_SHAPE),
      ].filter(Boolean).join("\n\n"),
    },
  ],
});

export const writeNotes = defineTask({
  name: "coder.notes",
  data: z.object({ idea: Idea, runs: z.array(RunRecord), figures: z.array(z.string()) }),
  answer: z.object({ notes: z.string().min(1) }),
  render: (d) => [
    { role: "system", content: SYSTEM },
    {
      role: "user",
      content: [
        `The idea:\n${jsonBlock(d.idea)}`,
        `Every run and its results:\n${jsonBlock(d.runs)}`,
        `The figures: ${d.figures.join(", ")}`,
        "Write notes.txt for the person who will write the paper: what each run changed and what it measured (the exact numbers), and for each figure, its file name and what it shows. State only what the results support.",
        answerAs(`{"notes": "..."}`),
      ].join("\n\n"),
    },
  ],
});
