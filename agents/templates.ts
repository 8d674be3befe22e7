import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { rename, rm, utimes } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "../bus/errors.js";
import { getDirectory } from "../bus/artifacts.js";
import { Idea, Metric } from "../bus/schemas.js";
import type { AgentContext } from "./runtime/agentContext.js";
import { parseTopic, type Topic } from "./topic.js";

export const TEMPLATES_ROOT = resolve(fileURLToPath(new URL("../templates", import.meta.url)));

export const PromptFile = z.object({ system: z.string().min(1), task_description: z.string().min(1) });

/** A named variant of a template's configuration, e.g. `reduced` for two CPU cores and `full` for a GPU. */
const Profile = z.object({
  gpu: z.boolean().optional(),
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), z.string()).default({}),
  experimentTimeoutS: z.number().positive().optional(),
  plotTimeoutS: z.number().positive().optional(),
  memoryMb: z.number().int().positive().optional(),
  cpus: z.number().int().positive().optional(),
});

/** Optional `manifest.json`: what a template needs. Absent fields take these defaults. */
export const Manifest = z.object({
  gpu: z.boolean().default(false),
  /** Python modules the template imports; without a manifest they are read from its imports. */
  python: z.array(z.string()).optional(),
  experimentTimeoutS: z.number().positive().default(600),
  plotTimeoutS: z.number().positive().default(120),
  /** Address-space limit for one run; none by default for GPU runs, whose drivers map large areas. */
  memoryMb: z.number().int().positive().optional(),
  /** CPU cores one run keeps busy (its BLAS and OpenMP threads): how many runs a machine can take at once. */
  cpus: z.number().int().positive().default(1),
  maxRuns: z.number().int().positive().optional(),
  /** What a tree search goes by; without it the measure is read from the baseline's results (agents/coder/treeStep.ts). */
  metric: Metric.optional(),
  /** experiment.py reads its seed from SWARM_SEED (its own seeds when unset), so re-runs on other seeds measure the spread. */
  seeded: z.boolean().default(false),
  profiles: z.record(z.string(), Profile).default({}),
});
export type Manifest = z.infer<typeof Manifest>;

export interface Template {
  name: string;
  dir: string;
  system: string;
  taskDescription: string;
  seedIdeas: Idea[];
  manifest: Manifest;
  /** The Python modules a run needs. */
  python: string[];
}

/** What one run of a template needs under a profile (`full`, the manifest itself, unless named otherwise). */
export interface RunNeeds {
  profile: string;
  gpu: boolean;
  env: Record<string, string>;
  experimentTimeoutS: number;
  plotTimeoutS: number;
  memoryMb: number | undefined;
  cpus: number;
}

export function runNeeds(template: Template, profile = "full"): RunNeeds {
  const p = template.manifest.profiles[profile];
  if (!p && profile !== "full") {
    throw new UserError(`template "${template.name}" has no profile "${profile}"`, {
      hint: `its profiles: full${Object.keys(template.manifest.profiles).map((k) => `, ${k}`).join("")}`,
    });
  }
  const gpu = p?.gpu ?? template.manifest.gpu;
  const cpus = p?.cpus ?? template.manifest.cpus;
  return {
    profile,
    gpu,
    cpus,
    // A run may use the cores it asks for, and no more: runs side by side must not fight over them.
    env: { ...(cpus > 1 ? { OMP_NUM_THREADS: String(cpus), OPENBLAS_NUM_THREADS: String(cpus), MKL_NUM_THREADS: String(cpus) } : {}), ...(p?.env ?? {}) },
    experimentTimeoutS: p?.experimentTimeoutS ?? template.manifest.experimentTimeoutS,
    plotTimeoutS: p?.plotTimeoutS ?? template.manifest.plotTimeoutS,
    memoryMb: p?.memoryMb ?? template.manifest.memoryMb ?? (gpu ? undefined : 8192),
  };
}

/**
 * How many experiments a CPU machine runs at once for a template: as many as its cores hold runs of `cpus`
 * cores each, and its memory runs of `memoryMb` (the limit each run gets), at least one.
 */
