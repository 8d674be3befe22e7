import { access, constants, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join, relative } from "node:path";
import { execa } from "execa";
import { z } from "zod";
import { EnvironmentError, UserError } from "../bus/errors.js";
import { missingTexPackages, texPackagesFix } from "./texPackages.js";
import { pythonPackage } from "./packages.js";
import { BWRAP_PATHS, UNSAFE_NO_SANDBOX_ENV } from "./coder/sandbox.js";

export interface PythonInfo {
  /** The interpreter itself (`sys.executable`), not a shim in front of it. */
  path: string;
  version: string;
}

export interface PreflightCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** What to run or set when the check failed. */
  fix?: string;
}

export interface PreflightReport {
  ok: boolean;
  checks: PreflightCheck[];
  python?: PythonInfo;
}

export interface PreflightNeeds {
  nats: boolean;
  /** An external server; when set there is no local `nats-server` to start. */
  natsUrl?: string;
  tex: boolean;
  pythonModules: string[];
  /** A template's own files, checked before anything runs: the packages its paper loads, the syntax of its code. */
  template?: { texFile: string; pythonFiles: string[] };
  /** Generated code runs here, so bubblewrap must be installed (or --unsafe-no-sandbox given). */
  sandbox?: boolean;
}

export interface PreflightOptions {
  /** The environment to check (defaults to `process.env`): PATH and SWARM_PYTHON are read from it. */
  env?: NodeJS.ProcessEnv;
  /** Limit for each Python probe; importing matplotlib the first time builds its font cache. */
  timeoutMs?: number;
}

const TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended";

/** The first of SWARM_PYTHON, `python3` on PATH, `/usr/bin/python3` that imports every module. */
export async function findPython(modules: string[], opts: PreflightOptions = {}): Promise<PythonInfo | undefined> {
  for (const candidate of pythonCandidates(opts.env ?? process.env)) {
    const probe = await probePython(candidate, modules, opts);
    if (probe.info && probe.missing.length === 0) return probe.info;
  }
  return undefined;
}

/** Checks everything a run needs before it spends anything (tokens, GPU time). */
export async function runPreflight(needs: PreflightNeeds, opts: PreflightOptions = {}): Promise<PreflightReport> {
  const env = opts.env ?? process.env;
  // Every check at once (each waits on a process of its own), reported in this order.
  const pending: Promise<PreflightCheck>[] = [];
  if (needs.nats && !needs.natsUrl) {
    pending.push(binaryCheck("nats-server", env, "apt-get install -y nats-server (or set a NATS URL to use a running server)"));
  }
  if (needs.tex) {
    pending.push(binaryCheck("pdflatex", env, `apt-get install -y ${TEX_PACKAGES}`));
    pending.push(binaryCheck("bibtex", env, `apt-get install -y ${TEX_PACKAGES}`));
    pending.push(binaryCheck("pdftotext", env, "apt-get install -y poppler-utils"));
  }
  const pythonChecked = pythonCheck(needs.pythonModules, opts);
  pending.push(pythonChecked.then((p) => p.check));
  if (needs.sandbox) pending.push(sandboxCheck(env));
  if (needs.template) {
    if (needs.tex) pending.push(texPackagesCheck(needs.template.texFile, env));
    const files = needs.template.pythonFiles;
    // A run from a topic has no code yet: its coder writes it, and runs it before anything else.
    if (files.length) pending.push(pythonChecked.then((p) => syntaxCheck(files, p.info, opts)));
  }
  const checks = await Promise.all(pending);
  const python = await pythonChecked;
  return { ok: checks.every((c) => c.ok), checks, ...(python.info ? { python: python.info } : {}) };
}

/** Throws one error that lists every failed check with its fix. */
export function assertPreflight(report: PreflightReport): void {
  const failed = report.checks.filter((c) => !c.ok);
  if (failed.length === 0) return;
  const lines = failed.map((c) => `  ✗ ${c.name}: ${c.detail}${c.fix ? `\n    fix: ${c.fix}` : ""}`);
  throw new EnvironmentError(`Preflight failed (${failed.length} of ${report.checks.length} checks):\n${lines.join("\n")}`, {
    hint: "Apply the fixes above and start again; set SWARM_PYTHON=/path/to/python to choose the Python interpreter.",
  });
}

/** One line per check, for a terminal. */
export function formatPreflight(report: PreflightReport): string {
  return report.checks
    .map((c) => `${c.ok ? "✓" : "✗"} ${c.name}: ${c.detail}${!c.ok && c.fix ? ` (fix: ${c.fix})` : ""}`)
    .join("\n");
}

