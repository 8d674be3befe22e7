import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** A number a run produced or wrote down, and where. */
export interface Fact {
  file: string;
  key: string;
  value: number;
}

export interface Claim {
  /** The number as the paper prints it. */
  number: string;
  where: "abstract" | "results" | "table" | "caption";
  context: string;
  source: Fact | null;
}

/** Below this, an integer is a count or an index (3 datasets, 2 runs), not a result to trace. */
const SMALL_INTEGER = 10;

const NUMBER = /(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])/g;
/** Numbers inside names (`step_val_acc_99`, `steps_to_99.png`): a caption may well repeat them. */
const NAME_NUMBER = /(?<=[_-]|^)\d+(?:\.\d+)?(?=[_.-]|$)/g;

function numbersIn(value: unknown, file: string, key: string, out: Fact[]): void {
  if (typeof value === "number" && Number.isFinite(value)) out.push({ file, key, value });
  else if (Array.isArray(value)) value.forEach((v, i) => numbersIn(v, file, `${key}[${i}]`, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      for (const m of k.matchAll(NAME_NUMBER)) out.push({ file, key: `${key ? `${key}.` : ""}${k} (name)`, value: Number(m[0]) });
      numbersIn(v, file, key ? `${key}.${k}` : k, out);
    }
  }
}

/**
 * Every number in an idea's folder that a paper may quote: results, notes, what each run changed, and the
 * counts of datasets and runs (a template may well have ten datasets).
 */
export function collectFacts(ideaDir: string): Fact[] {
  const facts: Fact[] = [];
  for (const run of readdirSync(ideaDir).filter((f) => /^run_\d+$/.test(f)).sort()) {
    const info = join(ideaDir, run, "final_info.json");
    if (!existsSync(info)) continue;
    const parsed: unknown = JSON.parse(readFileSync(info, "utf8"));
    numbersIn(parsed, `${run}/final_info.json`, "", facts);
    if (parsed && typeof parsed === "object") facts.push({ file: `${run}/final_info.json`, key: "number of datasets", value: Object.keys(parsed).length });
  }
  // A tree search's every node, and its statistics (means and intervals over seeds, gains, counts).
  const tree = join(ideaDir, "tree");
  if (existsSync(tree)) {
    for (const node of readdirSync(tree).sort()) {
      const info = join(tree, node, "final_info.json");
      if (existsSync(info)) numbersIn(JSON.parse(readFileSync(info, "utf8")), `tree/${node}/final_info.json`, "", facts);
    }
  }
  // Of tree.json, its statistics and the nodes' measured values: not its budgets, seeds or depths.
  if (existsSync(join(ideaDir, "tree.json"))) {
    const tree = JSON.parse(readFileSync(join(ideaDir, "tree.json"), "utf8")) as { stats?: unknown; nodes?: { id?: string; value?: unknown }[]; seedRuns?: { id?: string; value?: unknown }[] };
    numbersIn(tree.stats, "tree.json", "stats", facts);
    for (const n of [...(tree.nodes ?? []), ...(tree.seedRuns ?? [])]) numbersIn(n.value, "tree.json", `${n.id}.value`, facts);
  }
  for (const figure of readdirSync(ideaDir).filter((f) => /\.(png|pdf|jpg)$/.test(f))) {
    for (const m of figure.matchAll(NAME_NUMBER)) facts.push({ file: figure, key: "file name", value: Number(m[0]) });
  }
  const notes = join(ideaDir, "notes.txt");
  if (existsSync(notes)) {
    readFileSync(notes, "utf8").split("\n").forEach((line, i) => {
      for (const m of line.matchAll(NUMBER)) facts.push({ file: "notes.txt", key: `line ${i + 1}`, value: Number(m[0]) });
    });
  }
  const runs = join(ideaDir, "runs.json");
  if (existsSync(runs)) {
    const records = JSON.parse(readFileSync(runs, "utf8")) as { run: string; description: string; ok?: boolean }[];
    for (const r of records) {
      for (const m of r.description.matchAll(NUMBER)) facts.push({ file: "runs.json", key: `${r.run}.description`, value: Number(m[0]) });
    }
    const variants = records.filter((r) => r.run !== "run_0");
    facts.push(
      { file: "runs.json", key: "number of runs", value: records.length },
      { file: "runs.json", key: "number of planned variants", value: variants.length },
      { file: "runs.json", key: "number of completed variants", value: variants.filter((r) => r.ok !== false).length },
    );
  }
  return facts;
}

