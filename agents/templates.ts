import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "../bus/errors.js";
import { Idea } from "../bus/schemas.js";

export const TEMPLATES_ROOT = resolve(fileURLToPath(new URL("../templates", import.meta.url)));

const PromptFile = z.object({ system: z.string().min(1), task_description: z.string().min(1) });

/** Optional `manifest.json`: what a template needs. Absent fields take these defaults. */
export const Manifest = z.object({
  gpu: z.boolean().default(false),
  python: z.array(z.string()).default(["numpy"]),
  experimentTimeoutS: z.number().positive().default(600),
  plotTimeoutS: z.number().positive().default(120),
  maxRuns: z.number().int().positive().optional(),
});
export type Manifest = z.infer<typeof Manifest>;

export interface Template {
  name: string;
  dir: string;
  system: string;
  taskDescription: string;
  seedIdeas: Idea[];
  manifest: Manifest;
}

const REQUIRED = ["experiment.py", "plot.py", "prompt.json", "seed_ideas.json", "latex/template.tex"] as const;

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

/** Loads and checks a template in the AI Scientist's folder format; errors name the file and the fault. */
export function loadTemplate(name: string, root = TEMPLATES_ROOT): Template {
  const dir = join(root, name);
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || !existsSync(dir)) {
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
  return { name, dir, system: prompt.system, taskDescription: prompt.task_description, seedIdeas, manifest };
}

export function readTemplateFile(template: Template, file: string): string {
  return readFileSync(join(template.dir, file), "utf8");
}