async function sandboxCheck(env: NodeJS.ProcessEnv): Promise<PreflightCheck> {
  for (const path of BWRAP_PATHS) if (await isExecutableFile(path)) return { name: "bubblewrap", ok: true, detail: path };
  return env[UNSAFE_NO_SANDBOX_ENV] === "1"
    ? { name: "bubblewrap", ok: true, detail: "not installed: --unsafe-no-sandbox was given, so generated code runs WITHOUT a sandbox" }
    : {
        name: "bubblewrap",
        ok: false,
        detail: `bubblewrap is not installed (${BWRAP_PATHS.join(" or ")}), and generated code runs only in its sandbox`,
        fix: "apt-get install -y bubblewrap (or, on a machine you do not mind losing, --unsafe-no-sandbox)",
      };
}

async function binaryCheck(name: string, env: NodeJS.ProcessEnv, fix: string): Promise<PreflightCheck> {
  const path = await which(name, env);
  return path
    ? { name, ok: true, detail: path }
    : { name, ok: false, detail: `${name} is not on PATH`, fix };
}

async function which(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, name);
    if (await isExecutableFile(path)) return path;
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

interface Candidate {
  command: string;
  /** Where it came from, for messages: "SWARM_PYTHON", "python3 on PATH", ... */
  source: string;
}

function pythonCandidates(env: NodeJS.ProcessEnv): Candidate[] {
  const candidates: Candidate[] = [];
  if (env.SWARM_PYTHON) candidates.push({ command: env.SWARM_PYTHON, source: "SWARM_PYTHON" });
  candidates.push({ command: "python3", source: "python3 on PATH" }, { command: "/usr/bin/python3", source: "/usr/bin/python3" });
  return candidates;
}

interface Probe {
  candidate: Candidate;
  /** Absent when the interpreter could not be run at all. */
  info?: PythonInfo;
  missing: string[];
  problem?: string;
}

// Imports each module separately so one probe says which are missing, not just the first.
const PROBE_SCRIPT = `
import importlib, json, platform, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
print(json.dumps({"path": sys.executable, "version": platform.python_version(), "missing": missing}))
`;

const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Interpreters that imported a set of modules in this process's own environment: a machine's Pythons do not
 * lose packages while the swarm runs, and a probe imports them all (half a second for numpy and matplotlib),
 * so the preflight's finding serves the baseline job moments later. A failed probe is not kept.
 */
const imported = new Map<string, Probe>();

async function probePython(candidate: Candidate, modules: string[], opts: PreflightOptions): Promise<Probe> {
  const key = opts.env ? undefined : `${candidate.command}\u0000${[...modules].sort().join(",")}`;
  const known = key === undefined ? undefined : imported.get(key);
  if (known) return known;
  const probe = await probeOnce(candidate, modules, opts);
  if (key !== undefined && probe.info && probe.missing.length === 0) imported.set(key, probe);
  return probe;
}

async function probeOnce(candidate: Candidate, modules: string[], opts: PreflightOptions): Promise<Probe> {
  const bad = modules.find((m) => !MODULE_NAME.test(m));
  if (bad !== undefined) {
    throw new UserError(`"${bad}" is not a Python module name`, { hint: "Name modules as in an import statement, e.g. numpy or matplotlib.pyplot." });
  }
  const env = opts.env ?? process.env;
  if (isAbsolute(candidate.command) && !(await isExecutableFile(candidate.command))) {
    return { candidate, missing: modules, problem: `${candidate.command} does not exist or is not executable` };
  }
  const result = await execa(candidate.command, ["-c", PROBE_SCRIPT, ...modules], {
    reject: false,
    cleanup: true,
    timeout: opts.timeoutMs ?? 120_000,
    stdin: "ignore",
    extendEnv: false,
    env,
  });
  if (result.code === "ENOENT") return { candidate, missing: modules, problem: "not found" };
  if (result.timedOut) return { candidate, missing: modules, problem: "timed out while importing the modules" };
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const parsed = JSON.parse(line) as { path: string; version: string; missing: string[] };
    return { candidate, info: { path: parsed.path || candidate.command, version: parsed.version }, missing: parsed.missing };
  } catch {
    const why = result.stderr.trim().split("\n").at(-1) || `exit code ${result.exitCode}`;
    return { candidate, missing: modules, problem: `did not run as Python 3 (${why})` };
  }
}