export function coderSlots(needs: RunNeeds, machine: { cores: number; memoryMb: number }): { slots: number; why: string } {
  const byCores = Math.floor(machine.cores / needs.cpus);
  const byMemory = needs.memoryMb ? Math.floor(machine.memoryMb / needs.memoryMb) : Infinity;
  const slots = Math.max(1, Math.min(byCores, byMemory));
  const why = byMemory < byCores
    ? `${Math.round(machine.memoryMb / 1024)} GiB of memory, ${needs.memoryMb} MiB a run`
    : `${machine.cores} cores, ${needs.cpus} a run`;
  return { slots, why };
}

/** Standard-library modules a template may import, which no package provides. */
const STDLIB = new Set(
  ("__future__ abc argparse array ast asyncio base64 bz2 calendar cmath code codecs colorsys configparser contextvars ctypes difflib dis bisect builtins collections concurrent contextlib copy csv dataclasses datetime " +
    "decimal enum errno fractions functools gc glob gzip hashlib heapq importlib inspect io itertools json logging math multiprocessing " +
    "numbers operator os pathlib pickle platform pprint queue random re shutil signal socket statistics string struct subprocess sys " +
    "tempfile textwrap threading time timeit traceback types typing unittest urllib uuid warnings weakref zipfile zlib lzma tarfile shlex select sqlite3 secrets getpass fnmatch filecmp fileinput html http email").split(" "),
);

/** What a template's code is not: its paper, its prompts, earlier outputs, caches. */
const NOT_CODE = new Set(["latex", "__pycache__", ".git", "manifest.json", "seed_ideas.json", "prompt.json", "ideas.json"]);

/**
 * The template's code and the data beside it, as paths relative to its folder: what a run's workspace gets
 * and what its baseline depends on. Subfolders count (a package of modules, a datasets folder).
 */
