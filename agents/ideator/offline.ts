import type { Idea } from "../../bus/schemas.js";
import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { innerValues, parseKnobs, sweepValues, type Knob } from "../llm/offline/knobs.js";
import { SWEEP, names, tunable } from "../llm/offline/shared.js";
import * as ideator from "./prompts.js";

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
function interactionIdea(a: Knob, b: Knob): Idea {
  const values = sweepValues(a);
  const other = sweepValues(b).at(-1)!;
  return {
    Name: `${a.name.toLowerCase()}_with_${b.name.toLowerCase()}`,
    Title: `Does the effect of ${a.name} depend on ${b.name}? ${a.name} swept with ${b.name} = ${other}`,
    Experiment: `Set ${a.name} to each of [${values.join(", ")}] (baseline: ${a.literal}) with ${b.name} = ${other} in every run, every other setting unchanged. Compare with the baseline run_0 and with the sweep of ${a.name} alone.`,
    Interestingness: 6,
    Feasibility: 8,
    Novelty: 5,
  };
}

respond(ideator.proposeIdea, (d) => {
  const knobs = tunable(d.code);
  if (!knobs.length) {
    throw new Error("the offline ideator found no numeric setting in experiment.py (a constant, a flag's default, a keyword argument or an assignment of a number) to vary");
  }
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
  const values = innerValues(knob, m![2]!.split(",").map((s) => s.trim()));
  const idea = sweepIdea(knob, values.length ? values : m![2]!.split(",").map((s) => s.trim()), "_revised");
  return { ...idea, Experiment: `${idea.Experiment} Unlike ${d.verdict.evidence[0]?.title ?? "the work the critic found"}, this isolates the effect close to the default setting.` };
});
