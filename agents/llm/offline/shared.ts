import type { Knob } from "./knobs.js";
import { parseKnobs, sweepValues } from "./knobs.js";

/**
 * What the offline answers of several agents share: the ideator's sweep format that the coder reads back, how a
 * knob is named in a text, which knobs have values to try, and how a result is printed.
 */
export const SWEEP = /Set ([A-Z][A-Z0-9_]*) to each of \[([^\]]+)\] \(baseline: ([^)]+)\)(?: with ([A-Z][A-Z0-9_]*) = (\S+?) in every run)?/;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether `text` names the knob: LR is not named by LR_ADAMW. */
export function names(text: string, knob: Knob): boolean {
  return new RegExp(`(?<![A-Za-z0-9_])${escape(knob.name)}(?![A-Za-z0-9_])`).test(text);
}

/** The template's numeric knobs that have values to try. */
export function tunable(code: string): Knob[] {
  return parseKnobs(code).filter((k) => typeof k.value === "number" && sweepValues(k).length > 0);
}

/** A result as the paper prints it: integers (a count, a step) as integers, small values to three digits. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return "--";
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a < 0.001) return x.toFixed(Math.min(20, 2 - Math.floor(Math.log10(a))));
  return a >= 100 ? x.toFixed(1) : a >= 1 ? x.toFixed(3) : x.toFixed(4);
}
