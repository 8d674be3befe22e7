/**
 * What a swarm's NATS server holds now: `NATS_URL=nats://<host>:<port> npm run status [-- --json]`.
 * The nodes alive, with their roles, GPUs, the jobs in their hands and their last heartbeat; each run with its
 * swarm's lease, its queue depths, its ideas in flight and its spend. Reads only; changes nothing.
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { connectBus, type Bus } from "../bus/connection.js";
import { rootLogger } from "../bus/logger.js";
import { UserError } from "../bus/errors.js";
import { STREAMS } from "../bus/subjects.js";
import { RunConfig } from "../bus/schemas.js";
import { inert } from "../bus/inert.js";
import { readCaFile } from "../bus/tls.js";
import { storedKeys } from "../bus/storedReads.js";
import { Claim } from "../bus/workQueue.js";
import { leaseState, type LeaseState } from "../bus/lease.js";
import { listNodes } from "../agents/runtime/nodeRegistry.js";
import { readSnapshot } from "../agents/runtime/snapshots.js";
import { PIPELINE_ACTOR } from "../agents/runtime/pipeline.js";
import { spentUsd } from "../agents/llm/budget.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `NATS_URL=nats://<host>:<port> npm run status [-- --json]

Lists the nodes alive on that NATS server (roles, GPUs, jobs in hand, last heartbeat) and each run (its swarm's
lease, jobs queued and in hand by kind, ideas in flight, spend). --json prints the same as one JSON object.
A server started with --tls: NATS_URL=tls://<host>:<port> SWARM_NATS_CA=results/<runId>/nats/tls/ca.pem.`;

const Flags = z.object({ help: z.boolean().optional(), json: z.boolean().optional() });

/** What the status shows of a run's pipeline snapshot: each idea and the state it is in. */
const PipelineView = z.object({
  value: z.unknown(),
  snapshot: z.object({
    context: z.object({ accepted: z.array(z.object({ ideaId: z.string() })) }),
    children: z.record(z.string(), z.object({ snapshot: z.object({ value: z.unknown() }).optional() })).optional(),
  }),
});

export interface StatusReport {
  nodes: { nodeId: string; host: string; roles: Record<string, number>; gpus: number; lastSeenS: number; jobs: string[] }[];
  runs: {
    runId: string;
    template: string;
    startedAt: string;
    lease: LeaseState;
    /** Jobs on the queue by kind, delivered or not. */
    queued: Record<string, number>;
    /** Each accepted idea and its pipeline's state; the run's own state first. */
    pipeline?: string;
    ideas: { ideaId: string; state: string }[];
    spentUsd: number;
  }[];
}

export async function readStatus(bus: Bus, now = Date.now()): Promise<StatusReport> {
  // Jobs in hand: claims held, of jobs not yet done.
  const done = new Set((await storedKeys(bus, "*.done.>")).map((k) => k.replace(".done.", ".claim.")));
  const inHand = new Map<string, string[]>();
  for (const key of await storedKeys(bus, "*.claim.>")) {
    if (done.has(key)) continue;
    const entry = await bus.kv.get(key);
    const claim = entry?.operation === "PUT" ? Claim.safeParse(entry.json()).data : undefined;
    if (!claim?.holder) continue;
    // `<runId>.claim.<kind>.<jobId>`: the job is named by its id, which says its kind.
    const kindAndJob = key.slice(key.indexOf(".claim.") + ".claim.".length);
    inHand.set(claim.node, [...(inHand.get(claim.node) ?? []), kindAndJob.slice(kindAndJob.indexOf(".") + 1)]);
  }
  const nodes = (await listNodes(bus)).map((n) => ({
    nodeId: n.nodeId, host: n.host, roles: n.roles, gpus: n.gpus.length, lastSeenS: Math.round((now - Date.parse(n.seenAt)) / 1000), jobs: inHand.get(n.nodeId) ?? [],
  }));

  const runs: StatusReport["runs"] = [];
  for (const key of await storedKeys(bus, "*.config")) {
    const entry = await bus.kv.get(key);
    const config = entry?.operation === "PUT" ? RunConfig.safeParse(entry.json()).data : undefined;
    if (!config) continue;
    const info = await bus.jsm.streams.info(STREAMS.jobs.name, { subjects_filter: `sci.${config.runId}.jobs.>` });
    const queued: Record<string, number> = {};
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) queued[subject.split(".")[3] ?? subject] = count;
    const persisted = await readSnapshot(bus, config.runId, PIPELINE_ACTOR, "pipeline").catch(() => undefined);
    const view = persisted ? PipelineView.safeParse(persisted).data : undefined;
    const ideas = (view?.snapshot.context.accepted ?? []).map(({ ideaId }) => ({
      ideaId, state: JSON.stringify(view?.snapshot.children?.[ideaId]?.snapshot?.value ?? "decided or failed").replace(/"/g, ""),
    }));
    runs.push({
      runId: config.runId, template: config.template, startedAt: config.startedAt, lease: await leaseState(bus, config.runId, now), queued,
      ...(view ? { pipeline: JSON.stringify(view.value).replace(/"/g, "") } : {}), ideas, spentUsd: await spentUsd(bus, config.runId),
    });
  }
  runs.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  return { nodes, runs };
}

/** The report for a person: every value from the bus made inert before it reaches the terminal. */
function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`nodes alive: ${r.nodes.length}`);
  for (const n of r.nodes) {
    const roles = Object.entries(n.roles).map(([role, k]) => `${role}=${k}`).join(",");
    lines.push(`  ${inert(n.nodeId, 60)} on ${inert(n.host, 60)}: ${inert(roles, 120)}${n.gpus ? `, ${n.gpus} GPU${n.gpus > 1 ? "s" : ""}` : ""}; seen ${n.lastSeenS} s ago; ${n.jobs.length ? `holds ${n.jobs.map((j) => inert(j, 120)).join(", ")}` : "no job in hand"}`);
  }
  lines.push(`runs: ${r.runs.length}`);
  for (const run of r.runs) {
    const queued = Object.entries(run.queued).map(([kind, k]) => `${kind} ${k}`).join(", ") || "none";
    lines.push(`  ${inert(run.runId, 40)} (${inert(run.template, 60)}, started ${inert(run.startedAt, 30)}): swarm ${run.lease}; pipeline ${inert(run.pipeline ?? "not started", 60)}; jobs queued: ${queued}; spent $${run.spentUsd.toFixed(4)}`);
    for (const idea of run.ideas) lines.push(`    ${inert(idea.ideaId, 64)}: ${inert(idea.state, 60)}`);
  }
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { help: { type: "boolean", short: "h" }, json: { type: "boolean" } }, Flags);
  if (flags.help) return void process.stdout.write(`${HELP}\n`);
  const url = process.env.NATS_URL;
  if (!url) throw new UserError("NATS_URL is not set", { hint: "use the URL the swarm printed when it started, e.g. NATS_URL=nats://host:4222 npm run status" });
  // A server started with --tls: SWARM_NATS_CA names the CA to trust (the run's nats/tls/ca.pem).
  const ca = process.env.SWARM_NATS_CA ? readCaFile(process.env.SWARM_NATS_CA) : undefined;
  const bus = await connectBus(url, { name: "status", log: rootLogger(), ...(ca ? { tls: { ca } } : {}) });
  try {
    const report = await readStatus(bus);
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  } finally {
    await bus.close();
  }
}

// Run as a command, not when the live view (scripts/ui/) imports readStatus.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) main().catch(fail);
