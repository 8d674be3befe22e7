import type { z } from "zod";
import type { Evidence, Idea, RunRecord } from "../../../bus/schemas.js";
import type { Task } from "../task.js";
import * as ideator from "../../ideator/prompts.js";
import * as critic from "../../critic/prompts.js";
import * as coder from "../../coder/prompts.js";
import * as writer from "../../writer/prompts.js";
import * as reviewer from "../../reviewer/prompts.js";
import * as chair from "../../areaChair/prompts.js";
import { dictAssignment, findKnob, innerValues, knobEdits, parseKnobs, sweepValues, texEscape, type Knob } from "./knobs.js";
import { applyEdits } from "../../coder/searchReplace.js";
import { jaccard, keywords } from "../../text.js";

export const OFFLINE_NOTE = "written by the offline stand-in: no language model wrote this";

type Responder = { task: Task<z.ZodObject, z.ZodType>; answer: (data: never) => unknown };
const responders = new Map<string, Responder>();

function respond<D extends z.ZodObject, A extends z.ZodType>(task: Task<D, A>, answer: (data: z.infer<D>) => z.infer<A>): void {
  responders.set(task.name, { task: task as unknown as Task<z.ZodObject, z.ZodType>, answer: answer as (data: never) => unknown });
}

export function responderFor(taskName: string): Responder | undefined {
  return responders.get(taskName);
}

// ---------- ideas: one knob at a time, from the template's own code ----------

const SWEEP = /Set ([A-Z][A-Z0-9_]*) to each of \[([^\]]+)\] \(baseline: ([^)]+)\)(?: with ([A-Z][A-Z0-9_]*) = (\S+?) in every run)?/;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether `text` names the knob: LR is not named by LR_ADAMW. */
function names(text: string, knob: Knob): boolean {
  return new RegExp(`(?<![A-Za-z0-9_])${escape(knob.name)}(?![A-Za-z0-9_])`).test(text);
}

function mentioned(knob: Knob, ideas: Idea[]): boolean {
  const name = new RegExp(`(^|_with_)${escape(knob.name.toLowerCase())}(_sweep|_with_|_revised|$)`);
  return ideas.some((i) => names(`${i.Title} ${i.Experiment}`, knob) || name.test(i.Name));
}

/** The template's numeric knobs that have values to try. */
function tunable(code: string): Knob[] {
  return parseKnobs(code).filter((k) => typeof k.value === "number" && sweepValues(k).length > 0);
}

function sweepIdea(knob: Knob, values: string[], suffix = ""): Idea {
  const what = knob.comment || knob.name.toLowerCase().replace(/_/g, " ");
  return {
    Name: `${knob.name.toLowerCase()}_sweep${suffix}`,
    // The values belong in the title: two sweeps of settings with similar descriptions must not read as near-duplicates.
    Title: `How much does the ${what} matter? ${knob.name} at ${values.join(", ")} against ${knob.literal}${suffix ? ", a finer sweep" : ""}`,
    Experiment: `Set ${knob.name} to each of [${values.join(", ")}] (baseline: ${knob.literal}), one run per value, every other setting unchanged. Compare each metric in final_info.json with the baseline run_0 on every dataset.`,
    Interestingness: 4 + (knob.name.length % 3),
    Feasibility: 9,
    Novelty: 3 + (values.length % 3),
  };
}

/** Once every knob has been swept alone: does one knob's effect depend on another's setting? */
function interactionIdea(a: Knob, b: Knob): Idea {
  const values = sweepValues(a);
  const other = sweepValues(b).at(-1)!;
  return {
    Name: `${a.name.toLowerCase()}_with_${b.name.toLowerCase()}`,
    Title: `Does the effect of ${a.name} depend on ${b.name}? ${a.name} swept with ${b.name} = ${other}`,
    Experiment: `Set ${a.name} to each of [${values.join(", ")}] (baseline: ${a.literal}) with ${b.name} = ${other} in every run, every other setting unchanged. Compare with the baseline run_0 and with the sweep of ${a.name} alone.`,
    Interestingness: 6,
    Feasibility: 8,
    Novelty: 5,
  };
}

