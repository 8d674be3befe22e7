import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { dictAssignment, findKnob, knobEdits, parseKnobs, sweepValues } from "../llm/offline/knobs.js";
import { SWEEP, fmt, names, tunable } from "../llm/offline/shared.js";
import type { Knob } from "../llm/offline/knobs.js";
import { applyEdits } from "./searchReplace.js";
import * as coder from "./prompts.js";

// The offline stand-in's code: the planned knob value, set wherever the code sets it.

respond(coder.planRuns, (d) => {
  const knobs = parseKnobs(d.code);
  const m = SWEEP.exec(d.idea.Experiment);
  const knob = knobs.find((k) => k.name === m?.[1]) ?? knobs.find((k) => names(d.idea.Experiment, k) && typeof k.value === "number") ?? tunable(d.code)[0];
  if (!knob) throw new Error("the offline coder found no numeric knob in experiment.py to plan runs on");
  const values = m && knob.name === m[1] ? m[2]!.split(",").map((s) => s.trim()) : sweepValues(knob);
  const also = m?.[4] ? ` and ${m[4]} = ${m[5]}` : "";
  return { runs: values.slice(0, d.maxRuns).map((v) => ({ description: `Set ${knob.name} = ${v}${also} (baseline: ${knob.literal})` })) };
});

