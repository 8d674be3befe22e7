import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { findKnob, knobEdits, parseKnobs, sweepValues, type Knob } from "../agents/llm/offline/knobs.js";
import { offlineAnswer } from "../agents/llm/offline/offlineProvider.js";
import { nearDuplicate } from "../agents/ideator/nearDuplicate.js";
import { applyEdits } from "../agents/coder/searchReplace.js";
import { checkClaims, collectFacts, unmatched } from "../agents/writer/claims.js";
import { SECTIONS } from "../agents/writer/prompts.js";
import type { Idea, RunRecord } from "../bus/schemas.js";
import "../agents/offline.js";

const dir = mkdtempSync(join(tmpdir(), "offline-knobs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Python's own parser says whether the code is valid Python; the error text when it is not. */
async function pythonParses(code: string): Promise<string | true> {
  const file = join(dir, `code-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, code);
  const res = await execa("python3", ["-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())", file], { reject: false });
  return res.exitCode === 0 ? true : res.stderr;
}

const occurrences = (text: string, search: string) => text.split(search).length - 1;

// Written for these tests in the reference templates' style: no NAME = value line, settings as argparse defaults
// (one spread over several lines) and as literals in calls and assignments, and numbers in strings and comments
// that are not settings.
const REF_STYLE = `"""Fits a small transformer. The docstring's "lr=0.5" and batch_size = 999 are not settings."""
import argparse
import json
import os

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int, dropout: float = 0.1):
        super().__init__()
        self.ff = nn.Linear(width, 4 * width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.ff(x))[:, 0]


def run(out_dir, seed_offset, data):
    torch.manual_seed(1337 + seed_offset)
    model = Model(
        num_layers=2,
        dim_model=128,
        vocab_size=len(data),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=1e-3,  # the paper says "lr=3e-4"; weight_decay=0.01 was too weak
        betas=(0.9, 0.98),
        weight_decay=0.5,
    )
    num_steps = 600
    warmup_steps = 50
    total, correct = 0, 0
    for step in range(num_steps):
        x = data[step % len(data)]
        loss = model(x).mean(dim=-1)
        total += 1
    # batch_size = 64 is what the paper used
    print(f"lr={1e-3:.4f}, temperature=0.7", 'dropout=0.3')
    with open(os.path.join(out_dir, "final_info.json"), "w") as f:
        json.dump({"train": {"means": {"loss": float(loss)}}}, f, indent=2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a transformer, lr=0.1 in words")
    parser.add_argument("--out_dir", type=str, default="run_0")
    parser.add_argument(
        "--batch_size",
        type=int,
        default=32,
        help="examples per step",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    args = parser.parse_args()
    run(args.out_dir, args.seed, list(range(100)))
`;

describe("the offline stand-in's knobs, in a reference-style experiment.py", () => {
  it("finds flags, keyword arguments, tuples, assignments and defaults, declared ones first and the seed last", () => {
    const knobs = parseKnobs(REF_STYLE);
    expect(knobs.map((k) => [k.name, k.literal, k.kind])).toEqual([
      ["BATCH_SIZE", "32", "flag"],
      ["NUM_LAYERS", "2", "keyword"],
      ["DIM_MODEL", "128", "keyword"],
      ["LR", "1e-3", "keyword"],
      ["BETA1", "0.9", "keyword"],
      ["BETA2", "0.98", "keyword"],
      ["WEIGHT_DECAY", "0.5", "keyword"],
      ["NUM_STEPS", "600", "assignment"],
      ["WARMUP_STEPS", "50", "assignment"],
      ["DROPOUT", "0.1", "default"],
      ["SEED", "0", "flag"],
    ]);
    // The multi-line flag is found at its default's line, with its help as what it is.
    const batch = knobs[0]!;
    expect(batch.line.trim()).toBe("default=32,");
    expect(batch.comment).toBe("examples per step");
    // Nothing from strings, comments, indices, counters, shapes or the output directory.
    const literals = knobs.map((k) => k.literal);
    for (const absent of ["3e-4", "0.01", "64", "999", "0.7", "0.3", "1337", "4", "-1"]) expect(literals).not.toContain(absent);
    expect(knobs.map((k) => k.name)).not.toContain("OUT_DIR");
    expect(knobs.map((k) => k.name)).not.toContain("INDENT");
  });

  it("edits every knob with a search that occurs exactly once, changing only its number, into code Python parses", async () => {
    for (const knob of parseKnobs(REF_STYLE)) {
      const value = sweepValues(knob)[0]!;
      const edits = knobEdits(REF_STYLE, [{ knob, value }]);
      for (const e of edits) expect(occurrences(REF_STYLE, e.search), `${knob.name}: ${e.search}`).toBe(1);
      const edited = applyEdits(REF_STYLE, edits);
      const changed = edited.split("\n").filter((l, i) => l !== REF_STYLE.split("\n")[i]);
      expect(changed, knob.name).toHaveLength(1);
      expect(changed[0]).toContain(value);
      expect(await pythonParses(edited), knob.name).toBe(true);
      // The knob keeps its name at its new value, so the next run's edit finds it.
      expect(parseKnobs(edited).find((k) => k.name === knob.name)?.literal ?? findKnob(knob.name, edited, REF_STYLE)?.literal).toBe(value);
    }
  });

  it("goes from a proposed idea to a plan to edits that apply once and parse, for idea after idea", async () => {
    const archive: Idea[] = [];
    const baseline: RunRecord = { run: "run_0", description: "Baseline", ok: true, attempts: 1 };
    for (let n = 0; n < 14; n++) {
      const proposed = offlineAnswer("ideator.propose", { system: "s", task: "t", code: REF_STYLE, archive }) as Idea;
      const { idea } = offlineAnswer("ideator.reflect", { idea: proposed, round: 1, maxRounds: 1, code: REF_STYLE }) as { idea: Idea };
      expect(archive.map((i) => i.Name)).not.toContain(idea.Name);
      // Ideas on different settings must not read as near-duplicates to the ideator's screening.
      expect(nearDuplicate(idea, archive)?.Title, idea.Title).toBeUndefined();
      archive.push(idea);
      const { runs } = offlineAnswer("coder.plan", { idea, code: REF_STYLE, maxRuns: 2, baseline }) as { runs: { description: string }[] };
      expect(runs.length).toBeGreaterThan(0);
      let code = REF_STYLE;
      for (const [i, r] of runs.entries()) {
        const { edits } = offlineAnswer("coder.edit", { idea, run: `run_${i + 1}`, planned: r.description, code, baselineCode: REF_STYLE, feedback: "" }) as { edits: { search: string; replace: string }[] };
        for (const e of edits) expect(occurrences(code, e.search), r.description).toBe(1);
        const next = applyEdits(code, edits);
        expect(next, r.description).not.toBe(code);
        expect(await pythonParses(next), r.description).toBe(true);
        // Without a model, a fix is the baseline with only the planned change.
        const fix = offlineAnswer("coder.fix", { idea, run: `run_${i + 1}`, planned: r.description, code: next, baselineCode: REF_STYLE, stderrTail: "Traceback" }) as { edits: { search: string; replace: string }[] };
        expect(applyEdits(next, fix.edits)).toBe(applyEdits(REF_STYLE, (offlineAnswer("coder.edit", { idea, run: "r", planned: r.description, code: REF_STYLE, baselineCode: REF_STYLE, feedback: "" }) as { edits: { search: string; replace: string }[] }).edits));
        code = next;
      }
    }
    // First the declared flag, then the optimizer's settings, one at a time; then two at once.
    expect(archive.slice(0, 4).map((i) => i.Name)).toEqual(["batch_size_sweep", "num_layers_sweep", "dim_model_sweep", "lr_sweep"]);
    expect(archive[0]!.Experiment).toMatch(/^Set BATCH_SIZE to each of \[16, 64\] \(baseline: 32\)/);
    expect(archive.slice(11).every((i) => /_with_/.test(i.Name))).toBe(true);
  });

  it("treats a setting written twice in one function as one knob, and names settings that share a name by their call", async () => {
    const code = [
      "def train(params, steps):",
      "    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))",
      "    for step in range(steps):",
      "        if step == steps // 2:",
      "            opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))",
      "    probe = torch.optim.SGD(params, lr=0.1, momentum=0.9)",
      "    return opt",
      "",
      "",
      "def finetune(params):",
      "    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))",
      "",
    ].join("\n");
    const knobs = parseKnobs(code);
    const byName = Object.fromEntries(knobs.map((k) => [k.name, k]));
    expect(Object.keys(byName).sort()).toEqual(["BETA1_TRAIN", "BETA1_FINETUNE", "BETA2_TRAIN", "BETA2_FINETUNE", "LR_TRAIN", "LR_FINETUNE", "LR_SGD", "MOMENTUM"].sort());
    expect(byName.LR_TRAIN!.sites.map((s) => s.line)).toEqual([1, 4]);
    // The two places whose lines are the same text, one indented inside the other's indentation, edit apart.
    const edits = knobEdits(code, [{ knob: byName.LR_TRAIN!, value: "0.004" }, { knob: byName.BETA2_TRAIN!, value: "0.995" }]);
    for (const e of edits) expect(occurrences(code, e.search)).toBe(1);
    const edited = applyEdits(code, edits);
    expect(edited.split("\n").filter((l) => l.includes("lr=0.004, betas=(0.9, 0.995)"))).toHaveLength(2);
    expect(edited).toContain("return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))");
    expect(await pythonParses(edited)).toBe(true);
    // The names hold at the new values.
    expect(parseKnobs(edited).map((k) => k.name).sort()).toEqual(Object.keys(byName).sort());
  });

  it("leaves the knob markers of the project's own templates as they were", () => {
    const nanofit = readFileSync(new URL("../templates/nanofit/experiment.py", import.meta.url), "utf8");
    const knobs = parseKnobs(nanofit);
    expect(knobs.map((k) => k.name)).toEqual(["LEARNING_RATE", "MOMENTUM", "HIDDEN_UNITS", "WEIGHT_DECAY", "EPOCHS", "BATCH_SIZE", "ACTIVATION", "INIT_SCALE"]);
    expect(knobs.every((k) => k.kind === "constant" && k.sites.length === 1)).toBe(true);
    expect(knobs.find((k) => k.name === "ACTIVATION")!.value).toBe("tanh");
  });

  it("tries values that stay valid and keep runs short: costly settings shrink, fractions near 1 keep their digits", () => {
    const knob = (name: string, literal: string): Knob => ({ name, literal, value: Number(literal), comment: "", line: "", kind: "flag", sites: [] });
    expect(sweepValues(knob("EPOCHS", "50"))).toEqual(["13", "25"]);
    expect(sweepValues(knob("MAX_ITERS", "5000"))).toEqual(["1250", "2500"]);
    expect(sweepValues(knob("WARMUP_STEPS", "50"))).toEqual(["13", "200"]);
    expect(sweepValues(knob("HIDDEN_SIZE", "256"))).toEqual(["128", "512"]);
    expect(sweepValues(knob("LR_DECAY_FACTOR", "0.9999"))).toEqual(["0.9996", "0.999975"]);
    expect(sweepValues(knob("BETA2", "0.99"))).toEqual(["0.96", "0.9975"]);
    expect(sweepValues(knob("LR", "1e-3"))).toEqual(["0.00025", "0.004"]);
    // A count at 1 cannot go lower: one value, never the default itself.
    expect(sweepValues(knob("BATCH_SIZE", "1"))).toEqual(["2"]);
    // A seed stays an integer.
    expect(sweepValues(knob("SEED", "0"))).toEqual(["1", "2"]);
  });
});

describe("the offline plot edit", () => {
  const runs = [
    { run: "run_0", description: "Baseline", ok: true },
    { run: "run_1", description: "Set LR = 0.004 (baseline: 1e-3)", ok: true },
    { run: "run_2", description: "Set LR = 0.00025 (baseline: 1e-3)", ok: false },
  ];
  const edit = (plotCode: string) => {
    const { edits } = offlineAnswer("coder.plot", { plotCode, runs, feedback: "" }) as { edits: { search: string; replace: string }[] };
    return applyEdits(plotCode, edits, "plot.py");
  };

  it("relabels a labels dict written over several lines, on one line, or indented, with braces in its strings", async () => {
    const shapes = [
      'import os\n\nlabels = {\n    "run_0": "Baselines",\n    # Add more runs here\n}\n\nruns = list(labels.keys())\n',
      'import os\nlabels = {"run_0": "Baseline {old}"}  # legend labels\nruns = list(labels)\n',
      'import os\n\nif __name__ == "__main__":\n    labels = {\n        "run_0": "Baseline",\n    }\n    print(labels)\n',
    ];
    for (const code of shapes) {
      const edited = edit(code);
      expect(await pythonParses(edited), edited).toBe(true);
      expect(edited).toContain('"run_1": "LR = 0.004"');
      expect(edited).toContain('"run_0": "Baseline"');
      expect(edited).not.toContain("run_2");
      expect(edited.split("\n")[0]).toBe("import os");
    }
    expect(edit(shapes[1]!)).toMatch(/^\}  # legend labels$/m);
    expect(edit(shapes[2]!)).toMatch(/^ {4}labels = \{\n {8}"run_0": "Baseline",\n {8}"run_1": "LR = 0\.004",\n {4}\}$/m);
  });

  it("says what is missing when plot.py has no labels dict", () => {
    expect(() => edit("import os\nprint('no labels here')\n")).toThrow(/no `labels = \{…\}` dict/);
  });
});

describe("the offline paper", () => {
  const task =
    "You are given the following file to work with, which fits a cubic spline to noisy tide-gauge readings from 3 harbours and reports the held-out error and the number of iterations to converge. Please come up with interesting experiments.";
  const idea: Idea = { Name: "lr_sweep", Title: "How much does the learning rate matter? A sweep of LR", Experiment: "Set LR to each of [0.004] (baseline: 1e-3), one run per value.", Interestingness: 5, Feasibility: 9, Novelty: 4 };
  const result = (mse: number, iters: number) => ({ north: { means: { val_mse: mse, iters_to_converge: iters, fit_time_s: 0.52 } }, south: { means: { val_mse: mse * 2, iters_to_converge: iters + 7, fit_time_s: 0.61 } } });
  const runs: RunRecord[] = [
    { run: "run_0", description: "Baseline", ok: true, attempts: 1, results: result(0.0312, 420) },
    { run: "run_1", description: "Set LR = 0.004 (baseline: 1e-3)", ok: true, attempts: 1, results: result(0.0251, 388) },
  ];
  const sections: Record<string, string> = {};
  for (const section of SECTIONS) {
    const material = { task, idea, runs, notes: "", figures: [], citations: [], disclosure: "Written offline.", section, written: sections };
    sections[section] = (offlineAnswer("writer.section", material) as { latex: string }).latex;
  }

  it("speaks of the template's task and its metrics, not of a generic classifier", () => {
    const text = Object.values(sections).join("\n");
    expect(sections.introduction).toMatch(/^The program studied here fits a cubic spline to noisy tide-gauge readings from 3 harbours/);
    expect(sections.background).toMatch(/fits a cubic spline/);
    expect(text).not.toMatch(/Please come up|We train a classifier|You are given/);
    for (const m of ["val\\_mse", "iters\\_to\\_converge", "fit\\_time\\_s"]) expect(sections.abstract).toContain(m);
    // The main measure is the held-out one, not the first or a time.
    expect(sections.experimental).toMatch(/with val\\_mse as the main measure/);
  });

  it("prints integer results as integers, and every number it prints traces to the runs", () => {
    expect(sections.results).toMatch(/& 420 &/);
    expect(sections.results).toMatch(/& 395 &/);
    expect(sections.results).not.toMatch(/420\.0|395\.0/);
    const ideaDir = join(dir, "paper");
    for (const r of runs) {
      mkdirSync(join(ideaDir, r.run), { recursive: true });
      writeFileSync(join(ideaDir, r.run, "final_info.json"), JSON.stringify(r.results));
    }
    writeFileSync(join(ideaDir, "runs.json"), JSON.stringify(runs));
    const tex = `\\begin{abstract}${sections.abstract}\\end{abstract}\\section{Results}${sections.results}\\section{Conclusions}${sections.conclusion}`;
    const claims = checkClaims(tex, collectFacts(ideaDir));
    expect(claims.map((c) => c.number)).toEqual(expect.arrayContaining(["420", "388", "395", "0.0312", "0.0251"]));
    expect(unmatched(claims)).toEqual([]);
  });
});
