import type { FigureCritique, RunRecord } from "../../bus/schemas.js";
import { respond } from "../llm/offline/registry.js";
import { texEscape } from "../tools/latex.js";
import { fmt } from "../llm/offline/shared.js";
import { jaccard, keywords } from "../text.js";
import * as writer from "./prompts.js";
import { sentencesOf } from "../figureCritic/check.js";
import { plainText } from "../figureCritic/captions.js";

// The offline stand-in's paper: every number from final_info.json.

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

/**
 * A figure's caption: what the figure critic's model saw in it, when one looked, with what it found still wrong;
 * else what the figure is made from, by its name.
 */
function figureCaption(file: string, critique: FigureCritique | undefined): string {
  const plain = `${texEscape(file.replace(/\.png$/, "").replace(/_/g, " "))} for the baseline and each completed run, from \\texttt{plot.py}.`;
  if (!critique?.seen) return plain;
  const problems = critique.problems.map((p) => texEscape(p.detail.replace(/[.]$/, "")));
  return `${texEscape(critique.shows.trim().replace(/[.]?$/, "."))}${problems.length ? ` Not resolved: ${problems.join("; ")}.` : ""}`;
}

function figureBlock(file: string, caption: string): string {
  const id = file.replace(/\.[a-z]+$/i, "").replace(/[^A-Za-z0-9]+/g, "-");
  return `\\begin{figure}[t]\n\\centering\n\\includegraphics[width=0.85\\linewidth]{${file}}\n\\caption{${caption}}\n\\label{fig:${id}}\n\\end{figure}`;
}

/** What a tree search found, in the paper's words: the count of variants, and whether the gain held on fresh seeds. */
function searchSentence(search: writer.SearchSummary): string {
  const c = search.confirmation;
  const tried = `A tree search tried ${search.variantsTried} variants (${search.variantsWorking} ran; ${search.debugged} debugging attempts).`;
  if (!c) return `${tried} Its choice was not re-run on fresh seeds, so its gain is unconfirmed.`;
  const metric = texEscape(search.metric.name);
  const sets = c.seeds.length === 1 ? "one fresh seed set" : `${c.seeds.length} fresh seed sets`;
  const where = search.seeded ? `On ${sets} that the search never saw` : "Run again (the program fixes its own seeds, so this is a reproduction, not a confirmation)";
  return `${tried} ${where}${c.independent ? ", on another machine than the one that found it," : ""} the chosen variant gives ${metric} ${fmt(c.final.mean)} against ${fmt(c.baseline.mean)} for the baseline, a difference of ${fmt(c.gain.diff)} (${Math.round(c.gain.level * 100)}\\% CI [${fmt(c.gain.lo)}, ${fmt(c.gain.hi)}]): ${c.holds ? "the gain holds." : c.final.n > 1 && c.baseline.n > 1 ? "the gain does not hold up, and we do not claim it." : "one run a side cannot confirm a gain, and we do not claim one."}`;
}

