import { TREE_STAGES, type TreeNode, type TreeRecord, type TreeStage } from "../../bus/schemas.js";
import type { SearchStats } from "./treeStats.js";

type Status = TreeNode["status"];

const STATUS_COLOURS: Record<Status, { fill: string; stroke: string }> = {
  works: { fill: "#dff0d8", stroke: "#3c763d" },
  buggy: { fill: "#f2dede", stroke: "#a94442" },
  lost: { fill: "#e7e7e7", stroke: "#777777" },
  running: { fill: "#fcf8e3", stroke: "#8a6d3b" },
};
const STAGE_COLOURS: Record<TreeStage, string> = { implement: "#1f77b4", tune: "#ff7f0e", research: "#9467bd", ablate: "#17becf" };
const STATUSES = Object.keys(STATUS_COLOURS) as Status[];
const FINAL_STROKE = "#0b3d91";

const BOX_W = 190;
const BOX_H = 76;
const COL_W = 210;
const ROW_H = 116;
const MARGIN = 20;
const TOP = 64;
const DESCRIPTION_CHARS = 30;

// Characters XML 1.0 forbids even escaped (most controls, lone surrogates, U+FFFE/U+FFFF): a record could hold them.
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Escapes text for both element content and attribute values; the record's text is the coder's, not ours. */
function esc(text: string): string {
  return text.replace(NOT_XML, "\uFFFD").replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** Shortens by code points, before escaping, so that neither a surrogate pair nor an entity is cut in half. */
function shorten(text: string, max: number): string {
  const chars = Array.from(text.replace(/\s+/g, " ").trim());
  return chars.length <= max ? chars.join("") : `${chars.slice(0, max - 1).join("")}…`;
}

const num = (v: number) => v.toPrecision(4);

interface Placed { id: string; node?: TreeNode; depth: number; x: number; children: Placed[] }

/**
 * Lays the tree out with one column per leaf and each parent centred over its children. Nodes whose parent is
 * missing, or that sit on a cycle, hang from the root instead, so that every node of the record is drawn once.
 */
function layout(tree: TreeRecord): { root: Placed; all: Placed[]; columns: number; depth: number } {
  const children = new Map<string, TreeNode[]>();
  for (const node of tree.nodes) children.set(node.parent, [...(children.get(node.parent) ?? []), node]);
  const seen = new Set<string>(["root"]);
  const all: Placed[] = [];
  let column = 0;
  let deepest = 0;
  const place = (id: string, node: TreeNode | undefined, depth: number, extra: TreeNode[]): Placed => {
    const placed: Placed = { id, depth, x: 0, children: [], ...(node ? { node } : {}) };
    all.push(placed);
    deepest = Math.max(deepest, depth);
    for (const child of [...(children.get(id) ?? []), ...extra]) {
      if (seen.has(child.id)) continue;
      seen.add(child.id);
      placed.children.push(place(child.id, child, depth + 1, []));
    }
    const first = placed.children[0];
    const last = placed.children[placed.children.length - 1];
    placed.x = first && last ? (first.x + last.x) / 2 : column++;
    return placed;
  };
  const reachable = new Set<string>(["root"]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const node of tree.nodes) {
      if (!reachable.has(node.id) && reachable.has(node.parent)) {
        reachable.add(node.id);
        grew = true;
      }
    }
  }
  const root = place("root", undefined, 0, tree.nodes.filter((node) => !reachable.has(node.id)));
  return { root, all, columns: Math.max(1, column), depth: deepest };
}

