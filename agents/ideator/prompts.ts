import { z } from "zod";
import { Idea, PastReview, Verdict } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

const IDEA_SHAPE = `{"Name": "snake_case_name", "Title": "...", "Experiment": "what to change in experiment.py and what to measure", "Interestingness": 1-10, "Feasibility": 1-10, "Novelty": 1-10, "Rationale": "why this idea: what it builds on or answers", "Answers": ["<id of a review in reviews>", ...]}`;

/** Shown only when the template's earlier runs left reviews: a first run's prompts stay as they were. */
const Reviews = z.array(PastReview).optional();

const LEARN_FROM_REVIEWS =
  "`reviews` are what the reviewers said of the papers on earlier ideas of this template (decision, mean scores, main weaknesses). Build on what was accepted; do not repeat what was rejected, and answer its weaknesses. In Rationale, say which reviews the idea builds on or answers and how (quote the weakness it answers); list their `id`s in Answers, and no other.";

export const proposeIdea = defineTask({
  name: "ideator.propose",
  data: z.object({ system: z.string(), task: z.string(), code: z.string(), archive: z.array(Idea), reviews: Reviews }),
  answer: Idea,
  system: (d) => d.system,
  instructions: (d) =>
    `Propose the next research idea for this experiment template (\`task\`), testable by changing \`code\` (experiment.py) alone within its time budget. It must differ from every idea in \`archive\`, also in substance. Be concrete: name the settings you will change and the values to try, and what result would support or refute the idea. Score it honestly.${d.reviews?.length ? ` ${LEARN_FROM_REVIEWS}` : ""}`,
  shape: IDEA_SHAPE,
});

export const reflectOnIdea = defineTask({
  name: "ideator.reflect",
  data: z.object({ idea: Idea, round: z.number().int(), maxRounds: z.number().int(), code: z.string(), reviews: Reviews }),
  answer: z.object({ idea: Idea, done: z.boolean(), thought: z.string() }),
  system: "You are a careful ML researcher reviewing your own draft idea before anyone else sees it.",
  instructions: (d) =>
    `Reflection round ${d.round} of at most ${d.maxRounds} on your draft \`idea\`. Check that it is feasible in \`code\`, that the experiment isolates one effect, that it names the values to try, and that the scores are not inflated.${d.reviews?.length ? " Check against `reviews` that it does not repeat a rejected idea without answering its weaknesses, and that its Rationale and Answers say truly which reviews it builds on or answers." : ""} Improve it where it falls short. Set done to true when no further change would help.`,
  shape: `{"thought": "what you checked and changed", "idea": ${IDEA_SHAPE}, "done": true|false}`,
});

export const reviseIdea = defineTask({
  name: "ideator.revise",
  data: z.object({ idea: Idea, verdict: Verdict, code: z.string() }),
  answer: Idea,
  system: "You are an ML researcher answering a colleague who found your idea too close to published work.",
  instructions: () =>
    "The novelty critic asked you to revise `idea`; its reason and the papers it found are in `verdict`. Revise the idea so that it asks a question those papers do not answer, still feasible in `code`. Give it a new Name. Keep its Rationale and Answers true of the revision.",
  shape: IDEA_SHAPE,
});
