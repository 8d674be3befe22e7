import type { FigureCritique, FigureProblem, FigureToCheck } from "../../bus/schemas.js";
import { decodePng, PngError, type Pixels } from "./png.js";

/** The smallest width and height (px) a figure may have and still be read in a paper. */
/** The largest count: a loop, since a figure may have more colours than a call takes arguments. */
function most(counts: Iterable<number>): number {
  let m = 0;
  for (const c of counts) if (c > m) m = c;
  return m;
}

export const MIN_SIDE = 200;
/** Below this spread of luminance (0 black … 1 white) an image is one flat colour. */
export const MIN_SPREAD = 0.01;
/** Above this share of pixels in one colour, an image shows next to nothing. */
export const MAX_ONE_COLOUR = 0.995;

export interface PlotRunRef {
  run: string;
  description: string;
  ok: boolean;
}

export interface PixelStats {
  width: number;
  height: number;
  /** Standard deviation of luminance, composited on white, 0…1. */
  spread: number;
  /** The share of pixels in the commonest colour. */
  oneColour: number;
}

/** The pixels' spread and commonest colour, each pixel laid on white as a page would show it. */
export function pixelStats(p: Pixels): PixelStats {
  const n = p.width * p.height;
  const counts = new Map<number, number>();
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    const alpha = p.rgba[o + 3]! / 255;
    const [r, g, b] = [0, 1, 2].map((c) => Math.round(p.rgba[o + c]! * alpha + 255 * (1 - alpha)));
    const lum = (0.2126 * r! + 0.7152 * g! + 0.0722 * b!) / 255;
    sum += lum;
    sq += lum * lum;
    const key = (r! << 16) | (g! << 8) | b!;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const mean = sum / n;
  return { width: p.width, height: p.height, spread: Math.sqrt(Math.max(0, sq / n - mean * mean)), oneColour: most(counts.values()) / n };
}

/** A run's description as a label: "Set LR = 0.1 (baseline: 0.01)" → "LR = 0.1". */
const labelOf = (description: string) => description.replace(/^Set /, "").replace(/\s*\((?:baseline|parent):[^)]*\)/, "").trim();

/** Sentences that name a run but say it is not shown: they claim no data for it. */
const SAYS_ABSENT = /\b(fail(?:s|ed|ure)?|excluded?|not (?:shown|plotted|included|reported)|no results?|missing|absent|omitted|left out)\b/i;

/** Sentences as the check reads them (a clause after ";" too): what a missing-data problem quotes. */
export const sentencesOf = (text: string) => text.replace(/\s+/g, " ").split(/(?<=[.!?;])\s+/).filter(Boolean);

/**
 * The runs a caption (or a sentence that refers to the figure) names whose data cannot be in it: the run
 * failed, or there is no such run. A run is named by its folder (`run_3`) or by its change as described.
 */
export function runsWithoutData(texts: string[], runs: PlotRunRef[]): { run: string; sentence: string; why: string }[] {
  const found = new Map<string, { run: string; sentence: string; why: string }>();
  for (const sentence of texts.flatMap(sentencesOf)) {
    if (SAYS_ABSENT.test(sentence)) continue;
    const named = new Set([...sentence.matchAll(/\brun[_ ]?(\d+)\b/gi)].map((m) => `run_${m[1]}`));
    for (const r of runs) {
      const label = labelOf(r.description);
      if (r.run !== "run_0" && label.length >= 6 && sentence.toLowerCase().includes(label.toLowerCase())) named.add(r.run);
    }
    for (const run of named) {
      if (found.has(run)) continue;
      const record = runs.find((r) => r.run === run);
      if (!record) found.set(run, { run, sentence, why: "there is no such run" });
      else if (!record.ok) found.set(run, { run, sentence, why: `${run} failed and has no results` });
    }
  }
  return [...found.values()];
}

/**
 * The deterministic figure check, which needs no model: a file that does not decode, a blank or near-constant
 * image, one too small to read, and a caption that names a run with no results. What the figure plots is not
 * known to it: `shows` says what the pixels are, and that no model looked at them.
 */
export function checkFigure(figure: FigureToCheck, png: Uint8Array | undefined, runs: PlotRunRef[]): FigureCritique {
  const problems: FigureProblem[] = [];
  let shows: string;
  if (!png) {
    problems.push({ kind: "blank", detail: `${figure.name} is not there: plot.py did not write it` });
    shows = "nothing: the file is missing";
  } else {
    let stats: PixelStats | undefined;
    try {
      stats = pixelStats(decodePng(png));
    } catch (err) {
      if (!(err instanceof PngError)) throw err;
      problems.push({ kind: "other", detail: `${figure.name} cannot be read: ${err.message}` });
    }
    if (stats) {
      const { width, height, spread, oneColour } = stats;
      if (spread < MIN_SPREAD || oneColour > MAX_ONE_COLOUR) {
        problems.push({
          kind: "blank",
          detail: `${figure.name} is blank or nearly so: ${(oneColour * 100).toFixed(1)}% of its pixels are one colour and their luminance varies by ${spread.toFixed(4)}; nothing is plotted`,
        });
      }
      if (width < MIN_SIDE || height < MIN_SIDE) {
        problems.push({ kind: "too-small", detail: `${figure.name} is ${width}×${height} px, too small to read (at least ${MIN_SIDE} px each way)` });
      }
      shows = `an image of ${width}×${height} px, ${(oneColour * 100).toFixed(1)}% of it one colour (luminance spread ${spread.toFixed(3)}); checked by its pixels only, no model looked at what it plots`;
    } else {
      shows = "a file that is not a readable PNG";
    }
  }
  for (const m of runsWithoutData([figure.caption, ...figure.references], runs)) {
    problems.push({ kind: "missing-data", detail: `the text about ${figure.name} names ${m.run} ("${m.sentence.slice(0, 200)}"), but ${m.why}: its data cannot be in the figure` });
  }
  return { figure: figure.name, ok: problems.length === 0, shows, problems, seen: false };
}
