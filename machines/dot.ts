import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from "xstate";
import { machines, type Role } from "./index.js";
import { eventLabel, guardLabel, sourceName } from "./transitionLabels.js";

/**
 * The SVG element id of a state of one of the swarm's machines: `state-<role>-<key>.<key>…`, its path from the
 * root as xstate's `snapshot.value` nests the keys (`state-coder-running`; `[]` names the whole chart,
 * `state-coder`). A web page lights the current state by adding a class to that element.
 */
export function stateElementId(role: Role, statePath: string[]): string {
  return elementId(role, statePath);
}

/**
 * `stateElementId` for a machine drawn under any name. Ids hold only letters, digits, `-`, `_` and `.`: in the
 * name and in each key every character but an ASCII letter or digit is written as `_<hex code point>_`
 * (`GO-ON` → `GO_2d_ON`), so that `-` and `.` only ever separate and two paths never share an id. `.` must be
 * escaped in a CSS selector (`CSS.escape(id)`); `getElementById` takes the id as it is.
 */
export function elementId(name: string, statePath: readonly string[]): string {
  const safe = (part: string) => [...part].map((c) => (/[A-Za-z0-9]/.test(c) ? c : `_${c.codePointAt(0)!.toString(16)}_`)).join("");
  const id = `state-${safe(name)}`;
  return statePath.length ? `${id}-${statePath.map(safe).join(".")}` : id;
}

/** One of the swarm's machines as a Graphviz DOT graph. */
export function machineDot(role: Role): string {
  return toDot(machines[role], role);
}

/**
 * Draws a machine as a Graphviz `digraph` from its definition alone: no actor is started.
 *
 * Atomic states are rounded boxes, final states double-bordered, history states circles; compound states are
 * clusters (parallel ones and their regions dashed). A filled dot points at each initial state. Every state's
 * node or cluster carries `id` = `elementId(name, path)` and `class` = `state <type>`. Edges are labelled as in
 * the Mermaid drawing: by event; an invoked actor's completion `done(src)`, its failure `error(src)`, a delayed
 * transition `after <delay>`, an eventless one `always`, and a guarded one ends in `[guard]`. A state's self
 * loops are one edge with a line per transition.
 */
export function toDot(machine: AnyStateMachine, name: string): string {
  const drawing = new Drawing(name);
  // Edges first: they say which clusters need an anchor, and the states are drawn knowing that.
  const edges = drawing.edges(machine.root);
  const states = drawing.children(machine.root, "  ");
  return [
    `digraph ${quote(elementId(name, []))} {`,
    `  id=${quote(elementId(name, []))}`,
    '  graph [compound=true, rankdir=TB, nodesep=0.35, ranksep=0.45, fontname="Helvetica", fontsize=12, class="chart"]',
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#4a4a4a", fontname="Helvetica", fontsize=12]',
    '  edge [color="#4a4a4a", fontcolor="#303030", fontname="Helvetica", fontsize=10, arrowsize=0.7, class="transition"]',
    ...states,
    ...edges,
    "}",
    "",
  ].join("\n");
}

class Drawing {
  /** Clusters some edge starts or ends at, by cluster name. */
  private readonly anchored = new Set<string>();

  constructor(private readonly name: string) {}

  children(parent: AnyStateNode, indent: string): string[] {
    const lines: string[] = [];
    const initial = parent.type === "parallel" ? undefined : (parent.initial?.target?.[0] as AnyStateNode | undefined);
    if (initial) {
      const dot = quote(`initial-${this.id(parent)}`);
      const head = this.end(initial, parent, "head");
      lines.push(`${indent}${dot} [shape=point, width=0.13, style=filled, fillcolor="#303030", color="#303030", label="", class="initial"]`);
      lines.push(`${indent}${dot} -> ${head.name}${head.clip ? ` [${head.clip}]` : ""}`);
    }
    for (const child of Object.values(parent.states) as AnyStateNode[]) lines.push(...this.state(child, indent));
    return lines;
  }

