import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { getArtifact } from "../../bus/artifacts.js";
import { FinalInfo, type Job, type JobResult } from "../../bus/schemas.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { runTemplate } from "../templates.js";
import { planRuns } from "./prompts.js";

/**
 * The plan job (`--gate plan`): the coder's plan of runs for an idea alone, from the template's code and the run's
 * baseline, for a person to approve or edit before any run is made. The same request as the coder's own planning.
 */
export async function plan(job: Job<"plan">, ctx: AgentContext): Promise<JobResult<"plan">> {
  const template = await runTemplate(ctx);
  const code = await readFile(join(template.dir, "experiment.py"), "utf8");
  const results = FinalInfo.parse(JSON.parse(new TextDecoder().decode(await getArtifact(ctx.bus, `${job.runId}/baseline/run_0/final_info.json`, { signal: ctx.signal }))));
  const baseline = { run: "run_0", description: "Baseline: the template unchanged", ok: true, attempts: 1, results };
  const answer = await ask(ctx.llm, planRuns, { idea: job.idea, code, maxRuns: ctx.config.maxRuns, baseline }, { signal: ctx.signal, ideaId: job.ideaId });
  const runs = answer.runs.slice(0, ctx.config.maxRuns);
  await ctx.progress(`planned ${runs.length} run${runs.length === 1 ? "" : "s"}; the plan waits at its gate`, job.ideaId);
  return { runs };
}
