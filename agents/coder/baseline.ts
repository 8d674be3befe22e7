import { createHash } from "node:crypto";
import { cp, mkdir, readFile, rm } from "node:fs/promises";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import type { Job, JobResult, RunRecord } from "../../bus/schemas.js";
import { FinalInfo } from "../../bus/schemas.js";
import { getDirectory, hasArtifact, putDirectory } from "../../bus/artifacts.js";
import { EnvironmentError, SwarmError } from "../../bus/errors.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { codeFiles, runNeeds, runTemplate, type RunNeeds, type Template } from "../templates.js";
import { findPython, pythonModulesFix, type PythonInfo } from "../preflight.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { runSandboxed, type SandboxResult } from "./sandbox.js";
import { sayingHowLong } from "./longRun.js";

/** The unchanged template does not run: the template's fault or the node's, said with what to do. */
export class BaselineError extends SwarmError {
  readonly kind = "template";
}

/** Interpreters found per set of modules: a node's Pythons do not change while it runs, and each probe imports them all. */
const pythons = new Map<string, ReturnType<typeof findPython>>();
export function pythonFor(modules: string[]): ReturnType<typeof findPython> {
  const key = [...modules].sort().join(",");
  let found = pythons.get(key);
  if (!found) {
    found = findPython(modules);
    pythons.set(key, found);
    // A node that gets its packages installed later finds them on the next job.
    void found.then((p) => p ?? pythons.delete(key));
  }
  return found;
}

export async function requirePython(template: Template, node: string): Promise<PythonInfo> {
  const python = await pythonFor(template.python);
  if (!python) {
    throw new EnvironmentError(`no Python on node ${node} imports ${template.python.join(", ")}`, {
      hint: `${pythonModulesFix(template.python)}; or set SWARM_PYTHON`,
    });
  }
  return python;
}

/** A run's workspace: a copy of the template's code and the data beside it. */
export async function prepareWorkspace(template: Template, ws: string): Promise<void> {
  await rm(ws, { recursive: true, force: true });
  await mkdir(ws, { recursive: true });
  for (const file of codeFiles(template.dir)) {
    await mkdir(dirname(join(ws, file)), { recursive: true });
    await cp(join(template.dir, file), join(ws, file));
  }
}

async function baselineHash(template: Template, python: string, env: Record<string, string>): Promise<string> {
  const h = createHash("sha256").update(python).update(JSON.stringify(env));
  for (const file of codeFiles(template.dir)) h.update(file).update(await readFile(join(template.dir, file)));
  return h.digest("hex").slice(0, 16);
}

/** Where the object store keeps the baseline run_0 of this template's code, run by this interpreter under this profile. */
async function baselineKey(template: Template, python: PythonInfo, needs: RunNeeds): Promise<string> {
  return `baselines/${template.name.replace(/[^A-Za-z0-9_.-]/g, "_")}/${await baselineHash(template, python.path, needs.env)}`;
}

/**
 * Keeps `runDir` (a run_0 of the template's unchanged code) as its baseline, where ensureBaseline finds it: a
 * template the coder wrote from a topic has its first working run kept so, and its baseline job takes it from there.
 */
export async function cacheBaseline(ctx: Pick<AgentContext, "bus">, template: Template, needs: RunNeeds, python: PythonInfo, runDir: string): Promise<void> {
  await putDirectory(ctx.bus, runDir, await baselineKey(template, python, needs));
}

