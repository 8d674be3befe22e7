import { BenchDataError } from "./errors.js";

/**
 * Binary-classification metrics for the review benchmark, the positive class being "accept".
 *
 * Undefined values are NaN, never an exception: a metric whose denominator is zero (FPR with no true
 * rejects, FNR or balanced accuracy with no true accepts, F1 with no accept predicted or true, AUC with
 * one class only) is NaN. Bootstrap resamples of a small benchmark can lack a class, so the intervals
 * skip such resamples and count them.
 */

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export function confusion(truth: readonly boolean[], predicted: readonly boolean[]): Confusion {
  if (truth.length !== predicted.length) throw new RangeError(`${truth.length} labels but ${predicted.length} predictions`);
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < truth.length; i++) {
    const key = truth[i] ? (predicted[i] ? "tp" : "fn") : predicted[i] ? "fp" : "tn";
    c[key]++;
  }
  return c;
}

const ratio = (num: number, den: number) => (den === 0 ? Number.NaN : num / den);

export const accuracy = (c: Confusion) => ratio(c.tp + c.tn, c.tp + c.fp + c.tn + c.fn);
/** The mean of the true-positive and true-negative rates: accuracy that a majority class cannot inflate. */
export const balancedAccuracy = (c: Confusion) => (ratio(c.tp, c.tp + c.fn) + ratio(c.tn, c.tn + c.fp)) / 2;
export const f1 = (c: Confusion) => ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
/** Rejected papers predicted accept, of all rejected papers. */
export const falsePositiveRate = (c: Confusion) => ratio(c.fp, c.fp + c.tn);
/** Accepted papers predicted reject, of all accepted papers. */
export const falseNegativeRate = (c: Confusion) => ratio(c.fn, c.fn + c.tp);

/**
 * ROC AUC as the Mann–Whitney statistic: the chance that a random accepted paper scores above a random
 * rejected one, a tie counting one half (mid-ranks). NaN unless both classes are present.
 */
export function rocAuc(truth: readonly boolean[], scores: readonly number[]): number {
  if (truth.length !== scores.length) throw new RangeError(`${truth.length} labels but ${scores.length} scores`);
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const midRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (truth[order[k]!]) {
        positives++;
        rankSum += midRank;
      }
    }
    start = end + 1;
  }
  const negatives = truth.length - positives;
  return ratio(rankSum - (positives * (positives + 1)) / 2, positives * negatives);
}

export interface RocCurve {
  /** From (0, 0) to (1, 1), one point per distinct score, highest score first. */
  fpr: number[];
  tpr: number[];
  /** The score each point predicts accept from (`score >= threshold`); the first point's is +Infinity. */
  thresholds: number[];
}

/** The ROC curve over every distinct score; its trapezoidal area equals `rocAuc`. Empty arrays with one class. */
export function rocCurve(truth: readonly boolean[], scores: readonly number[]): RocCurve {
  const positives = truth.filter(Boolean).length;
  const negatives = truth.length - positives;
  if (positives === 0 || negatives === 0) return { fpr: [], tpr: [], thresholds: [] };
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const curve: RocCurve = { fpr: [0], tpr: [0], thresholds: [Number.POSITIVE_INFINITY] };
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length; k++) {
    if (truth[order[k]!]) tp++;
    else fp++;
    const score = scores[order[k]!]!;
    if (k + 1 < order.length && scores[order[k + 1]!] === score) continue;
    curve.fpr.push(fp / negatives);
    curve.tpr.push(tp / positives);
    curve.thresholds.push(score);
  }
  return curve;
}

/** Mulberry32: a small, fast, seeded PRNG in [0, 1), so that bootstrap intervals are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The p-quantile of sorted values, interpolated linearly between order statistics (numpy's default). */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** One benchmark paper: its true decision, the predicted one, and the score AUC ranks by. */
export interface Sample {
  truth: boolean;
  predicted: boolean;
  score: number;
}

export const METRIC_NAMES = ["accuracy", "balancedAccuracy", "f1", "auc", "fpr", "fnr"] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

function pointMetrics(samples: readonly Sample[]): Record<MetricName, number> {
  const truth = samples.map((s) => s.truth);
  const c = confusion(truth, samples.map((s) => s.predicted));
  return {
    accuracy: accuracy(c),
    balancedAccuracy: balancedAccuracy(c),
    f1: f1(c),
    auc: rocAuc(truth, samples.map((s) => s.score)),
    fpr: falsePositiveRate(c),
    fnr: falseNegativeRate(c),
  };
}

export interface Estimate {
  value: number;
  /** The bootstrap 95% percentile interval; NaN when no resample defined the metric. */
  lo: number;
  hi: number;
  /** Resamples in which the metric was undefined (one class missing), left out of the interval. */
  undefinedResamples: number;
}

export interface BootstrapOptions {
  /** Resamples (default 1000). */
  iterations?: number;
  /** Seed of the PRNG that draws them (default 0). */
  seed?: number;
  /** Coverage of the interval (default 0.95). */
  level?: number;
}

export interface BenchMetrics {
  n: number;
  positives: number;
  negatives: number;
  confusion: Confusion;
  metrics: Record<MetricName, Estimate>;
  bootstrap: { iterations: number; seed: number; level: number };
}

/**
 * Every metric with its bootstrap percentile interval: papers are resampled with replacement, all
 * metrics computed on each resample, and the interval read off each metric's resampled values.
 */
export function benchMetrics(samples: readonly Sample[], opts: BootstrapOptions = {}): BenchMetrics {
  if (samples.length === 0) throw new BenchDataError("no papers to compute metrics on", { hint: "check that the CSV's paper_id values are in ratings_subset.tsv" });
  const iterations = opts.iterations ?? 1000;
  const seed = opts.seed ?? 0;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`bootstrap iterations must be a positive integer, not ${iterations}`);
  const value = pointMetrics(samples);
  const drawn: Record<MetricName, number[]> = { accuracy: [], balancedAccuracy: [], f1: [], auc: [], fpr: [], fnr: [] };
  const random = seededRandom(seed);
  const n = samples.length;
  const resample = new Array<Sample>(n);
  for (let it = 0; it < iterations; it++) {
    for (let j = 0; j < n; j++) resample[j] = samples[Math.floor(random() * n)]!;
    const m = pointMetrics(resample);
    for (const name of METRIC_NAMES) drawn[name].push(m[name]);
  }
  const tail = (1 - level) / 2;
  const metrics = Object.fromEntries(
    METRIC_NAMES.map((name) => {
      const defined = drawn[name].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
      return [name, { value: value[name], lo: quantile(defined, tail), hi: quantile(defined, 1 - tail), undefinedResamples: iterations - defined.length }];
    }),
  ) as Record<MetricName, Estimate>;
  const truth = samples.map((s) => s.truth);
  const positives = truth.filter(Boolean).length;
  return {
    n,
    positives,
    negatives: n - positives,
    confusion: confusion(truth, samples.map((s) => s.predicted)),
    metrics,
    bootstrap: { iterations, seed, level },
  };
}