  private state(node: AnyStateNode, indent: string): string[] {
    const text = [node.key, ...node.invoke.map((i) => `invoke ${sourceName(i)}`)];
    const id = this.id(node);
    if (node.type === "compound" || node.type === "parallel") {
      const dashed = node.type === "parallel" || node.parent?.type === "parallel";
      return [
        `${indent}subgraph ${quote(cluster(id))} {`,
        `${indent}  id=${quote(id)}; class=${quote(`state ${node.type}`)}; label=${label(text)}; style=${quote(dashed ? "rounded,dashed" : "rounded")}; color="#4a4a4a"`,
        ...(this.anchored.has(cluster(id)) ? [`${indent}  ${quote(anchor(cluster(id)))} [shape=point, style=invis, width=0.01, label=""]`] : []),
        ...this.children(node, `${indent}  `),
        `${indent}}`,
      ];
    }
    const shape = node.type === "history" ? `shape=circle, label=${label([(node as { history?: string }).history === "deep" ? "H*" : "H"])}` : `label=${label(text)}`;
    const final = node.type === "final" ? ", peripheries=2" : "";
    return [`${indent}${quote(id)} [id=${quote(id)}, class=${quote(`state ${node.type}`)}, ${shape}${final}]`];
  }

  edges(parent: AnyStateNode): string[] {
    const lines: string[] = [];
    for (const node of Object.values(parent.states) as AnyStateNode[]) {
      const transitions: AnyTransitionDefinition[] = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
      // Graphviz stacks the labels of a state's self loops on one another, so they share one loop, a line each.
      const loops: string[] = [];
      const edge = (target: AnyStateNode, text: string[]) => {
        const tail = this.end(node, target, "tail");
        const head = this.end(target, node, "head");
        const attributes = [`label=${label(text)}`, tail.clip, head.clip].filter(Boolean).join(", ");
        lines.push(`  ${tail.name} -> ${head.name} [${attributes}]`);
      };
      for (const t of transitions) {
        const text = [eventLabel(node, t), guardLabel(t.guard)].filter(Boolean).join(" ");
        // A transition without a target stays in its state (it only runs actions): drawn as a self loop.
        const targets = t.target?.length ? (t.target as AnyStateNode[]) : [node];
        for (const target of targets) {
          if (target === node) loops.push(text);
          else edge(target, [text]);
        }
      }
      if (loops.length) edge(node, loops);
      lines.push(...this.edges(node));
    }
    return lines;
  }

  /**
   * The DOT end of an edge at `node`, and the attribute that clips it there. Graphviz joins edges to nodes, not
   * clusters, so an edge at a compound state joins its invisible anchor and is clipped at the cluster's border,
   * unless the other end lies inside that cluster, where the border is not between them.
   */
  private end(node: AnyStateNode, other: AnyStateNode, side: "head" | "tail"): { name: string; clip?: string } {
    if (node.type !== "compound" && node.type !== "parallel") return { name: quote(this.id(node)) };
    const name = cluster(this.id(node));
    this.anchored.add(name);
    const inside = node.path.every((key, i) => other.path[i] === key);
    return inside ? { name: quote(anchor(name)) } : { name: quote(anchor(name)), clip: `${side === "head" ? "lhead" : "ltail"}=${quote(name)}` };
  }

  private id(node: AnyStateNode): string {
    return elementId(this.name, node.path);
  }
}

const cluster = (id: string) => `cluster_${id}`;
const anchor = (clusterName: string) => `anchor-${clusterName.slice("cluster_".length)}`;

/** A DOT quoted string of a name or id: only `"` is special there, and elementId lets no `\` through. */
function quote(text: string): string {
  return `"${text.replace(/"/g, '\\"')}"`;
}

/**
 * A DOT label of these lines. Graphviz reads `\` escapes (`\n`, `\N` …) and HTML entities (`&amp;`) in labels,
 * so both are escaped to come out as written; Graphviz escapes `<`, `>`, `&` and `"` in the SVG itself.
 */
function label(lines: string[]): string {
  const escaped = lines.map((line) =>
    line
      .replace(/\\/g, "\\\\")
      .replace(/"/g, '\\"')
      .replace(/&/g, "&amp;")
      .replace(/\r\n|\r|\n/g, "\\n"),
  );
  return `"${escaped.join("\\n")}"`;
}
