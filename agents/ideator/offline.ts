import type { Idea, PastReview } from "../../bus/schemas.js";
import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { innerValues, parseKnobs, sweepValues, type Knob } from "../llm/offline/knobs.js";
import { SWEEP, names, tunable } from "../llm/offline/shared.js";
import * as ideator from "./prompts.js";
import { nearDuplicate } from "./nearDuplicate.js";

// The offline stand-in's ideas: one knob at a time, from the template's own code.

function mentioned(knob: Knob, ideas: Idea[]): boolean {
  const name = new RegExp(`(^|_with_)${escape(knob.name.toLowerCase())}(_sweep|_with_|_revised|$)`);
  return ideas.some((i) => names(`${i.Title} ${i.Experiment}`, knob) || name.test(i.Name));
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
function interactionIdea(a: Knob, b: Knob, values = sweepValues(a), suffix = ""): Idea {
  const other = sweepValues(b).at(-1)!;
  return {
    Name: `${a.name.toLowerCase()}_with_${b.name.toLowerCase()}${suffix}`,
    Title: `Does the effect of ${a.name} depend on ${b.name}? ${a.name} swept with ${b.name} = ${other}${suffix ? ", a finer sweep" : ""}`,
    Experiment: `Set ${a.name} to each of [${values.join(", ")}] (baseline: ${a.literal}) with ${b.name} = ${other} in every run, every other setting unchanged. Compare with the baseline run_0 and with the sweep of ${a.name} alone.`,
    Interestingness: 6,
    Feasibility: 8,
    Novelty: 5,
  };
}

/** The weakness an interaction answers, when the reviewers raised it; else the one most raised. */
function weaknessToAnswer(review: PastReview): string | undefined {
  return review.weaknesses.find((w) => /interaction|other settings?|one setting|single setting/i.test(w)) ?? review.weaknesses[0];
}

const overallOf = (review: PastReview) => (review.scores.Overall !== undefined ? `, mean Overall ${review.scores.Overall}` : "");

/**
 * The next idea a past review asks for, if one does: a rejected sweep is not repeated but asked again with a
 * second setting changed, its main weakness quoted; an accepted one is built on with a finer sweep. The latest
 * review that no idea answers yet goes first, a rejected one before an accepted one.
 */
function answerReview(knobs: Knob[], d: { archive: Idea[]; reviews?: PastReview[] | undefined }): Idea | undefined {
  const answered = new Set(d.archive.flatMap((i) => i.Answers ?? []));
  const open = (d.reviews ?? []).filter((r) => !answered.has(r.id)).reverse();
  const taken = new Set(d.archive.map((i) => i.Name));
  for (const review of [...open.filter((r) => r.decision === "Reject"), ...open.filter((r) => r.decision === "Accept")]) {
    const m = SWEEP.exec(review.idea.Experiment);
    const knob = m ? knobs.find((k) => k.name === m[1]) : undefined;
    if (!knob) continue;
    const weakness = weaknessToAnswer(review);
    // The weakness as the reviewers wrote it, closing the sentence it ends.
    const quoted = weakness ? `"${weakness}"${/[.!?]$/.test(weakness) ? "" : "."}` : "none named.";
    if (review.decision === "Reject") {
      const partner = knobs.find((b) => b !== knob && b.name !== m![4] && !taken.has(interactionIdea(knob, b).Name));
      if (!partner) continue;
      const idea = interactionIdea(knob, partner);
      // An answer the ideator's own screen would drop as a repeat is no answer: the next review, or a fresh idea.
      if (nearDuplicate(idea, d.archive)) continue;
      const Rationale = `Answers the review of "${review.idea.Title}" (${review.id}), rejected${overallOf(review)}; the reviewers' main weakness: ${quoted} Rather than vary ${knob.name} alone again, this asks whether its effect holds with ${partner.name} changed too, a setting the rejected study did not cover. [${OFFLINE_NOTE}]`;
      return { ...idea, Rationale, Answers: [review.id] };
    }
    const tried = m![2]!.split(",").map((s) => s.trim());
    const inner = innerValues(knob, tried);
    const values = inner.length ? inner : tried;
    const partner = m![4] ? knobs.find((k) => k.name === m![4]) : undefined;
    const finer = (suffix: string) => (partner ? interactionIdea(knob, partner, values, suffix) : sweepIdea(knob, values, suffix));
    let suffix = "_2";
    for (let n = 3; taken.has(finer(suffix).Name); n++) suffix = `_${n}`;
    if (nearDuplicate(finer(suffix), d.archive)) continue;
    const Rationale = `Builds on "${review.idea.Title}" (${review.id}), accepted${overallOf(review)}: a finer sweep of ${knob.name} between its default and the values that paper tried, to locate the effect it found. The reviewers' main weakness there: ${quoted} [${OFFLINE_NOTE}]`;
    return { ...finer(suffix), Rationale, Answers: [review.id] };
  }
  return undefined;
}

respond(ideator.proposeIdea, (d) => {
  const knobs = tunable(d.code);
  if (!knobs.length) {
    throw new Error("the offline ideator found no numeric setting in experiment.py (a constant, a flag's default, a keyword argument or an assignment of a number) to vary");
  }
  const answer = answerReview(knobs, d);
  if (answer) return answer;
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
  const tried = m![2]!.split(",").map((s) => s.trim());
  const inner = innerValues(knob, tried);
  const partner = m![4] ? parseKnobs(d.code).find((k) => k.name === m![4]) : undefined;
  // An interaction stays one: revised into a sweep of its first knob alone, it would repeat what it answered.
  const idea = partner ? interactionIdea(knob, partner, inner.length ? inner : tried, "_revised") : sweepIdea(knob, inner.length ? inner : tried, "_revised");
  // What the idea answered, it still answers.
  const carried = { ...(d.idea.Rationale ? { Rationale: d.idea.Rationale } : {}), ...(d.idea.Answers ? { Answers: d.idea.Answers } : {}) };
  return { ...idea, ...carried, Experiment: `${idea.Experiment} Unlike ${d.verdict.evidence[0]?.title ?? "the work the critic found"}, this isolates the effect close to the default setting.` };
});
