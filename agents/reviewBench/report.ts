import type { Evaluation } from "./evaluate.js";
import { skipReasons } from "./evaluate.js";
import { METRIC_NAMES, type MetricName } from "./metrics.js";

export const METRIC_LABELS: Record<MetricName, string> = {
  accuracy: "accuracy",
  balancedAccuracy: "balanced accuracy",
  f1: "F1 (accept)",
  auc: "AUC (Overall)",
  fpr: "FPR",
  fnr: "FNR",
};

const num = (x: number) => (Number.isNaN(x) ? "n/a" : x.toFixed(3));

export function describePrediction(e: Pick<Evaluation, "prediction">): string {
  return e.prediction.by === "threshold"
    ? `accept when Overall >= ${e.prediction.threshold}`
    : "accept when the review's Decision says Accept";
}

/** The table the CLI prints: each metric with its interval, the rule used, and what was left out and why. */
export function formatReport(e: Evaluation, title: string): string {
  const lines = [
    title,
    `Prediction: ${describePrediction(e)}; AUC ranks papers by Overall.`,
    `n = ${e.n} papers (${e.positives} accepted, ${e.negatives} rejected) of ${e.rows} rows; ${e.skipped.length} rows skipped${e.skipped.length ? ":" : "."}`,
    ...skipReasons(e.skipped).map((s) => `  ${s.count} × ${s.reason}: ${s.paperIds.slice(0, 5).join(", ")}${s.count > 5 ? ", …" : ""}`),
    ...(e.absent ? [`${e.absent} rated papers have no row in the CSV (not counted).`] : []),
    "",
    `${"metric".padEnd(19)}${"value".padStart(7)}   ${Math.round(e.bootstrap.level * 100)}% interval (bootstrap, ${e.bootstrap.iterations} resamples, seed ${e.bootstrap.seed})`,
    ...METRIC_NAMES.map((name) => {
      const m = e.metrics[name];
      const note = m.undefinedResamples ? `  (${m.undefinedResamples} resamples lacked a class)` : "";
      return `${METRIC_LABELS[name].padEnd(19)}${num(m.value).padStart(7)}   [${num(m.lo)}, ${num(m.hi)}]${note}`;
    }),
    "",
    `confusion: TP ${e.confusion.tp}  FP ${e.confusion.fp}  TN ${e.confusion.tn}  FN ${e.confusion.fn}`,
    `(The AUC of the accept/reject prediction alone equals its balanced accuracy: that is the figure the`,
    ` AI Scientist paper reports as AUC, 0.65 for GPT-4o.)`,
  ];
  if (e.positives === 0 || e.negatives === 0) {
    lines.push(`Only one class is present: metrics that need both (AUC, balanced accuracy, FPR or FNR) are n/a.`);
  }
  return lines.join("\n");
}

/** What metrics.json holds; undefined metrics are null. */
export function metricsJson(e: Evaluation, source: { csv: string; ratings: string }, extra: Record<string, unknown> = {}) {
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    source,
    prediction: e.prediction,
    rule: describePrediction(e),
    n: e.n,
    positives: e.positives,
    negatives: e.negatives,
    confusion: e.confusion,
    metrics: Object.fromEntries(
      METRIC_NAMES.map((name) => {
        const m = e.metrics[name];
        return [name, { value: finite(m.value), interval: [finite(m.lo), finite(m.hi)], undefinedResamples: m.undefinedResamples }];
      }),
    ),
    bootstrap: e.bootstrap,
    rows: e.rows,
    skipped: { total: e.skipped.length, reasons: skipReasons(e.skipped) },
    absent: e.absent,
    ...extra,
  };
}
