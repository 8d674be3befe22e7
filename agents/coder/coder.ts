import { generationTag } from "../../bus/gates.js";
import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { unifiedDiff } from "./unifiedDiff.js";
import { fromPromise } from "xstate";
import { z } from "zod";
import { coderMachine, type PlotAttempt, type RunAttempt } from "../../machines/coder.js";
import { RunRecord, type Job, type TreeRecord } from "../../bus/schemas.js";
import type { ChainResult } from "../../machines/idea.js";
import { JobFailedError, publishJob } from "../../bus/workQueue.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { errorOf } from "../../bus/errors.js";
import { captionsFromNotes } from "../figureCritic/captions.js";
import { getArtifact, getDirectory, hasArtifact, putArtifact, putDirectory } from "../../bus/artifacts.js";
import { runNeeds, runTemplate } from "../templates.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import type { PersistedActor } from "../runtime/snapshots.js";
import { applyEdits } from "./searchReplace.js";
import { runSandboxed } from "./sandbox.js";
import { ensureBaseline, prepareWorkspace, readFinalInfo, requirePython, runEnvFor } from "./baseline.js";
import { editCode, editPlot, fixCode, planRuns, writeNotes } from "./prompts.js";
import { sayingHowLong } from "./longRun.js";
import { searchNotes, treeRuns, writeTreeReport } from "./treeReport.js";

/**
 * The experiment.py being worked on (edited, fixed or put back, not yet run to success), kept in the object
 * store after every change so that another node can go on with it; under work/, apart from the run folders a
 * person reads.
 */
const WORKING_COPY = "work/experiment.py";

/** What a persisted coder must hold to rebuild its workspace: its runs so far. */
const PersistedRuns = z.object({ context: z.object({ records: z.array(RunRecord) }) });

const pngs = async (dir: string) => (await readdir(dir)).filter((f) => f.endsWith(".png"));

/**
 * The workspace of a job that another process began, rebuilt from the object store over a fresh copy of the
 * template: every run that worked (plot.py reads their folders; the next edit starts from the last one's
 * code) and the working experiment.py. Returns the runs kept.
 */
async function restoreWorkspace(ctx: AgentContext, persisted: PersistedActor, prefix: string, ws: string): Promise<string[]> {
  const kept = PersistedRuns.parse(persisted.snapshot).context.records.filter((r) => r.ok).map((r) => r.run);
  for (const run of kept) await getDirectory(ctx.bus, `${prefix}/${run}`, join(ws, run), { signal: ctx.signal });
  if (await hasArtifact(ctx.bus, `${prefix}/${WORKING_COPY}`, { signal: ctx.signal })) {
    await writeFile(join(ws, "experiment.py"), await getArtifact(ctx.bus, `${prefix}/${WORKING_COPY}`, { signal: ctx.signal }));
  }
  return kept;
}

/** The folder an idea's experiments run in on this node; startNode removes it once the job is done. */
export const experimentWorkspace = (workRoot: string, job: { runId: string; ideaId: string; jobId: string }) => join(workRoot, job.runId, `${job.ideaId}${generationTag(job)}`);

/**
 * An idea's experiments as one chain of runs; or, given a tree search's record (`tree`), its report: the chosen
 * nodes' runs plotted and noted as the chain's would be, with the search's own account (tree.json, its drawing,
 * its figure and statistics) beside them.
 */
