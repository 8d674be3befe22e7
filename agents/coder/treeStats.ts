import { TREE_STAGES, type Metric, type SeedRun, type TreeRecord, type TreeStage } from "../../bus/schemas.js";

// Lanczos (g = 7, 9 terms): about 15 digits, enough that the quantiles below are limited by the bisection only.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The continued fraction of I_x(a, b) by the modified Lentz method; it converges fast for x < (a + 1) / (a + b + 2). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    for (const num of [(m * (b - m) * x) / ((a + m2 - 1) * (a + m2)), (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1))]) {
      d = 1 + num * d;
      if (Math.abs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      d = 1 / d;
      h *= d * c;
      if (Math.abs(d * c - 1) < 1e-15) return h;
    }
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The fraction converges only on one side of the mean; the other side comes from the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
  if (x < (a + 1) / (a + b + 2)) return (front * betaFraction(x, a, b)) / a;
  return 1 - (front * betaFraction(1 - x, b, a)) / b;
}

/** P(T > t) for t ≥ 0, computed as the tail itself so that quantiles near 1 keep their digits. */
function upperTail(t: number, df: number): number {
  return 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/** The p-quantile of Student's t with df degrees of freedom (df need not be whole: Welch's is not). */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`tQuantile: p must be in (0, 1), not ${p}`);
  if (!(df > 0)) throw new RangeError(`tQuantile: df must be positive, not ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  const tail = 1 - p;
  let lo = 0;
  let hi = 1;
  while (upperTail(hi, df) > tail) {
    lo = hi;
    hi *= 2;
    if (!Number.isFinite(hi)) return Infinity;
  }
  // The tail falls monotonically in t, so bisection cannot miss; 200 halvings reach the last bit of any bracket.
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (upperTail(mid, df) > tail) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Interval { n: number; mean: number; lo: number; hi: number; level: number }
export interface Gain { diff: number; lo: number; hi: number; level: number }

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The sample variance; 0 for a single value, whose spread one run cannot show. */
function variance(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1);
}

function checkLevel(level: number) {
  if (!(level > 0 && level < 1)) throw new RangeError(`the level must be in (0, 1), not ${level}`);
}

/**
 * The t-interval for the mean at `level`. With one value there is no spread to go by, so lo = hi = mean:
 * the interval then says how many runs there were, not how sure the mean is.
 */
export function interval(values: number[], level = 0.95): Interval {
  if (!values.length) throw new RangeError("interval: no values");
  checkLevel(level);
  const n = values.length;
  const m = mean(values);
  const half = n < 2 ? 0 : (tQuantile((1 + level) / 2, n - 1) * Math.sqrt(variance(values))) / Math.sqrt(n);
  return { n, mean: m, lo: m - half, hi: m + half, level };
}

/**
 * How much better a is than b in the goal's direction, with Welch's interval: the variants' spreads differ (a change
 * can make a run steadier or shakier), so the variances are not pooled. A side with one value adds no variance.
 */
export function welchGain(a: number[], b: number[], goal: "max" | "min", level = 0.95): Gain {
  if (!a.length || !b.length) throw new RangeError("welchGain: both sides need values");
  checkLevel(level);
  const diff = goal === "max" ? mean(a) - mean(b) : mean(b) - mean(a);
  const ua = variance(a) / a.length;
  const ub = variance(b) / b.length;
  if (ua + ub === 0) return { diff, lo: diff, hi: diff, level };
  const part = (u: number, n: number) => (u === 0 ? 0 : (u * u) / (n - 1));
  const df = (ua + ub) ** 2 / (part(ua, a.length) + part(ub, b.length));
  const half = tQuantile((1 + level) / 2, df) * Math.sqrt(ua + ub);
  return { diff, lo: diff - half, hi: diff + half, level };
}

export interface ChosenVariant { node: "root" | string; stage: TreeStage | "baseline" | "final"; description: string; values: number[]; seeds: number[]; summary: Interval }
export interface Ablation { node: string; description: string; value: number; /** best's value minus this one's, in the goal's direction: how much the change taken back was worth */ worth: number }
export interface Confirmation { seeds: number[]; final: Interval; baseline: Interval; gain: Gain; holds: boolean; foundBy?: string; confirmedBy: string[]; independent: boolean }
export interface SearchStats { metric: Metric; variantsTried: number; variantsWorking: number; debugged: number; chosen: ChosenVariant[]; searchGain?: Gain; ablations: Ablation[]; confirmation?: Confirmation }

type Measured = SeedRun & { value: number };
const measured = (run: SeedRun): run is Measured => run.status === "works" && run.value !== undefined;

/**
 * What a tree search found and how far to trust it. The search's own numbers pick the best of many variants on seed 0,
 * so they are optimistic; its gain is widened for the number of variants tried, and only the confirm runs, on seeds no
 * choice was made on, say whether the final variant really beats the baseline.
 */
export function searchStats(tree: TreeRecord, baselineValue: number | undefined, level = 0.95): SearchStats {
  const { goal } = tree.metric;
  const nodes = new Map(tree.nodes.map((node) => [node.id, node]));
  const runs = tree.seedRuns.filter(measured);
  const replicates = (of: string) => runs.filter((run) => run.of === of && run.purpose === "replicate");
  const confirms = (of: string) => runs.filter((run) => run.of === of && run.purpose === "confirm");
  const variantsTried = tree.nodes.filter((node) => node.status !== "running").length;

  const chosen: ChosenVariant[] = [];
  // A variant without a single measured run has nothing to summarize; it is left out rather than shown as 0.
  const choose = (node: string, stage: ChosenVariant["stage"], description: string, seed0: number | undefined) => {
    const values = seed0 === undefined ? [] : [seed0];
    const seeds = seed0 === undefined ? [] : [0];
    for (const run of replicates(node)) {
      values.push(run.value);
      seeds.push(run.seed);
    }
    if (values.length) chosen.push({ node, stage, description, values, seeds, summary: interval(values, level) });
  };
  choose("root", "baseline", "the template's own code", baselineValue);
  const order = (stage: TreeStage) => TREE_STAGES.indexOf(stage);
  for (const { stage, best } of [...tree.stages].sort((x, y) => order(x.stage) - order(y.stage))) {
    const node = best === undefined ? undefined : nodes.get(best);
    if (node && !chosen.some((c) => c.node === node.id)) choose(node.id, stage, node.description ?? "", node.value);
  }
  const final = tree.final === undefined ? undefined : nodes.get(tree.final);
  if (final && !chosen.some((c) => c.node === final.id)) choose(final.id, "final", final.description ?? "", final.value);

  const baselineValues = chosen.find((c) => c.node === "root")?.values;
  const finalValues = final && chosen.find((c) => c.node === final.id)?.values;
  // Bonferroni: the final is the best of variantsTried looks at seed 0, so each look must clear a stricter bar.
  const searchLevel = 1 - (1 - level) / Math.max(1, variantsTried);
  const searchGain = finalValues && baselineValues ? welchGain(finalValues, baselineValues, goal, searchLevel) : undefined;

  const ablations: Ablation[] = [];
  if (final?.value !== undefined) {
    for (const node of tree.nodes) {
      if (node.stage !== "ablate" || node.status !== "works" || node.value === undefined) continue;
      const worth = goal === "max" ? final.value - node.value : node.value - final.value;
      ablations.push({ node: node.id, description: node.description ?? "", value: node.value, worth });
    }
  }

  let confirmation: Confirmation | undefined;
  const finalRuns = final ? confirms(final.id) : [];
  const baselineRuns = confirms("root");
  if (final && finalRuns.length && baselineRuns.length) {
    const finalConfirm = finalRuns.map((run) => run.value);
    const baselineConfirm = baselineRuns.map((run) => run.value);
    // No multiplicity correction: these seeds were drawn after the choice was made, so this is a single test.
    const gain = welchGain(finalConfirm, baselineConfirm, goal, level);
    const confirmedBy = [...new Set(finalRuns.flatMap((run) => (run.by === undefined ? [] : [run.by])))];
    const foundBy = final.by;
    confirmation = {
      seeds: [...new Set([...finalRuns, ...baselineRuns].map((run) => run.seed))].sort((x, y) => x - y),
      final: interval(finalConfirm, level),
      baseline: interval(baselineConfirm, level),
      gain,
      // One run a side has no spread, so no interval can exclude zero: a reproduction, never a confirmation.
      holds: finalConfirm.length > 1 && baselineConfirm.length > 1 && gain.lo > 0,
      ...(foundBy === undefined ? {} : { foundBy }),
      confirmedBy,
      // Runs whose coder is unknown cannot show that someone else reproduced the result.
      independent: foundBy !== undefined && confirmedBy.length > 0 && !confirmedBy.includes(foundBy),
    };
  }

  return {
    metric: tree.metric,
    variantsTried,
    variantsWorking: tree.nodes.filter((node) => node.status === "works").length,
    debugged: tree.nodes.filter((node) => node.action === "debug").length,
    chosen,
    ...(searchGain ? { searchGain } : {}),
    ablations,
    ...(confirmation ? { confirmation } : {}),
  };
}
