import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import * as reviewer from "./prompts.js";

// The offline stand-in's reviews: scores from what the paper's text shows.

function clamp(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(x)));
}

respond(reviewer.writeReview, (d) => {
  const text = d.text;
  const words = text.split(/\s+/).filter(Boolean).length;
  const numbers = (text.match(/\b\d+\.\d+\b/g) ?? []).length;
  const hasTable = /\bTable\s+\d/.test(text);
  const hasFigure = /\bFigure\s+\d/.test(text);
  const refs = (text.match(/^\s*\[\d+\]|\(\d{4}\)/gm) ?? []).length;
  const skeptic = d.persona % 5 === 3;
  const abstract = /Abstract\s+([\s\S]{0,400})/.exec(text)?.[1]?.replace(/\s+/g, " ").trim() ?? text.slice(0, 300);
  const quality = clamp(1 + (numbers > 10 ? 1 : 0) + (hasTable ? 1 : 0) - (skeptic ? 1 : 0), 1, 4);
  const clarity = clamp(2 + (hasFigure ? 1 : 0) + (words > 1500 ? 1 : 0) - (words < 600 ? 1 : 0), 1, 4);
  const overall = clamp(2 + quality + (hasFigure ? 1 : 0) + (refs > 3 ? 1 : 0) - (skeptic ? 1 : 0) - (words < 800 ? 1 : 0), 1, 10);
  return {
    Summary: `[${OFFLINE_NOTE}] The paper (${words} words) reports: ${abstract}`,
    Strengths: [
      ...(hasTable ? ["Results are reported in a table with the baseline for comparison."] : []),
      ...(hasFigure ? ["Figures show the runs side by side."] : []),
      `Reports ${numbers} numeric results from the experiments.`,
    ],
    Weaknesses: [
      "The study covers one small program and synthetic data; the conclusions may not transfer.",
      ...(refs <= 3 ? ["Few references to prior work."] : []),
      ...(skeptic ? ["Only one setting is varied; interactions with other settings are not examined."] : []),
    ],
    Originality: clamp(1 + (refs > 3 ? 1 : 0), 1, 4),
    Quality: quality,
    Clarity: clarity,
    Significance: 1 + (d.persona % 2),
    Questions: ["Does the effect hold for other model sizes and datasets?"],
    Limitations: ["Small scale; a single template."],
    Ethical_Concerns: false,
    Soundness: quality,
    Presentation: clarity,
    Contribution: clamp(1 + (hasTable ? 1 : 0), 1, 4),
    Overall: overall,
    Confidence: 2 + (d.persona % 3),
    Decision: overall >= 6 ? ("Accept" as const) : ("Reject" as const),
  };
});

respond(reviewer.reflectOnReview, (d) => {
  // Make the decision agree with the overall score, the consistency check a reflection is for.
  const decision = d.review.Overall >= 6 ? ("Accept" as const) : ("Reject" as const);
  return { review: { ...d.review, Decision: decision }, done: true };
});