async function pythonCheck(modules: string[], opts: PreflightOptions): Promise<{ check: PreflightCheck; info?: PythonInfo }> {
  const wanted = modules.length > 0 ? modules.join(", ") : "no extra modules";
  const probes: Probe[] = [];
  for (const candidate of pythonCandidates(opts.env ?? process.env)) {
    const probe = await probePython(candidate, modules, opts);
    if (probe.info && probe.missing.length === 0) {
      const via = probe.info.path === candidate.command ? "" : ` (via ${candidate.source})`;
      return {
        check: { name: "python", ok: true, detail: `Python ${probe.info.version} at ${probe.info.path}${via} imports ${wanted}` },
        info: probe.info,
      };
    }
    probes.push(probe);
  }
  const tried = probes
    .map((p) => `${p.candidate.source}: ${p.problem ?? `Python ${p.info?.version} at ${p.info?.path} lacks ${p.missing.join(", ")}`}`)
    .join("; ");
  // apt installs into /usr/bin/python3, so the fix names what that interpreter lacks.
  const system = probes.find((p) => p.candidate.command === "/usr/bin/python3");
  const lacking = system?.info ? system.missing : modules;
  return {
    check: {
      name: "python",
      ok: false,
      detail: `no Python imports ${wanted} (${tried})`,
      fix: system?.info
        ? pythonModulesFix(lacking) + (lacking.every((m) => pythonPackage(m).debian !== null) ? "; or install them into a virtualenv and set SWARM_PYTHON=/path/to/venv/bin/python" : "")
        : `apt-get install -y python3${lacking.length ? `, then ${pythonModulesFix(lacking)}` : ""}`,
    },
  };
}

async function texPackagesCheck(texFile: string, env: NodeJS.ProcessEnv): Promise<PreflightCheck> {
  const missing = await missingTexPackages(texFile, env);
  if (missing === undefined) return { name: "LaTeX packages", ok: false, detail: "kpsewhich is not on PATH, so no package can be found", fix: `apt-get install -y ${TEX_PACKAGES}` };
  if (!missing.length) return { name: "LaTeX packages", ok: true, detail: `every package ${relativeName(texFile)} loads is installed` };
  return {
    name: "LaTeX packages",
    ok: false,
    detail: `${relativeName(texFile)} loads ${missing.map((m) => m.name).join(", ")}, which TeX does not have`,
    fix: texPackagesFix(missing),
  };
}

function relativeName(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

// Parses each file without running it, and says where the first error of each is.
const SYNTAX_SCRIPT = `
import ast, json, sys
errors = []
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        errors.append({"file": path, "line": e.lineno or 0, "message": e.msg, "text": (e.text or "").strip()})
print(json.dumps(errors))
`;

const SyntaxErrors = z.array(z.object({ file: z.string(), line: z.number(), message: z.string(), text: z.string() }));

async function syntaxCheck(files: string[], python: PythonInfo | undefined, opts: PreflightOptions): Promise<PreflightCheck> {
  const interpreter = python?.path ?? (await findPython([], opts))?.path;
  if (!interpreter) return { name: "template code", ok: false, detail: "no Python to parse the template's code with", fix: "apt-get install -y python3" };
  const res = await execa(interpreter, ["-c", SYNTAX_SCRIPT, ...files], { reject: false, timeout: opts.timeoutMs ?? 60_000, stdin: "ignore" });
  let answer: unknown;
  try {
    answer = JSON.parse(res.stdout.trim().split("\n").at(-1) ?? "");
  } catch {
    answer = undefined;
  }
  const parsed = SyntaxErrors.safeParse(answer);
  if (!parsed.success) return { name: "template code", ok: false, detail: `could not parse the template's code: ${res.stderr.trim().split("\n").at(-1) ?? res.exitCode}` };
  const errors = parsed.data;
  if (!errors.length) return { name: "template code", ok: true, detail: `${files.length} Python file${files.length === 1 ? "" : "s"} parse` };
  return {
    name: "template code",
    ok: false,
    detail: errors.map((e) => `${relativeName(e.file)}:${e.line}: ${e.message}${e.text ? ` (${e.text.slice(0, 80)})` : ""}`).join("; "),
    fix: "fix the syntax error in the template; nothing has run and nothing was spent",
  };
}

/** The command that installs these modules: Debian's packages where they exist, pip for the rest. */
export function pythonModulesFix(modules: string[]): string {
  const pkgs = modules.map(pythonPackage);
  const debian = [...new Set(pkgs.map((p) => p.debian).filter((d): d is string => d !== null))];
  const pip = [...new Set(pkgs.filter((p) => p.debian === null).map((p) => p.pip))];
  return [
    debian.length ? `apt-get install -y ${debian.join(" ")}` : "",
    pip.length ? `pip install ${pip.join(" ")} (Debian has no package for ${pip.length === 1 ? "it" : "them"}: use a virtualenv and set SWARM_PYTHON=/path/to/venv/bin/python)` : "",
  ].filter(Boolean).join("; ");
}
