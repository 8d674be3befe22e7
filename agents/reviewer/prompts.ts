import { z } from "zod";
import { Review } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

const FORM = `{"Summary": "...", "Strengths": ["..."], "Weaknesses": ["..."], "Originality": 1-4, "Quality": 1-4, "Clarity": 1-4, "Significance": 1-4, "Questions": ["..."], "Limitations": ["..."], "Ethical_Concerns": false, "Soundness": 1-4, "Presentation": 1-4, "Contribution": 1-4, "Overall": 1-10, "Confidence": 1-5, "Decision": "Accept" | "Reject"}`;

/** Reviewers differ on purpose, so the ensemble is not K copies of one opinion. */
export const PERSONAS = [
  "You are a rigorous reviewer who weighs soundness and the evidence behind each claim above all.",
  "You are a reviewer who values clear writing and reproducibility, and asks whether others could build on the work.",
  "You are a reviewer focused on significance: does this change what the field knows or does?",
  "You are a skeptical reviewer who looks for confounds, missing baselines and over-claiming.",
  "You are a reviewer from an adjacent field who judges whether the contribution is explained and motivated.",
];

const SYSTEM = (persona: string) =>
  `${persona} You review for a top ML venue (NeurIPS form). Be critical and fair: if a paper is weak or you are unsure, lean towards rejection.`;

const SCALES =
  "Scores: Originality, Quality, Clarity, Significance, Soundness, Presentation, Contribution from 1 (poor) to 4 (excellent); Overall from 1 (very strong reject) to 10 (award quality), 6 meaning weak accept; Confidence from 1 to 5.";

/** Said when the paper's figures come with the request as images (a model that sees them). */
const FIGURES = (figures: string[] | undefined) =>
  figures?.length
    ? ` The paper's figures (\`figures\`: ${figures.join(", ")}) are attached as images, in that order: judge them as a reader of the PDF would (do they show what the text says of them, are they legible and labelled), and count what they show as evidence.`
    : "";

/** A paper and a review of it, shown to the reviewer as a worked example of the form. */
export const ReviewExample = z.object({ paper: z.string(), review: Review });
export type ReviewExample = z.infer<typeof ReviewExample>;

export const writeReview = defineTask({
  name: "reviewer.review",
  // The paper (its text, its figures and their images) is the same for a review and its reflections: one cached
  // prefix (with the reviewer's system prompt).
  stable: ["text", "figures"],
  data: z.object({ text: z.string(), figures: z.array(z.string()).optional(), persona: z.number().int().min(0), examples: z.array(ReviewExample) }),
  answer: Review,
  system: (d) => SYSTEM(PERSONAS[d.persona % PERSONAS.length]!),
  instructions: (d) =>
    `Review the paper whose text (extracted from its PDF) is \`text\`, on the review form.${FIGURES(d.figures)} ${SCALES}${d.examples.length ? ` \`examples\` shows ${d.examples.length === 1 ? "a paper and its review" : "papers and their reviews"}: follow their form and calibration, not their content.` : ""}`,
  shape: FORM,
});

export const reflectOnReview = defineTask({
  name: "reviewer.reflect",
  stable: ["text", "figures"],
  data: z.object({ text: z.string(), figures: z.array(z.string()).optional(), persona: z.number().int().min(0), review: Review, round: z.number().int(), maxRounds: z.number().int() }),
  answer: z.object({ review: Review, done: z.boolean() }),
  system: (d) => SYSTEM(PERSONAS[d.persona % PERSONAS.length]!),
  instructions: (d) =>
    `Reflection round ${d.round} of at most ${d.maxRounds}. Reread the paper (\`text\`${d.figures?.length ? " and its attached figures" : ""}) and your \`review\`. Are the scores consistent with the strengths and weaknesses you wrote? Is every criticism grounded in the text? Correct the review; set done to true if nothing needs to change. ${SCALES}`,
  shape: `{"review": ${FORM}, "done": true|false}`,
});