export async function readFinalInfo(dir: string): Promise<RunRecord["results"]> {
  const path = join(dir, "final_info.json");
  if (!existsSync(path)) throw new Error(`the run wrote no ${path.split("/").slice(-2).join("/")}`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new Error(`final_info.json is not JSON: ${(err as Error).message}`);
  }
  const parsed = FinalInfo.safeParse(json);
  if (!parsed.success) throw new Error(`final_info.json is malformed: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

const GPU_NEEDED =
  /Torch not compiled with CUDA enabled|Found no NVIDIA driver|no CUDA GPUs are available|CUDA driver version is insufficient|CUDA is not available|cudaGetDeviceCount|libcuda\.so|NVIDIA-SMI has failed|No CUDA runtime is found|cuda (?:is )?unavailable|assert\s+torch\.cuda\.is_available\(\)/i;

/** `prepare*.py` scripts in the folder of a missing file or above it, up to the template's parent's parent. */
function prepareSteps(missing: string, templateDir: string): string[] {
  const steps: string[] = [];
  const stop = resolve(templateDir, "..", "..");
  for (let dir = dirname(missing); dir.startsWith(stop) && dir !== dirname(dir); dir = dirname(dir)) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) if (/^prepare.*\.py$/.test(f)) steps.push(join(dir, f));
    if (steps.length) break;
  }
  return steps;
}

/** Where the template's own instructions are, when it has them. */
function readme(template: Template): string {
  const file = readdirSync(template.dir).find((f) => /^readme(\.md|\.txt)?$/i.test(f));
  return file ? ` (its ${file} may say how to get it: ${relative(process.cwd(), join(template.dir, file))})` : "";
}

/**
 * What a failed baseline lacks, read from its stderr: a module, a GPU, a data file, time or memory. The hint
 * is what the person can do; the message keeps the stderr tail.
 */
export function explainBaselineFailure(res: Pick<SandboxResult, "stderr" | "timedOut" | "exitCode">, template: Template, needs: RunNeeds, limitS: number): BaselineError {
  const tail = res.stderr.trim().split("\n").slice(-15).join("\n");
  const where = `template "${template.name}"`;
  const module = /ModuleNotFoundError: No module named '([^']+)'/.exec(res.stderr)?.[1];
  // Python's own words for a file it could not open: `[Errno 2] No such file or directory: 'data.csv'` (repr quotes).
  const file = /No such file or directory: (['"])(.+?)\1/.exec(res.stderr)?.[2];
  let message: string;
  let hint: string;
  if (res.timedOut) {
    message = `the baseline of ${where} ran past its limit of ${limitS} s`;
    hint = `give it longer (--run-timeout <s>), use a smaller profile (manifest.json "profiles"${Object.keys(template.manifest.profiles).length ? `; it has ${Object.keys(template.manifest.profiles).join(", ")}` : ""}), or run its experiments on a GPU node`;
  } else if (GPU_NEEDED.test(res.stderr)) {
    message = `the baseline of ${where} needs a node with a GPU (CUDA), and this node has none`;
    hint = needs.gpu
      ? "start `npm run node -- --roles coder` on a machine with an NVIDIA GPU"
      : `set "gpu": true in ${relative(process.cwd(), join(template.dir, "manifest.json"))} so its experiments wait for a GPU node, and start \`npm run node -- --roles coder\` on a machine with one`;
  } else if (module) {
    message = `the baseline of ${where} imports ${module}, which this node's Python lacks`;
    hint = `${pythonModulesFix([module])}; or set SWARM_PYTHON to a Python that has it`;
  } else if (file) {
    const absolute = resolve(template.dir, file);
    const inside = absolute.startsWith(resolve(template.dir) + "/");
    const steps = prepareSteps(absolute, template.dir);
    message = `the baseline of ${where} opens ${file}, which is absent`;
    hint = [
      steps.length ? `prepare the data first: ${steps.map((s) => `python3 ${relative(process.cwd(), s)}`).join(" or ")}` : `put the data file where the code looks for it${readme(template)}`,
      inside ? "" : `a run sees only its own folder (a copy of the template's), so the data must lie inside ${relative(process.cwd(), template.dir) || "."}, not at ${relative(process.cwd(), absolute)}`,
    ].filter(Boolean).join("; ");
  } else if (/name resolution|Name or service not known|Network is unreachable|urlopen error|ConnectionError|Failed to establish a new connection/i.test(res.stderr)) {
    message = `the baseline of ${where} tries to download something, and a run has no network`;
    hint = `fetch its data beforehand into ${relative(process.cwd(), template.dir) || "."} (for a dataset that downloads itself, run its download once outside the swarm with the data path inside the template's folder)${readme(template)}`;
  } else if (/MemoryError|Cannot allocate memory|out of memory/i.test(res.stderr)) {
    message = `the baseline of ${where} ran out of memory${needs.memoryMb ? ` (limit ${needs.memoryMb} MiB)` : ""}`;
    hint = 'raise "memoryMb" in its manifest.json, or use a smaller profile';
  } else {
    message = `the unchanged template "${template.name}" fails (exit code ${res.exitCode ?? "none"})`;
    hint = "fix the template so that `python experiment.py --out_dir=run_0` runs to a final_info.json; nothing was spent on a model";
  }
  return new BaselineError(`${message}:\n${tail}`, { hint });
}

