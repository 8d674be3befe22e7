import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { runScript } from "./helpers/cli.js";
import { UserError } from "../bus/errors.js";
import { parseTopic, readTopic, topicSlug } from "../agents/topic.js";
import { familyOf, offlineTemplate } from "../agents/coder/offlineScaffold.js";
import { parseKnobs } from "../agents/llm/offline/knobs.js";
import { OFFLINE_NOTE } from "../agents/llm/offline/registry.js";

const dir = mkdtempSync(join(tmpdir(), "topic-e2e-"));
const out = join(dir, "results");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// In the AI Scientist v2's workshop format: a title line, then Keywords, TL;DR and Abstract.
const TOPIC = `# Title: Does Weight Decay Still Help When Labels Are Clean?

## Keywords
weight decay, regularization, generalization

## TL;DR
We measure whether an L2 penalty on the weights improves test accuracy of a small network.

## Abstract
Weight decay is part of nearly every training recipe, yet its benefit for small networks trained on
synthetic classification tasks is rarely measured in isolation. We vary the penalty and compare the fit
to the training set with the accuracy on a clean test set, over several seeds.
`;

const topicFile = join(dir, "weight-decay.md");
writeFileSync(topicFile, TOPIC);

describe("a topic file", () => {
  it("is read apart into its title, keywords and question, and named by its title", () => {
    const parts = parseTopic(TOPIC);
    expect(parts.title).toBe("Does Weight Decay Still Help When Labels Are Clean?");
    expect(parts.keywords).toEqual(["weight decay", "regularization", "generalization"]);
    expect(parts.question).toBe(parts.title);
    expect(topicSlug(TOPIC)).toBe("topic-does-weight-decay-still-help-when-labels");
    expect(parseTopic("# Title: Label noise\n\n## TL;DR\nHow robust is a small network to flipped labels? We flip some.\n").question).toBe("How robust is a small network to flipped labels?");
  });

  it("chooses the experiment by its words, with the setting its question is about as the first knob", () => {
    const cases: [string, string][] = [
      [TOPIC, "WEIGHT_DECAY"],
      ["# Title: Noisy labels\n## Abstract\nHow much label noise can a network memorise before it stops being robust?", "LABEL_NOISE"],
      ["# Title: Data efficiency of small networks\n## TL;DR\nHow does test accuracy scale with the training set size?", "N_TRAIN_SAMPLES"],
      ["# Title: Wider is better?\n## Keywords\nwidth, capacity, overparameterization", "HIDDEN_UNITS"],
      ["# Title: Something else entirely", "LEARNING_RATE"],
    ];
    for (const [text, knob] of cases) {
      expect(familyOf(parseTopic(text)).knob, text).toBe(knob);
      expect(parseKnobs(offlineTemplate(text).experiment_py)[0]?.name, text).toBe(knob);
    }
  });

  it("that is empty, has no title, is too large or is missing is a UserError that says what a topic file is", () => {
    const bad = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    expect(() => readTopic(bad("empty.md", "  \n"))).toThrow(/is empty/);
    expect(() => readTopic(bad("untitled.md", "just some words, no heading\n"))).toThrow(/has no title line/);
    expect(() => readTopic(bad("huge.md", `# Title: Big\n${"x".repeat(120_000)}`))).toThrow(/over the 100 kB/);
    expect(() => readTopic(join(dir, "absent.md"))).toThrow(UserError);
    try {
      readTopic(join(dir, "untitled.md"));
    } catch (err) {
      expect((err as UserError).hint).toMatch(/# Title:/);
    }
    expect(readTopic(topicFile)).toEqual({ file: topicFile, text: TOPIC });
  });

  it("given to the swarm with no title stops it before anything starts, and --topic with --template is refused", async () => {
    const untitled = await runScript("swarm", ["--out", out, "--topic", join(dir, "untitled.md")]);
    expect(untitled.exitCode, untitled.all).toBe(2);
    expect(untitled.all).toMatch(/error: --topic .*untitled\.md has no title line/);
    const both = await runScript("swarm", ["--out", out, "--topic", topicFile, "--template", "nanofit"]);
    expect(both.exitCode, both.all).toBe(2);
    expect(both.all).toMatch(/--topic and --template do not go together/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  }, 60_000);
});

describe("the whole swarm, offline, from a topic and no template", () => {
  let output = "";
  let exitCode: number | undefined;
  let runDir = "";

  beforeAll(async () => {
    const res = await runScript("swarm", ["--out", out, "--topic", topicFile, "--ideas", "1", "--reviewers", "1"]);
    output = res.all ?? "";
    exitCode = res.exitCode;
    const m = /^Run (\S+) on template topic-/m.exec(output);
    if (!m) throw new Error(`no run id in the output:\n${output}`);
    runDir = join(out, m[1]!);
  }, 240_000);

  it("runs to the end, the coder writing the template first", () => {
    expect(exitCode, output).toBe(0);
    expect(output).toMatch(/which the coder writes from the topic/);
    expect(output).toMatch(/✓ template written from the topic on \S+ \(1 attempt\): .*experiment\.py/);
    // The baseline job finds the scaffold's run_0 computed: the written code is not run twice.
    expect(output).toMatch(/✓ baseline run_0 from the cache/);
    const config = JSON.parse(readFileSync(join(runDir, "config.json"), "utf8"));
    expect(config.template).toBe("topic-does-weight-decay-still-help-when-labels");
    expect(config.topic).toEqual({ file: topicFile, text: TOPIC });
  });

  it("keeps the code the coder wrote, in the template format, with the topic's question in prompt.json", () => {
    const template = join(runDir, "template");
    for (const f of ["experiment.py", "plot.py", "prompt.json", "latex/template.tex", "seed_ideas.json"]) expect(existsSync(join(template, f)), f).toBe(true);
    const code = readFileSync(join(template, "experiment.py"), "utf8");
    expect(code).toContain(OFFLINE_NOTE);
    expect(parseKnobs(code)[0]?.name).toBe("WEIGHT_DECAY");
    const prompt = JSON.parse(readFileSync(join(template, "prompt.json"), "utf8"));
    expect(prompt.task_description).toMatch(/^You are given experiment\.py/);
    expect(prompt.task_description).toContain("Does Weight Decay Still Help When Labels Are Clean?");
    expect(readFileSync(join(template, "latex", "template.tex"), "utf8")).toContain(OFFLINE_NOTE);
  });

  it("really ran the written experiment: its run_0 is the baseline of the idea's runs", () => {
    const baseline = JSON.parse(readFileSync(join(runDir, "baseline", "run_0", "final_info.json"), "utf8"));
    expect(Object.keys(baseline).sort()).toEqual(["teacher", "xor"]);
    for (const ds of ["teacher", "xor"]) {
      expect(baseline[ds].means.test_accuracy).toBeGreaterThan(0.55);
      expect(baseline[ds].means.test_accuracy).toBeLessThanOrEqual(1);
      expect(baseline[ds].stderrs.test_accuracy).toBeGreaterThan(0);
    }
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const accepted = ideas.ideas.filter((i: { status: string }) => i.status === "accepted");
    expect(accepted).toHaveLength(1);
    // The offline ideator read the written code: its idea sweeps the knob the topic is about.
    expect(accepted[0].idea.Experiment).toMatch(/Set WEIGHT_DECAY to each of/);
    const idea = join(runDir, accepted[0].ideaId);
    expect(JSON.parse(readFileSync(join(idea, "run_0", "final_info.json"), "utf8"))).toEqual(baseline);
    const runs = readdirSync(idea).filter((f) => /^run_[1-9]\d*$/.test(f));
    expect(runs.length).toBeGreaterThanOrEqual(1);
    for (const run of runs) expect(readFileSync(join(idea, run, "experiment.py"), "utf8")).toMatch(/^WEIGHT_DECAY = (?!0\.001 )/m);
  });

  it("writes the paper to a PDF with the written experiment's numbers", async () => {
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const ideaId = ideas.ideas.find((i: { status: string }) => i.status === "accepted").ideaId as string;
    const pdf = join(runDir, ideaId, "paper", `${ideaId}.pdf`);
    expect(existsSync(pdf), output).toBe(true);
    const { stdout } = await execa("pdftotext", [pdf, "-"]);
    const text = stdout.replace(/\s+/g, " ");
    const baseline = JSON.parse(readFileSync(join(runDir, "baseline", "run_0", "final_info.json"), "utf8"));
    expect(text).toContain(baseline.teacher.means.test_accuracy.toFixed(4));
    expect(text).toMatch(/No language model wrote this paper/);
  });
});
