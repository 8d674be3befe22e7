import type { FinalInfo, Metric } from "../bus/schemas.js";

/** Measures that go down when they get better; any other is taken to go up. */
const LOWER_IS_BETTER = /loss|error|perplexity|mse|mae|rmse|kl|divergence|distance|regret|steps?_to/i;
/** What a run costs rather than what it achieves: chosen only when nothing else reads as a measure. */
const RUNTIME = /time|latency|duration|memory/i;
const HIGHER_IS_BETTER = /acc|f1|auc|score|reward|return|precision|recall|iou|bleu|rouge|success/i;

/**
 * The measure a tree search goes by when the template's manifest names none, read from the baseline's results:
 * the first measure that reads as a quality (accuracy, score, …), else the first that reads as a cost (loss,
 * error, …), else the first that is not a run's time or memory (taken as a quality), else a time (the less the
 * better); none when the results have no measure.
 */
export function chooseMetric(results: FinalInfo): Metric | undefined {
  const names = [...new Set(Object.values(results).flatMap((d) => Object.keys(d.means)))];
  const measures = names.filter((n) => !RUNTIME.test(n));
  const up = measures.find((n) => HIGHER_IS_BETTER.test(n));
  if (up) return { name: up, goal: "max" };
  const down = measures.find((n) => LOWER_IS_BETTER.test(n));
  if (down) return { name: down, goal: "min" };
  if (measures[0]) return { name: measures[0], goal: "max" };
  return names[0] ? { name: names[0], goal: "min" } : undefined;
}

/** The measure over the datasets that report it. */
export function valueOf(results: FinalInfo, metric: Metric): number | undefined {
  const xs = Object.values(results).map((d) => d.means[metric.name]).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}
