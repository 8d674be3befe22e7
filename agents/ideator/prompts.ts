import { z } from "zod";
import { Idea, Verdict } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

const IDEA_SHAPE = `{"Name": "snake_case_name", "Title": "...", "Experiment": "what to change in experiment.py and what to measure", "Interestingness": 1-10, "Feasibility": 1-10, "Novelty": 1-10}`;

export const proposeIdea = defineTask({
  name: "ideator.propose",
  data: z.object({ system: z.string(), task: z.string(), code: z.string(), archive: z.array(Idea) }),
  answer: Idea,
  system: (d) => d.system,
  instructions: () =>
    "Propose the next research idea for this experiment template (`task`), testable by changing `code` (experiment.py) alone within its time budget. It must differ from every idea in `archive`, also in substance. Be concrete: name the settings you will change and the values to try, and what result would support or refute the idea. Score it honestly.",
  shape: IDEA_SHAPE,
});

export const reflectOnIdea = defineTask({
  name: "ideator.reflect",
  data: z.object({ idea: Idea, round: z.number().int(), maxRounds: z.number().int(), code: z.string() }),
  answer: z.object({ idea: Idea, done: z.boolean(), thought: z.string() }),
  system: "You are a careful ML researcher reviewing your own draft idea before anyone else sees it.",
  instructions: (d) =>
    `Reflection round ${d.round} of at most ${d.maxRounds} on your draft \`idea\`. Check that it is feasible in \`code\`, that the experiment isolates one effect, that it names the values to try, and that the scores are not inflated. Improve it where it falls short. Set done to true when no further change would help.`,
  shape: `{"thought": "what you checked and changed", "idea": ${IDEA_SHAPE}, "done": true|false}`,
});

export const reviseIdea = defineTask({
  name: "ideator.revise",
  data: z.object({ idea: Idea, verdict: Verdict, code: z.string() }),
  answer: Idea,
  system: "You are an ML researcher answering a colleague who found your idea too close to published work.",
  instructions: () =>
    "The novelty critic asked you to revise `idea`; its reason and the papers it found are in `verdict`. Revise the idea so that it asks a question those papers do not answer, still feasible in `code`. Give it a new Name.",
  shape: IDEA_SHAPE,
});
