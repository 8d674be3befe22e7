import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvironmentError, UserError } from "../bus/errors.js";
import { compileLatex } from "../agents/tools/latex.js";
import { extractPdfText } from "../agents/tools/pdfText.js";

let dir: string;
let pdfPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pdftext-test-"));
  await writeFile(
    join(dir, "main.tex"),
    [
      "\\documentclass{article}",
      "\\begin{document}",
      "\\section{Grokking on Modular Arithmetic}",
      "Weight decay makes small transformers generalize long after they overfit.",
      "\\end{document}",
      "",
    ].join("\n"),
  );
  const result = await compileLatex(dir);
  if (!result.ok || !result.pdfPath) throw new Error(`test PDF did not compile: ${JSON.stringify(result.errors)}`);
  pdfPath = result.pdfPath;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("extractPdfText", () => {
  it("returns the text of a compiled PDF", async () => {
    const text = await extractPdfText(pdfPath);
    expect(text).toMatch(/1\s+Grokking on Modular Arithmetic/);
    expect(text).toContain("Weight decay makes small transformers generalize long after they overfit.");
  });

  it("throws UserError for a file that does not exist", async () => {
    await expect(extractPdfText(join(dir, "absent.pdf"))).rejects.toBeInstanceOf(UserError);
  });

  it("throws UserError for a file that is not a PDF", async () => {
    const fake = join(dir, "fake.pdf");
    await writeFile(fake, "not a pdf at all");
    await expect(extractPdfText(fake)).rejects.toThrow(/pdftotext could not read/);
  });

  it("throws EnvironmentError naming poppler-utils when pdftotext is missing", async () => {
    const attempt = extractPdfText(pdfPath, { env: { ...process.env, PATH: dir } });
    await expect(attempt).rejects.toBeInstanceOf(EnvironmentError);
    await expect(attempt).rejects.toMatchObject({ hint: "apt-get install -y poppler-utils" });
  });
});
