import type { Evidence, Idea } from "../../bus/schemas.js";
import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { jaccard, keywords } from "../text.js";
import * as critic from "./prompts.js";

// The offline stand-in's novelty check: keyword search, then overlap with what was found.

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
