import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import * as chair from "./prompts.js";

// The offline stand-in's meta-review: the reviews' mean scores against the threshold.

respond(chair.metaReview, (d) => {
  const overall = d.meanScores.Overall ?? 0;
  const accepts = d.reviews.filter((r) => r.Decision === "Accept").length;
  const decision = overall >= 6 ? ("Accept" as const) : ("Reject" as const);
  const weaknesses = [...new Set(d.reviews.flatMap((r) => r.Weaknesses))];
  return {
    decision,
    metaReview: `[${OFFLINE_NOTE}] ${d.reviews.length} reviews; ${accepts} recommend acceptance; mean Overall ${overall} (Soundness ${d.meanScores.Soundness}, Presentation ${d.meanScores.Presentation}, Contribution ${d.meanScores.Contribution}). Main concerns: ${weaknesses.join(" ")} Decision: ${decision}, by the mean Overall score against the acceptance threshold of 6.`,
  };
});