function box(p: Placed, tree: TreeRecord, stats: SearchStats | undefined): string {
  const x = MARGIN + p.x * COL_W + (COL_W - BOX_W) / 2;
  const y = TOP + p.depth * ROW_H;
  const cx = x + BOX_W / 2;
  const chosen = stats?.chosen.find((c) => c.node === p.id);
  const spread = chosen && chosen.summary.n > 1 ? ` · mean ${num(chosen.summary.mean)} (${chosen.summary.n} seeds)` : "";
  const text = (dy: number, content: string, attrs = "") =>
    `<text x="${cx}" y="${y + dy}" text-anchor="middle"${attrs}>${esc(content)}</text>`;
  const node = p.node;
  if (!node) {
    const base = chosen?.seeds[0] === 0 ? num(chosen.values[0]!) : "";
    return [
      `<g id="node-root" class="node baseline">`,
      `<title>baseline: the template's own code</title>`,
      `<rect x="${x}" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="6" fill="#ffffff" stroke="#333333" stroke-width="1.5"/>`,
      text(24, "baseline", ` font-weight="bold"`),
      text(46, "root · the template's code"),
      text(66, base ? `${base}${spread}` : "seed-0 value not given"),
      `</g>`,
    ].join("\n");
  }
  const colours = STATUS_COLOURS[node.status];
  const isFinal = tree.final === node.id;
  const outline = isFinal ? `stroke="${FINAL_STROKE}" stroke-width="4"` : `stroke="${colours.stroke}" stroke-width="1.5"`;
  const value = node.value === undefined ? node.status : `${num(node.value)}${spread}`;
  return [
    `<g id="node-${esc(node.id)}" class="node ${node.status}${isFinal ? " final" : ""}">`,
    `<title>${esc(shorten(`${node.id}: ${node.description ?? node.error ?? node.status}`, 500))}</title>`,
    `<rect x="${x}" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="6" fill="${colours.fill}" ${outline}/>`,
    `<rect x="${x}" y="${y}" width="8" height="${BOX_H}" rx="3" fill="${STAGE_COLOURS[node.stage]}"/>`,
    text(20, `${node.id}${isFinal ? " (final)" : ""} · ${node.stage} · ${node.action}`, ` font-weight="bold"`),
    text(42, shorten(node.description ?? node.error ?? "", DESCRIPTION_CHARS)),
    text(64, value),
    `</g>`,
  ].join("\n");
}

function legend(y: number): { svg: string; width: number } {
  const items: string[] = [];
  let x = MARGIN;
  const item = (swatch: string, label: string) => {
    items.push(`${swatch.replace("{x}", String(x)).replace("{y}", String(y))}<text x="${x + 20}" y="${y + 11}">${esc(label)}</text>`);
    x += 28 + label.length * 7;
  };
  for (const status of STATUSES) {
    const c = STATUS_COLOURS[status];
    item(`<rect x="{x}" y="{y}" width="14" height="14" fill="${c.fill}" stroke="${c.stroke}"/>`, status);
  }
  item(`<rect x="{x}" y="{y}" width="14" height="14" fill="#ffffff" stroke="${FINAL_STROKE}" stroke-width="3"/>`, "final");
  x += 16;
  for (const stage of TREE_STAGES) item(`<rect x="{x}" y="{y}" width="14" height="14" fill="${STAGE_COLOURS[stage]}"/>`, stage);
  return { svg: `<g class="legend">\n${items.join("\n")}\n</g>`, width: x + MARGIN };
}

/** The search as a standalone SVG, the same bytes for the same record: a report can embed it or diff it. */
export function drawTree(tree: TreeRecord, stats?: SearchStats): string {
  const { all, columns, depth } = layout(tree);
  const tried = stats?.variantsTried ?? tree.nodes.filter((node) => node.status !== "running").length;
  const goal = tree.metric.goal === "max" ? "higher is better" : "lower is better";
  const title = `${tree.metric.name} (goal: ${tree.metric.goal}, ${goal}) · ${tried} variant${tried === 1 ? "" : "s"} tried`;
  const c = stats?.confirmation;
  const subtitle = c
    ? `on ${c.seeds.length} fresh seeds the final ${c.holds ? "beats" : "does not clearly beat"} the baseline: gain ${num(c.gain.diff)} [${num(c.gain.lo)}, ${num(c.gain.hi)}] at ${Math.round(c.gain.level * 1000) / 10}%`
    : "";
  const legendY = TOP + (depth + 1) * ROW_H;
  const key = legend(legendY);
  const width = Math.max(2 * MARGIN + columns * COL_W, key.width, 2 * MARGIN + Math.max(title.length, subtitle.length) * 7.5);
  const height = legendY + 14 + MARGIN;
  const edges = all.flatMap((p) =>
    p.children.map((child) => {
      const x1 = MARGIN + p.x * COL_W + COL_W / 2;
      const x2 = MARGIN + child.x * COL_W + COL_W / 2;
      const y1 = TOP + p.depth * ROW_H + BOX_H;
      const y2 = TOP + child.depth * ROW_H;
      return `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#555555" stroke-width="1.2"/>`;
    }),
  );
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${MARGIN}" y="26" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...(subtitle ? [`<text x="${MARGIN}" y="46">${esc(subtitle)}</text>`] : []),
    `<g class="edges">`,
    ...edges,
    `</g>`,
    ...all.map((p) => box(p, tree, stats)),
    key.svg,
    `</svg>`,
    "",
  ].join("\n");
}
