import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingTexPackages, texPackagesFix, usedPackages } from "../agents/texPackages.js";
import { pythonModulesFix, runPreflight } from "../agents/preflight.js";
import { codeFiles, importedModules, loadTemplate, runNeeds } from "../agents/templates.js";
import { explainBaselineFailure } from "../agents/coder/baseline.js";
import { stripScaffolding } from "../agents/writer/writer.js";

const FIXTURE = new URL("./fixtures/templates/ref_traits", import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), "template-checks-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
function copy(name: string): string {
  const dir = join(root, name);
  cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

describe("the packages a paper template loads", () => {
  it("are read from \\usepackage lists with options, never from comments", () => {
    const tex = "\\usepackage[utf8]{inputenc} % allow utf-8\n\\usepackage{amsmath, amssymb}\n% \\usepackage{commented}\n\\usepackage{iclr2024_conference,times}\n\\RequirePackage{xcolor}\n50\\% \\usepackage{after_escaped_percent}";
    expect(usedPackages(tex)).toEqual(["inputenc", "amsmath", "amssymb", "iclr2024_conference", "times", "xcolor", "after_escaped_percent"]);
  });

  it("are found with kpsewhich or beside the template, and a missing one names its Debian package", async () => {
    const dir = copy("tex");
    const file = join(dir, "latex", "template.tex");
    expect(await missingTexPackages(file)).toEqual([]);
    writeFileSync(file, "\\usepackage{algorithm}\n\\usepackage{localstyle}\n\\usepackage{bbm}\n\\usepackage{swarm-no-such-package}\n");
    writeFileSync(join(dir, "latex", "localstyle.sty"), "\\ProvidesPackage{localstyle}\n");
    const missing = await missingTexPackages(file);
    // algorithm ships with texlive-science, which setup installs; bbm comes with texlive-fonts-extra, which it does not.
    expect(missing?.map((m) => m.name)).toEqual(["bbm", "swarm-no-such-package"]);
    expect(texPackagesFix(missing!)).toMatch(/^apt-get install -y texlive-fonts-extra; find the package that ships swarm-no-such-package\.sty/);
  });
});

describe("the template's code, before anything runs", () => {
  it("is checked for syntax errors, naming file and line, with the preflight's other checks", async () => {
    const dir = copy("syntax");
    writeFileSync(join(dir, "plot.py"), "labels = {\n  'run_0': 'Baseline'\n\nprint(labels)\n");
    mkdirSync(join(dir, "lib"));
    writeFileSync(join(dir, "lib", "helpers.py"), "def f(:\n    pass\n");
    const t = loadTemplate(dir);
    const report = await runPreflight({
      nats: false, tex: true, pythonModules: t.python,
      template: { texFile: join(dir, "latex", "template.tex"), pythonFiles: codeFiles(dir).filter((f) => f.endsWith(".py")).map((f) => join(dir, f)) },
    });
    const check = report.checks.find((c) => c.name === "template code")!;
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/lib\/helpers\.py:1: /);
    expect(check.detail).toMatch(/plot\.py:1: /);
    expect(report.checks.find((c) => c.name === "LaTeX packages")?.ok).toBe(true);
  });

  it("lists modules from every file, packages of its own and optional imports left out", () => {
    const dir = copy("imports");
    mkdirSync(join(dir, "models"));
    writeFileSync(join(dir, "models", "net.py"), "import einops\nfrom models import other\nfrom world coordinates to view coordinates\ntry:\n    import wandb\nexcept ImportError:\n    wandb = None\nimport scipy.stats\n");
    expect(importedModules(dir)).toEqual(["einops", "matplotlib", "numpy", "scipy"]);
    expect(codeFiles(dir)).toContain("models/net.py");
  });

  it("names Debian's package where it has one and pip's name where it has none", () => {
    expect(pythonModulesFix(["sklearn", "einops", "PIL", "scipy"])).toBe(
      "apt-get install -y python3-sklearn python3-pil python3-scipy; pip install einops (Debian has no package for it: use a virtualenv and set SWARM_PYTHON=/path/to/venv/bin/python)",
    );
  });
});

