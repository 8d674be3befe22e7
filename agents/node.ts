import { readdir, rm, rmdir, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Bus } from "../bus/connection.js";
import type { Logger } from "../bus/logger.js";
import type { Job, JobResult } from "../bus/schemas.js";
import { serveJobs, type Worker } from "../bus/workQueue.js";
import type { AgentContext } from "./runtime/agentContext.js";
import { jobContexts } from "./runtime/jobContext.js";
import { ROLE_QUEUES, type RoleName, type Roles } from "./runtime/roles.js";
import { advertiseNode, defaultNodeId, listNodes } from "./runtime/nodeRegistry.js";
import { ideate } from "./ideator/ideator.js";
import { judgeNovelty } from "./critic/critic.js";
import { chooseLiterature } from "./literature/fallback.js";
import type { LiteratureSource } from "./literature/source.js";
import { experiment, experimentWorkspace } from "./coder/coder.js";
import { nodeWorkspace, treeStep } from "./coder/treeStep.js";
import { baseline } from "./coder/baseline.js";
import { scaffold } from "./coder/scaffold.js";
import { plan } from "./coder/plan.js";
import { sandboxesSettled } from "./coder/sandbox.js";
import { citePaper, paperWorkspace, writePaper } from "./writer/writer.js";
import { review } from "./reviewer/reviewer.js";
import { chair } from "./areaChair/areaChair.js";
import { critiqueFigures } from "./figureCritic/critic.js";
import { detectGpus, type GpuInfo } from "./gpus.js";
import { hostSlots } from "./llm/endpoints.js";
// Every role's offline answers, for nodes whose runs use the offline stand-in.
import "./offline.js";

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

/** How long the folder of a job that failed here is kept for a person to look into; then it is removed. */
export const FAILED_WORK_DAYS = 7;

/**
 * Work folders (`<workRoot>/<runId>/<name>`) of failed jobs kept longer than FAILED_WORK_DAYS, except those of
 * jobs running now; a run folder left empty goes too.
 */
