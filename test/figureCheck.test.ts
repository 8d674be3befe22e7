import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { deflateSync } from "node:zlib";
import { findPython } from "../agents/preflight.js";
import { decodePng, PngError } from "../agents/figureCritic/png.js";
import { checkFigure, pixelStats, runsWithoutData } from "../agents/figureCritic/check.js";
import { captionsFromNotes, paperFigures, referringSentences } from "../agents/figureCritic/captions.js";
import { offlineAnswer } from "../agents/llm/offline/offlineProvider.js";
import "../agents/offline.js";
import { applyEdits } from "../agents/coder/searchReplace.js";

const dir = mkdtempSync(join(tmpdir(), "figure-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let python = "";

/** Runs a Python script in `dir` with the Python that has matplotlib. */
async function py(script: string, cwd = dir): Promise<string> {
  const res = await execa(python, ["-c", script], { cwd, reject: false });
  if (res.exitCode !== 0) throw new Error(res.stderr);
  return res.stdout;
}

beforeAll(async () => {
  const found = await findPython(["matplotlib", "numpy", "PIL"]);
  if (!found) throw new Error("no Python with matplotlib, numpy and PIL: the figure check is tested on real matplotlib output");
  python = found.path;
  // Real matplotlib figures: a labelled line plot, a blank one, a tiny one.
  await py(`
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
x = np.linspace(0, 10, 50)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(x, np.sin(x), label="baseline")
ax.plot(x, np.cos(x), label="run_1")
ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.legend()
fig.savefig("good.png", dpi=100)
fig = plt.figure(figsize=(6, 4)); ax = fig.add_subplot(); ax.axis("off")
fig.savefig("blank.png", dpi=100)
fig, ax = plt.subplots(figsize=(1.5, 1.2)); ax.plot(x, x)
fig.savefig("tiny.png", dpi=100)
`);
  // The same picture in every colour type the decoder reads, and its pixels as PIL decodes them.
  await py(`
from PIL import Image
import numpy as np
img = Image.open("good.png").convert("RGB").resize((300, 200))
for mode in ["L", "LA", "P", "RGB", "RGBA"]:
    im = img.convert(mode) if mode != "P" else img.convert("P", palette=Image.ADAPTIVE, colors=64)
    im.save(f"mode_{mode}.png", optimize=False)
    open(f"mode_{mode}.rgba", "wb").write(np.asarray(Image.open(f"mode_{mode}.png").convert("RGBA")).tobytes())
Image.new("I;16", (10, 10)).save("deep.png")
`);
}, 60_000);

describe("the PNG decoder", () => {
  it("reads matplotlib's output and every 8-bit colour type, pixel for pixel as PIL does", () => {
    const good = decodePng(readFileSync(join(dir, "good.png")));
    expect([good.width, good.height]).toEqual([600, 400]);
    for (const mode of ["L", "LA", "P", "RGB", "RGBA"]) {
      const decoded = decodePng(readFileSync(join(dir, `mode_${mode}.png`)));
      expect([decoded.width, decoded.height], mode).toEqual([300, 200]);
      expect(Buffer.from(decoded.rgba).equals(readFileSync(join(dir, `mode_${mode}.rgba`))), mode).toBe(true);
    }
  });

  it("reads all five row filters", () => {
    // A 3×2 RGB image, its two rows filtered Sub and Paeth by hand; Up and Average in a second image.
    const ihdr = (w: number, h: number) => Buffer.concat([Buffer.from([0, 0, 0, w, 0, 0, 0, h, 8, 2, 0, 0, 0])]);
    const chunk = (type: string, body: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      return Buffer.concat([len, Buffer.from(type, "latin1"), body, Buffer.alloc(4)]);
    };
    const png = (w: number, h: number, raw: number[]) =>
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr(w, h)), chunk("IDAT", deflateSync(Buffer.from(raw))), chunk("IEND", Buffer.alloc(0))]);
    const rows = [[10, 20, 30, 40, 50, 60, 70, 80, 90], [15, 25, 35, 45, 55, 65, 75, 85, 95]];
    const sub = (r: number[]) => r.map((v, i) => (i >= 3 ? (v - r[i - 3]! + 256) & 0xff : v));
    const up = (r: number[], p: number[]) => r.map((v, i) => (v - p[i]! + 256) & 0xff);
    const avg = (r: number[], p: number[]) => r.map((v, i) => (v - (((i >= 3 ? r[i - 3]! : 0) + p[i]!) >> 1) + 256) & 0xff);
    const paethOf = (a: number, b: number, c: number) => {
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    };
    const paeth = (r: number[], p: number[]) => r.map((v, i) => (v - paethOf(i >= 3 ? r[i - 3]! : 0, p[i]!, i >= 3 ? p[i - 3]! : 0) + 256) & 0xff);
    const want = (rgb: number[][]) => rgb.flatMap((r) => [0, 1, 2].flatMap((px) => [...r.slice(px * 3, px * 3 + 3), 255]));
    for (const [f0, f1, row0, row1] of [
      [1, 4, sub(rows[0]!), paeth(rows[1]!, rows[0]!)],
      [0, 2, rows[0]!, up(rows[1]!, rows[0]!)],
      [3, 3, avg(rows[0]!, [0, 0, 0, 0, 0, 0, 0, 0, 0]), avg(rows[1]!, rows[0]!)],
    ] as [number, number, number[], number[]][]) {
      const decoded = decodePng(png(3, 2, [f0, ...row0, f1, ...row1]));
      expect([...decoded.rgba], `filters ${f0}, ${f1}`).toEqual(want(rows));
    }
  });

  it("refuses what it does not read, saying what it is", () => {
    expect(() => decodePng(Buffer.from("GIF89a not a png"))).toThrow(PngError);
    expect(() => decodePng(readFileSync(join(dir, "deep.png")))).toThrow(/bit depth 16/);
  });
});