export function codeFiles(dir: string, sub = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    if (NOT_CODE.has(e.name) || /^run_\d+$/.test(e.name)) continue;
    const rel = sub ? `${sub}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...codeFiles(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out.sort();
}

/**
 * Top-level modules the template's Python files import, less the standard library and its own modules and
 * packages. An import inside a \`try:\` block is optional (the code copes without it) and is left out.
 */
export function importedModules(dir: string): string[] {
  const files = codeFiles(dir).filter((f) => f.endsWith(".py"));
  const local = new Set(readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? e.name : e.name.replace(/\.py$/, ""))));
  const found = new Set<string>();
  for (const file of files) {
    let tryIndent: number | undefined;
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      if (!line.trim() || line.trim().startsWith("#")) continue;
      const indent = line.length - line.trimStart().length;
      if (tryIndent !== undefined && indent <= tryIndent && !/^\s*(try|except|else|finally)\b/.test(line)) tryIndent = undefined;
      if (/^\s*try\s*:/.test(line)) {
        tryIndent = indent;
        continue;
      }
      // `from world coordinates ...` in a docstring is no import: the statement's own shape is required.
      const m = /^\s*(?:import\s+([A-Za-z_]\w*)(?=\s*$|[\s.,;#])|from\s+([A-Za-z_]\w*)(?:\.[\w.]+)?\s+import\b)/.exec(line);
      const name = m?.[1] ?? m?.[2];
      if (!name || tryIndent !== undefined) continue;
      if (!STDLIB.has(name) && !local.has(name)) found.add(name);
    }
  }
  return [...found].sort();
}

export const REQUIRED = ["experiment.py", "plot.py", "prompt.json", "seed_ideas.json", "latex/template.tex"] as const;

export function listTemplates(root = TEMPLATES_ROOT): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((name) => statSync(join(root, name)).isDirectory() && existsSync(join(root, name, "experiment.py")))
    .sort();
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new UserError(`${what} is not valid JSON: ${(err as Error).message}`, { hint: `fix ${path}` });
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, path: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
    throw new UserError(`${path} is malformed:\n${issues}`, { hint: "see the template format in README.md" });
  }
  return parsed.data;
}

/**
 * Loads and checks a template in the AI Scientist's folder format, by name in templates/ or by a path (one
 * with a slash); errors name the file and the fault.
 */
export function loadTemplate(name: string, root = TEMPLATES_ROOT): Template {
  const byPath = name.includes("/");
  const dir = byPath ? resolve(name) : join(root, name);
  if ((!byPath && !/^[A-Za-z0-9_.-]+$/.test(name)) || !existsSync(dir)) {
    const known = listTemplates(root);
    throw new UserError(`unknown template "${name}"`, {
      hint: known.length ? `choose one of: ${known.join(", ")}` : `no templates found in ${root}`,
    });
  }
  const missing = REQUIRED.filter((file) => !existsSync(join(dir, file)));
  if (missing.length) {
    throw new UserError(`template "${name}" lacks ${missing.join(", ")}`, {
      hint: `a template folder needs ${REQUIRED.join(", ")}`,
    });
  }
  const prompt = check(PromptFile, readJson(join(dir, "prompt.json"), "prompt.json"), join(dir, "prompt.json"));
  const seedIdeas = check(z.array(Idea), readJson(join(dir, "seed_ideas.json"), "seed_ideas.json"), join(dir, "seed_ideas.json"));
  const manifestPath = join(dir, "manifest.json");
  const manifest = check(Manifest, existsSync(manifestPath) ? readJson(manifestPath, "manifest.json") : {}, manifestPath);
  return {
    name,
    dir,
    system: prompt.system,
    taskDescription: prompt.task_description,
    seedIdeas,
    manifest,
    python: manifest.python ?? importedModules(dir),
  };
}

export function readTemplateFile(template: Template, file: string): string {
  return readFileSync(join(template.dir, file), "utf8");
}

/** Where a `--topic` run's template lives in the object store once the coder has written it (job `scaffold`). */
export const templatePrefix = (runId: string) => `${runId}/template`;

/** The LaTeX template a template written from a topic is modelled on: ours, which the writer's placeholders fit. */
export const TOPIC_LATEX_EXAMPLE = join(TEMPLATES_ROOT, "nanofit", "latex", "template.tex");

/** The modules a template written from a topic may use: what the preflight of a topic run checks for. */
export const TOPIC_PYTHON = ["numpy", "matplotlib"];

/**
 * A topic run's template before the coder has written it: its name and the topic as its task, with the
 * manifest's defaults. What the swarm needs to start the run (its preflight, its limits, its archive's name).
 */
export function topicTemplate(name: string, topic: Topic): Template {
  const parts = parseTopic(topic.text);
  return {
    name,
    dir: "",
    system: "You are an ambitious, rigorous machine learning researcher.",
    taskDescription: `${parts.title}: ${parts.question}`,
    seedIdeas: [],
    manifest: Manifest.parse({ python: TOPIC_PYTHON }),
    python: TOPIC_PYTHON,
  };
}

/** Per node folder: the topic template materialised there, or on its way (concurrent callers share the download). */
const materialised = new Map<string, { ready: Promise<void>; settled: boolean }>();

/**
 * The run's template: the one it names in templates/ (or by path); for a `--topic` run, the one the coder wrote,
 * fetched from the object store into this node's work folder once per run (again if that folder was removed).
 */
export async function runTemplate(ctx: Pick<AgentContext, "bus" | "runId" | "config" | "workRoot" | "signal">): Promise<Template> {
  if (!ctx.config.topic) return loadTemplate(ctx.config.template);
  // Not a valid idea id, so no idea's workspace can be this folder.
  const root = join(ctx.workRoot, ctx.runId, ".template");
  const dir = join(root, ctx.config.template);
  let entry = materialised.get(dir);
  if (!entry || (entry.settled && !existsSync(join(dir, "experiment.py")))) {
    const fetching = join(root, `.${ctx.config.template}.${process.pid}.${Date.now()}`);
    const ready = (async () => {
      const files = await getDirectory(ctx.bus, templatePrefix(ctx.runId), fetching, { signal: ctx.signal });
      if (!files.length) {
        throw new UserError(`the template of topic run ${ctx.runId} is not in the object store (${templatePrefix(ctx.runId)}/)`, {
          hint: "its scaffold job writes it before the baseline: resume the run so that the coder writes it",
        });
      }
      await rm(dir, { recursive: true, force: true });
      await rename(fetching, dir);
    })();
    entry = { ready, settled: false };
    const mine = entry;
    materialised.set(dir, mine);
    ready.then(() => (mine.settled = true), () => {
      if (materialised.get(dir) === mine) materialised.delete(dir);
      void rm(fetching, { recursive: true, force: true });
    });
  }
  await entry.ready;
  // Kept fresh, so that the node's pruning of old work folders leaves it while the run goes on.
  const now = new Date();
  await utimes(root, now, now).catch(() => undefined);
  return loadTemplate(ctx.config.template, root);
}

