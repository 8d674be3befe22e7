import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { dictAssignment, findKnob, knobEdits, parseKnobs, sweepValues } from "../llm/offline/knobs.js";
import { SWEEP, fmt, names, tunable } from "../llm/offline/shared.js";
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
  const changes = [...planned.replace(/\(baseline:.*$/, "").matchAll(/([A-Z][A-Z0-9_]*) = (\S+)/g)];
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

respond(coder.fixCode, (d) => {
  // Without a model to read the traceback, go back to the baseline code and make only the planned change.
  const fixed = applyEdits(d.baselineCode, plannedEdits(d.planned, d.baselineCode));
  return { explanation: `restored the baseline and reapplied: ${d.planned} (${OFFLINE_NOTE})`, edits: [{ search: d.code, replace: fixed }] };
});

respond(coder.editPlot, (d) => {
  const lines = d.plotCode.split("\n");
  // The block as written: over several lines or on one, at the top level or indented, comments and all.
  const block = dictAssignment(d.plotCode, "labels");
  if (!block) throw new Error("plot.py assigns no `labels = {…}` dict for the offline coder to edit");
  const indent = " ".repeat(block.indent);
  const entries = d.runs
    .filter((r) => r.ok)
    .map((r) => `${indent}    ${JSON.stringify(r.run)}: ${JSON.stringify(r.run === "run_0" ? "Baseline" : r.description.replace(/^Set /, "").replace(/ \(baseline: [^)]*\)/, ""))},`);
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
