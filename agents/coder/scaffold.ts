import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fromPromise } from "xstate";
import { scaffoldMachine, type ScaffoldRun } from "../../machines/scaffold.js";
import type { Job, JobResult, RunRecord } from "../../bus/schemas.js";
import { failure } from "../../bus/errors.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { getDirectory, putDirectory } from "../../bus/artifacts.js";
import { REQUIRED, TOPIC_LATEX_EXAMPLE, TOPIC_PYTHON, loadTemplate, runNeeds, templatePrefix, type Template } from "../templates.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { PLACEHOLDERS } from "../writer/prompts.js";
import { cacheBaseline, prepareWorkspace, pythonFor, readFinalInfo, runEnvFor } from "./baseline.js";
import { runSandboxed } from "./sandbox.js";
import { sayingHowLong } from "./longRun.js";
import { TEMPLATE_FILES, TemplateFiles, fixTemplate, writeTemplate } from "./scaffoldPrompts.js";

/** The folder a topic's template is written and run in on this node (not a valid idea id, so no idea's own). */
export const scaffoldWorkspace = (workRoot: string, runId: string) => join(workRoot, runId, ".scaffold");

/** The four files, written into the template's folder, with no seed ideas: the ideator proposes from the topic. */
async function writeFiles(dir: string, files: Partial<TemplateFiles>): Promise<void> {
  for (const [field, file] of Object.entries(TEMPLATE_FILES) as [keyof TemplateFiles, string][]) {
    const value = files[field];
    if (value === undefined) continue;
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), typeof value === "string" ? value : `${JSON.stringify(value, null, 2)}\n`);
  }
  if (!existsSync(join(dir, "seed_ideas.json"))) await writeFile(join(dir, "seed_ideas.json"), "[]\n");
}

async function readFiles(dir: string): Promise<TemplateFiles> {
  const read = (file: string) => readFile(join(dir, file), "utf8");
  return TemplateFiles.parse({
    experiment_py: await read(TEMPLATE_FILES.experiment_py),
    plot_py: await read(TEMPLATE_FILES.plot_py),
    prompt_json: JSON.parse(await read(TEMPLATE_FILES.prompt_json)),
    template_tex: await read(TEMPLATE_FILES.template_tex),
  });
}

const tail = (text: string) => text.trim().split("\n").slice(-30).join("\n");

/** What the rest of the pipeline would trip over in the written LaTeX: the writer fills these, in this shape. */
function latexProblems(tex: string): string[] {
  const problems: string[] = [];
  for (const marker of ["\\documentclass", "\\begin{document}", "\\end{document}", "\\begin{filecontents}", "\\end{filecontents}", "\\bibliography{"]) {
    if (!tex.includes(marker)) problems.push(`latex/template.tex has no ${marker}`);
  }
  const missing = Object.values(PLACEHOLDERS).filter((p) => !tex.includes(p));
  if (missing.length) problems.push(`latex/template.tex lacks the placeholders ${missing.join(", ")}, which the writer fills`);
  return problems;
}

/**
 * The scaffold job of a `--topic` run: the coder writes the run's template from its topic and runs it until it
 * works (machines/scaffold.ts). The template goes to the object store under `<runId>/template/`, where every later
 * job of the run loads it from (agents/templates.ts runTemplate), and its working run_0 is kept as the baseline's,
 * so the baseline job that follows takes it from the cache.
 */
