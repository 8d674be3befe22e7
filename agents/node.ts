import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { Bus } from "../bus/connection.js";
import { UserError } from "../bus/errors.js";
import type { Logger } from "../bus/logger.js";
import type { Job, JobKind, JobResult } from "../bus/schemas.js";
import { JobFailedError, publishJob, serveJobs, type JobContext, type Worker } from "../bus/workQueue.js";
import { assertWithinBudget } from "./llm/budget.js";
import { createLlm } from "./llm/client.js";
import { createProvider } from "./llm/providers.js";
import { getRunConfig } from "./runtime/runConfig.js";
import { progressFn, type AgentContext } from "./runtime/agentContext.js";
import { ideate } from "./ideator/ideator.js";
import { judgeNovelty } from "./critic/critic.js";
import { localBibliography } from "./critic/localBibliography.js";
import type { LiteratureSource } from "./critic/literature.js";
import { experiment } from "./coder/coder.js";
import { writePaper } from "./writer/writer.js";
import { review } from "./reviewer/reviewer.js";
import { chair } from "./areaChair/areaChair.js";

/** Agent roles and the work queue each one serves. */
export const ROLE_QUEUES = {
  ideator: "ideate",
  critic: "novelty",
  coder: "experiment",
  writer: "write",
  areaChair: "chair",
  reviewer: "review",
} as const satisfies Record<string, JobKind>;
export type RoleName = keyof typeof ROLE_QUEUES;
export const ROLE_NAMES = Object.keys(ROLE_QUEUES) as RoleName[];

const RoleName = z.enum(ROLE_NAMES as [RoleName, ...RoleName[]]);
export type Roles = Partial<Record<RoleName, number>>;

/** `reviewer=2,coder` → { reviewer: 2, coder: 1 }. */
export function parseRoles(spec: string): Roles {
  const roles: Roles = {};
  for (const part of spec.split(/[,\s]+/).filter(Boolean)) {
    const [name, count] = part.split("=");
    const role = RoleName.safeParse(name);
    if (!role.success) throw new UserError(`unknown role "${name}"`, { hint: `roles are ${ROLE_NAMES.join(", ")}` });
    const n = count === undefined ? 1 : Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError(`role ${name} needs a count from 1 to 64, not "${count}"`);
    roles[role.data] = n;
  }
  if (!Object.keys(roles).length) throw new UserError("no roles given", { hint: "for example --roles reviewer=2" });
  return roles;
}

export const DEFAULT_BIBLIOGRAPHY = resolve(fileURLToPath(new URL("../config/bibliography.bib", import.meta.url)));

export interface NodeOptions {
  bus: Bus;
  roles: Roles;
  log: Logger;
  /** Names this process in every result it writes. */
  nodeId?: string;
  workRoot?: string;
  bibliography?: string;
}

export interface SwarmNode {
  nodeId: string;
  stop(): Promise<void>;
}

export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`;
}

/** Starts the workers for the given roles; each takes jobs from its queue, on any run. */
export async function startNode(opts: NodeOptions): Promise<SwarmNode> {
  const nodeId = opts.nodeId ?? defaultNodeId();
  const workRoot = resolve(opts.workRoot ?? join(".swarm", "work", nodeId));
  let literature: Promise<LiteratureSource> | undefined;
  const lit = () => (literature ??= localBibliography(opts.bibliography ?? DEFAULT_BIBLIOGRAPHY));

  async function contextFor(agent: RoleName, job: { runId: string }, jc: JobContext): Promise<AgentContext> {
    const config = await getRunConfig(opts.bus, job.runId);
    const by = { agent, node: nodeId };
    const log = jc.log.child({ runId: job.runId });
    // A job that has not started yet is new paid work: refused once the budget is spent.
    try {
      await assertWithinBudget(opts.bus, job.runId, config.budgetUsd);
    } catch (err) {
      throw new JobFailedError((err as Error).message);
    }
    const choice = config.roleLlm[agent] ?? config.llm;
    return {
      bus: opts.bus,
      runId: job.runId,
      config,
      by,
      log,
      llm: createLlm(createProvider(choice, { bus: opts.bus, runId: job.runId, log }), { bus: opts.bus, runId: job.runId, by, log }),
      signal: jc.signal,
      workRoot,
      progress: progressFn(opts.bus, job.runId, by, log),
    };
  }

  const handlers: { [R in RoleName]: (job: Job<(typeof ROLE_QUEUES)[R]>, ctx: AgentContext) => Promise<JobResult<(typeof ROLE_QUEUES)[R]>> } = {
    ideator: (job, ctx) => ideate(job, ctx),
    critic: async (job, ctx) => judgeNovelty(job, ctx, await lit()),
    coder: async (job, ctx) => {
      const result = await experiment(job, ctx);
      await publishJob(ctx.bus, "write", { jobId: `${job.runId}.write.${job.ideaId}`, runId: job.runId, ideaId: job.ideaId, idea: job.idea });
      return result;
    },
    writer: async (job, ctx) => {
      const result = await writePaper(job, ctx, await lit());
      await publishJob(ctx.bus, "chair", { jobId: `${job.runId}.chair.${job.ideaId}`, runId: job.runId, ideaId: job.ideaId, idea: job.idea, pdf: result.pdf });
      return result;
    },
    areaChair: (job, ctx) => chair(job, ctx),
    reviewer: (job, ctx) => review(job, ctx),
  };

  const workers: Worker[] = [];
  for (const [role, count] of Object.entries(opts.roles) as [RoleName, number][]) {
    const kind = ROLE_QUEUES[role];
    const log = opts.log.child({ agent: role, node: nodeId });
    const handler = handlers[role] as (job: Job<typeof kind>, ctx: AgentContext) => Promise<JobResult<typeof kind>>;
    workers.push(
      serveJobs(opts.bus, kind, async (job, jc) => handler(job, await contextFor(role, job, jc)), {
        concurrency: count,
        by: { agent: role, node: nodeId },
        log,
      }),
    );
  }
  opts.log.info({ node: nodeId, roles: opts.roles }, "node started");
  return {
    nodeId,
    async stop() {
      await Promise.allSettled(workers.map((w) => w.stop()));
    },
  };
}
