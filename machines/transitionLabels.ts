import type { AnyStateNode, AnyTransitionDefinition } from "xstate";

/** How a transition is named in every drawing of a machine (Mermaid and SVG): its event, or what xstate makes of one. */
export function eventLabel(node: AnyStateNode, t: AnyTransitionDefinition): string {
  const type = t.eventType;
  if (!type) return "always";
  const delay = (t as { delay?: unknown }).delay;
  if (delay !== undefined) return `after ${typeof delay === "number" ? `${delay}ms` : String(delay)}`;
  for (const [prefix, word] of [
    ["xstate.done.actor.", "done"],
    ["xstate.error.actor.", "error"],
  ] as const) {
    if (type.startsWith(prefix)) {
      const invokeId = type.slice(prefix.length);
      const invoke = node.invoke.find((i) => i.id === invokeId);
      return `${word}(${invoke ? sourceName(invoke) : invokeId})`;
    }
  }
  if (type.startsWith("xstate.done.state.")) return "done";
  return type;
}

export function guardLabel(guard: unknown): string {
  if (guard === undefined) return "";
  if (typeof guard === "string") return `[${guard}]`;
  const named = guard as { type?: unknown; name?: unknown };
  if (typeof named.type === "string") return `[${named.type}]`;
  // An inline arrow takes its property's name, "guard", which says nothing.
  return `[${typeof named.name === "string" && named.name && named.name !== "guard" ? named.name : "inline guard"}]`;
}

/** What an invoked actor is called: its logic's name, or its id. */
export function sourceName(invoke: AnyStateNode["invoke"][number]): string {
  return typeof invoke.src === "string" ? invoke.src : invoke.id;
}
