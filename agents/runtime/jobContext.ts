import type { Bus } from "../../bus/connection.js";
import type { JobContext } from "../../bus/workQueue.js";
import { assertWithinBudget } from "../llm/budget.js";
import { createLlm } from "../llm/client.js";
import { createProvider } from "../llm/providers.js";
import { getRunConfig } from "./runConfig.js";
import { progressFn, type AgentContext } from "./agentContext.js";
import type { RoleName } from "./roles.js";

/**
 * Makes what an agent's implementations get for one job on this node: the run's configuration read from KV,
 * the role's model (through this node's own keys), the job's signal and log, and a progress line. A job that
 * has not started is new paid work: it is refused once the run's budget is spent (a BudgetReachedError).
 */
export function jobContexts(bus: Bus, nodeId: string, workRoot: string) {
  return async function contextFor(agent: RoleName, job: { runId: string; jobId: string }, jc: JobContext, gpu?: number): Promise<AgentContext> {
    const config = await getRunConfig(bus, job.runId);
    const by = { agent, node: nodeId };
    const log = jc.log.child({ runId: job.runId });
    await assertWithinBudget(bus, job.runId, config.budgetUsd);
    const choice = config.roleLlm[agent] ?? config.llm;
    return {
      bus,
      runId: job.runId,
      config,
      by,
      log,
      llm: createLlm(createProvider(choice, { bus, runId: job.runId, log }), { bus, runId: job.runId, by, log, scope: job.jobId }),
      signal: jc.signal,
      workRoot,
      ...(gpu !== undefined ? { gpu } : {}),
      progress: progressFn(bus, job.runId, by, log),
    };
  };
}