respond(ideator.proposeIdea, (d) => {
  const knobs = tunable(d.code);
  if (!knobs.length) {
    throw new Error("the offline ideator found no numeric setting in experiment.py (a constant, a flag's default, a keyword argument or an assignment of a number) to vary");
  }
  const fresh = knobs.find((k) => !mentioned(k, d.archive));
  if (fresh) return sweepIdea(fresh, sweepValues(fresh));
  const taken = new Set(d.archive.map((i) => i.Name));
  for (const a of knobs) {
    for (const b of knobs) {
      if (a !== b && !taken.has(interactionIdea(a, b).Name)) return interactionIdea(a, b);
    }
  }
  const knob = knobs[d.archive.length % knobs.length]!;
  const inner = innerValues(knob, sweepValues(knob));
  const values = inner.length ? inner : sweepValues(knob);
  let suffix = "_2";
  for (let n = 3; taken.has(sweepIdea(knob, values, suffix).Name); n++) suffix = `_${n}`;
  return sweepIdea(knob, values, suffix);
});

respond(ideator.reflectOnIdea, (d) => {
  const m = SWEEP.exec(d.idea.Experiment);
  const found = m ? parseKnobs(d.code).find((k) => k.name === m[1]) : undefined;
  const protocol = " Report the mean and standard error over the template's seeds.";
  const idea = d.idea.Experiment.includes(protocol) ? d.idea : { ...d.idea, Experiment: d.idea.Experiment + protocol };
  return {
    idea,
    done: true,
    thought: found
      ? `checked that experiment.py sets ${found.name} (currently ${found.literal}, in ${found.sites.length === 1 ? "one place" : `${found.sites.length} places`}) and that each value is valid; stated the reporting protocol (${OFFLINE_NOTE})`
      : `the experiment names no knob found in experiment.py; kept it as written (${OFFLINE_NOTE})`,
  };
});

respond(ideator.reviseIdea, (d) => {
  const m = SWEEP.exec(d.idea.Experiment);
  const knob = m ? parseKnobs(d.code).find((k) => k.name === m[1]) : undefined;
  if (!knob) return { ...d.idea, Name: `${d.idea.Name}_revised`, Title: `${d.idea.Title} (revised)` };
  const values = innerValues(knob, m![2]!.split(",").map((s) => s.trim()));
  const idea = sweepIdea(knob, values.length ? values : m![2]!.split(",").map((s) => s.trim()), "_revised");
  return { ...idea, Experiment: `${idea.Experiment} Unlike ${d.verdict.evidence[0]?.title ?? "the work the critic found"}, this isolates the effect close to the default setting.` };
});

// ---------- novelty: keyword search, then overlap with what was found ----------

function judge(idea: Idea, found: Evidence[]): { verdict: "novel" | "not novel" | "revise"; reason: string } {
  const mine = keywords(`${idea.Title} ${idea.Experiment}`, 30);
  const scored = found.map((e) => ({ e, s: jaccard(mine, keywords(e.title, 30)) })).sort((a, b) => b.s - a.s);
  const best = scored[0];
  if (best && best.s >= 0.5) return { verdict: "not novel", reason: `"${best.e.title}" covers the same question (keyword overlap ${best.s.toFixed(2)}); ${OFFLINE_NOTE}` };
  if (best && best.s >= 0.25 && !idea.Name.endsWith("_revised")) {
    return { verdict: "revise", reason: `close to "${best.e.title}" (overlap ${best.s.toFixed(2)}): narrow the question; ${OFFLINE_NOTE}` };
  }
  return {
    verdict: "novel",
    reason: `none of the ${found.length} papers found studies this setting directly${best ? ` (closest: "${best.e.title}", overlap ${best.s.toFixed(2)})` : ""}; ${OFFLINE_NOTE}`,
  };
}

