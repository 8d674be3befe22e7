/**
 * What every benchmark script shares: how a figure is reported (printed, and appended as JSON to $BENCH_OUT so
 * that `npm run bench` can put them all in one table), percentiles, and a description of the machine.
 */
import { appendFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { execaSync } from "execa";

export interface Target {
  op: "<=" | ">=";
  value: number;
}

/** One measured figure: `figure` is its number in issue 14's list (1–7), 8 for the tree search's (issue 15), or 0 for one that only informs. */
export interface Figure {
  figure: number;
  what: string;
  value: number;
  unit: string;
  target?: Target;
  /** What the figure was measured from, e.g. "5 runs" or the two values a ratio is of. */
  detail?: string;
}

export const met = (f: Figure): boolean | undefined =>
  f.target === undefined ? undefined : f.target.op === "<=" ? f.value <= f.target.value : f.value >= f.target.value;

/** A figure's value as the table shows it: ratios and shares to 2–3 digits, times without false precision. */
export function formatValue(value: number, unit: string): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit === "×" || unit === "%" ? unit : ` ${unit}`}`;
}

export function formatFigure(f: Figure): string {
  const ok = met(f);
  const target = f.target ? `${f.target.op} ${formatValue(f.target.value, f.unit)}` : "";
  return `${String(f.figure || "").padStart(2)}  ${f.what.padEnd(58)} ${formatValue(f.value, f.unit).padStart(12)}  ${target.padEnd(12)} ${ok === undefined ? "" : ok ? "met" : "NOT MET"}${f.detail ? `   (${f.detail})` : ""}`;
}

/** Prints the figures under a title, and hands them to `npm run bench` when it runs this script. */
export function report(title: string, figures: Figure[]): void {
  process.stdout.write(`${title}\n${figures.map((f) => `${formatFigure(f)}\n`).join("")}`);
  const out = process.env.BENCH_OUT;
  if (out) appendFileSync(out, `${JSON.stringify({ title, figures })}\n`);
}

/** The p-th quantile (0 ≤ p ≤ 1) by the nearest-rank rule. */
export function pct(xs: number[], p: number): number {
  if (!xs.length) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export const median = (xs: number[]) => pct(xs, 0.5);

/** The machine the figures were measured on, in one line. */
export function machineLine(): string {
  const c = cpus();
  let nats = "nats-server ?";
  try {
    nats = execaSync("nats-server", ["--version"]).stdout.trim();
  } catch {
    // Not installed: the benchmarks that need it say so themselves.
  }
  return `${c.length} × ${c[0]?.model.trim() ?? "unknown CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${nats}`;
}

/** The union's length of [start, end] intervals, in their unit: how long at least one of them was going on. */
export function coveredLength(intervals: [number, number][]): number {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (a >= end) {
      total += b - a;
      end = b;
    } else if (b > end) {
      total += b - end;
      end = b;
    }
  }
  return total;
}
