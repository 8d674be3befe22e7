import type { Review } from "../../bus/schemas.js";

/** A valid review with nothing in it: what the bus tests' stand-in reviewers return. */
export const review: Review = {
  Summary: "s", Strengths: ["a"], Weaknesses: ["b"], Originality: 2, Quality: 2, Clarity: 3, Significance: 2,
  Questions: [], Limitations: [], Ethical_Concerns: false, Soundness: 2, Presentation: 3, Contribution: 2,
  Overall: 4, Confidence: 3, Decision: "Reject",
};