describe("the deterministic figure check", () => {
  const runs = [
    { run: "run_0", description: "Baseline", ok: true },
    { run: "run_1", description: "Set LR = 0.1 (baseline: 0.01)", ok: true },
    { run: "run_2", description: "Set LR = 1.0 (baseline: 0.01)", ok: false },
  ];
  const figure = (name: string, caption = "Loss per epoch for the baseline and run_1.") => ({ name, caption, references: [] });
  const read = (f: string) => readFileSync(join(dir, f));

  it("passes a real plot", () => {
    const c = checkFigure(figure("good.png"), read("good.png"), runs);
    expect(c.problems).toEqual([]);
    expect(c).toMatchObject({ ok: true, seen: false });
    expect(c.shows).toMatch(/600×400 px.*no model looked/);
  });

  it("reports a blank figure", () => {
    const stats = pixelStats(decodePng(read("blank.png")));
    expect(stats.oneColour).toBe(1);
    const c = checkFigure(figure("blank.png"), read("blank.png"), runs);
    expect(c.ok).toBe(false);
    expect(c.problems.map((p) => p.kind)).toEqual(["blank"]);
  });

  it("reports a figure too small to read", () => {
    const c = checkFigure(figure("tiny.png"), read("tiny.png"), runs);
    expect(c.problems.map((p) => p.kind)).toContain("too-small");
    expect(c.problems.find((p) => p.kind === "too-small")!.detail).toMatch(/150×120 px/);
  });

  it("reports a caption that names a run with no results, by its folder or by its change", () => {
    const byFolder = checkFigure(figure("good.png", "Accuracy of the baseline, run_1 and run_2."), read("good.png"), runs);
    expect(byFolder.problems).toEqual([expect.objectContaining({ kind: "missing-data", detail: expect.stringMatching(/run_2 failed/) })]);
    const byChange = runsWithoutData(["The curve for LR = 1.0 rises fastest."], runs);
    expect(byChange.map((m) => m.run)).toEqual(["run_2"]);
    expect(runsWithoutData(["run_7 is plotted in red."], runs)[0]).toMatchObject({ run: "run_7", why: "there is no such run" });
    // Saying that a run failed and is not shown claims no data for it.
    expect(runsWithoutData(["run_2 failed and is not shown."], runs)).toEqual([]);
  });

  it("reports a figure plot.py did not write", () => {
    expect(checkFigure(figure("gone.png"), undefined, runs).problems.map((p) => p.kind)).toEqual(["blank"]);
  });
});

