import { z } from "zod";
import { Evidence, Idea, PastReview, VerdictKind } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

/** The model judges on evidence; "undecided" is the critic's own verdict when no search returned. */
const Decision = z.object({ verdict: VerdictKind.exclude(["undecided"]), reason: z.string().min(1) });
const SYSTEM = "You are a demanding reviewer judging whether a research idea is novel. You search the literature before you judge, and you judge on evidence, not on impressions.";
const DECISION_SHAPE = `{"verdict": "novel" | "not novel" | "revise", "reason": "..."}`;
/** What the reviewers said of the papers on the template's earlier ideas; absent on a template's first run. */
const Reviews = z.array(PastReview).optional();
const REVIEWS_NOTE =
  " `reviews` are what the reviewers said of the papers on this template's earlier ideas: an idea that repeats a rejected one without answering its weaknesses (its Rationale and Answers say what it answers) is not novel, or \"revise\" — then name the weakness it must answer.";
const onReviews = (d: { reviews?: PastReview[] | undefined }) => (d.reviews?.length ? REVIEWS_NOTE : "");

export const think = defineTask({
  name: "critic.think",
  data: z.object({ idea: Idea, round: z.number().int(), maxRounds: z.number().int(), queries: z.array(z.string()), found: z.array(Evidence), reviews: Reviews }),
  answer: z.object({ thought: z.string(), query: z.string().min(1).nullable(), decision: Decision.nullable() }),
  system: SYSTEM,
  instructions: (d) =>
    d.queries.length === 0
      ? `Search round 1 of at most ${d.maxRounds} on \`idea\`. Give your first search query (decision null): you decide only on what the literature says.`
      : `Search round ${d.round + 1} of at most ${d.maxRounds} on \`idea\`; \`queries\` are your searches so far (those marked "(failed)" reached no literature) and \`found\` the papers they returned. Either give one more search query (decision null), or decide (query null): "novel" if no paper found does this, "not novel" if one does, "revise" if the idea is close to a paper but could be reframed to ask something new — then say how in the reason.${onReviews(d)}`,
  shape: `{"thought": "...", "query": "search terms" | null, "decision": ${DECISION_SHAPE} | null}`,
});

export const decide = defineTask({
  name: "critic.decide",
  data: z.object({ idea: Idea, queries: z.array(z.string()), found: z.array(Evidence), reviews: Reviews }),
  answer: Decision,
  system: SYSTEM,
  instructions: (d) => `The search rounds are over. Decide whether \`idea\` is novel, on the papers in \`found\` (from the searches in \`queries\`).${onReviews(d)}`,
  shape: DECISION_SHAPE,
});
