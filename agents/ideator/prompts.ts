import { z } from "zod";
import { Idea, Verdict } from "../../bus/schemas.js";
import { answerAs, codeBlock, defineTask, jsonBlock } from "../llm/task.js";

const IDEA_SHAPE = `{"Name": "snake_case_name", "Title": "...", "Experiment": "what to change in experiment.py and what to measure", "Interestingness": 1-10, "Feasibility": 1-10, "Novelty": 1-10}`;

export const proposeIdea = defineTask({
  name: "ideator.propose",
  data: z.object({ system: z.string(), task: z.string(), code: z.string(), archive: z.array(Idea) }),
  answer: Idea,
  render: (d) => [
    { role: "system", content: d.system },
    {
      role: "user",
      content: [
        `You are proposing the next research idea for this experiment template.\n\nTask:\n${d.task}`,
        `The experiment code you will modify:\n${codeBlock(d.code)}`,
        `Ideas already proposed (do not repeat them, not even in other words):\n${jsonBlock(d.archive)}`,
        "Propose one new idea that can be tested by changing experiment.py alone, within its time budget. Be concrete: name the settings you will change and the values to try, and what result would support or refute the idea. Score it honestly.",
        answerAs(IDEA_SHAPE),
      ].join("\n\n"),
    },
  ],
});

export const reflectOnIdea = defineTask({
  name: "ideator.reflect",
  data: z.object({ idea: Idea, round: z.number().int(), maxRounds: z.number().int(), code: z.string() }),
  answer: z.object({ idea: Idea, done: z.boolean(), thought: z.string() }),
  render: (d) => [
    { role: "system", content: "You are a careful ML researcher reviewing your own draft idea before anyone else sees it." },
    {
      role: "user",
      content: [
        `Round ${d.round} of at most ${d.maxRounds}. Your draft:\n${jsonBlock(d.idea)}`,
        `The code it must be implemented in:\n${codeBlock(d.code)}`,
        "Check that the idea is feasible in this code, that the experiment isolates one effect, that it names the values to try, and that the scores are not inflated. Improve it where it falls short. Set done to true when no further change would help.",
        answerAs(`{"thought": "what you checked and changed", "idea": ${IDEA_SHAPE}, "done": true|false}`),
      ].join("\n\n"),
    },
  ],
});

export const reviseIdea = defineTask({
  name: "ideator.revise",
  data: z.object({ idea: Idea, verdict: Verdict, code: z.string() }),
  answer: Idea,
  render: (d) => [
    { role: "system", content: "You are an ML researcher answering a colleague who found your idea too close to published work." },
    {
      role: "user",
      content: [
        `Your idea:\n${jsonBlock(d.idea)}`,
        `The critic asked for a revision: ${d.verdict.reason}\nPapers they found:\n${jsonBlock(d.verdict.evidence.slice(0, 8))}`,
        `The code it must still be implemented in:\n${codeBlock(d.code)}`,
        "Revise the idea so that it asks a question these papers do not answer. Keep it feasible in this code. Give it a new Name.",
        answerAs(IDEA_SHAPE),
      ].join("\n\n"),
    },
  ],
});