respond(critic.think, (d) => {
  if (d.queries.length === 0) return { thought: "search first", query: keywords(d.idea.Title, 6).join(" ") || d.idea.Title, decision: null };
  // Searches marked "(failed)" reached no literature: with rounds left, try other terms before deciding.
  if (d.queries.every((q) => q.endsWith("(failed)")) && d.round < d.maxRounds) {
    const tried = new Set(d.queries.flatMap((q) => q.replace(/ \(failed\)$/, "").split(" ")));
    const fresh = keywords(`${d.idea.Title} ${d.idea.Experiment}`, 40).filter((w) => !tried.has(w));
    return { thought: "no search has returned yet: try other terms", query: fresh.slice(0, 6).join(" ") || d.idea.Title, decision: null };
  }
  return { thought: "decide on what was found", query: null, decision: judge(d.idea, d.found) };
});
respond(critic.decide, (d) => judge(d.idea, d.found));

// ---------- code: the planned knob value, set wherever the code sets it ----------

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

/** A result as the paper prints it: integers (a count, a step) as integers, small values to three digits. */
function fmt(x: number): string {
  if (!Number.isFinite(x)) return "--";
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a < 0.001) return x.toFixed(Math.min(20, 2 - Math.floor(Math.log10(a))));
  return a >= 100 ? x.toFixed(1) : a >= 1 ? x.toFixed(3) : x.toFixed(4);
}

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

// ---------- the paper: every number from final_info.json ----------

interface Table {
  datasets: string[];
  /** The metric the table reports: the first held-out one, else the first that is not a cost. */
  metric: string;
  /** Every metric final_info.json reports, in its order. */
  metrics: string[];
  rows: { run: RunRecord; values: Record<string, number> }[];
}

const COST_METRIC = /time|(^|_)s$|seconds|duration|memory|params|flops/i;

function tableOf(runs: RunRecord[]): Table {
  const ok = runs.filter((r) => r.ok && r.results);
  const datasets = Object.keys(ok[0]?.results ?? {});
  const metrics = [...new Set(datasets.flatMap((ds) => Object.keys(ok[0]?.results?.[ds]?.means ?? {})))];
  const metric = metrics.find((m) => /val|test|eval/i.test(m) && !COST_METRIC.test(m)) ?? metrics.find((m) => !COST_METRIC.test(m)) ?? metrics[0] ?? "metric";
  return { datasets, metric, metrics, rows: ok.map((run) => ({ run, values: Object.fromEntries(datasets.map((ds) => [ds, run.results![ds]?.means[metric] ?? NaN])) })) };
}

