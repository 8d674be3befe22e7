import { z } from "zod";
import { Idea, Review } from "../../bus/schemas.js";
import { answerAs, defineTask, jsonBlock } from "../llm/task.js";

export const metaReview = defineTask({
  name: "areaChair.meta",
  data: z.object({ idea: Idea, reviews: z.array(Review), meanScores: z.record(z.string(), z.number()) }),
  answer: z.object({ metaReview: z.string().min(1), decision: z.enum(["Accept", "Reject"]) }),
  render: (d) => [
    { role: "system", content: "You are an area chair at a top ML venue. You weigh the reviews, not your own reading, and you explain the decision." },
    {
      role: "user",
      content: [
        `The paper's idea:\n${jsonBlock(d.idea)}`,
        `The ${d.reviews.length} reviews:\n${jsonBlock(d.reviews)}`,
        `Mean scores: ${jsonBlock(d.meanScores)}`,
        "Write the meta-review: the consensus, the disagreements and how you resolved them, and what would most improve the paper. Then decide.",
        answerAs(`{"metaReview": "...", "decision": "Accept" | "Reject"}`),
      ].join("\n\n"),
    },
  ],
});