export async function scaffold(job: Job<"scaffold">, ctx: AgentContext): Promise<JobResult<"scaffold">> {
  const topic = ctx.config.topic;
  if (!topic) throw new JobFailedError(`run ${job.runId} has no topic to write a template from`, failure("user", `run ${job.runId} has no topic`, { hint: "start it with --topic <file>" }));
  const name = ctx.config.template;
  const root = scaffoldWorkspace(ctx.workRoot, job.runId);
  const templates = join(root, "template");
  const dir = join(templates, name);
  const ws = join(root, "run");
  const prefix = templatePrefix(job.runId);
  const limitMs = ctx.config.experimentTimeoutMs;
  const say = (text: string) => ctx.progress(text);
  const opts = { signal: ctx.signal };
  const actorId = "coder.scaffold";
  // Gone on from while the files are being written, run or fixed; a check or an upload is made again from the start
  // (whose model calls the run's log answers again), since this node has no run_0 of the other coder's.
  const persisted = await restoreFrom(ctx, actorId, scaffoldMachine);
  const snapshot = persisted && ["writing", "running", "fixing"].includes(String(persisted.value)) ? persisted : undefined;
  await rm(root, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  if (snapshot) {
    await getDirectory(ctx.bus, prefix, dir, opts);
    await say(`going on with the template from ${JSON.stringify(snapshot.value)}, where another coder stopped`);
  }
  const load = (): Template => loadTemplate(name, templates);
  // After every change: the written code is kept per run, and a coder that takes the job over goes on from it.
  const keep = async (files: Partial<TemplateFiles>) => {
    await writeFiles(dir, files);
    return putDirectory(ctx.bus, dir, prefix, () => true, opts);
  };
  const python = async (template: Template) => ({ python: await pythonFor(template.python), modules: template.python });
  // What both prompts tell the model: the modules the preflight of a topic run checked, and the time a run has.
  const shared = { topic: topic.text, python: TOPIC_PYTHON, timeLimitS: Math.round(limitMs / 1000) };

  const machine = scaffoldMachine.provide({
    actors: {
      writeTemplate: fromPromise(async () => {
        await say("writing the template (experiment.py, plot.py, prompt.json, latex/template.tex) from the topic");
        const files = await ask(ctx.llm, writeTemplate, { ...shared, latexExample: await readFile(TOPIC_LATEX_EXAMPLE, "utf8") }, opts);
        await keep(files);
      }),
      runExperiment: fromPromise(async (): Promise<ScaffoldRun> => {
        const template = load();
        const needs = runNeeds(template, ctx.config.profile);
        const found = await python(template);
        if (!found.python) {
          return { ok: false, stderrTail: `the code imports ${found.modules.join(", ")}, which no Python on this node has all of: use only ${TOPIC_PYTHON.join(", ")} and the standard library` };
        }
        await prepareWorkspace(template, ws);
        await say("running the written experiment.py as run_0");
        const res = await sayingHowLong(runSandboxed({
          cwd: ws, python: found.python.path, args: ["experiment.py", "--out_dir=run_0"], timeoutMs: limitMs, signal: ctx.signal, log: ctx.log, env: runEnvFor(needs, ctx.gpu),
          ...(needs.memoryMb !== undefined ? { memoryMb: needs.memoryMb } : {}),
        }), "run_0 of the written template running", limitMs, say);
        if (!res.ok) {
          await say(`the written experiment.py failed${res.timedOut ? " (time limit)" : ""}`);
          const why = res.timedOut ? `it ran past its limit of ${Math.round(limitMs / 1000)} s: make it faster\n` : "";
          return { ok: false, stderrTail: `${why}${tail(res.stderr) || `exit code ${res.exitCode ?? "none"}`}` };
        }
        try {
          const results = await readFinalInfo(join(ws, "run_0"));
          await say(`the written experiment.py ran in ${(res.ms / 1000).toFixed(1)} s`);
          return { ok: true, stderrTail: "", results };
        } catch (err) {
          return { ok: false, stderrTail: `${(err as Error).message}; experiment.py must write <out_dir>/final_info.json as {dataset: {"means": {metric: number}}}` };
        }
      }),
      fixTemplate: fromPromise(async ({ input }) => {
        await say(`fixing the written template (fix ${input.fix})`);
        const answer = await ask(ctx.llm, fixTemplate, { ...shared, files: await readFiles(dir), feedback: input.feedback, fix: input.fix }, opts);
        const { explanation: _, ...files } = answer;
        await keep(files);
      }),
      checkTemplate: fromPromise(async (): Promise<string[]> => {
        const problems: string[] = [];
        let template: Template;
        try {
          template = load();
        } catch (err) {
          return [(err as Error).message];
        }
        const files = await readFiles(dir);
        problems.push(...latexProblems(files.template_tex));
        const lines = files.experiment_py.split("\n").map((l) => l.trim());
        if (!lines.includes("# --- knobs ---") || !lines.includes("# --- end knobs ---")) {
          problems.push("experiment.py has no settings block between a line `# --- knobs ---` and a line `# --- end knobs ---`");
        }
        if (!/^labels\s*=\s*\{/m.test(files.plot_py)) problems.push("plot.py has no module-level `labels = {\"run_0\": \"Baseline\"}` dict of the runs to plot");
        const info = await readFinalInfo(join(ws, "run_0")).catch((err: Error) => err);
        if (info instanceof Error) problems.push(info.message);
        else if (!Object.values(info ?? {}).some((d) => Object.keys(d.means).length > 0)) problems.push("final_info.json has no metric: each dataset needs {\"means\": {metric: number}}");
        // plot.py must draw the baseline now, or every idea's plotting starts from code that cannot run.
        const found = await python(template);
        if (found.python) {
          const needs = runNeeds(template, ctx.config.profile);
          const res = await runSandboxed({ cwd: ws, python: found.python.path, args: ["plot.py"], timeoutMs: needs.plotTimeoutS * 1000, signal: ctx.signal, log: ctx.log, env: runEnvFor(needs, ctx.gpu) });
          const figures = (await readdir(ws)).filter((f) => f.endsWith(".png"));
          if (!res.ok) problems.push(`plot.py failed on run_0:\n${tail(res.stderr) || `exit code ${res.exitCode ?? "none"}`}`);
          else if (!figures.length) problems.push("plot.py ran on run_0 but wrote no .png file");
          for (const f of figures) await rm(join(ws, f));
        }
        if (problems.length) await say(`the written template needs fixing: ${problems.length} problem${problems.length === 1 ? "" : "s"}`);
        return problems;
      }),
      publishTemplate: fromPromise(async ({ input }: { input: { baseline: RunRecord } }) => {
        const template = load();
        const found = await python(template);
        if (!found.python) throw new Error(`no Python here imports ${found.modules.join(", ")} any longer`);
        const names = await putDirectory(ctx.bus, dir, prefix, () => true, opts);
        await cacheBaseline(ctx, template, runNeeds(template, ctx.config.profile), found.python, join(ws, "run_0"));
        await say(`the template is written (${input.baseline.attempts} attempt${input.baseline.attempts === 1 ? "" : "s"}); its run_0 is the baseline`);
        return names.map((n) => n.slice(prefix.length + 1)).sort();
      }),
    },
  });

  const out = await runMachine(machine, { maxFixes: ctx.config.maxFixes }, ctx, { actorId, snapshot });
  if (out.error || !out.baseline) {
    const why = out.error ?? failure("internal", "the scaffold ended without a baseline");
    throw new JobFailedError(why.message, why);
  }
  const missing = REQUIRED.filter((f) => !out.files.includes(f));
  if (missing.length) throw new JobFailedError(`the written template lacks ${missing.join(", ")}`, failure("internal", `the written template lacks ${missing.join(", ")}`));
  await rm(root, { recursive: true, force: true });
  return { prefix, files: out.files, baseline: out.baseline, attempts: out.attempts };
}