/** The edits that make every `NAME = value` change the planned run names, at every place the knob is set. */
function plannedEdits(planned: string, code: string, baselineCode = code): { search: string; replace: string }[] {
  const changes = [...planned.replace(/\((?:baseline|parent):.*$/, "").matchAll(/([A-Z][A-Z0-9_]*) = (\S+)/g)];
  if (!changes.length) throw new Error(`the offline coder cannot read the planned change "${planned}"`);
  const wanted = new Map(changes.map(([, name, value]) => [name!, value!]));
  return knobEdits(
    code,
    [...wanted].map(([name, value]) => {
      const knob = findKnob(name, code, baselineCode);
      if (!knob) throw new Error(`experiment.py sets no knob named ${name} (it has ${parseKnobs(code).map((k) => k.name).join(", ") || "none"})`);
      return { knob, value };
    }),
  );
}

respond(coder.editCode, (d) => ({ explanation: `${d.planned} (${OFFLINE_NOTE})`, edits: plannedEdits(d.planned, d.code, d.baselineCode) }));

/**
 * A planned change whose run failed with the knob's name in its stderr (a value the program refuses), pulled
 * halfway back towards the value that ran; the change as it was otherwise.
 */
function backedOff(planned: string, stderrTail: string, baselineCode: string): string {
  return planned.replace(/([A-Z][A-Z0-9_]*) = (\S+)/g, (whole, name: string, value: string) => {
    const before = findKnob(name, baselineCode)?.value;
    const now = Number(value);
    if (!names(stderrTail, { name } as never) || typeof before !== "number" || !Number.isFinite(now)) return whole;
    const half = (before + now) / 2;
    return `${name} = ${Number.isInteger(before) && Number.isInteger(now) ? Math.round(half) : Number(half.toPrecision(3))}`;
  });
}

respond(coder.fixCode, (d) => {
  // Without a model to read the traceback, go back to the code that ran and make only the planned change, backed
  // off where the error names the knob it changes.
  const change = backedOff(d.planned.replace(/\((?:baseline|parent):.*$/, "").trim(), d.stderrTail, d.baselineCode);
  const fixed = applyEdits(d.baselineCode, plannedEdits(change, d.baselineCode));
  return { explanation: `${change} (restored the code that ran and reapplied the change; ${OFFLINE_NOTE})`, edits: [{ search: d.code, replace: fixed }] };
});

/** The changes a stage may try from a parent, in a fixed order; a parent's k-th child takes the k-th. */
function variantCandidates(d: { idea: { Experiment: string }; stage: string; code: string; baselineCode: string }): { name: string; value: string; from: string }[] {
  const knobs = parseKnobs(d.code);
  const base = new Map(parseKnobs(d.baselineCode).map((k) => [k.name, k]));
  const named = (k: Knob) => names(d.idea.Experiment, k);
  const sweep = (k: Knob) => sweepValues(k).map((value) => ({ name: k.name, value, from: k.literal }));
  switch (d.stage) {
    case "implement": {
      const m = SWEEP.exec(d.idea.Experiment);
      const knob = knobs.find((k) => k.name === m?.[1]) ?? knobs.find((k) => named(k) && typeof k.value === "number") ?? tunable(d.code)[0];
      if (!knob) return [];
      const values = m && knob.name === m[1] ? m[2]!.split(",").map((s) => s.trim()).filter((v) => v !== knob.literal) : sweepValues(knob);
      return values.map((value) => ({ name: knob.name, value, from: knob.literal }));
    }
    case "tune": {
      // The settings the idea does not name, one value of each in turn.
      const lists = tunable(d.code).filter((k) => !named(k) && base.get(k.name)?.literal === k.literal).map(sweep);
      const out: { name: string; value: string; from: string }[] = [];
      for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (l[i]) out.push(l[i]!);
      return out;
    }
    case "research":
      return tunable(d.code).filter(named).flatMap(sweep);
    default:
      // Ablation: each setting that differs from the baseline, taken back on its own.
      return knobs.flatMap((k) => {
        const b = base.get(k.name);
        return b && b.literal !== k.literal ? [{ name: k.name, value: b.literal, from: k.literal }] : [];
      });
  }
}

respond(coder.makeVariant, (d) => {
  const candidates = variantCandidates(d);
  if (!candidates.length) throw new Error(`the offline coder found no setting in experiment.py to change in the ${d.stage} stage`);
  const fresh = candidates.filter((c) => !d.tried.some((t) => t.startsWith(`Set ${c.name} = ${c.value} `)));
  // Siblings made since the last one finished took the next candidates, in order.
  const pick = (fresh.length ? fresh : candidates)[Math.max(0, d.sibling - d.tried.length) % (fresh.length || candidates.length)]!;
  const description = `Set ${pick.name} = ${pick.value} (parent: ${pick.from})${d.stage === "ablate" ? ", taking this change back" : ""}`;
  return { description, edits: plannedEdits(description, d.code, d.baselineCode) };
});

/**
 * The offline stand-in's own plot script, for figures the critic found wanting: from the final_info.json of every
 * run folder beside it, one bar chart per metric (at most four), a group of bars per dataset and a bar per run, with its
 * standard error where the run gives one, labelled axes and a legend that says what each run changed.
 */
function genericPlot(labels: Record<string, string>): string {
  return `"""Plots every run_*/final_info.json in this folder: one bar chart per metric, a bar per run and dataset.

Written by the offline stand-in (${OFFLINE_NOTE}) after the figure critic found the figures wanting.
"""
import glob
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = json.loads(${JSON.stringify(JSON.stringify(labels))})


def run_number(folder):
    digits = re.sub(r"\\D", "", folder)
    return int(digits) if digits else 0


def main():
    runs = {}
    for path in sorted(glob.glob("run_*/final_info.json"), key=lambda p: run_number(os.path.dirname(p))):
        with open(path) as f:
            runs[os.path.dirname(path)] = json.load(f)
    if not runs:
        raise SystemExit("plot.py: no run_*/final_info.json to plot")
    datasets = list(next(iter(runs.values())).keys())
    metrics = []
    for info in runs.values():
        for entry in info.values():
            for metric in entry.get("means", {}):
                if metric not in metrics:
                    metrics.append(metric)
    colors = plt.get_cmap("tab10").colors
    width = 0.8 / len(runs)
    x = np.arange(len(datasets))
    for metric in metrics[:4]:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, (folder, info) in enumerate(runs.items()):
            means = [info.get(d, {}).get("means", {}).get(metric, np.nan) for d in datasets]
            errs = [info.get(d, {}).get("stderrs", {}).get(metric, 0.0) for d in datasets]
            offset = (i - (len(runs) - 1) / 2.0) * width
            ax.bar(x + offset, means, width, yerr=errs, capsize=3, label=LABELS.get(folder, folder), color=colors[i % len(colors)])
        name = metric.replace("_", " ")
        ax.set_xticks(x)
        ax.set_xticklabels(datasets)
        ax.set_xlabel("dataset")
        ax.set_ylabel(name)
        ax.set_title(name + " per dataset and run")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(re.sub(r"[^A-Za-z0-9_-]+", "_", metric) + ".png", dpi=150)
        plt.close(fig)
    print("plot.py: wrote one figure per metric for " + ", ".join(runs))


if __name__ == "__main__":
    main()
`;
}

/** A run's legend label: what it changed, or "Baseline". */
const runLabel = (r: { run: string; description: string }) => (r.run === "run_0" ? "Baseline" : r.description.replace(/^Set /, "").replace(/ \(baseline: [^)]*\)/, ""));

respond(coder.editPlot, (d) => {
  if (d.critiques.length) {
    // Without a model to read the critique, the template's plot.py gives way to a plain plot of every run's results.
    const labels = Object.fromEntries(d.runs.filter((r) => r.ok).map((r) => [r.run, runLabel(r)]));
    const wanting = d.critiques.map((c) => `${c.figure}: ${c.problems.map((p) => p.kind).join(", ")}`).join("; ");
    return { explanation: `replaced plot.py by a bar chart per metric of every run, for the figure critic (${wanting}) (${OFFLINE_NOTE})`, edits: [{ search: d.plotCode, replace: genericPlot(labels) }] };
  }
  const lines = d.plotCode.split("\n");
  // The block as written: over several lines or on one, at the top level or indented, comments and all.
  const block = dictAssignment(d.plotCode, "labels");
  if (!block) throw new Error("plot.py assigns no `labels = {…}` dict for the offline coder to edit");
  const indent = " ".repeat(block.indent);
  const entries = d.runs
    .filter((r) => r.ok)
    .map((r) => `${indent}    ${JSON.stringify(r.run)}: ${JSON.stringify(runLabel(r))},`);
  const search = lines.slice(block.first, block.last + 1).join("\n");
  const head = lines[block.first]!.slice(0, block.indent);
  return {
    explanation: `label the baseline and the ${entries.length - 1} successful runs (${OFFLINE_NOTE})`,
    edits: [{ search, replace: [`${head}labels = {`, ...entries, `${indent}}${lines[block.last]!.slice(block.after)}`].join("\n") }],
  };
});

respond(coder.writeNotes, (d) => {
  const out = [`Notes on "${d.idea.Title}" (${OFFLINE_NOTE}).`, "", `Experiment: ${d.idea.Experiment}`, ""];
  for (const r of d.runs) {
    out.push(`${r.run}: ${r.description}${r.ok ? "" : ` — FAILED after ${r.attempts} attempts`}`);
    for (const [dataset, v] of Object.entries(r.results ?? {})) {
      out.push(`  ${dataset}: ${Object.entries(v.means).map(([k, x]) => `${k} = ${fmt(x)}`).join(", ")}`);
    }
  }
  out.push("", "Figures:");
  for (const f of d.figures) out.push(`  ${f}: made by plot.py from the runs above (baseline and each successful run), as named by its file.`);
  return { notes: out.join("\n") + "\n" };
});
