import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { createActor, fromPromise, toPromise } from "xstate";
import { natsForSuite } from "./helpers/nats.js";
import { scaffold } from "../agents/coder/scaffold.js";
import { baseline } from "../agents/coder/baseline.js";
import { createLlm } from "../agents/llm/client.js";
import { offlineProvider } from "../agents/llm/offline/offlineProvider.js";
import type { LlmProvider } from "../agents/llm/types.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import type { AgentContext } from "../agents/runtime/agentContext.js";
import { getArtifact } from "../bus/artifacts.js";
import { RunConfig } from "../bus/schemas.js";
import { JobFailedError } from "../bus/workQueue.js";
import "../agents/offline.js";
import { scaffoldMachine, type ScaffoldRun } from "../machines/scaffold.js";
import { failure, SwarmError } from "../bus/errors.js";
import type { RunRecord } from "../bus/schemas.js";

const results = { teacher: { means: { test_accuracy: 0.8 } } };

/** The machine with fakes: runs and checks answer in turn from the lists; every call is recorded. */
function scripted(runs: ScaffoldRun[], checks: string[][], opts: { failWrite?: unknown } = {}) {
  const calls: string[] = [];
  const machine = scaffoldMachine.provide({
    actors: {
      writeTemplate: fromPromise(async () => {
        calls.push("write");
        if (opts.failWrite) throw opts.failWrite;
      }),
      runExperiment: fromPromise(async () => {
        calls.push("run");
        return runs.shift() ?? { ok: true, stderrTail: "", results };
      }),
      fixTemplate: fromPromise(async ({ input }: { input: { feedback: string; fix: number } }) => {
        calls.push(`fix ${input.fix}: ${input.feedback}`);
      }),
      checkTemplate: fromPromise(async () => {
        calls.push("check");
        return checks.shift() ?? [];
      }),
      publishTemplate: fromPromise(async ({ input }: { input: { baseline: RunRecord } }) => {
        calls.push(`publish ${input.baseline.run}`);
        return ["experiment.py", "latex/template.tex", "plot.py", "prompt.json", "seed_ideas.json"];
      }),
    },
  });
  return { machine, calls };
}

describe("the scaffold machine", () => {
  it("writes, runs, fixes from stderr and from the check's findings, and publishes the first working run as the baseline", async () => {
    const { machine, calls } = scripted([{ ok: false, stderrTail: "NameError: np" }], [["latex/template.tex lacks RESULTS HERE"]]);
    const out = await toPromise(createActor(machine, { input: { maxFixes: 2 } }).start());
    expect(calls).toEqual(["write", "run", "fix 1: NameError: np", "run", "check", "fix 2: latex/template.tex lacks RESULTS HERE", "run", "check", "publish run_0"]);
    expect(out.error).toBeUndefined();
    expect(out.attempts).toBe(3);
    expect(out.baseline).toMatchObject({ run: "run_0", ok: true, attempts: 3, results });
    expect(out.files).toContain("experiment.py");
  });

  it("gives up when the fixes are spent, with the last stderr in a typed failure", async () => {
    const { machine, calls } = scripted([{ ok: false, stderrTail: "boom 1" }, { ok: false, stderrTail: "boom 2" }], []);
    const out = await toPromise(createActor(machine, { input: { maxFixes: 1 } }).start());
    expect(calls).toEqual(["write", "run", "fix 1: boom 1", "run"]);
    expect(out.baseline).toBeUndefined();
    expect(out.error).toMatchObject({ kind: "model", retryable: false });
    expect(out.error?.message).toMatch(/that runs after 2 attempts: boom 2$/);
    expect(out.error?.hint).toMatch(/--role-llm coder=/);
  });

  it("keeps a provider's failure as it was, retryable", async () => {
    class Busy extends SwarmError {
      readonly kind = "provider";
    }
    const { machine } = scripted([], [], { failWrite: new Busy("openai: HTTP 503", { retryable: true }) });
    const out = await toPromise(createActor(machine, { input: { maxFixes: 2 } }).start());
    expect(out.error).toEqual({ ...failure("provider", "writing the template failed: openai: HTTP 503", { retryable: true }) });
  });
});

