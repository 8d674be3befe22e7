import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { Bus } from "../bus/connection.js";
import { UserError } from "../bus/errors.js";
import type { Logger } from "../bus/logger.js";
import type { Job, JobKind, JobResult } from "../bus/schemas.js";
import { publishJob, serveJobs, type JobContext, type Worker } from "../bus/workQueue.js";
import { assertWithinBudget } from "./llm/budget.js";
import { createLlm } from "./llm/client.js";
import { createProvider } from "./llm/providers.js";
import { getRunConfig } from "./runtime/runConfig.js";
import { progressFn, type AgentContext } from "./runtime/agentContext.js";
import { ideate } from "./ideator/ideator.js";
import { judgeNovelty } from "./critic/critic.js";
import { chooseLiterature } from "./literature/fallback.js";
import type { LiteratureSource } from "./literature/source.js";
import { experiment } from "./coder/coder.js";
import { baseline } from "./coder/baseline.js";
import { writePaper } from "./writer/writer.js";
import { review } from "./reviewer/reviewer.js";
import { chair } from "./areaChair/areaChair.js";
import { detectGpus, type GpuInfo } from "./gpus.js";
// Every role's offline answers, for nodes whose runs use the offline stand-in.
import "./offline.js";

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
  /** Where the literature cache lives, shared by runs (SWARM_CACHE_DIR overrides it). */
  cacheDir?: string;
  bibliography?: string;
  /** Read for SWARM_SIMULATE_GPUS; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface SwarmNode {
  nodeId: string;
  gpus: GpuInfo[];
  stop(): Promise<void>;
}

/** What a node tells the swarm about itself, in KV under `nodes.<nodeId>`, refreshed while it lives. */
export const NodeAdvert = z.object({
  nodeId: z.string(),
  host: z.string(),
  roles: z.record(z.string(), z.number()),
  gpus: z.array(z.object({ index: z.number(), name: z.string(), memoryMb: z.number(), simulated: z.boolean() })),
  startedAt: z.string(),
  seenAt: z.string(),
});
export type NodeAdvert = z.infer<typeof NodeAdvert>;
const advertKey = (nodeId: string) => `nodes.${nodeId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
const ADVERT_EVERY_MS = 15_000;

/** The nodes that advertised themselves recently. */
export async function listNodes(bus: Bus): Promise<NodeAdvert[]> {
  const out: NodeAdvert[] = [];
  for await (const key of await bus.kv.keys("nodes.>")) {
    const entry = await bus.kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    const parsed = NodeAdvert.safeParse(entry.json());
    if (parsed.success && Date.now() - Date.parse(parsed.data.seenAt) < 3 * ADVERT_EVERY_MS) out.push(parsed.data);
  }
  return out;
}

export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`;
}

function handOffToWriter(bus: Bus, job: Job<"experiment">): Promise<void> {
  return publishJob(bus, "write", { jobId: `${job.runId}.write.${job.ideaId}`, runId: job.runId, ideaId: job.ideaId, idea: job.idea });
}

/**
 * Starts the workers for the given roles; each takes jobs from its queue, on any run. A node with the coder
 * role also serves the GPU queue, one job per GPU it has.
 */
