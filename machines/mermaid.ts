import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from "xstate";
import { eventLabel, guardLabel, sourceName } from "./transitionLabels.js";

/**
 * Draws a machine as a Mermaid `stateDiagram-v2` from its definition alone: no actor is started.
 *
 * Edges are labelled by event; an invoked actor's completion reads `done(src)` and its failure `error(src)`,
 * a delayed transition `after <delay>`, an eventless one `always`, and a guarded one ends in `[guard]`.
 * Mermaid's state grammar ends a label at `:` or `;`, hence `done(src)` rather than `done: src`.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const lines = ["stateDiagram-v2"];
  drawChildren(machine.root, lines, "  ");
  return `${lines.join("\n")}\n`;
}

function drawChildren(parent: AnyStateNode, lines: string[], indent: string): void {
  const children = Object.values(parent.states) as AnyStateNode[];
  if (parent.type === "parallel") {
    // Parallel regions are drawn as siblings separated by Mermaid's `--`.
    children.forEach((region, i) => {
      if (i > 0) lines.push(`${indent}--`);
      drawState(region, lines, indent);
    });
    return;
  }
  const initial = parent.initial?.target?.[0] as AnyStateNode | undefined;
  if (initial) lines.push(`${indent}[*] --> ${stateId(initial)}`);
  for (const child of children) drawState(child, lines, indent);
  for (const child of children) drawTransitions(child, lines, indent);
  for (const child of children) if (child.type === "final") lines.push(`${indent}${stateId(child)} --> [*]`);
}

function drawState(node: AnyStateNode, lines: string[], indent: string): void {
  const id = stateId(node);
  if (id !== node.key) lines.push(`${indent}state "${label(node.key)}" as ${id}`);
  if (node.type === "history") lines.push(`${indent}${id} : history`);
  for (const invoke of node.invoke) lines.push(`${indent}${id} : invoke ${label(sourceName(invoke))}`);
  if (node.type === "compound" || node.type === "parallel") {
    lines.push(`${indent}state ${id} {`);
    drawChildren(node, lines, `${indent}  `);
    lines.push(`${indent}}`);
  }
}

function drawTransitions(node: AnyStateNode, lines: string[], indent: string): void {
  const transitions: AnyTransitionDefinition[] = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
  for (const t of transitions) {
    const text = label([eventLabel(node, t), guardLabel(t.guard)].filter(Boolean).join(" "));
    // A transition without a target stays in its state (it only runs actions): drawn as a self loop.
    const targets = t.target?.length ? (t.target as AnyStateNode[]) : [node];
    for (const target of targets) lines.push(`${indent}${stateId(node)} --> ${stateId(target)} : ${text}`);
  }
}

const RESERVED = /^(default|state|note|class|classdef|scale|direction|end|hide|acctitle|accdescr)/i;

/** A Mermaid state id: word characters only, unique per node (its path), never read as a keyword. */
function stateId(node: AnyStateNode): string {
  const id = node.path.join("_").replace(/\W/g, "_") || "root";
  return RESERVED.test(id) ? `s_${id}` : id;
}

/** Mermaid ends a label at `:` `;` or a newline, reads `#` and `%%` as comments or entities, and quotes with `"`. */
function label(text: string): string {
  return text.replace(/[:;#%"<>\r\n]+/g, " ").replace(/\s+/g, " ").trim();
}