describe("what the critic is told of each figure", () => {
  it("splits notes into a caption per figure", () => {
    const notes = "Notes.\n\nrun_1: LR = 0.1\n\nFigures:\n  loss.png: training loss per epoch,\n    one curve per run.\n  acc.png: test accuracy per run.\n\nloss.png shows run_1 converging first.\n";
    const [loss, acc] = captionsFromNotes(notes, ["loss.png", "acc.png"]);
    expect(loss).toEqual({ name: "loss.png", caption: "loss.png: training loss per epoch, one curve per run.", references: ["loss.png shows run_1 converging first."] });
    expect(acc).toEqual({ name: "acc.png", caption: "acc.png: test accuracy per run.", references: [] });
  });

  it("finds a paper's figures, their captions and the sentences that refer to them", () => {
    const tex = "As Figure~\\ref{fig:loss} shows, run 1 is fastest. Nothing else.\n\\begin{figure}[t]\n\\includegraphics[width=0.8\\linewidth]{loss.png}\n\\caption{Loss of {every} run.}\n\\label{fig:loss}\n\\end{figure}";
    const [fig] = paperFigures(tex);
    expect(fig).toEqual({ file: "loss.png", caption: "Loss of {every} run.", label: "fig:loss" });
    expect(referringSentences([tex], fig!.label)).toEqual(["As Figure~\\ref{fig:loss} shows, run 1 is fastest."]);
  });
});

describe("the offline coder, told a figure is blank", () => {
  it("replaces plot.py by a plot of every run that the check passes", async () => {
    const ws = join(dir, "ws");
    for (const [run, acc] of [["run_0", 0.8], ["run_1", 0.9]] as const) {
      mkdirSync(join(ws, run), { recursive: true });
      writeFileSync(join(ws, run, "final_info.json"), JSON.stringify({ moons: { means: { test_accuracy: acc, loss: 1 - acc } }, circles: { means: { test_accuracy: acc - 0.1, loss: 1.1 - acc } } }));
    }
    const plotCode = 'labels = {\n    "run_0": "Baseline",\n}\nprint("blank")\n';
    const runs = [{ run: "run_0", description: "Baseline", ok: true }, { run: "run_1", description: "Set LR = 0.1 (baseline: 0.01)", ok: true }];
    const critiques = [{ figure: "blank.png", ok: false, shows: "nothing", problems: [{ kind: "blank" as const, detail: "blank" }], seen: false }];
    const answer = offlineAnswer("coder.plot", { plotCode, runs, feedback: "", critiques }) as { edits: { search: string; replace: string }[] };
    writeFileSync(join(ws, "plot.py"), applyEdits(plotCode, answer.edits, "plot.py"));
    await execa(python, ["plot.py"], { cwd: ws });
    const pngs = readdirSync(ws).filter((f) => f.endsWith(".png")).sort();
    expect(pngs).toEqual(["loss.png", "test_accuracy.png"]);
    for (const f of pngs) {
      const c = checkFigure({ name: f, caption: "", references: [] }, readFileSync(join(ws, f)), runs);
      expect(c.problems, f).toEqual([]);
    }
    // The legend says what each run changed.
    expect(await py('import re, json; src = open("plot.py").read(); print(json.loads(json.loads(re.search(r"json.loads\\((.*)\\)", src).group(1)))["run_1"])', ws)).toBe("LR = 0.1");
  });
});
