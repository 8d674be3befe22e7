import { stat } from "node:fs/promises";
import { execa } from "execa";
import { EnvironmentError, UserError } from "../../bus/errors.js";

export interface ExtractPdfTextOptions {
  timeoutMs?: number;
  /** The whole environment for pdftotext (defaults to `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** The text of a PDF with its layout kept (columns, tables), as the reviewer reads a paper. */
export async function extractPdfText(pdfPath: string, opts: ExtractPdfTextOptions = {}): Promise<string> {
  const isFile = await stat(pdfPath).then((s) => s.isFile(), () => false);
  if (!isFile) {
    throw new UserError(`PDF ${pdfPath} does not exist`, { hint: "Compile the paper first, or pass the path of a PDF file." });
  }
  const result = await execa("pdftotext", ["-layout", pdfPath, "-"], {
    reject: false,
    cleanup: true,
    timeout: opts.timeoutMs ?? 60_000,
    stdin: "ignore",
    extendEnv: false,
    env: opts.env ?? process.env,
    stripFinalNewline: false,
  });
  if (result.code === "ENOENT") {
    throw new EnvironmentError("pdftotext was not found on PATH; it is needed to read PDFs", {
      hint: "apt-get install -y poppler-utils",
    });
  }
  if (result.timedOut) {
    throw new UserError(`pdftotext took longer than ${opts.timeoutMs ?? 60_000} ms on ${pdfPath} and was killed`, {
      hint: "The PDF may be huge or malformed; check it opens in a viewer.",
    });
  }
  if (result.exitCode !== 0) {
    throw new UserError(`pdftotext could not read ${pdfPath}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`, {
      hint: "The file is probably not a valid PDF; recompile it.",
    });
  }
  return result.stdout;
}
