import { afterAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TEMPLATES_ROOT, TOPIC_PYTHON, coderSlots, importedModules, listTemplates, loadTemplate, runNeeds, runTemplate, templatePrefix, topicTemplate } from "../agents/templates.js";
import { FinalInfo, RunConfig } from "../bus/schemas.js";
import { putDirectory } from "../bus/artifacts.js";
import { natsForSuite } from "./helpers/nats.js";
import { UserError } from "../bus/errors.js";

const root = mkdtempSync(join(tmpdir(), "templates-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const FIXTURE = new URL("./fixtures/templates/ref_style", import.meta.url).pathname;

function copy(name: string): string {
  const dir = join(root, name);
  cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

describe("templates", () => {
  it("ship the fast template and the two from the paper", () => {
    expect(listTemplates()).toEqual(expect.arrayContaining(["nanofit", "grokking", "2d_diffusion"]));
    for (const name of listTemplates()) expect(loadTemplate(name).seedIdeas.length).toBeGreaterThan(0);
  });

  it("refuse an unknown name, listing the ones there are", () => {
    copy("alpha");
    expect(() => loadTemplate("beta", root)).toThrow(/unknown template "beta"/);
    try {
      loadTemplate("beta", root);
    } catch (err) {
      expect((err as UserError).hint).toMatch(/alpha/);
    }
  });

  it("name the file that is missing", () => {
    const dir = copy("no_plot");
    unlinkSync(join(dir, "plot.py"));
    expect(() => loadTemplate("no_plot", root)).toThrow(/lacks plot\.py/);
  });

  it("name the file and the fault when one is malformed", () => {
    const bad = copy("bad_json");
    writeFileSync(join(bad, "prompt.json"), "{ not json");
    expect(() => loadTemplate("bad_json", root)).toThrow(/prompt\.json is not valid JSON/);
    const wrong = copy("bad_ideas");
    writeFileSync(join(wrong, "seed_ideas.json"), JSON.stringify([{ Name: "x", Title: "y", Experiment: "z", Interestingness: 11, Feasibility: 1, Novelty: 1 }]));
    expect(() => loadTemplate("bad_ideas", root)).toThrow(/seed_ideas\.json is malformed:\n\s+0\.Interestingness/);
    const manifest = copy("bad_manifest");
    writeFileSync(join(manifest, "manifest.json"), JSON.stringify({ gpu: "yes" }));
    expect(() => loadTemplate("bad_manifest", root)).toThrow(/manifest\.json is malformed:\n\s+gpu/);
  });

  it("read a reference template's needs from its imports, and a manifest's profiles", () => {
    const dir = copy("needs");
    expect(importedModules(dir)).toEqual(["matplotlib", "numpy"]);
    expect(loadTemplate("needs", root).python).toEqual(["matplotlib", "numpy"]);
    const grokking = loadTemplate("grokking");
    expect(runNeeds(grokking).gpu).toBe(true);
    expect(runNeeds(grokking, "reduced")).toMatchObject({ gpu: false, env: { SWARM_PROFILE: "reduced" } });
    expect(() => runNeeds(grokking, "huge")).toThrow(/no profile "huge"/);
  });

  it("say how many experiments a machine runs at once: one per core a run needs, within the memory each run may take", () => {
    const nanofit = runNeeds(loadTemplate("nanofit"));
    expect(nanofit).toMatchObject({ cpus: 1, memoryMb: 8192 });
    expect(nanofit.env.OMP_NUM_THREADS).toBeUndefined();
    expect(coderSlots(nanofit, { cores: 2, memoryMb: 24_000 })).toMatchObject({ slots: 2, why: "2 cores, 1 a run" });
    expect(coderSlots(nanofit, { cores: 16, memoryMb: 24_000 })).toMatchObject({ slots: 2, why: expect.stringMatching(/GiB of memory, 8192 MiB a run/) });
    expect(coderSlots(nanofit, { cores: 1, memoryMb: 2000 }).slots).toBe(1);
    const dir = copy("wide");
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ cpus: 4, memoryMb: 1024 }));
    const wide = runNeeds(loadTemplate("wide", root));
    // A run that needs four cores gets four threads, and a machine of eight runs two of them.
    expect(wide.env).toMatchObject({ OMP_NUM_THREADS: "4", OPENBLAS_NUM_THREADS: "4" });
    expect(coderSlots(wide, { cores: 8, memoryMb: 64_000 }).slots).toBe(2);
  });

  it("check final_info.json's shape", () => {
    expect(FinalInfo.safeParse({ moons: { means: { acc: 0.9 } } }).success).toBe(true);
    expect(FinalInfo.safeParse({ moons: { acc: 0.9 } }).success).toBe(false);
    expect(FinalInfo.safeParse({ moons: { means: { acc: "high" } } }).success).toBe(false);
  });
});

describe("a run's template (runTemplate)", () => {
  const config = (runId: string, topic?: { file: string; text: string }) =>
    RunConfig.parse({
      runId, template: topic ? "topic-fitting" : "nanofit", ...(topic ? { topic } : {}), ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 1, maxFixes: 1,
      maxReflections: 1, maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 4000, llm: { provider: "offline", model: "offline" }, startedAt: new Date().toISOString(),
    });

  it("is the named one for a run from a template, and for a run from a topic the one its coder wrote, fetched into one folder on the node however many ask at once", async () => {
    const nats = await natsForSuite();
    try {
      const workRoot = join(root, "work");
      const signal = new AbortController().signal;
      expect((await runTemplate({ bus: nats.bus, runId: "t1", config: config("t1"), workRoot, signal })).dir).toBe(join(TEMPLATES_ROOT, "nanofit"));

      const runId = "t2";
      const topicRun = { bus: nats.bus, runId, config: config(runId, { file: "/topic.md", text: "# Title: Fitting\n" }), workRoot, signal };
      await expect(runTemplate(topicRun)).rejects.toThrow(/is not in the object store/);
      // What the scaffold job uploads: the written template, here the reference fixture's files.
      await putDirectory(nats.bus, FIXTURE, templatePrefix(runId));
      const at = await Promise.all([runTemplate(topicRun), runTemplate(topicRun), runTemplate(topicRun)]);
      expect(new Set(at.map((t) => t.dir)).size).toBe(1);
      expect(at[0]!.name).toBe("topic-fitting");
      expect(at[0]!.dir).toBe(join(workRoot, runId, ".template", "topic-fitting"));
      expect(at[0]!.taskDescription).toBe(loadTemplate(FIXTURE).taskDescription);
      // No half-fetched folder is left beside it.
      expect(readdirSync(join(workRoot, runId, ".template"))).toEqual(["topic-fitting"]);
      // A node that pruned the folder fetches it again.
      rmSync(at[0]!.dir, { recursive: true, force: true });
      expect(existsSync(join((await runTemplate(topicRun)).dir, "experiment.py"))).toBe(true);
    } finally {
      await nats.close();
    }
  });

  it("stands in for a topic run's template before it is written, with the manifest's defaults", () => {
    const t = topicTemplate("topic-fitting", { file: "/topic.md", text: "# Title: Fitting curves\n\n## TL;DR\nDoes a wider model fit better?\n" });
    expect(t).toMatchObject({ name: "topic-fitting", python: TOPIC_PYTHON, seedIdeas: [], taskDescription: "Fitting curves: Does a wider model fit better?" });
    expect(runNeeds(t)).toMatchObject({ gpu: false, experimentTimeoutS: 600 });
  });
});