export interface BaselineRun {
  record: RunRecord;
  cached: boolean;
  ms: number;
}

/**
 * The template's unchanged run_0 in `ws`, from the object store's cache when this code, interpreter and
 * profile have run before, else run now and cached. A failure is a BaselineError that says what is missing.
 */
/** What a run of the template sees in its environment: the profile's variables and, on a GPU slot, its own GPU only. */
export function runEnvFor(needs: RunNeeds, gpu: number | undefined): Record<string, string> {
  return { ...needs.env, ...(gpu !== undefined ? { CUDA_VISIBLE_DEVICES: String(gpu) } : {}) };
}

export async function ensureBaseline(
  ctx: Pick<AgentContext, "bus" | "log" | "signal" | "gpu">,
  template: Template,
  needs: RunNeeds,
  python: PythonInfo,
  ws: string,
  limitMs: number,
  say: (text: string) => Promise<void>,
): Promise<BaselineRun> {
  const runEnv = runEnvFor(needs, ctx.gpu);
  const key = await baselineKey(template, python, needs);
  let cached = false;
  let ms = 0;
  if (await hasArtifact(ctx.bus, `${key}/final_info.json`)) {
    await getDirectory(ctx.bus, key, join(ws, "run_0"));
    await say("baseline run_0 taken from the cache");
    cached = true;
  } else {
    await say("computing the baseline run_0");
    await rm(join(ws, "run_0"), { recursive: true, force: true });
    const res = await sayingHowLong(runSandboxed({
      cwd: ws, python: python.path, args: ["experiment.py", "--out_dir=run_0"], timeoutMs: limitMs, signal: ctx.signal, log: ctx.log, env: runEnv,
      ...(needs.memoryMb !== undefined ? { memoryMb: needs.memoryMb } : {}),
    }), "baseline run_0 running", limitMs, say);
    if (!res.ok) throw explainBaselineFailure(res, template, needs, Math.round(limitMs / 1000));
    try {
      await readFinalInfo(join(ws, "run_0"));
    } catch (err) {
      throw new BaselineError(`the baseline of template "${template.name}" ran but ${(err as Error).message}`, {
        hint: 'experiment.py must write <out_dir>/final_info.json as {dataset: {"means": {metric: number}}}',
      });
    }
    await cacheBaseline(ctx, template, needs, python, join(ws, "run_0"));
    ms = res.ms;
    await say(`baseline run_0 done in ${(res.ms / 1000).toFixed(1)} s`);
  }
  return { record: { run: "run_0", description: "Baseline: the template unchanged", ok: true, attempts: 1, results: await readFinalInfo(join(ws, "run_0")) }, cached, ms };
}

/**
 * The baseline job: run before the run's first model call, so that a template that cannot run here stops the
 * run before anything is spent. Its result is cached where the coder's experiments find it.
 */
export async function baseline(job: Job<"baseline" | "gpuBaseline">, ctx: AgentContext): Promise<JobResult<"baseline">> {
  const template = await runTemplate(ctx);
  const needs = runNeeds(template, ctx.config.profile);
  const say = (text: string) => ctx.progress(text);
  try {
    const python = await requirePython(template, ctx.by.node);
    const ws = join(ctx.workRoot, job.runId, "baseline");
    await prepareWorkspace(template, ws);
    const run = await ensureBaseline(ctx, template, needs, python, ws, ctx.config.experimentTimeoutMs, say);
    await putDirectory(ctx.bus, join(ws, "run_0"), `${job.runId}/baseline/run_0`);
    await rm(ws, { recursive: true, force: true });
    return { run: run.record, cached: run.cached, ms: run.ms };
  } catch (err) {
    if (err instanceof BaselineError || err instanceof EnvironmentError) {
      throw new JobFailedError(`${err.message}\n  → ${err.hint}`, err.toFailure(), { cause: err });
    }
    throw err;
  }
}