export async function experiment(job: Job<"experiment" | "gpuExperiment">, ctx: AgentContext, tree?: TreeRecord): Promise<ChainResult> {
  const template = await runTemplate(ctx);
  const needs = runNeeds(template, ctx.config.profile);
  const python = await requirePython(template, ctx.by.node);
  // A GPU slot sees its own GPU only; the profile may set variables of its own (e.g. SWARM_PROFILE=reduced).
  const runEnv = runEnvFor(needs, ctx.gpu);
  const ws = experimentWorkspace(ctx.workRoot, job);
  const prefix = `${job.runId}/${job.ideaId}`;
  const actorId = `coder.${job.ideaId}${generationTag(job)}${tree ? ".report" : ""}`;
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  // The run's config already weighs --run-timeout against the template's own limit.
  const limitMs = ctx.config.experimentTimeoutMs;
  const say = (text: string) => ctx.progress(text, job.ideaId);
  const snapshot = await restoreFrom(ctx, actorId, coderMachine);
  await prepareWorkspace(template, ws);
  if (snapshot) {
    const kept = await restoreWorkspace(ctx, snapshot, prefix, ws);
    await say(`going on from ${JSON.stringify(snapshot.value)}, where another coder stopped; kept ${kept.join(", ") || "no run yet"}`);
  }
  // The chosen nodes' outputs become run_1, run_2, … for plot.py, as the chain's runs would be.
  const given = tree ? await treeRuns(ctx, tree, job, ws) : undefined;
  const baselineCode = await readFile(join(template.dir, "experiment.py"), "utf8");
  const templatePlot = await readFile(join(template.dir, "plot.py"), "utf8");
  const templateFigures = new Set(await pngs(template.dir));
  const current = () => readFile(join(ws, "experiment.py"), "utf8");
  const codeOf = (run: string) => (run === "run_0" ? Promise.resolve(baselineCode) : readFile(join(ws, run, "experiment.py"), "utf8"));
  const setWorkingCopy = async (code: string) => {
    await writeFile(join(ws, "experiment.py"), code);
    await putArtifact(ctx.bus, `${prefix}/${WORKING_COPY}`, code, { signal: ctx.signal });
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
      // From the last good run's code, not the working copy: an edit that was made but not yet recorded when its
      // coder stopped is made again, never twice.
      editCode: fromPromise(async ({ input }) => {
        const code = await codeOf(input.from);
        const answer = await ask(ctx.llm, editCode, {
          idea: job.idea, run: input.run, planned: input.planned.description, code, baselineCode, feedback: input.feedback,
        }, opts);
        await setWorkingCopy(applyEdits(code, answer.edits));
      }),
      runExperiment: fromPromise(async ({ input }): Promise<RunAttempt> => {
        await say(`running ${input.run}`);
        await rm(join(ws, input.run), { recursive: true, force: true });
        const res = await sayingHowLong(run(["experiment.py", `--out_dir=${input.run}`], limitMs), `${input.run} running`, limitMs, say);
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
        await writeFile(join(ws, input.run, "experiment.py"), await current());
        await writeFile(join(ws, input.run, "diff.patch"), await unifiedDiff(join(template.dir, "experiment.py"), join(ws, "experiment.py"), "experiment.py"));
        await putDirectory(ctx.bus, join(ws, input.run), `${prefix}/${input.run}`);
        await say(`${input.run} succeeded in ${(res.ms / 1000).toFixed(1)} s`);
        return { ok: true, stderrTail: "", results };
      }),
      fixCode: fromPromise(async ({ input }) => {
        await say(`fixing ${input.run} from its stderr`);
        const code = await current();
        const answer = await ask(ctx.llm, fixCode, {
          idea: job.idea, run: input.run, planned: input.planned.description, code, baselineCode, stderrTail: input.stderrTail,
        }, opts);
        await setWorkingCopy(applyEdits(code, answer.edits));
      }),
      discardRun: fromPromise(async ({ input }) => {
        await setWorkingCopy(await codeOf(input.restore));
        await rm(join(ws, input.run), { recursive: true, force: true });
        await say(`${input.run} set aside; the code goes back to the last run that worked`);
      }),
      // Each attempt edits the template's plot.py afresh, told why the last one failed.
      editPlot: fromPromise(async ({ input }) => {
        if (input.critiques.length) await say(`plotting again for the figure critic: ${input.critiques.map((c) => `${c.figure} (${c.problems.map((p) => p.kind).join(", ")})`).join("; ")}`);
        const answer = await ask(ctx.llm, editPlot, { plotCode: templatePlot, runs: input.runs, feedback: input.feedback, critiques: input.critiques }, opts);
        return applyEdits(templatePlot, answer.edits, "plot.py");
      }),
      runPlot: fromPromise(async ({ input }): Promise<PlotAttempt> => {
        // The figures are the .png files this attempt writes beside the run folders: an earlier attempt's go first.
        const earlier = (await pngs(ws)).filter((f) => !templateFigures.has(f));
        for (const f of earlier) await rm(join(ws, f));
        await writeFile(join(ws, "plot.py"), input.plotCode);
        const res = await run(["plot.py"], needs.plotTimeoutS * 1000);
        const figures = (await pngs(ws)).filter((f) => !templateFigures.has(f)).sort();
        if (!res.ok || !figures.length) {
          return { figures: [], stderrTail: res.ok ? "plot.py ran but wrote no .png file" : res.stderr.slice(-3000) || `exit code ${res.exitCode}` };
        }
        for (const f of [...figures, "plot.py"]) await putArtifact(ctx.bus, `${prefix}/${f}`, await readFile(join(ws, f)));
        // A figure an earlier attempt made and this one did not (a plot round the critic asked for) leaves the paper's material.
        for (const f of earlier.filter((e) => !figures.includes(e))) {
          if (await hasArtifact(ctx.bus, `${prefix}/${f}`, { signal: ctx.signal })) await ctx.bus.obj.delete(`${prefix}/${f}`).catch((err: Error) => ctx.log.warn({ err: err.message, figure: f }, `could not remove the earlier figure ${f}`));
        }
        await say(`plotted ${figures.join(", ")}`);
        return { figures, stderrTail: "" };
      }),
      writeNotes: fromPromise(async ({ input }) => {
        const { notes } = await ask(ctx.llm, writeNotes, { idea: job.idea, runs: input.runs, figures: input.figures }, opts);
        await writeFile(join(ws, "notes.txt"), notes);
        await putArtifact(ctx.bus, `${prefix}/notes.txt`, notes);
        return notes;
      }),
      // The figures are in the object store already (runPlot put them there), where the critic reads them.
      critiqueFigures: fromPromise(async ({ input }) => {
        const jobId = `${job.jobId}.figures.${input.round}`;
        await say(`asking the figure critic about ${input.figures.join(", ")} (round ${input.round + 1} of at most ${ctx.config.figureRounds + 1})`);
        await publishJob(ctx.bus, "figures", {
          jobId, runId: job.runId, ideaId: job.ideaId, figures: captionsFromNotes(input.notes, input.figures), runs: input.runs, round: input.round,
        });
        const outcome = await awaitOutcome(ctx.bus, job.runId, "figures", jobId, { signal: ctx.signal, log: ctx.log });
        if (!outcome.ok) throw errorOf(outcome.failure);
        await putArtifact(ctx.bus, `${prefix}/critiques.json`, JSON.stringify(outcome.result.critiques, null, 2));
        return outcome.result.critiques;
      }),
    },
  });

  // The run's config already weighs the flag against the manifest.
  const out = await runMachine(machine, { idea: job.idea, maxRuns: ctx.config.maxRuns, maxFixes: ctx.config.maxFixes, given, ...(job.plan ? { approved: job.plan } : {}), figureRounds: ctx.config.figureRounds }, ctx, { actorId, ideaId: job.ideaId, snapshot });
  // A coder persisted before the figure critic existed has no critiques.
  const critiques = out.critiques ?? [];
  await putArtifact(ctx.bus, `${prefix}/runs.json`, JSON.stringify(out.runs, null, 2));
  if (out.error) throw new JobFailedError(`experiments for ${job.ideaId} failed: ${out.error.message}`, out.error);
  if (!tree) return { runs: out.runs, figures: out.figures, notes: out.notes, critiques };
  const report = await writeTreeReport(ctx, tree, out.runs[0]!, { ws, prefix, python: python.path, say });
  const notes = `${out.notes.trimEnd()}\n\n${searchNotes(tree, report.stats)}`;
  await writeFile(join(ws, "notes.txt"), notes);
  await putArtifact(ctx.bus, `${prefix}/notes.txt`, notes);
  return { runs: out.runs, figures: [...out.figures, ...report.figures], notes, critiques };
}
