import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { fromPromise } from "xstate";
import { coderMachine, type PlannedRun, type RunAttempt } from "../../machines/coder.js";
import type { Job, JobResult, RunRecord } from "../../bus/schemas.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { failureOf } from "../../bus/errors.js";
import { ModelBehaviorError } from "../llm/errors.js";
import { putArtifact, putDirectory } from "../../bus/artifacts.js";
import { loadTemplate, runNeeds } from "../templates.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { runMachine } from "../runtime/runMachine.js";
import { applyEdits } from "./searchReplace.js";
import { runSandboxed } from "./sandbox.js";
import { ensureBaseline, prepareWorkspace, readFinalInfo, requirePython } from "./baseline.js";
import { editCode, editPlot, fixCode, planRuns, writeNotes } from "./prompts.js";

async function unifiedDiff(a: string, b: string, label: string): Promise<string> {
  const { stdout } = await execa("diff", ["-u", "--label", `a/${label}`, "--label", `b/${label}`, a, b], { reject: false });
  return stdout;
}

export async function experiment(job: Job<"experiment" | "gpuExperiment">, ctx: AgentContext): Promise<JobResult<"experiment">> {
  const template = loadTemplate(ctx.config.template);
  const needs = runNeeds(template, ctx.config.profile);
  const python = await requirePython(template, ctx.by.node);
  // A GPU slot sees its own GPU only; the profile may set variables of its own (e.g. SWARM_PROFILE=reduced).
  const runEnv = { ...needs.env, ...(ctx.gpu !== undefined ? { CUDA_VISIBLE_DEVICES: String(ctx.gpu) } : {}) };
  const ws = join(ctx.workRoot, job.runId, job.ideaId);
  await prepareWorkspace(template, ws);
  const baselineCode = await readFile(join(ws, "experiment.py"), "utf8");
  let lastGood = baselineCode;
  const prefix = `${job.runId}/${job.ideaId}`;
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  // The run's config already weighs --run-timeout against the template's own limit.
  const limitMs = ctx.config.experimentTimeoutMs;
  const say = (text: string) => ctx.progress(text, job.ideaId);
  const current = () => readFile(join(ws, "experiment.py"), "utf8");
  const edit = async (edits: { search: string; replace: string }[]) => {
    await writeFile(join(ws, "experiment.py"), applyEdits(await current(), edits));
  };
  const run = (args: string[], timeoutMs: number) =>
    runSandboxed({
      cwd: ws, python: python.path, args, timeoutMs, signal: ctx.signal, log: ctx.log, env: runEnv,
      ...(needs.memoryMb !== undefined ? { memoryMb: needs.memoryMb } : {}),
    });

  const machine = coderMachine.provide({
    actors: {
      ensureBaseline: fromPromise(async (): Promise<RunRecord> => {
        const { record } = await ensureBaseline(ctx, template, needs, python, ws, limitMs, say);
        await putDirectory(ctx.bus, join(ws, "run_0"), `${prefix}/run_0`);
        return record;
      }),
      planRuns: fromPromise(async ({ input }) => {
        const plan = await ask(ctx.llm, planRuns, { idea: input.idea, code: baselineCode, maxRuns: input.maxRuns, baseline: input.baseline }, opts);
        await say(`planned ${Math.min(plan.runs.length, input.maxRuns)} run${Math.min(plan.runs.length, input.maxRuns) === 1 ? "" : "s"}`);
        return plan.runs;
      }),
      editCode: fromPromise(async ({ input }: { input: { run: string; planned: PlannedRun; feedback: string } }) => {
        const answer = await ask(ctx.llm, editCode, {
          idea: job.idea, run: input.run, planned: input.planned.description, code: await current(), baselineCode, feedback: input.feedback,
        }, opts);
        await edit(answer.edits);
      }),
      runExperiment: fromPromise(async ({ input }: { input: { run: string } }): Promise<RunAttempt> => {
        await say(`running ${input.run}`);
        await rm(join(ws, input.run), { recursive: true, force: true });
        const res = await run(["experiment.py", `--out_dir=${input.run}`], limitMs);
        if (!res.ok) {
          await say(`${input.run} failed${res.timedOut ? " (time limit)" : ""}`);
          return { ok: false, stderrTail: res.stderr.slice(-3000) || `exit code ${res.exitCode}` };
        }
        let results: RunRecord["results"];
        try {
          results = await readFinalInfo(join(ws, input.run));
        } catch (err) {
          return { ok: false, stderrTail: (err as Error).message };
        }
        const code = await current();
        lastGood = code;
        await writeFile(join(ws, input.run, "experiment.py"), code);
        await writeFile(join(ws, input.run, "diff.patch"), await unifiedDiff(join(template.dir, "experiment.py"), join(ws, "experiment.py"), "experiment.py"));
        await putDirectory(ctx.bus, join(ws, input.run), `${prefix}/${input.run}`);
        await say(`${input.run} succeeded in ${(res.ms / 1000).toFixed(1)} s`);
        return { ok: true, stderrTail: "", results };
      }),
      fixCode: fromPromise(async ({ input }: { input: { run: string; planned: PlannedRun; stderrTail: string } }) => {
        await say(`fixing ${input.run} from its stderr`);
        const answer = await ask(ctx.llm, fixCode, {
          idea: job.idea, run: input.run, planned: input.planned.description, code: await current(), baselineCode, stderrTail: input.stderrTail,
        }, opts);
        await edit(answer.edits);
      }),
      discardRun: fromPromise(async ({ input }: { input: { run: string } }) => {
        await writeFile(join(ws, "experiment.py"), lastGood);
        await rm(join(ws, input.run), { recursive: true, force: true });
        await say(`${input.run} set aside; the code goes back to the last run that worked`);
      }),
      makePlots: fromPromise(async ({ input }: { input: { runs: RunRecord[] } }) => {
        const runs = input.runs.map((r) => ({ run: r.run, description: r.description, ok: r.ok }));
        const before = new Set((await readdir(ws)).filter((f) => f.endsWith(".png")));
        let feedback = "";
        for (let attempt = 0; attempt <= ctx.config.maxFixes; attempt++) {
          const plotCode = await readFile(join(ws, "plot.py"), "utf8");
          try {
            const answer = await ask(ctx.llm, editPlot, { plotCode, runs, feedback }, opts);
            await writeFile(join(ws, "plot.py"), applyEdits(plotCode, answer.edits, "plot.py"));
          } catch (err) {
            // A provider's outage is not the plot's fault: the job is retried instead.
            if (failureOf(err).retryable) throw err;
            feedback = (err as Error).message;
            continue;
          }
          const res = await run(["plot.py"], needs.plotTimeoutS * 1000);
          const figures = (await readdir(ws)).filter((f) => f.endsWith(".png") && !before.has(f)).sort();
          if (res.ok && figures.length) {
            for (const f of [...figures, "plot.py"]) await putArtifact(ctx.bus, `${prefix}/${f}`, await readFile(join(ws, f)));
            await say(`plotted ${figures.join(", ")}`);
            return figures;
          }
          feedback = res.ok ? "plot.py ran but wrote no .png file" : res.stderr.slice(-3000);
          await writeFile(join(ws, "plot.py"), plotCode);
        }
        throw new ModelBehaviorError(`plot.py failed after ${ctx.config.maxFixes + 1} attempts: ${feedback.slice(-500)}`);
      }),
      writeNotes: fromPromise(async ({ input }: { input: { runs: RunRecord[]; figures: string[] } }) => {
        const { notes } = await ask(ctx.llm, writeNotes, { idea: job.idea, runs: input.runs, figures: input.figures }, opts);
        await writeFile(join(ws, "notes.txt"), notes);
        await putArtifact(ctx.bus, `${prefix}/notes.txt`, notes);
        return notes;
      }),
    },
  });

  // The run's config already weighs the flag against the manifest.
  const out = await runMachine(machine, { idea: job.idea, maxRuns: ctx.config.maxRuns, maxFixes: ctx.config.maxFixes }, ctx, { actorId: `coder.${job.ideaId}`, ideaId: job.ideaId });
  await putArtifact(ctx.bus, `${prefix}/runs.json`, JSON.stringify(out.runs, null, 2));
  if (out.error) throw new JobFailedError(`experiments for ${job.ideaId} failed: ${out.error.message}`, out.error);
  return { runs: out.runs, figures: out.figures, notes: out.notes };
}
