import { generationTag } from "../../bus/gates.js";
import { existsSync } from "node:fs";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { unifiedDiff } from "./unifiedDiff.js";
import { fromPromise } from "xstate";
import { variantMachine, type VariantRun } from "../../machines/variant.js";
import { TreeStepResult, type FinalInfo, type Job, type TreeStep } from "../../bus/schemas.js";
import { chooseMetric, valueOf } from "../../machines/metric.js";
import { JobFailedError } from "../../bus/workQueue.js";
import { getArtifact, hasArtifact, putArtifact, putDirectory } from "../../bus/artifacts.js";
import { runNeeds, runTemplate } from "../templates.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import { applyEdits } from "./searchReplace.js";
import { runSandboxed } from "./sandbox.js";
import { prepareWorkspace, readFinalInfo, requirePython, runEnvFor } from "./baseline.js";
import { fixCode, makeVariant } from "./prompts.js";
import { sayingHowLong } from "./longRun.js";

/** Where a tree's nodes keep their code and outputs: `<runId>/<ideaId>/tree/<node>/`. */
export const treePrefix = (job: { runId: string; ideaId: string }) => `${job.runId}/${job.ideaId}/tree`;

/** The folder a node (or seed run) is made and run in on this node; startNode removes it once the job is done. */
export const nodeWorkspace = (workRoot: string, job: { runId: string; ideaId: string; jobId: string }, node: string) => join(workRoot, job.runId, `${job.ideaId}${generationTag(job)}-${node}`);


/**
 * One step of a tree search: a node made from its parent's code by the model (a draft, an improvement, an
 * ablation, or the debugging of a buggy parent from its stderr) and run, or a node's code run again on another
 * seed. Everything it leaves (code, diffs, final_info.json, stdout and stderr) goes to `<ideaId>/tree/<node>/`.
 */
