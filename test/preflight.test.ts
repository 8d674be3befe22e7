import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvironmentError } from "../bus/errors.js";
import { assertPreflight, findPython, formatPreflight, runPreflight } from "../agents/preflight.js";
import { TOPIC_LATEX_EXAMPLE, TOPIC_PYTHON } from "../agents/templates.js";

const TEX = "texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended";
let emptyDir: string;

beforeAll(async () => {
  emptyDir = await mkdtemp(join(tmpdir(), "preflight-test-"));
});

afterAll(async () => {
  await rm(emptyDir, { recursive: true, force: true });
});

describe("findPython", () => {
  it("finds a Python that imports numpy", async () => {
    const python = await findPython(["numpy"]);
    expect(python?.path).toMatch(/python/);
    expect(python?.version).toMatch(/^3\.\d+\.\d+/);
  });

  it("prefers SWARM_PYTHON", async () => {
    const python = await findPython([], { env: { ...process.env, SWARM_PYTHON: "/usr/bin/python3" } });
    expect(python?.path).toBe("/usr/bin/python3");
  });

  it("falls back when SWARM_PYTHON does not exist", async () => {
    const python = await findPython(["json"], { env: { ...process.env, SWARM_PYTHON: join(emptyDir, "python") } });
    expect(python).toBeDefined();
  });

  it("finds nothing for a module no Python has", async () => {
    expect(await findPython(["swarm_no_such_module_xyz"])).toBeUndefined();
  });
});

describe("runPreflight", () => {
  it("passes for tools and modules that exist", async () => {
    const report = await runPreflight({ nats: true, tex: true, pythonModules: ["numpy"] });
    expect(report.checks.map((c) => c.name)).toEqual(["nats-server", "pdflatex", "bibtex", "pdftotext", "python"]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.python?.version).toMatch(/^3\./);
    expect(() => assertPreflight(report)).not.toThrow();
    expect(formatPreflight(report).split("\n")).toHaveLength(5);
    expect(formatPreflight(report)).toMatch(/^✓ nats-server: \//);
  });

  it("skips nats-server when a NATS URL is given", async () => {
    const report = await runPreflight({ nats: true, natsUrl: "nats://127.0.0.1:4222", tex: false, pythonModules: [] });
    expect(report.checks.map((c) => c.name)).toEqual(["python"]);
  });

  it("fails a made-up module with a fix that names its Debian package and SWARM_PYTHON", async () => {
    const report = await runPreflight({ nats: false, tex: false, pythonModules: ["numpy", "swarm_no_such_module_xyz"] });
    expect(report.ok).toBe(false);
    expect(report.python).toBeUndefined();
    const python = report.checks.find((c) => c.name === "python")!;
    expect(python.ok).toBe(false);
    expect(python.detail).toContain("swarm_no_such_module_xyz");
    expect(python.fix).toContain("python3-swarm-no-such-module-xyz");
    expect(python.fix).toContain("SWARM_PYTHON");
  });

  it("reports the TeX Live, poppler and nats-server packages when PATH lacks them", async () => {
    const report = await runPreflight(
      { nats: true, tex: true, pythonModules: [] },
      { env: { ...process.env, PATH: emptyDir } },
    );
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(byName["pdflatex"]).toMatchObject({ ok: false, fix: `apt-get install -y ${TEX}` });
    expect(byName["bibtex"]).toMatchObject({ ok: false, fix: `apt-get install -y ${TEX}` });
    expect(byName["pdftotext"]).toMatchObject({ ok: false, fix: "apt-get install -y poppler-utils" });
    expect(byName["nats-server"]?.fix).toContain("apt-get install -y nats-server");
    // /usr/bin/python3 is tried by absolute path, so Python still passes without PATH.
    expect(byName["python"]).toMatchObject({ ok: true });
    expect(formatPreflight(report)).toContain(`✗ pdflatex: pdflatex is not on PATH (fix: apt-get install -y ${TEX})`);

    let thrown: unknown;
    try {
      assertPreflight(report);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(EnvironmentError);
    const message = (thrown as EnvironmentError).message;
    for (const name of ["nats-server", "pdflatex", "bibtex", "pdftotext"]) expect(message).toContain(`✗ ${name}:`);
    expect(message).toContain(TEX);
    expect(message).toContain("poppler-utils");
    expect((thrown as EnvironmentError).hint).toContain("SWARM_PYTHON");
  });

  it("for a --topic run, with no template folder yet: numpy and matplotlib, and the LaTeX packages of the example its template follows", async () => {
    const report = await runPreflight({ nats: false, tex: true, pythonModules: TOPIC_PYTHON, template: { texFile: TOPIC_LATEX_EXAMPLE, pythonFiles: [] } });
    expect(report.checks.map((c) => c.name)).toEqual(["pdflatex", "bibtex", "pdftotext", "python", "LaTeX packages"]);
    expect(report.checks.find((c) => c.name === "python")?.detail).toContain("imports numpy, matplotlib");
    expect(report.ok).toBe(true);
  });
});