/** Names in prose: "a", "a and b", "a, b and c". */
function list(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/** The description's sentences, with abbreviations such as "et al." kept inside their sentence. */
function sentences(text: string): string[] {
  const out: string[] = [];
  for (const piece of text.replace(/\s+/g, " ").trim().split(/(?<=[.!?])\s+(?=["'(A-Z])/)) {
    if (out.length && /\b(al|e\.g|i\.e|etc|vs|cf|Fig|Eq|approx)\.$/.test(out[out.length - 1]!)) out[out.length - 1] += ` ${piece}`;
    else out.push(piece);
  }
  return out.filter(Boolean);
}

/**
 * What the template's program does, in the paper's voice, from the task description of its prompt.json
 * ("You are given the following file to work with, which trains …"): its first sentence (the lead), or, as
 * the detail, the next one when that goes on describing the program ("It trains …"). Instructions to the
 * model are left out.
 */
function taskSummary(task: string, part: "lead" | "detail"): string {
  const [first, second] = sentences(task);
  if (!first) return "The program studied here is the template's experiment.py.";
  const given = /^You are given (?:the following (?:file|code|script)(?: to work with)?|(?:the (?:file|script) )?experiment\.py)\s*,?\s*/i;
  let lead = first;
  if (given.test(first)) {
    const rest = first.replace(given, "");
    lead = /^(?:that|which)\s/i.test(rest)
      ? `The program studied here ${rest.replace(/^(?:that|which)\s+/i, "")}`
      : /^in which\s/i.test(rest)
        ? `In the program studied here, ${rest.replace(/^in which\s+/i, "")}`
        : /^(?:a|an|the)\s/i.test(rest)
          ? `The program studied here, experiment.py, is ${rest}`
          : `The program studied here: ${rest}`;
  } else if (/^(?:you|your|please)\b/i.test(first)) {
    lead = `The template's task: ${first}`;
  }
  // The detail is the sentence after the lead, when it goes on about the program; else the lead again.
  return part === "detail" && second && /^(?:It|The (?:script|program|file|model))\s/.test(second) ? second.replace(/^It\s/, "The program ") : lead;
}

const label = (r: RunRecord) => (r.run === "run_0" ? "baseline" : r.description.replace(/^Set /, "").replace(/ \(baseline: [^)]*\)/, ""));

function bestChange(t: Table): { ds: string; row: Table["rows"][number]; base: number } | undefined {
  const base = t.rows.find((r) => r.run.run === "run_0");
  if (!base) return undefined;
  let best: { ds: string; row: Table["rows"][number]; base: number; gap: number } | undefined;
  for (const row of t.rows) {
    if (row === base) continue;
    for (const ds of t.datasets) {
      const gap = Math.abs(row.values[ds]! - base.values[ds]!);
      if (!best || gap > best.gap) best = { ds, row, base: base.values[ds]!, gap };
    }
  }
  return best;
}

/** The metrics final_info.json reports besides the main one, for each dataset and completed run (by name). */
function metricsTable(t: Table): string {
  const others = t.metrics.filter((m) => m !== t.metric);
  const header = `Dataset & Run & ${others.map(texEscape).join(" & ")} \\\\`;
  const blocks = t.datasets.map((ds) =>
    t.rows.map((r, i) => `${i === 0 ? texEscape(ds) : ""} & ${texEscape(r.run.run)} & ${others.map((m) => fmt(r.run.results?.[ds]?.means[m] ?? NaN)).join(" & ")} \\\\`).join("\n"),
  );
  // A table wider than the text is scaled down to fit.
  const width = Math.max(...t.datasets.map((ds) => ds.length)) + 6 + others.reduce((n, m) => n + Math.max(m.length, 7) + 2, 0);
  const tabular = `\\begin{tabular}{ll${"r".repeat(others.length)}}\n\\toprule\n${header}\n\\midrule\n${blocks.join("\n\\midrule\n")}\n\\bottomrule\n\\end{tabular}`;
  const caption = `The other metrics in final\\_info.json (mean over seeds), per dataset and run (as listed in the method).`;
  return `\\begin{table}[t]\n\\centering\n\\caption{${caption}}\n\\label{tab:metrics}\n${width > 75 ? `\\resizebox{\\linewidth}{!}{${tabular}}` : tabular}\n\\end{table}`;
}

function figureBlock(file: string, caption: string): string {
  const id = file.replace(/\.[a-z]+$/i, "").replace(/[^A-Za-z0-9]+/g, "-");
  return `\\begin{figure}[t]\n\\centering\n\\includegraphics[width=0.85\\linewidth]{${file}}\n\\caption{${caption}}\n\\label{fig:${id}}\n\\end{figure}`;
}

respond(writer.writeSection, (d) => {
  const t = tableOf(d.runs);
  const metric = texEscape(t.metric);
  const metrics = list(t.metrics.map(texEscape));
  const knobRuns = d.runs.filter((r) => r.run !== "run_0");
  const best = bestChange(t);
  const cites = d.citations.map((c) => c.key);
  const headline = best
    ? `The largest change is on ${texEscape(best.ds)}: ${texEscape(label(best.row.run))} gives ${metric} ${fmt(best.row.values[best.ds]!)} against ${fmt(best.base)} for the baseline.`
    : "No run completed besides the baseline.";
  switch (d.section) {
    case "title":
      return { latex: texEscape(d.idea.Title) };
    case "abstract":
      return {
        latex: `We ask: ${texEscape(d.idea.Title.replace(/\?.*$/, "?"))} Starting from the template's baseline, we run ${knobRuns.length} controlled variants (${knobRuns.filter((r) => r.ok).length} completed) and measure ${metrics} on ${t.datasets.length} datasets (${texEscape(t.datasets.join(", "))}). ${headline} ${texEscape(d.disclosure)}`,
      };
    case "introduction":
      return {
        latex: `${texEscape(taskSummary(d.task, "lead"))} This paper isolates one of its settings. ${texEscape(d.idea.Experiment)}\n\nOur contributions are:\n\\begin{itemize}\n\\item a controlled comparison of ${knobRuns.length} settings against a fixed baseline on ${t.datasets.length} datasets;\n\\item the full results, reported in Section~\\ref{sec:results}, with every number taken from the runs' output files.\n\\end{itemize}`,
      };
    case "background":
      return {
        latex: `${texEscape(taskSummary(d.task, "detail")).replace(/\.$/, "")}${cites[0] ? ` \\citep{${cites[0]}}` : ""}. A run is determined by its settings; changing one while holding the others fixed measures its effect on ${metrics}.`,
      };
    case "method":
      return {
        latex: `Each run changes exactly one setting of the baseline program:\n\\begin{itemize}\n${knobRuns.map((r) => `\\item ${texEscape(r.run)}: ${texEscape(r.description)}${r.ok ? "" : " (failed; excluded from the results)"}`).join("\n")}\n\\end{itemize}\nEverything else, including the data and the random seeds, is identical across runs.`,
      };
    case "experimental":
      return {
        latex: `We use the datasets ${texEscape(t.datasets.join(", "))} exactly as the template's \\texttt{experiment.py} prepares them, and report ${metrics} as written to \\texttt{final\\_info.json}, with ${metric} as the main measure. The baseline (run\\_0) is the unchanged template.`,
      };
    case "results": {
      const header = `Run & ${t.datasets.map(texEscape).join(" & ")} \\\\`;
      const rows = t.rows.map((r) => `${texEscape(label(r.run))} & ${t.datasets.map((ds) => fmt(r.values[ds]!)).join(" & ")} \\\\`).join("\n");
      const table = `\\begin{table}[t]\n\\centering\n\\caption{${metric} per dataset (mean over seeds) for each run.}\n\\label{tab:results}\n\\begin{tabular}{l${"r".repeat(t.datasets.length)}}\n\\toprule\n${header}\n\\midrule\n${rows}\n\\bottomrule\n\\end{tabular}\n\\end{table}`;
      const figs = d.figures.map((f) => figureBlock(f, `${texEscape(f.replace(/\.png$/, "").replace(/_/g, " "))} for the baseline and each completed run, from \\texttt{plot.py}.`));
      const refs = d.figures.map((f) => `Figure~\\ref{fig:${f.replace(/\.[a-z]+$/i, "").replace(/[^A-Za-z0-9]+/g, "-")}}`).join(" and ");
      const failed = d.runs.filter((r) => !r.ok);
      const all = t.metrics.length > 1 ? metricsTable(t) : "";
      return {
        latex: `Table~\\ref{tab:results} lists ${metric} for every completed run${all ? `, and Table~\\ref{tab:metrics} the other metrics` : ""}. ${headline}${refs ? ` ${refs} show${d.figures.length === 1 ? "s" : ""} the same runs.` : ""}${failed.length ? ` ${failed.length} planned run(s) failed and are not reported.` : ""} These are results of one template at one scale; they do not establish the effect beyond this setting.\n\n${table}${all ? `\n\n${all}` : ""}\n\n${figs.join("\n\n")}`,
      };
    }
    case "conclusion":
      return { latex: `${headline} The experiment covers one program and ${t.datasets.length} datasets; the next step is to test whether the effect holds at other scales of the same task.` };
    case "related":
      return {
        latex: d.citations.length
          ? `Closest to this work are ${d.citations.map((c) => `\\citet{${c.key}}`).join(", ")}, found by the literature search. ${d.citations.map((c) => `\\citet{${c.key}} study ${texEscape(c.title.replace(/[.]$/, ""))}`).join("; ")}; here we measure one setting in isolation in a small, fully reproducible program.`
          : "The literature search found no closely related work to compare with.",
      };
  }
});

respond(writer.reviseSection, (d) => {
  if (d.section !== "conclusion") return { latex: d.latex };
  // The offline writer answers a review by stating its concerns as limitations, where they belong.
  const concerns = /Main concerns: (.*?)(?: Decision:|$)/s.exec(d.metaReview)?.[1]?.trim();
  return {
    latex: `${d.latex}\n\nIn revision, after review: the reviewers' main concerns were these. ${texEscape(concerns ?? d.metaReview.slice(0, 400))} We do not claim more than this study supports, and leave these points as limitations and future work.`,
  };
});

respond(writer.chooseQuery, (d) => {
  if (d.round === 0) return { query: keywords(d.idea.Title, 6).join(" ") };
  if (d.round === 1) return { query: `${keywords(d.idea.Experiment, 3).join(" ")} neural network training` };
  return { query: null };
});

respond(writer.pickCitations, (d) => {
  const mine = keywords(`${d.idea.Title} ${d.idea.Experiment}`, 30);
  return { keys: d.candidates.filter((c) => jaccard(mine, keywords(c.title, 30)) > 0).slice(0, 2).map((c) => c.key) };
});

/**
 * The repairs the offline writer can make without a model: escape characters left bare in prose, and remove a
 * command that LaTeX reported as undefined.
 */
function mechanicalFix(latex: string, errors: string[]): string {
  let out = latex
    .replace(/(?<![\\\d])(\d+(?:\.\d+)?)%/g, "$1\\%")
    .replace(/(?<!\\)#/g, "\\#")
    .replace(/(?<!\\)&(?![^]*\\end\{tabular\})/g, "\\&");
  for (const e of errors) {
    const undefinedCommand = /Undefined control sequence.*?(\\[A-Za-z]+)/.exec(e)?.[1];
    if (undefinedCommand) out = out.split(undefinedCommand).join("");
    const undefinedRef = /Reference `([^']+)' .*undefined/.exec(e)?.[1];
    if (undefinedRef) {
      const label = undefinedRef.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      out = out.replace(new RegExp(`[^.\\n]*\\\\(?:ref|cref|Cref)\\{${label}\\}[^.\\n]*\\.?`, "g"), "");
    }
    const missingFigure = /figure file (\S+) does not exist/.exec(e)?.[1];
    if (missingFigure) {
      const name = missingFigure.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      out = out
        .replace(new RegExp(`\\\\begin\\{figure\\*?\\}(?:(?!\\\\end\\{figure)[\\s\\S])*?\\{${name}\\}[\\s\\S]*?\\\\end\\{figure\\*?\\}`, "g"), "")
        .replace(new RegExp(`\\\\includegraphics(?:\\[[^\\]]*\\])?\\{${name}\\}`, "g"), "");
    }
  }
  return out;
}

respond(writer.fixLatex, (d) => ({
  sections: Object.entries(d.sections)
    .map(([section, latex]) => ({ section: section as writer.Section, latex: mechanicalFix(latex, d.errors) }))
    .filter((s) => s.latex !== d.sections[s.section]),
}));

respond(writer.refineSection, (d) => ({ latex: d.problems.length ? mechanicalFix(d.latex, d.problems) : d.latex }));

respond(writer.fixClaims, (d) => {
  // Without a model to look the right value up, a number that matches nothing is taken out, and says so.
  const numbers = d.unmatched.map((u) => /^(\S+?)%? /.exec(u)?.[1]).filter((n): n is string => Boolean(n));
  return {
    sections: Object.entries(d.sections)
      .map(([section, latex]) => ({
        section: section as writer.Section,
        // Only the number standing alone: the same digits inside a name or a longer number are left as they are.
        latex: numbers.reduce(
          (text, n) => text.replace(new RegExp(`(?<![\\w.-])${n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w]|\\.\\d)`, "g"), "[value removed: not in the results]"),
          latex,
        ),
      }))
      .filter((s) => s.latex !== d.sections[s.section]),
  };
});

// ---------- review: scores from what the paper's text shows ----------

function clamp(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(x)));
}

respond(reviewer.writeReview, (d) => {
  const text = d.text;
  const words = text.split(/\s+/).filter(Boolean).length;
  const numbers = (text.match(/\b\d+\.\d+\b/g) ?? []).length;
  const hasTable = /\bTable\s+\d/.test(text);
  const hasFigure = /\bFigure\s+\d/.test(text);
  const refs = (text.match(/^\s*\[\d+\]|\(\d{4}\)/gm) ?? []).length;
  const skeptic = d.persona % 5 === 3;
  const abstract = /Abstract\s+([\s\S]{0,400})/.exec(text)?.[1]?.replace(/\s+/g, " ").trim() ?? text.slice(0, 300);
  const quality = clamp(1 + (numbers > 10 ? 1 : 0) + (hasTable ? 1 : 0) - (skeptic ? 1 : 0), 1, 4);
  const clarity = clamp(2 + (hasFigure ? 1 : 0) + (words > 1500 ? 1 : 0) - (words < 600 ? 1 : 0), 1, 4);
  const overall = clamp(2 + quality + (hasFigure ? 1 : 0) + (refs > 3 ? 1 : 0) - (skeptic ? 1 : 0) - (words < 800 ? 1 : 0), 1, 10);
  return {
    Summary: `[${OFFLINE_NOTE}] The paper (${words} words) reports: ${abstract}`,
    Strengths: [
      ...(hasTable ? ["Results are reported in a table with the baseline for comparison."] : []),
      ...(hasFigure ? ["Figures show the runs side by side."] : []),
      `Reports ${numbers} numeric results from the experiments.`,
    ],
    Weaknesses: [
      "The study covers one small program and synthetic data; the conclusions may not transfer.",
      ...(refs <= 3 ? ["Few references to prior work."] : []),
      ...(skeptic ? ["Only one setting is varied; interactions with other settings are not examined."] : []),
    ],
    Originality: clamp(1 + (refs > 3 ? 1 : 0), 1, 4),
    Quality: quality,
    Clarity: clarity,
    Significance: 1 + (d.persona % 2),
    Questions: ["Does the effect hold for other model sizes and datasets?"],
    Limitations: ["Small scale; a single template."],
    Ethical_Concerns: false,
    Soundness: quality,
    Presentation: clarity,
    Contribution: clamp(1 + (hasTable ? 1 : 0), 1, 4),
    Overall: overall,
    Confidence: 2 + (d.persona % 3),
    Decision: overall >= 6 ? ("Accept" as const) : ("Reject" as const),
  };
});

respond(reviewer.reflectOnReview, (d) => {
  // Make the decision agree with the overall score, the consistency check a reflection is for.
  const decision = d.review.Overall >= 6 ? ("Accept" as const) : ("Reject" as const);
  return { review: { ...d.review, Decision: decision }, done: true };
});

respond(chair.metaReview, (d) => {
  const overall = d.meanScores.Overall ?? 0;
  const accepts = d.reviews.filter((r) => r.Decision === "Accept").length;
  const decision = overall >= 6 ? ("Accept" as const) : ("Reject" as const);
  const weaknesses = [...new Set(d.reviews.flatMap((r) => r.Weaknesses))];
  return {
    decision,
    metaReview: `[${OFFLINE_NOTE}] ${d.reviews.length} reviews; ${accepts} recommend acceptance; mean Overall ${overall} (Soundness ${d.meanScores.Soundness}, Presentation ${d.meanScores.Presentation}, Contribution ${d.meanScores.Contribution}). Main concerns: ${weaknesses.join(" ")} Decision: ${decision}, by the mean Overall score against the acceptance threshold of 6.`,
  };
});

/** Every task the offline stand-in answers, for tools that must recognise a task from its data alone. */
export function offlineTasks(): Task<z.ZodObject, z.ZodType>[] {
  return [...responders.values()].map((r) => r.task);
}