/** The regions whose numbers must be traced: the abstract, the Results section, every table and every caption. */
function regions(tex: string): { where: Claim["where"]; text: string }[] {
  const out: { where: Claim["where"]; text: string }[] = [];
  const abstract = /\\begin\{abstract\}([\s\S]*?)\\end\{abstract\}/.exec(tex);
  if (abstract) out.push({ where: "abstract", text: abstract[1]! });
  const results = /\\section\{Results\}([\s\S]*?)(?=\\section\{|\\bibliography|\\end\{document\})/.exec(tex);
  if (results) {
    // Tables and captions inside Results are checked as such; the prose around them as results.
    out.push({ where: "results", text: results[1]!.replace(/\\begin\{(table|figure)\*?\}[\s\S]*?\\end\{\1\*?\}/g, " ") });
  }
  for (const t of tex.matchAll(/\\begin\{tabular\}(?:\{[^}]*\})?([\s\S]*?)\\end\{tabular\}/g)) out.push({ where: "table", text: t[1]! });
  for (const c of tex.matchAll(/\\caption\{((?:[^{}]|\{[^{}]*\})*)\}/g)) out.push({ where: "caption", text: c[1]! });
  return out;
}

/** Text without what holds names rather than claims: references, labels, file names, run names, comments. */
function claimText(text: string): string {
  return text
    .replace(/(?<!\\)%.*$/gm, "")
    .replace(/\\(?:ref|eqref|cref|Cref|label|cite[tp]?|citeauthor|includegraphics|url|texttt|input)(?:\[[^\]]*\])?\{[^}]*\}/g, " ")
    .replace(/run\\?_\d+/g, " ")
    .replace(/\\(?:[a-zA-Z]+)/g, " ");
}

/** Whether a printed number is this value, at the precision it is printed (or as a percentage of it). */
export function matches(printed: string, value: number, percent: boolean): boolean {
  const decimals = /\.(\d+)/.exec(printed)?.[1]?.length ?? 0;
  const tolerance = 0.5 * 10 ** -decimals + 1e-12;
  const p = Number(printed);
  return Math.abs(p - value) <= tolerance || (percent && Math.abs(p - value * 100) <= tolerance);
}

/** Every number the paper claims, each with the fact it matches or null. */
export function checkClaims(tex: string, facts: Fact[]): Claim[] {
  const claims: Claim[] = [];
  for (const { where, text } of regions(tex)) {
    const clean = claimText(text);
    for (const m of clean.matchAll(/(?<![\w.-])(-?\d+(?:\.\d+)?)(\s*\\?%)?(?![\w])/g)) {
      const printed = m[1]!;
      const isInteger = !printed.includes(".");
      if (isInteger && Math.abs(Number(printed)) < SMALL_INTEGER) continue;
      const percent = Boolean(m[2]);
      const source = facts.find((f) => matches(printed, f.value, percent)) ?? null;
      const at = m.index ?? 0;
      claims.push({
        number: printed + (percent ? "%" : ""),
        where,
        context: clean.slice(Math.max(0, at - 60), at + printed.length + 40).replace(/\s+/g, " ").trim(),
        source,
      });
    }
  }
  return claims;
}

export function unmatched(claims: Claim[]): Claim[] {
  return claims.filter((c) => !c.source);
}