/** The search's table (mean and interval over seeds per chosen variant), its ablations, and what the interval means. */
function searchResults(search: writer.SearchSummary): string {
  const metric = texEscape(search.metric.name);
  const level = Math.round((search.chosen[0]?.summary.level ?? 0.95) * 100);
  const rows = search.chosen.map((c) => `${texEscape(c.run.replace(/_/g, " "))} & ${texEscape(c.stage)} & ${fmt(c.summary.mean)} & [${fmt(c.summary.lo)}, ${fmt(c.summary.hi)}] & ${c.summary.n} \\\\`).join("\n");
  const table = `\\begin{table}[t]\n\\centering\n\\caption{${metric} of the variants the search chose, mean over seed sets with its ${level}\\% confidence interval.}\n\\label{tab:search}\n\\begin{tabular}{llrrr}\n\\toprule\nRun & Stage & Mean & CI & Seeds \\\\\n\\midrule\n${rows}\n\\bottomrule\n\\end{tabular}\n\\end{table}`;
  const gain = search.searchGain
    ? ` During the search the chosen variant's gain over the baseline was ${fmt(search.searchGain.diff)}; widened for the ${search.variantsTried} variants tried, its ${(search.searchGain.level * 100).toFixed(1)}\\% interval is [${fmt(search.searchGain.lo)}, ${fmt(search.searchGain.hi)}], since the best of many variants looks better than it is.`
    : "";
  const ablations = search.ablations.length
    ? `\n\n\\subsection{Ablations}\nEach ablation takes one change of the chosen variant back and keeps the rest:\n\\begin{itemize}\n${search.ablations.map((a) => `\\item ${texEscape(a.description)}: ${metric} ${fmt(a.value)}, which makes the change worth ${fmt(a.worth)}.`).join("\n")}\n\\end{itemize}`
    : "";
  return `Table~\\ref{tab:search} gives the variants the tree search chose.${search.seeded ? "" : " The template fixes its own seeds, so its re-runs are reproductions and the intervals have no spread."}${gain} ${searchSentence(search)}\n\n${table}${ablations}`;
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
        latex: `We ask: ${texEscape(d.idea.Title.replace(/\?.*$/, "?"))} Starting from the template's baseline, we run ${knobRuns.length} controlled variants (${knobRuns.filter((r) => r.ok).length} completed) and measure ${metrics} on ${t.datasets.length} datasets (${texEscape(t.datasets.join(", "))}). ${headline}${d.search ? ` ${searchSentence(d.search)}` : ""} ${texEscape(d.disclosure)}`,
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
      const figs = d.figures.map((f) =>
        figureBlock(f, f === d.search?.figure
          ? `Every variant the tree search ran, in the order it made them, coloured by stage, with its ${metric}; the star is the variant it chose.`
          : figureCaption(f, d.figureCritiques?.find((c) => c.figure === f))));
      const refs = d.figures.map((f) => `Figure~\\ref{fig:${f.replace(/\.[a-z]+$/i, "").replace(/[^A-Za-z0-9]+/g, "-")}}`).join(" and ");
      const failed = d.runs.filter((r) => !r.ok);
      const all = t.metrics.length > 1 ? metricsTable(t) : "";
      return {
        latex: `Table~\\ref{tab:results} lists ${metric} for every completed run${all ? `, and Table~\\ref{tab:metrics} the other metrics` : ""}. ${headline}${refs ? ` ${refs} show${d.figures.length === 1 ? "s" : ""} the same runs.` : ""}${failed.length ? ` ${failed.length} planned run(s) failed and are not reported.` : ""} These are results of one template at one scale; they do not establish the effect beyond this setting.\n\n${table}${all ? `\n\n${all}` : ""}${d.search ? `\n\n${searchResults(d.search)}` : ""}\n\n${figs.join("\n\n")}`,
      };
    }
    case "conclusion":
      return { latex: `${headline}${d.search ? ` ${searchSentence(d.search)}` : ""} The experiment covers one program and ${t.datasets.length} datasets; the next step is to test whether the effect holds at other scales of the same task.` };
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

respond(writer.rewriteCaption, (d) => {
  // Without a model to look at the figure: a claim the critic's model saw is false gives way to what it saw; a
  // sentence the critic quoted for naming a run with no data is taken out.
  const claims = d.problems.some((p) => p.kind === "caption-claims");
  const quoted = d.problems.filter((p) => p.kind === "missing-data").map((p) => p.detail);
  const kept = claims ? [] : sentencesOf(d.caption).filter((s) => !quoted.some((q) => q.includes(plainText(s).slice(0, 200))));
  const plain = `${texEscape(d.figure.replace(/\.png$/, "").replace(/_/g, " "))}, as \\texttt{plot.py} draws it from the runs with results.`;
  return { caption: kept.length ? kept.join(" ") : claims ? texEscape(d.shows) : plain };
});
