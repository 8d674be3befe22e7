import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { coderSlots, importedModules, listTemplates, loadTemplate, runNeeds } from "../agents/templates.js";
import { FinalInfo } from "../bus/schemas.js";
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