describe("a baseline that fails", () => {
  const template = loadTemplate(FIXTURE);
  const needs = runNeeds(template);
  const explain = (stderr: string, timedOut = false) => explainBaselineFailure({ stderr, timedOut, exitCode: timedOut ? undefined : 1 }, template, needs, 600);

  it("that needs CUDA says it needs a GPU node and how to route it to one", () => {
    const e = explain('Traceback (most recent call last):\n  File "experiment.py", line 3\nAssertionError: Torch not compiled with CUDA enabled\n');
    expect(e.message).toMatch(/needs a node with a GPU/);
    expect(e.message).toMatch(/Torch not compiled with CUDA enabled/);
    expect(e.hint).toMatch(/"gpu": true/);
    // The reference's sketch_rnn asserts it itself.
    expect(explain('    assert torch.cuda.is_available(), (\nAssertionError: Device set to cuda, but cuda is unavailable.\n').message).toMatch(/needs a node with a GPU/);
  });

  it("that lacks a module names the package", () => {
    expect(explain("ModuleNotFoundError: No module named 'einops'\n").hint).toMatch(/pip install einops/);
    expect(explain("ModuleNotFoundError: No module named 'sklearn'\n").hint).toMatch(/apt-get install -y python3-sklearn/);
  });

  it("that opens absent data names the file, the prepare step beside it, and that a run sees only its folder", () => {
    const repo = join(root, "repo");
    const tdir = join(repo, "templates", "lm");
    cpSync(FIXTURE, tdir, { recursive: true });
    mkdirSync(join(repo, "data", "shakespeare_char"), { recursive: true });
    writeFileSync(join(repo, "data", "shakespeare_char", "prepare.py"), "print('prepare')\n");
    const t = loadTemplate(tdir);
    const e = explainBaselineFailure(
      { stderr: "FileNotFoundError: [Errno 2] No such file or directory: '../../data/shakespeare_char/train.bin'\n", timedOut: false, exitCode: 1 },
      t, runNeeds(t), 600,
    );
    expect(e.message).toMatch(/opens \.\.\/\.\.\/data\/shakespeare_char\/train\.bin, which is absent/);
    expect(e.hint).toMatch(/data\/shakespeare_char\/prepare\.py/);
    expect(e.hint).toMatch(/a run sees only its own folder/);
  });

  it("names no file when a program only prints the word FileNotFoundError", () => {
    const e = explain("report: no FileNotFoundError for 'a', 'b'\nTraceback (most recent call last):\nRuntimeError: boom\n");
    expect(e.message).not.toMatch(/which is absent/);
  });

  it("that tries to download its data says a run has no network", () => {
    const e = explain("urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n");
    expect(e.message).toMatch(/tries to download something, and a run has no network/);
    expect(e.hint).toMatch(/fetch its data beforehand/);
  });

  it("that runs out of time says how to give it more", () => {
    expect(explain("[killed: exceeded the wall-clock limit of 600 s]", true).hint).toMatch(/--run-timeout/);
  });
});

describe("a paper template's scaffolding", () => {
  const tex = [
    "\\author{Model One \\& Model Two\\\\",
    "Department of {Placeholders}\\\\",
    "}",
    "RESULTS HERE",
    "",
    "% EXAMPLE FIGURE: REPLACE AND ADD YOUR OWN FIGURES / CAPTIONS",
    "\\begin{figure}[h]",
    "  \\includegraphics[width=\\textwidth]{val_loss_enwik8.png}",
    "  \\caption{PLEASE FILL IN CAPTION HERE}",
    "\\end{figure}",
    "% a figure of ours",
    "\\begin{figure}[t]",
    "  \\includegraphics{loss.png}",
    "  \\caption{Loss.}",
    "\\end{figure}",
    "\\begin{figure}[t]",
    "  \\includegraphics{missing.png}",
    "\\end{figure}",
    "\\section{Conclusions}",
  ].join("\n");

  it("loses example figures and figures of images no run made, keeps real ones, and names the author", () => {
    const out = stripScaffolding(tex, { figures: ["loss.png"], author: "scientist-swarm" });
    expect(out).not.toMatch(/EXAMPLE FIGURE|val_loss_enwik8|FILL IN|missing\.png|Placeholders|Model One/);
    expect(out).toContain("% a figure of ours\n\\begin{figure}[t]\n  \\includegraphics{loss.png}");
    expect(out).toMatch(/^\\author\{scientist-swarm\}\nRESULTS HERE/);
    expect(out).toMatch(/\\section\{Conclusions\}$/);
  });
});
