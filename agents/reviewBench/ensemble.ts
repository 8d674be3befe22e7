import type { Review } from "../../bus/schemas.js";
import type { ReviewColumn } from "./csv.js";

const SCORES = ["Soundness", "Presentation", "Contribution", "Overall", "Confidence", "Originality", "Quality", "Clarity", "Significance"] as const;
const LISTS = ["Questions", "Limitations", "Strengths", "Weaknesses"] as const;

/** A mean as the CSV writes it: an integer as one, else two decimals. */
const mean = (xs: number[]) => String(Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100);

/**
 * One CSV row from a paper's K reviews, the way the reference's ensemble reads: each score is the mean over
 * the reviewers (not rounded, so a threshold and the AUC see 5.67, not 6); the Decision is the majority's,
 * a tie going to Reject; the lists are the reviewers' items without repeats, written as JSON arrays (which
 * Python's ast.literal_eval also reads); the Summary is the first reviewer's. With no review at all, every
 * field but paper_id is empty, and the benchmark counts the row as skipped.
 */
export function ensembleRow(paperId: string, reviews: readonly Review[]): Record<ReviewColumn, string> {
  const row = { paper_id: paperId } as Record<ReviewColumn, string>;
  if (reviews.length === 0) {
    for (const c of [...SCORES, ...LISTS, "Summary", "Ethical Concerns", "Decision"] as const) row[c] = "";
    return row;
  }
  for (const c of SCORES) row[c] = mean(reviews.map((r) => r[c]));
  for (const c of LISTS) row[c] = JSON.stringify([...new Set(reviews.flatMap((r) => r[c]))]);
  row.Summary = reviews[0]!.Summary;
  row["Ethical Concerns"] = reviews.some((r) => r.Ethical_Concerns) ? "True" : "False";
  const accepts = reviews.filter((r) => r.Decision === "Accept").length;
  row.Decision = accepts * 2 > reviews.length ? "Accept" : "Reject";
  return row;
}