const TOPIC = "# Title: How Much Label Noise Can a Small Network Take?\n\n## Keywords\nlabel noise, robustness\n\n## TL;DR\nWe flip training labels and measure clean test accuracy.\n";

describe("the scaffold job, on real Python and NATS", () => {
  let nats: Awaited<ReturnType<typeof natsForSuite>>;
  let dir: string;
  beforeAll(async () => {
    nats = await natsForSuite();
    dir = mkdtempSync(join(tmpdir(), "scaffold-"));
  });
  afterAll(async () => {
    await nats.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The offline stand-in, except that the first `broken` versions of experiment.py it writes raise at once. */
  function context(runId: string, broken: number, maxFixes: number): { ctx: AgentContext; progress: string[]; asked: string[] } {
    const config = RunConfig.parse({
      runId, template: "topic-label-noise", topic: { file: "/topics/noise.md", text: TOPIC }, ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000,
      maxRuns: 1, maxFixes, maxReflections: 1, maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 60_000, llm: { provider: "offline", model: "offline" }, startedAt: new Date().toISOString(),
    });
    const log = pino({ level: "silent" });
    const base = offlineProvider();
    const asked: string[] = [];
    const provider: LlmProvider = {
      ...base,
      async complete(req) {
        asked.push(req.task);
        const answer = await base.complete(req);
        const json = answer.json as { experiment_py?: string };
        if (json.experiment_py && broken-- > 0) {
          const wrecked = { ...json, experiment_py: json.experiment_py.replace("def main():\n", "def main():\n    raise ValueError('broken on purpose')\n") };
          return { ...answer, json: wrecked, text: JSON.stringify(wrecked) };
        }
        return answer;
      },
    };
    const by = { agent: "coder", node: "test" };
    const progress: string[] = [];
    const ctx: AgentContext = {
      bus: nats.bus, runId, config, by, log, signal: new AbortController().signal, workRoot: join(dir, "work"),
      llm: createLlm(provider, { bus: nats.bus, runId, by, log }),
      progress: async (text) => void progress.push(text),
    };
    return { ctx, progress, asked };
  }

  it("fixes the written code from its stderr, publishes the template, and its run is the baseline job's, from the cache", async () => {
    const { ctx, progress, asked } = context("scaffold-fixed", 1, 2);
    await putRunConfig(nats.bus, ctx.config);
    const result = await scaffold({ jobId: "s1", runId: ctx.runId }, ctx);
    expect(asked).toEqual(["coder.scaffold", "coder.scaffoldFix"]);
    expect(progress.some((p) => p.startsWith("fixing the written template (fix 1)"))).toBe(true);
    expect(result.attempts).toBe(2);
    expect(result.prefix).toBe("scaffold-fixed/template");
    expect(result.files).toEqual(["experiment.py", "latex/template.tex", "plot.py", "prompt.json", "seed_ideas.json"]);
    const code = new TextDecoder().decode(await getArtifact(nats.bus, "scaffold-fixed/template/experiment.py"));
    expect(code).not.toContain("broken on purpose");
    expect(code).toMatch(/^LABEL_NOISE = 0\.1 /m);
    expect(result.baseline).toMatchObject({ run: "run_0", ok: true, attempts: 2 });
    expect(Object.keys(result.baseline.results ?? {}).sort()).toEqual(["teacher", "xor"]);

    const base = await baseline({ jobId: "b1", runId: ctx.runId }, ctx);
    expect(base.cached).toBe(true);
    expect(base.run.results).toEqual(result.baseline.results);
  }, 60_000);

  it("gives up when its fixes are spent, as the model's failure, with the stderr that says why", async () => {
    const { ctx, asked } = context("scaffold-broken", 5, 1);
    await putRunConfig(nats.bus, ctx.config);
    const err = await scaffold({ jobId: "s2", runId: ctx.runId }, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).kind).toBe("model");
    expect((err as JobFailedError).message).toMatch(/could not write a template for the topic that runs after 2 attempts:[\s\S]*broken on purpose/);
    expect(asked).toEqual(["coder.scaffold", "coder.scaffoldFix"]);
  }, 60_000);
});