export async function treeStep(job: Job<"experiment" | "gpuExperiment">, step: Exclude<TreeStep, { action: "report" }>, ctx: AgentContext): Promise<TreeStepResult> {
  const template = await runTemplate(ctx);
  const needs = runNeeds(template, ctx.config.profile);
  const python = await requirePython(template, ctx.by.node);
  const seeded = step.action === "seed" && template.manifest.seeded;
  const runEnv = {
    ...runEnvFor(needs, ctx.gpu),
    ...(seeded ? { SWARM_SEED: String(step.seed) } : {}),
  };
  const ws = nodeWorkspace(ctx.workRoot, job, step.node);
  const prefix = treePrefix(job);
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  const say = (text: string) => ctx.progress(text, job.ideaId);
  const baselineCode = await readFile(join(template.dir, "experiment.py"), "utf8");
  const codeOf = async (node: string) => (node === "root" ? baselineCode : new TextDecoder().decode(await getArtifact(ctx.bus, `${prefix}/${node}/experiment.py`, { signal: ctx.signal })));
  const recordOf = async (node: string) => TreeStepResult.parse(JSON.parse(new TextDecoder().decode(await getArtifact(ctx.bus, `${prefix}/${node}/node.json`, { signal: ctx.signal }))));
  const source = step.action === "seed" ? step.of : step.parent;
  const actorId = `coder.${job.ideaId}${generationTag(job)}.${step.node}`;
  const snapshot = await restoreFrom(ctx, actorId, variantMachine);
  await prepareWorkspace(template, ws);
  const parentCode = await codeOf(source);
  // A node whose edit was made where another coder stopped runs that edit: it is in the object store, not redone.
  const edited = snapshot && snapshot.value !== "starting" && snapshot.value !== "editing" && (await hasArtifact(ctx.bus, `${prefix}/${step.node}/experiment.py`, { signal: ctx.signal }));
  await writeFile(join(ws, "experiment.py"), edited ? await codeOf(step.node) : parentCode);
  const limitMs = ctx.config.experimentTimeoutMs;
  /** The node's code, in the workspace and in the object store, before it runs. */
  const keep = async (code: string) => {
    await writeFile(join(ws, "experiment.py"), code);
    await putArtifact(ctx.bus, `${prefix}/${step.node}/experiment.py`, code, { signal: ctx.signal });
  };
  let description = step.action === "seed" ? `${source} on seed ${step.seed}${seeded ? "" : " (the template takes no seed: a reproduction)"}` : "";

  const machine = variantMachine.provide({
    actors: {
      makeVariant: fromPromise(async ({ input }) => {
        if (step.action === "seed") throw new Error("a seed run makes no edit");
        if (step.action === "debug") {
          const buggy = await recordOf(step.parent);
          // The code that last ran: a debug step's parent may itself be a failed debug step.
          let ran = buggy.parent ?? "root";
          while (ran !== "root") {
            const r = await recordOf(ran);
            if (r.ok) break;
            ran = r.parent ?? "root";
          }
          const stderr = await getArtifact(ctx.bus, `${prefix}/${step.parent}/stderr.txt`, { signal: ctx.signal }).then((b) => new TextDecoder().decode(b), () => "");
          // The stderr, or why a run that ended well does not count (its results lack the measure).
          const stderrTail = (stderr.trim() ? stderr : (buggy.error ?? "")).slice(-3000);
          await say(`debugging ${step.parent} as ${step.node}`);
          const answer = await ask(ctx.llm, fixCode, {
            idea: job.idea, run: step.node, planned: buggy.description, code: parentCode, baselineCode: await codeOf(ran), stderrTail,
          }, opts);
          await keep(applyEdits(parentCode, answer.edits));
          return answer.explanation;
        }
        const parent: { description: string; results?: FinalInfo | undefined } = source === "root" ? { description: "the baseline (the template unchanged)" } : await recordOf(source);
        const answer = await ask(ctx.llm, makeVariant, {
          idea: job.idea, stage: step.stage, goal: step.goal, code: parentCode, baselineCode,
          parent: { description: parent.description, ...(parent.results ? { results: parent.results } : {}) },
          tried: step.tried, sibling: step.sibling, feedback: input.feedback,
        }, opts);
        await keep(applyEdits(parentCode, answer.edits));
        return answer.description;
      }),
      runVariant: fromPromise(async (): Promise<VariantRun> => {
        const out = join(ws, "run");
        await rm(out, { recursive: true, force: true });
        await say(`running ${step.node}`);
        const res = await sayingHowLong(runSandboxed({
          cwd: ws, python: python.path, args: ["experiment.py", "--out_dir=run"], timeoutMs: limitMs, signal: ctx.signal, log: ctx.log, env: runEnv,
          ...(needs.memoryMb !== undefined ? { memoryMb: needs.memoryMb } : {}),
        }), `${step.node} running`, limitMs, say);
        await writeFile(join(ws, "stdout.txt"), res.stdout.slice(-20_000)).catch(() => undefined);
        await writeFile(join(ws, "stderr.txt"), res.stderr.slice(-20_000)).catch(() => undefined);
        if (!res.ok) return { ok: false, stderrTail: res.stderr.slice(-3000) || `exit code ${res.exitCode}${res.timedOut ? " (time limit)" : ""}` };
        try {
          return { ok: true, stderrTail: "", results: await readFinalInfo(out) };
        } catch (err) {
          return { ok: false, stderrTail: (err as Error).message };
        }
      }),
    },
  });

  const result = await runMachine(machine, { edits: step.action !== "seed", maxFixes: ctx.config.maxFixes }, ctx, { actorId, ideaId: job.ideaId, snapshot });
  if (result.error) throw new JobFailedError(`${step.node} of ${job.ideaId} failed: ${result.error.message}`, result.error);
  description = result.description || description;
  const metric = step.metric ?? template.manifest.metric ?? (result.run.results ? chooseMetric(result.run.results) : undefined);
  const value = result.run.results && metric ? valueOf(result.run.results, metric) : undefined;
  // A run that reports no value of the search's measure cannot be compared: it is buggy, and may be debugged.
  const unmeasured = result.run.ok && metric && value === undefined ? `final_info.json reports no ${metric.name}, the measure this search goes by` : undefined;
  const ok = result.run.ok && !unmeasured;
  const record: TreeStepResult = {
    node: step.node, parent: source, ...(step.action === "seed" ? {} : { stage: step.stage }), ok, description,
    ...(result.run.results ? { results: result.run.results } : {}),
    ...(value !== undefined ? { value } : {}),
    ...(metric ? { metric } : {}),
    ...(ok ? {} : { error: (unmeasured ?? result.run.stderrTail).slice(-2000) }),
  };
  // What the node is, beside its outputs: its code, its change from its parent and from the baseline, its streams.
  const dir = join(ws, "node");
  await rm(dir, { recursive: true, force: true });
  if (existsSync(join(ws, "run"))) await cp(join(ws, "run"), dir, { recursive: true });
  await mkdir(dir, { recursive: true });
  for (const f of ["experiment.py", "stdout.txt", "stderr.txt"]) if (existsSync(join(ws, f))) await cp(join(ws, f), join(dir, f));
  await writeFile(join(ws, "parent.py"), parentCode);
  await writeFile(join(dir, "diff.patch"), await unifiedDiff(join(ws, "parent.py"), join(ws, "experiment.py"), "experiment.py"));
  await writeFile(join(dir, "baseline.patch"), await unifiedDiff(join(template.dir, "experiment.py"), join(ws, "experiment.py"), "experiment.py"));
  await writeFile(join(dir, "node.json"), JSON.stringify(record, null, 2));
  await putDirectory(ctx.bus, dir, `${prefix}/${step.node}`);
  await say(`${step.node} ${record.ok ? `works${value !== undefined ? `: ${metric!.name} ${value.toPrecision(4)}` : ""}` : "is buggy"} — ${description}`);
  return record;
}