export async function startNode(opts: NodeOptions): Promise<SwarmNode> {
  const nodeId = opts.nodeId ?? defaultNodeId();
  // Scratch space outside the repository: the swarm gives its run's output folder, a joined node its temp dir.
  const workRoot = resolve(opts.workRoot ?? join(tmpdir(), "scientist-swarm", "work", nodeId));
  // One literature source per run (each run says which), shared by that run's critic and writer jobs here.
  const sources = new Map<string, Promise<LiteratureSource>>();
  const lit = (ctx: AgentContext) => {
    let source = sources.get(ctx.runId);
    if (!source) {
      source = chooseLiterature(ctx.config.literature, {
        bibliography: ctx.config.bibliography ?? opts.bibliography ?? DEFAULT_BIBLIOGRAPHY,
        cacheDir: join(process.env.SWARM_CACHE_DIR ?? opts.cacheDir ?? join(tmpdir(), "scientist-swarm", "cache"), "literature"),
        log: opts.log.child({ runId: ctx.runId, node: nodeId }),
        onWait: (why) => void ctx.progress(why),
        maxWaitMs: ctx.config.literatureWaitS * 1000,
      });
      sources.set(ctx.runId, source);
      source.catch(() => sources.delete(ctx.runId));
    }
    return source;
  };

  const gpus = opts.roles.coder ? await detectGpus(opts.env) : [];

  async function contextFor(agent: RoleName, job: { runId: string }, jc: JobContext, gpu?: number): Promise<AgentContext> {
    const config = await getRunConfig(opts.bus, job.runId);
    const by = { agent, node: nodeId };
    const log = jc.log.child({ runId: job.runId });
    // A job that has not started yet is new paid work: refused once the budget is spent (a BudgetReachedError, not retried).
    await assertWithinBudget(opts.bus, job.runId, config.budgetUsd);
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
      ...(gpu !== undefined ? { gpu } : {}),
      progress: progressFn(opts.bus, job.runId, by, log),
    };
  }

  const handlers: { [R in RoleName]: (job: Job<(typeof ROLE_QUEUES)[R]>, ctx: AgentContext) => Promise<JobResult<(typeof ROLE_QUEUES)[R]>> } = {
    ideator: (job, ctx) => ideate(job, ctx),
    critic: async (job, ctx) => judgeNovelty(job, ctx, await lit(ctx)),
    coder: async (job, ctx) => {
      const result = await experiment(job, ctx);
      await handOffToWriter(ctx.bus, job);
      return result;
    },
    writer: async (job, ctx) => {
      const result = await writePaper(job, ctx, await lit(ctx));
      await publishJob(ctx.bus, "chair", {
        jobId: `${job.runId}.chair.${job.ideaId}${job.round ? `.r${job.round}` : ""}`, runId: job.runId, ideaId: job.ideaId, idea: job.idea, pdf: result.pdf, round: job.round,
      });
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
  if (opts.roles.coder) {
    // The template's unchanged run, before any model call: one at a time, beside the experiments.
    workers.push(
      serveJobs(opts.bus, "baseline", async (job, jc) => baseline(job, await contextFor("coder", job, jc)), {
        concurrency: 1, by: { agent: "coder", node: nodeId }, log: opts.log.child({ agent: "coder", node: nodeId }),
      }),
    );
  }
  if (gpus.length) {
    // One job per GPU, each slot bound to its own device.
    const log = opts.log.child({ agent: "coder", node: nodeId });
    workers.push(
      serveJobs(opts.bus, "gpuBaseline", async (job, jc) => baseline(job, await contextFor("coder", job, jc, gpus[jc.slot]!.index)), {
        concurrency: gpus.length, by: { agent: "coder", node: nodeId }, log,
      }),
    );
    workers.push(
      serveJobs(opts.bus, "gpuExperiment", async (job, jc) => {
        const result = await experiment(job, await contextFor("coder", job, jc, gpus[jc.slot]!.index));
        await handOffToWriter(opts.bus, job);
        return result;
      }, { concurrency: gpus.length, by: { agent: "coder", node: nodeId }, log }),
    );
  }

  const startedAt = new Date().toISOString();
  const advertise = () =>
    opts.bus.kv
      .put(advertKey(nodeId), JSON.stringify({ nodeId, host: hostname(), roles: opts.roles, gpus, startedAt, seenAt: new Date().toISOString() } satisfies NodeAdvert))
      .catch((err: Error) => opts.log.warn({ err: err.message }, "could not advertise this node"));
  await advertise();
  const timer = setInterval(() => void advertise(), ADVERT_EVERY_MS);
  timer.unref();
  opts.log.info({ node: nodeId, roles: opts.roles, gpus: gpus.length }, "node started");
  return {
    nodeId,
    gpus,
    async stop() {
      clearInterval(timer);
      await Promise.allSettled(workers.map((w) => w.stop()));
      // Best effort, and not waited for while the bus is away: an advert that stays expires by its seenAt.
      await Promise.race([opts.bus.kv.delete(advertKey(nodeId)).catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    },
  };
}
