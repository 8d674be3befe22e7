import { z } from "zod";
import { Idea, Review } from "../../bus/schemas.js";
import { defineTask } from "../llm/task.js";

export const metaReview = defineTask({
  name: "areaChair.meta",
  data: z.object({ idea: Idea, reviews: z.array(Review), meanScores: z.record(z.string(), z.number()) }),
  answer: z.object({ metaReview: z.string().min(1), decision: z.enum(["Accept", "Reject"]) }),
  system: "You are an area chair at a top ML venue. You weigh the reviews, not your own reading, and you explain the decision.",
  instructions: () =>
    "Write the meta-review of the paper on `idea` from its `reviews` (`meanScores` are their means): the consensus, the disagreements and how you resolved them, and what would most improve the paper. Then decide.",
  shape: `{"metaReview": "...", "decision": "Accept" | "Reject"}`,
});
