import type { ReviewCsvRow } from "./csv.js";
import type { RatedPaper } from "./data.js";
import { benchMetrics, type BenchMetrics, type BootstrapOptions, type Sample } from "./metrics.js";

/** How a review becomes a prediction: its Overall against a threshold, or its own Decision field. */
export type Prediction = { by: "threshold"; threshold: number } | { by: "decision" };

export interface SkippedRow {
  paperId: string;
  line: number;
  reason: string;
}

export interface ScoredPaper extends Sample {
  paperId: string;
  decision: string;
}

export interface Evaluation extends BenchMetrics {
  prediction: Prediction;
  /** Papers that entered the metrics, in the CSV's order. */
  papers: ScoredPaper[];
  rows: number;
  /** Rows left out of every metric, each with its reason. */
  skipped: SkippedRow[];
  /** Rated papers the CSV has no row for (a `--papers N` run covers N of them). */
  absent: number;
}

/** The reference's scale for Overall. */
const OVERALL_MIN = 1;
const OVERALL_MAX = 10;

function readOverall(raw: string): { value: number } | { reason: string } {
  const text = raw.trim();
  if (text === "") return { reason: "Overall is empty" };
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(text)) return { reason: "Overall is not a number" };
  const value = Number(text);
  if (value < OVERALL_MIN || value > OVERALL_MAX) return { reason: `Overall is outside ${OVERALL_MIN}–${OVERALL_MAX}` };
  return { value };
}

function readDecision(raw: string | undefined): boolean | undefined {
  const text = (raw ?? "").trim();
  if (/^accept\b/i.test(text)) return true;
  if (/^reject\b/i.test(text)) return false;
  return undefined;
}

/**
 * Joins a review CSV with the human decisions and computes the metrics. One rule for every metric: a row
 * enters only if its paper is rated, it is the paper's first row, its Overall is a number on the 1–10
 * scale (AUC ranks by it in either mode), and, when predicting by decision, its Decision says Accept or
 * Reject. Every other row is skipped with its reason; none is counted as a guess.
 */
export function evaluateReviews(rows: readonly ReviewCsvRow[], ratings: readonly RatedPaper[], prediction: Prediction, bootstrap: BootstrapOptions = {}): Evaluation {
  const rated = new Map(ratings.map((p) => [p.paperId, p]));
  const seen = new Set<string>();
  const papers: ScoredPaper[] = [];
  const skipped: SkippedRow[] = [];
  for (const row of rows) {
    const paperId = row.paper_id.trim();
    const skip = (reason: string) => skipped.push({ paperId, line: row.line, reason });
    const paper = rated.get(paperId);
    if (!paper) {
      skip("paper_id is not in the ratings");
      continue;
    }
    if (seen.has(paperId)) {
      skip("paper_id repeats an earlier row (the first one counts)");
      continue;
    }
    seen.add(paperId);
    const overall = readOverall(row.Overall);
    if ("reason" in overall) {
      skip(overall.reason);
      continue;
    }
    let predicted: boolean;
    if (prediction.by === "threshold") predicted = overall.value >= prediction.threshold;
    else {
      const decided = readDecision(row.Decision);
      if (decided === undefined) {
        skip(row.Decision === undefined ? "the CSV has no Decision column" : "Decision is neither Accept nor Reject");
        continue;
      }
      predicted = decided;
    }
    papers.push({ paperId, decision: paper.decision, truth: paper.accept, predicted, score: overall.value });
  }
  return {
    prediction,
    ...benchMetrics(papers, bootstrap),
    papers,
    rows: rows.length,
    skipped,
    absent: ratings.filter((p) => !seen.has(p.paperId)).length,
  };
}

/** Skipped rows counted by reason, most frequent first. */
export function skipReasons(skipped: readonly SkippedRow[]): { reason: string; count: number; paperIds: string[] }[] {
  const byReason = new Map<string, string[]>();
  for (const s of skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.paperId]);
  return [...byReason].map(([reason, paperIds]) => ({ reason, count: paperIds.length, paperIds })).sort((a, b) => b.count - a.count);
}
