import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TreeStepResult, type RunRecord, type TreeNode, type TreeRecord } from "../../bus/schemas.js";
import { getDirectory, putArtifact, putDirectory } from "../../bus/artifacts.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { runSandboxed } from "./sandbox.js";
import { valueOf } from "../../machines/metric.js";
import { searchStats, type Interval, type SearchStats } from "./treeStats.js";
import { drawTree } from "./treeDrawing.js";

const FIGURE_SCRIPT = fileURLToPath(new URL("./searchFigure.py", import.meta.url));
/** The search's own figure, beside plot.py's. */
export const SEARCH_FIGURE = "search_tree.png";

/** The nodes the paper shows, in order: each stage's best, the final one, then the ablations that ran. */
export function reportedNodes(tree: TreeRecord): TreeNode[] {
  const ids = [...new Set([...tree.stages.flatMap((s) => (s.best ? [s.best] : [])), ...(tree.final ? [tree.final] : [])])];
  const ablations = tree.nodes.filter((n) => n.stage === "ablate" && n.status === "works").map((n) => n.id);
  return [...new Set([...ids, ...ablations])].map((id) => tree.nodes.find((n) => n.id === id)!).filter(Boolean);
}

/** The run folder each reported node (and the baseline, run_0) is shown as: what the notes, tree.json and the paper call it. */
export function runNames(tree: TreeRecord): Record<string, string> {
  return Object.fromEntries([["root", "run_0"], ...reportedNodes(tree).map((n, i) => [n.id, `run_${i + 1}`])]);
}

/** What a node changes from the baseline: its ancestors' changes and its own, in order. */
export function lineage(tree: TreeRecord, node: TreeNode): string {
  const chain: string[] = [];
  for (let n: TreeNode | undefined = node; n; n = tree.nodes.find((m) => m.id === n!.parent)) chain.unshift(n.description ?? n.id);
  return chain.join("; then ");
}

const stageOf = (tree: TreeRecord, n: TreeNode) =>
  n.id === tree.final ? `${n.stage} stage, chosen` : tree.stages.some((s) => s.best === n.id) ? `best of the ${n.stage} stage` : `${n.stage} stage`;

/**
 * The reported nodes' outputs as run_1, run_2, … in the workspace and the idea's folder (plot.py reads the one,
 * the writer the other), and their records.
 */
export async function treeRuns(ctx: AgentContext, tree: TreeRecord, job: { runId: string; ideaId: string }, ws: string): Promise<RunRecord[]> {
  const ideaPrefix = `${job.runId}/${job.ideaId}`;
  const prefix = `${ideaPrefix}/tree`;
  const runs: RunRecord[] = [];
  const names = runNames(tree);
  for (const node of reportedNodes(tree)) {
    const run = names[node.id]!;
    await getDirectory(ctx.bus, `${prefix}/${node.id}`, join(ws, run), { signal: ctx.signal });
    const record = TreeStepResult.parse(JSON.parse(await readFile(join(ws, run, "node.json"), "utf8")));
    await putDirectory(ctx.bus, join(ws, run), `${ideaPrefix}/${run}`);
    runs.push({ run, description: `${node.id} (${stageOf(tree, node)}): ${lineage(tree, node)}`, ok: true, attempts: 1, ...(record.results ? { results: record.results } : {}) });
  }
  return runs;
}

