import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EnvironmentError } from "../bus/errors.js";
import { compileLatex, parseLatexLog } from "../agents/tools/latex.js";

const dirs: string[] = [];

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "latex-test-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const REFS = `@article{rumelhart1986learning,
  title = {Learning representations by back-propagating errors},
  author = {Rumelhart, David E. and Hinton, Geoffrey E. and Williams, Ronald J.},
  journal = {Nature}, volume = {323}, pages = {533--536}, year = {1986}
}
`;

const doc = (body: string) => `\\documentclass{article}
\\usepackage{graphicx}
\\begin{document}
${body}
\\bibliographystyle{plain}
\\bibliography{refs}
\\end{document}
`;

describe("compileLatex", () => {
  it("compiles a document with a cited bibliography entry to a PDF", async () => {
    const dir = await project({ "main.tex": doc("Networks learn by backpropagation~\\cite{rumelhart1986learning}."), "refs.bib": REFS });
    const result = await compileLatex(dir);
    expect(result.errors).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.pdfPath).toBe(join(dir, "main.pdf"));
    expect(result.warnings).toEqual([]);
    expect(result.log).toContain("main.pdf");
  });

  it("reports an undefined control sequence with its file and line", async () => {
    const dir = await project({
      "paper.tex": "\\documentclass{article}\n\\begin{document}\nFine text.\n\n\\notARealMacro{x}\n\\end{document}\n",
    });
    const result = await compileLatex(dir, { mainFile: "paper.tex" });
    expect(result.ok).toBe(false);
    expect(result.pdfPath).toBeUndefined();
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ file: "./paper.tex", line: 5 });
    expect(result.errors[0]!.message).toMatch(/^Undefined control sequence\..*\\notARealMacro/);
  });

  it("reports a missing \\includegraphics file as an error and a warning", async () => {
    const dir = await project({ "main.tex": doc("\\includegraphics{train_loss.png}"), "refs.bib": REFS });
    const result = await compileLatex(dir);
    expect(result.ok).toBe(false);
    expect(result.errors.some((e) => e.line === 4 && e.message.includes("File `train_loss.png' not found"))).toBe(true);
    expect(result.warnings.some((w) => w.includes("train_loss.png") && w.includes("not found"))).toBe(true);
  });

  it("warns about undefined citations and references but still produces the PDF", async () => {
    const dir = await project({
      "main.tex": doc("See \\cite{rumelhart1986learning}, \\cite{noSuchPaper} and Figure~\\ref{fig:none}."),
      "refs.bib": REFS,
    });
    const result = await compileLatex(dir);
    expect(result.ok).toBe(true);
    expect(result.pdfPath).toBeDefined();
    expect(result.warnings.some((w) => w.includes("Citation `noSuchPaper'") && w.includes("undefined"))).toBe(true);
    expect(result.warnings.some((w) => w.includes("Reference `fig:none'"))).toBe(true);
    expect(result.warnings.some((w) => w.startsWith("bibtex:") && w.includes("noSuchPaper"))).toBe(true);
  });

  it("reports BibTeX errors with the .bib line", async () => {
    const broken = "@article{x,\n  title = {Unclosed\n  author = {A. Person},\n  year = {2020}\n}\n";
    const dir = await project({ "main.tex": doc("\\cite{x}"), "refs.bib": broken });
    const result = await compileLatex(dir);
    expect(result.ok).toBe(false);
    expect(result.pdfPath).toBeDefined();
    expect(result.errors[0]).toMatchObject({ file: "refs.bib" });
    expect(result.errors[0]!.message).toMatch(/^bibtex: /);
  });

  it("kills a pass that runs past the timeout", async () => {
    const dir = await project({ "main.tex": "\\documentclass{article}\n\\begin{document}\n\\def\\loop{\\loop}\\loop\n\\end{document}\n" });
    const started = Date.now();
    const result = await compileLatex(dir, { timeoutMs: 1_500 });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(result.ok).toBe(false);
    expect(result.errors[0]!.message).toMatch(/pass 1\) timed out after 1500 ms/);
  });

  it("stops when the signal is aborted", async () => {
    const dir = await project({ "main.tex": doc("Text."), "refs.bib": REFS });
    const controller = new AbortController();
    controller.abort(new Error("run cancelled"));
    await expect(compileLatex(dir, { signal: controller.signal })).rejects.toThrow("run cancelled");
  });

  it("throws EnvironmentError naming the TeX Live packages when pdflatex is missing", async () => {
    const dir = await project({ "main.tex": doc("Text."), "refs.bib": REFS });
    const attempt = compileLatex(dir, { env: { ...process.env, PATH: dir } });
    await expect(attempt).rejects.toBeInstanceOf(EnvironmentError);
    await expect(attempt).rejects.toMatchObject({
      hint: expect.stringContaining("texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended"),
    });
  });
});

describe("parseLatexLog", () => {
  it("reads `! ...` errors and takes the line from the l.<n> context", () => {
    const log = ["! Missing $ inserted.", "<inserted text> ", "                $", "l.7 x^", "       2", ""].join("\n");
    expect(parseLatexLog(log)).toEqual([{ line: 7, message: "Missing $ inserted. (at: x^)" }]);
  });
});