async function pruneWork(workRoot: string, active: Set<string>, log: Logger): Promise<void> {
  const before = Date.now() - FAILED_WORK_DAYS * 24 * 60 * 60 * 1000;
  const dirs = async (dir: string) => (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  for (const runDir of await dirs(workRoot)) {
    for (const ws of await dirs(runDir)) {
      if (active.has(ws) || (await stat(ws)).mtimeMs >= before) continue;
      await rm(ws, { recursive: true, force: true });
      log.info({ workspace: ws }, `removed ${ws}, a failed job's folder kept for ${FAILED_WORK_DAYS} days`);
    }
    await rmdir(runDir).catch(() => undefined);
  }
}

/**
 * Starts the workers for the given roles; each takes jobs from its queue, on any run, and reports its outcome.
 * What comes next is the run's pipeline's business (agents/runtime/pipeline.ts), not the worker's. A node with
 * the coder role also serves the GPU queue, one job per GPU it has.
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

  const contextFor = jobContexts(opts.bus, nodeId, workRoot);

  const active = new Set<string>();
  const prune = () => pruneWork(workRoot, active, opts.log).catch((err: Error) => opts.log.warn({ err: err.message }, "could not prune old work folders"));
  /**
   * Runs a job in its work folder `ws`, and removes the folder once the job is done: its outputs are in the
   * object store by then (every upload is awaited before the job returns). A failed job's folder is kept for
   * a person to look into, for FAILED_WORK_DAYS or until the job is tried again here.
   */
  async function inWorkspace<R>(ws: string, ctx: AgentContext, work: () => Promise<R>): Promise<R> {
    active.add(ws);
    try {
      const result = await work();
      await rm(ws, { recursive: true, force: true }).catch((err: Error) => ctx.log.warn({ err: err.message, workspace: ws }, `could not remove ${ws}`));
      return result;
    } catch (err) {
      // A job stopped here (the node leaves, or another worker took it over) did not fail: its folder is just scratch.
      if (!ctx.signal.aborted) {
        const now = new Date();
        await utimes(ws, now, now).catch(() => undefined);
        ctx.log.warn({ workspace: ws, keepDays: FAILED_WORK_DAYS }, `the job failed; its work folder ${ws} is kept for ${FAILED_WORK_DAYS} days`);
        void prune();
      }
      throw err;
    } finally {
      active.delete(ws);
    }
  }
  void prune();
  // A tree search's steps each have a folder of their own: several of one idea's nodes may run here at once.
  const runExperiment = async (job: Job<"experiment" | "gpuExperiment">, ctx: AgentContext) => {
    const step = job.step;
    if (!step || step.action === "report") return inWorkspace(experimentWorkspace(ctx.workRoot, job), ctx, () => experiment(job, ctx, step?.tree));
    return inWorkspace(nodeWorkspace(ctx.workRoot, job, step.node), ctx, () => treeStep(job, step, ctx));
  };
  /**
   * A confirmation run is handed back for another coder node to take when it asks to avoid this one (the
   * node that found the result) and the swarm has another coder node; after a few tries it runs here anyway.
   */
  const elsewhere = (gpu: boolean) => async (job: Job<"experiment" | "gpuExperiment">) => {
    if (job.step?.action !== "seed" || job.step.avoid !== nodeId) return undefined;
    // Only nodes that serve the job's queue count: a GPU job needs another node with a GPU.
    const serves = (n: Awaited<ReturnType<typeof listNodes>>[number]) => (gpu ? n.gpus.length > 0 : (n.roles.coder ?? 0) > 0);
    const others = (await listNodes(opts.bus).catch(() => [])).filter((n) => n.nodeId !== nodeId && serves(n));
    return others.length ? `a replication to run on another coder node than ${nodeId}, which found the result` : undefined;
  };

  const handlers: { [R in RoleName]: (job: Job<(typeof ROLE_QUEUES)[R]>, ctx: AgentContext) => Promise<JobResult<(typeof ROLE_QUEUES)[R]>> } = {
    ideator: (job, ctx) => ideate(job, ctx),
    critic: async (job, ctx) => judgeNovelty(job, ctx, await lit(ctx)),
    coder: runExperiment,
    writer: async (job, ctx) => inWorkspace(paperWorkspace(ctx.workRoot, job), ctx, async () => writePaper(job, ctx, await lit(ctx))),
    areaChair: (job, ctx) => chair(job, ctx),
    reviewer: (job, ctx) => review(job, ctx),
    figureCritic: (job, ctx) => critiqueFigures(job, ctx),
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
        ...(role === "coder" ? { decline: elsewhere(false) as (job: Job<typeof kind>) => Promise<string | undefined> } : {}),
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
    // A `--topic` run's template, written from its topic and run until it works, before its baseline.
    workers.push(
      serveJobs(opts.bus, "scaffold", async (job, jc) => scaffold(job, await contextFor("coder", job, jc)), {
        concurrency: 1, by: { agent: "coder", node: nodeId }, log: opts.log.child({ agent: "coder", node: nodeId }),
      }),
    );
  }
  if (opts.roles.coder) {
    // A plan for a person to see (`--gate plan`): a model call, no run, as many at once as this node has coders.
    workers.push(
      serveJobs(opts.bus, "plan", async (job, jc) => plan(job, await contextFor("coder", job, jc)), {
        concurrency: opts.roles.coder, by: { agent: "coder", node: nodeId }, log: opts.log.child({ agent: "coder", node: nodeId }),
      }),
    );
  }
  if (opts.roles.writer) {
    // An idea's citation search, while its experiments run: as many at once as this node writes papers.
    workers.push(
      serveJobs(opts.bus, "cite", async (job, jc) => {
        const ctx = await contextFor("writer", job, jc);
        return citePaper(job, ctx, await lit(ctx));
      }, { concurrency: opts.roles.writer, by: { agent: "writer", node: nodeId }, log: opts.log.child({ agent: "writer", node: nodeId }) }),
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
      serveJobs(opts.bus, "gpuExperiment", async (job, jc) => runExperiment(job, await contextFor("coder", job, jc, gpus[jc.slot]!.index)), {
        concurrency: gpus.length, by: { agent: "coder", node: nodeId }, log, decline: elsewhere(true),
      }),
    );
  }

  // Each slot that may call a model counts towards every endpoint's calls-at-once here (agents/llm/endpoints.ts),
  // so that no slot waits for another's call: the roles' slots, the writer's citation searches, the coder's plans and
  // its topic run's template (a baseline calls no model), and the GPU experiments.
  const coderExtras = opts.roles.coder ? opts.roles.coder + 1 : 0;
  const unhost = hostSlots(Object.values(opts.roles).reduce((n, c) => n + (c ?? 0), 0) + (opts.roles.writer ?? 0) + coderExtras + gpus.length);
  const advert = await advertiseNode(opts.bus, { nodeId, roles: opts.roles, gpus, startedAt: new Date().toISOString() }, opts.log);
  opts.log.info({ node: nodeId, roles: opts.roles, gpus: gpus.length }, "node started");
  return {
    nodeId,
    gpus,
    async stop() {
      await Promise.allSettled(workers.map((w) => w.stop()));
      unhost();
      // A stopped job's machine lets go at once; its experiment is killed, and this node ends after it, with nothing left running.
      await sandboxesSettled();
      await advert.stop();
    },
  };
}