/** tree.json (the record and its statistics), its drawing (tree.svg) and the search's figure, in the idea's folder. */
export async function writeTreeReport(
  ctx: AgentContext,
  tree: TreeRecord,
  baseline: RunRecord,
  at: { ws: string; prefix: string; python: string; say: (text: string) => Promise<void> },
): Promise<{ stats: SearchStats; figures: string[] }> {
  const stats = searchStats(tree, baseline.results ? valueOf(baseline.results, tree.metric) : undefined);
  const json = JSON.stringify({ ...tree, runs: runNames(tree), stats }, null, 2);
  await writeFile(join(at.ws, "tree.json"), json);
  await putArtifact(ctx.bus, `${at.prefix}/tree.json`, json);
  await putArtifact(ctx.bus, `${at.prefix}/tree.svg`, drawTree(tree, stats));
  await copyFile(FIGURE_SCRIPT, join(at.ws, "searchFigure.py"));
  const res = await runSandboxed({ cwd: at.ws, python: at.python, args: ["searchFigure.py", "tree.json", SEARCH_FIGURE], timeoutMs: 60_000, signal: ctx.signal, log: ctx.log });
  if (!res.ok) {
    // The paper still has plot.py's figures and the table; the drawing (tree.svg) is there for a person.
    ctx.log.warn({ stderr: res.stderr.slice(-500) }, "the search's figure could not be drawn");
    await at.say("the search's figure could not be drawn (matplotlib?); tree.svg has the tree");
    return { stats, figures: [] };
  }
  await putArtifact(ctx.bus, `${at.prefix}/${SEARCH_FIGURE}`, await readFile(join(at.ws, SEARCH_FIGURE)));
  await at.say(`the search: ${stats.variantsTried} variants tried; tree.json, tree.svg and ${SEARCH_FIGURE} written`);
  return { stats, figures: [SEARCH_FIGURE] };
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));
const ci = (s: Interval) => (s.n > 1 ? `${num(s.mean)} ± ${num(s.hi - s.mean)} (${Math.round(s.level * 100)}% CI [${num(s.lo)}, ${num(s.hi)}], n = ${s.n} seeds)` : `${num(s.mean)} (one seed)`);

/**
 * The search in the notes the writer reads: how many variants, the chosen ones with their intervals, the
 * search-time gain with its interval widened for the number of variants tried, the ablations, and whether the
 * gain held on fresh seeds. Every number is here as the paper may print it.
 */
export function searchNotes(tree: TreeRecord, stats: SearchStats): string {
  const names = runNames(tree);
  const runOf = (node: string) => names[node] ?? node;
  const better = tree.metric.goal === "max" ? "higher" : "lower";
  const out = [
    `Search: a tree search over variants (metric ${tree.metric.name}, averaged over the datasets; ${better} is better).`,
    `Variants tried: ${stats.variantsTried} (${stats.variantsWorking} ran, ${stats.variantsTried - stats.variantsWorking} failed, ${stats.debugged} debugging attempts), over the stages ${tree.stages.filter((s) => tree.nodes.some((n) => n.stage === s.stage)).map((s) => s.stage).join(", ")}.`,
    tree.seeded ? `Seeds: each chosen variant was run on ${tree.seeds} seed sets.` : "Seeds: the template fixes its own seeds, so re-runs are reproductions and the intervals below have no spread.",
    "",
    `Chosen variants (${tree.metric.name}, mean over seed sets):`,
    ...stats.chosen.map((c) => `  ${runOf(c.node)} (${c.node === "root" ? "baseline" : `${c.node}, ${c.stage}`}): ${ci(c.summary)}`),
  ];
  if (stats.searchGain) {
    const g = stats.searchGain;
    out.push("", `During the search, the chosen variant's gain over the baseline: ${num(g.diff)}, ${(g.level * 100).toPrecision(3)}% interval [${num(g.lo)}, ${num(g.hi)}] (widened for the ${stats.variantsTried} variants tried; the best of many looks better than it is).`);
  }
  if (stats.ablations.length) {
    out.push("", "Ablations (one change of the chosen variant taken back; worth = how much the chosen variant is better):");
    for (const a of stats.ablations) out.push(`  ${runOf(a.node)} (${a.node}): ${a.description}: ${tree.metric.name} ${num(a.value)}, worth ${num(a.worth)}`);
  }
  const c = stats.confirmation;
  if (c) {
    out.push(
      "",
      `Confirmation on fresh seed sets (${c.seeds.join(", ")}) that the search never saw, ${c.independent ? `on ${c.confirmedBy.join(", ")}, not the node that found it (${c.foundBy})` : `on ${c.confirmedBy.join(", ") || "the same node"} (no other coder node was free)`}:`,
      `  chosen variant ${ci(c.final)}; baseline ${ci(c.baseline)}`,
      `  gain ${num(c.gain.diff)}, ${Math.round(c.gain.level * 100)}% CI [${num(c.gain.lo)}, ${num(c.gain.hi)}]: ${c.holds ? "the gain holds" : "the gain does NOT hold: report it as not confirmed, not as a gain"}.`,
    );
  } else if (tree.final) {
    out.push("", "Confirmation: the re-runs on fresh seeds did not complete; the search-time gain is unconfirmed.");
  }
  return out.join("\n") + "\n";
}
