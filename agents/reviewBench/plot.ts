import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { findPython, type PythonInfo } from "../preflight.js";
import type { Evaluation } from "./evaluate.js";
import { rocCurve } from "./metrics.js";

const SCRIPT = fileURLToPath(new URL("./plot.py", import.meta.url));

export const PLOT_FIX =
  "apt-get install -y python3-matplotlib, or pip install matplotlib into a virtualenv and set SWARM_PYTHON=/path/to/venv/bin/python";

export type PlotResult = { written: true; file: string; python: string } | { written: false; reason: string; fix: string };

export interface PlotOptions {
  /** The interpreter to use; found with findPython(["matplotlib"]) when absent, and `null` means there is none. */
  python?: PythonInfo | null;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** What plot.py reads on stdin. */
export function plotData(e: Evaluation, title: string, out: string) {
  const truth = e.papers.map((p) => p.truth);
  const scores = e.papers.map((p) => p.score);
  const roc = rocCurve(truth, scores);
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  const c = e.confusion;
  const tpr = c.tp + c.fn ? c.tp / (c.tp + c.fn) : null;
  const fpr = c.fp + c.tn ? c.fp / (c.fp + c.tn) : null;
  return {
    title,
    out,
    threshold: e.prediction.by === "threshold" ? e.prediction.threshold : null,
    accept: e.papers.filter((p) => p.truth).map((p) => p.score),
    reject: e.papers.filter((p) => !p.truth).map((p) => p.score),
    roc: { fpr: roc.fpr, tpr: roc.tpr },
    auc: finite(e.metrics.auc.value),
    aucLo: finite(e.metrics.auc.lo),
    aucHi: finite(e.metrics.auc.hi),
    point:
      tpr === null || fpr === null
        ? null
        : { fpr, tpr, label: `${e.prediction.by === "threshold" ? `Overall >= ${e.prediction.threshold}` : "Decision"} (FPR ${fpr.toFixed(2)}, TPR ${tpr.toFixed(2)})` },
  };
}

/**
 * Writes one PNG with two panels: Overall histograms of truly accepted and rejected papers, and the ROC
 * curve with the chance diagonal and the AUC. It runs plot.py with a Python that has matplotlib; without
 * one it writes nothing and says how to get it, since the metrics do not depend on the picture.
 */
export async function writeBenchPlot(e: Evaluation, title: string, file: string, opts: PlotOptions = {}): Promise<PlotResult> {
  const python = opts.python === undefined ? await findPython(["matplotlib"], opts.env ? { env: opts.env } : {}) : opts.python;
  if (!python) return { written: false, reason: "no Python with matplotlib was found (tried SWARM_PYTHON, python3 on PATH, /usr/bin/python3)", fix: PLOT_FIX };
  // A picture left from an earlier run must not pass for this one.
  await rm(file, { force: true });
  const result = await execa(python.path, [SCRIPT], {
    input: JSON.stringify(plotData(e, title, file)),
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...(opts.env ?? process.env), MPLBACKEND: "Agg" },
    extendEnv: false,
  });
  if (result.exitCode !== 0 || result.timedOut || !existsSync(file)) {
    const why = result.timedOut ? "timed out" : result.stderr.trim().split("\n").slice(-3).join(" | ") || `exit code ${result.exitCode}, no file`;
    return { written: false, reason: `${python.path} could not draw the picture: ${why}`, fix: PLOT_FIX };
  }
  return { written: true, file, python: python.path };
}
