import type { Evidence, Idea, PastReview } from "../../bus/schemas.js";
import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { SWEEP } from "../llm/offline/shared.js";
import { jaccard, keywords } from "../text.js";
import * as critic from "./prompts.js";

// The offline stand-in's novelty check: a repeat of a rejected idea is not new; else keyword search, then
// overlap with what was found.

type Judgement = { verdict: "novel" | "not novel" | "revise"; reason: string };

/** The settings an idea varies, as the offline ideator writes them: `MOMENTUM`, `MOMENTUM+LEARNING_RATE`. */
function varied(experiment: string): string | undefined {
  const m = SWEEP.exec(experiment);
  return m ? [m[1], m[4]].filter(Boolean).join("+") : undefined;
}

/** A rejected idea this one varies the same settings of, while it answers none of its review. */
function repeatOf(idea: Idea, reviews: PastReview[]): PastReview | undefined {
  const mine = varied(idea.Experiment);
  const answers = new Set(idea.Answers ?? []);
  return mine === undefined ? undefined : reviews.find((r) => r.decision === "Reject" && !answers.has(r.id) && varied(r.idea.Experiment) === mine);
}

/** What the idea says it answers, for the reason: the reviews by id, with the weakness its Rationale quotes. */
function answering(idea: Idea, reviews: PastReview[]): string {
  const named = reviews.filter((r) => idea.Answers?.includes(r.id));
  const one = (r: PastReview) => {
    const quoted = r.weaknesses.find((w) => idea.Rationale?.includes(w));
    return `the review of ${r.id} (${r.decision})${quoted ? `, on "${quoted}"` : ""}`;
  };
  return named.length ? `; it answers ${named.map(one).join(" and ")}` : "";
}

function judge(idea: Idea, found: Evidence[], reviews: PastReview[] = []): Judgement {
  const repeat = repeatOf(idea, reviews);
  if (repeat) {
    const weakness = repeat.weaknesses[0] ? `: "${repeat.weaknesses[0]}"` : "";
    return idea.Name.endsWith("_revised")
      ? { verdict: "not novel", reason: `repeats "${repeat.idea.Title}", whose paper was rejected (${repeat.id}), without answering its review${weakness}; ${OFFLINE_NOTE}` }
      : { verdict: "revise", reason: `varies what "${repeat.idea.Title}" varied, whose paper was rejected (${repeat.id}): answer its review${weakness}; ${OFFLINE_NOTE}` };
  }
  const verdict = byLiterature(idea, found);
  return { ...verdict, reason: `${verdict.reason}${answering(idea, reviews)}; ${OFFLINE_NOTE}` };
}

/** The verdict on the papers found (its reason without the offline note). */
function byLiterature(idea: Idea, found: Evidence[]): Judgement {
  const mine = keywords(`${idea.Title} ${idea.Experiment}`, 30);
  const scored = found.map((e) => ({ e, s: jaccard(mine, keywords(e.title, 30)) })).sort((a, b) => b.s - a.s);
  const best = scored[0];
  if (best && best.s >= 0.5) return { verdict: "not novel", reason: `"${best.e.title}" covers the same question (keyword overlap ${best.s.toFixed(2)})` };
  if (best && best.s >= 0.25 && !idea.Name.endsWith("_revised")) {
    return { verdict: "revise", reason: `close to "${best.e.title}" (overlap ${best.s.toFixed(2)}): narrow the question` };
  }
  return {
    verdict: "novel",
    reason: `none of the ${found.length} papers found studies this setting directly${best ? ` (closest: "${best.e.title}", overlap ${best.s.toFixed(2)})` : ""}`,
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
  return { thought: "decide on what was found", query: null, decision: judge(d.idea, d.found, d.reviews) };
});
respond(critic.decide, (d) => judge(d.idea, d.found, d.reviews));
