import { readFile, rm, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { execa } from "execa";
import { EnvironmentError, UserError } from "../../bus/errors.js";

export interface LatexError {
  file?: string;
  line?: number;
  message: string;
}

export interface LatexResult {
  /** True only when every step succeeded, no error was logged and a PDF came out. */
  ok: boolean;
  /** Absolute path of the PDF, whenever one was produced (even with `ok: false` after a BibTeX error). */
  pdfPath?: string;
  errors: LatexError[];
  /** Undefined citations and references, missing files (figures), BibTeX warnings. */
  warnings: string[];
  /** The tail of the last log written (the .log, or the tool's output when there is none). */
  log: string;
}

export interface CompileLatexOptions {
  /** The main .tex file inside `dir`. Defaults to `template.tex` (the AI Scientist's name), else `main.tex`. */
  mainFile?: string;
  /** Limit for each step (each pdflatex pass, bibtex). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The whole environment for the tools (defaults to `process.env`), e.g. to point PATH at another TeX. */
  env?: NodeJS.ProcessEnv;
}

const TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended";
const DEFAULT_TIMEOUT_MS = 60_000;
const LOG_TAIL_CHARS = 6_000;

/**
 * pdflatex → bibtex (when the document has a bibliography) → pdflatex → pdflatex, in `dir`, the first two in draft mode.
 * Compile problems come back in the result; a missing toolchain or main file throws.
 */
export async function compileLatex(dir: string, opts: CompileLatexOptions = {}): Promise<LatexResult> {
  const cwd = resolve(dir);
  if (!(await isDirectory(cwd))) {
    throw new UserError(`LaTeX directory ${cwd} does not exist`, { hint: "Pass the folder that holds the .tex file." });
  }
  const mainFile = opts.mainFile ?? (await defaultMainFile(cwd));
  if (!(await isFile(join(cwd, mainFile)))) {
    throw new UserError(`LaTeX main file ${join(cwd, mainFile)} does not exist`, {
      hint: "Pass opts.mainFile naming the .tex file inside the directory.",
    });
  }
  const job = basename(mainFile).replace(/\.tex$/, "");
  const pdfPath = join(cwd, `${job}.pdf`);
  const logPath = join(cwd, `${job}.log`);
  // A stale PDF or log would pass for this run's; a stale .aux from a halted run can itself break pass 1.
  for (const ext of ["pdf", "log", "aux"]) await rm(join(cwd, `${job}.${ext}`), { force: true });

  const step = (command: string, args: string[], label: string) => runStep(command, args, label, cwd, opts);
  const warnings: string[] = [];
  const errors: LatexError[] = [];

  /** One pdflatex pass; a result when the compile must stop here. */
  const pass = async (label: string, draft = false): Promise<{ stop?: LatexResult; log: string }> => {
    const tex = await step("pdflatex", [...PDFLATEX_ARGS, ...(draft ? ["-draftmode"] : []), mainFile], label);
    const log = (await readFile(logPath, "utf8").catch(() => undefined)) ?? tex.output;
    if (tex.failure) return { stop: stopped([...errors, tex.failure], [...warnings, ...missingFiles(log)], log), log };
    if (tex.exitCode === 0) return { log };
    const found = parseLatexLog(log);
    if (found.length === 0) found.push({ message: `${label} exited with code ${tex.exitCode}` });
    return { stop: stopped([...errors, ...found], [...warnings, ...missingFiles(log)], log), log };
  };

  // The passes before the last only settle the .aux (citations, references): without writing a PDF or reading
  // images (-draftmode) they take a third less time, and lay the pages out the same.
  const first = await pass("pdflatex (pass 1)", true);
  if (first.stop) return first.stop;

  const aux = await readFile(join(cwd, `${job}.aux`), "utf8").catch(() => "");
  // \citation without \bibdata is a hand-written thebibliography: nothing for BibTeX to do, and it would fail.
  if (/\\bibdata\{/.test(aux)) {
    const bib = await step("bibtex", [job], "bibtex");
    if (bib.failure) return stopped([bib.failure], warnings, bib.output);
    const parsed = parseBibtexOutput(bib.output);
    warnings.push(...parsed.warnings);
    errors.push(...parsed.errors);
    if (bib.exitCode >= 2 && parsed.errors.length === 0) {
      errors.push({ message: `bibtex exited with code ${bib.exitCode}: ${bib.output.trim().split("\n").at(-1)}` });
    }
  }

  const second = await pass("pdflatex (pass 2)", true);
  if (second.stop) return second.stop;
  const third = await pass("pdflatex (pass 3)");
  if (third.stop) return third.stop;

  const produced = await isFile(pdfPath);
  if (!produced) errors.push({ message: `pdflatex finished but wrote no ${job}.pdf (a document with no pages?)` });
  return {
    ok: errors.length === 0,
    ...(produced ? { pdfPath } : {}),
    errors,
    warnings: [...warnings, ...undefinedReferences(third.log), ...missingFiles(third.log)],
    log: tail(third.log),
  };
}

// -no-shell-escape: the document is written by a model, so \write18 must never run a command.
const PDFLATEX_ARGS = ["-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "-no-shell-escape"];

interface StepOutcome {
  exitCode: number;
  output: string;
  /** Set when the step did not run to an exit code of its own (timeout). */
  failure?: LatexError;
}

async function runStep(
  command: string,
  args: string[],
  label: string,
  cwd: string,
  opts: CompileLatexOptions,
): Promise<StepOutcome> {
  opts.signal?.throwIfAborted();
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const result = await execa(command, args, {
    cwd,
    reject: false,
    cleanup: true,
    timeout,
    forceKillAfterDelay: 2_000,
    stdin: "ignore",
    all: true,
    extendEnv: false,
    // TeX wraps log lines at 79 columns by default, which splits file:line: messages and paths.
    env: { ...(opts.env ?? process.env), max_print_line: "10000", error_line: "254", half_error_line: "238" },
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  if (result.isCanceled) {
    opts.signal?.throwIfAborted();
    throw new Error(`${label} was cancelled`);
  }
  if (result.code === "ENOENT") {
    throw new EnvironmentError(`${command} was not found on PATH; it is needed to compile LaTeX`, {
      hint: `apt-get install -y ${TEX_PACKAGES}`,
    });
  }
  const output = result.all ?? "";
  if (result.timedOut) {
    return {
      exitCode: -1,
      output,
      failure: { message: `${label} timed out after ${timeout} ms and was killed (a macro that loops forever?)` },
    };
  }
  return { exitCode: result.exitCode ?? -1, output };
}

function stopped(errors: LatexError[], warnings: string[], log: string): LatexResult {
  return { ok: false, errors, warnings, log: tail(log) };
}

const FATAL_NOISE = /^(==> Fatal error occurred|Emergency stop\.)/;

/** Errors from a pdflatex log: `file:line: message` (from -file-line-error) and `! message` lines. */
export function parseLatexLog(log: string): LatexError[] {
  const lines = log.split(/\r?\n/);
  const errors: LatexError[] = [];
  lines.forEach((text, i) => {
    const fileLine = /^([^\s:][^\s:]*):(\d+): (.+)$/.exec(text);
    const bang = /^! (.+)$/.exec(text);
    if (!fileLine && !bang) return;
    const message = (fileLine ? fileLine[3]! : bang![1]!).trim();
    const context = contextAfter(lines, i);
    const line = fileLine ? Number(fileLine[2]) : context?.line;
    errors.push({
      ...(fileLine ? { file: fileLine[1]! } : {}),
      ...(line !== undefined ? { line } : {}),
      message: context?.text ? `${message} (at: ${context.text})` : message,
    });
  });
  const real = errors.filter((e) => !FATAL_NOISE.test(e.message));
  const unique = new Map((real.length > 0 ? real : errors).map((e) => [`${e.file}:${e.line}:${e.message}`, e]));
  return [...unique.values()];
}

/** TeX shows where it stopped as `l.<n> <text up to the error>` a few lines below the message. */
function contextAfter(lines: string[], at: number): { line: number; text: string } | undefined {
  for (let j = at + 1; j < Math.min(lines.length, at + 12); j++) {
    const text = lines[j]!;
    if (/^([^\s:][^\s:]*):(\d+): /.test(text) || text.startsWith("! ")) return undefined;
    const m = /^l\.(\d+) (.*)$/.exec(text);
    if (m) return { line: Number(m[1]), text: m[2]!.trim() };
  }
  return undefined;
}

/** Only meaningful after the last pass: earlier passes always have them before BibTeX and labels settle. */
function undefinedReferences(log: string): string[] {
  return matchingLines(log, /Warning: (Citation|Reference) `[^']*' on page \S+ undefined/);
}

/** Missing figures (and other files graphicx could not find). */
function missingFiles(log: string): string[] {
  return matchingLines(log, /Warning: File `[^']*' not found/);
}

function matchingLines(text: string, pattern: RegExp): string[] {
  return [...new Set(text.split(/\r?\n/).filter((l) => pattern.test(l)).map((l) => l.trim()))];
}

/** BibTeX reports errors as `message---line N of file F` (sometimes split over two lines). */
function parseBibtexOutput(output: string): { errors: LatexError[]; warnings: string[] } {
  const errors: LatexError[] = [];
  const warnings: string[] = [];
  const lines = output.split(/\r?\n/);
  lines.forEach((text, i) => {
    if (text.startsWith("Warning--")) {
      warnings.push(`bibtex: ${text.slice("Warning--".length)}`);
      return;
    }
    const where = /^(.*)---line (\d+) of file (.+)$/.exec(text);
    if (where) {
      const message = where[1] || (lines[i - 1] ?? "").trim();
      errors.push({ file: where[3]!.trim(), line: Number(where[2]), message: `bibtex: ${message}` });
      return;
    }
    const reading = /^(.+)---while reading file (.+)$/.exec(text);
    if (reading) errors.push({ file: reading[2]!.trim(), message: `bibtex: ${reading[1]}` });
  });
  return { errors, warnings };
}

async function defaultMainFile(dir: string): Promise<string> {
  for (const name of ["template.tex", "main.tex"]) {
    if (await isFile(join(dir, name))) return name;
  }
  throw new UserError(`No template.tex or main.tex in ${dir}`, {
    hint: "Pass opts.mainFile naming the .tex file to compile.",
  });
}

function tail(text: string): string {
  return text.length > LOG_TAIL_CHARS ? text.slice(-LOG_TAIL_CHARS) : text;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** Text made safe for LaTeX outside math mode (and plain ASCII, which every template's fonts can set). */
export function texEscape(s: string): string {
  return s
    .normalize("NFKD")
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2013\u2014]/g, "-")
    .replace(/[^\x20-\x7e\n\t]/g, "")
    .replace(/[\\#$%&_{}~^<>]/g, (c) => TEX_SPECIAL[c]!);
}

const TEX_SPECIAL: Record<string, string> = {
  "\\": "\\textbackslash{}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "<": "\\textless{}", ">": "\\textgreater{}",
  "#": "\\#", $: "\\$", "%": "\\%", "&": "\\&", _: "\\_", "{": "\\{", "}": "\\}",
};
