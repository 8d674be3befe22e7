import { mkdir, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { connectBus, type Bus } from "../bus/connection.js";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { rootLogger } from "../bus/logger.js";
import { publishJob } from "../bus/workQueue.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { loadTemplate } from "../agents/templates.js";
import { assertPreflight, formatPreflight, runPreflight } from "../agents/preflight.js";
import { chooseLlm, createProvider } from "../agents/llm/providers.js";
import { ROLE_NAMES, parseRoles, startNode, type SwarmNode } from "../agents/node.js";
import { collectRun, type RunSummary } from "./collect.js";
import { fail, parseFlags } from "./cli.js";
import type { RunConfig } from "../bus/schemas.js";

const HELP = `npm run swarm -- [flags]

  --template <name>   research template in templates/ (default: nanofit)
  --ideas <n>         ideas to propose (default: 1)
  --reviewers <k>     reviews per paper, each by its own reviewer actor (default: 3)
  --llm <provider[/model]>  model to use (default: $SWARM_LLM, else offline)
  --out <dir>         where results/<runId>/ goes (default: results)
  --max-runs <n>      experiment runs per idea besides the baseline (default: the template's, else 3)
  --review-deadline <s>  seconds the area chair waits for reviews (default: 600)
  --roles <list>      roles this process hosts, e.g. ideator,critic,coder,writer,areaChair
                      (default: every role, with reviewer=<k>); others come from joined nodes

  --listen <addr>     address the local nats-server listens on (default: 127.0.0.1, this machine only;
                      0.0.0.0 lets nodes on other machines join — the server has no authentication)

NATS: set NATS_URL to join a running server; unset, a local nats-server is started and stopped with the run.`;

const Flags = z.object({
  help: z.boolean().optional(),
  template: z.string().default("nanofit"),
  ideas: z.coerce.number().int().min(1).max(50).default(1),
  reviewers: z.coerce.number().int().min(1).max(20).default(3),
  llm: z.string().optional(),
  out: z.string().default("results"),
  "max-runs": z.coerce.number().int().min(1).max(20).optional(),
  "review-deadline": z.coerce.number().min(5).default(600),
  roles: z.string().optional(),
  listen: z.string().regex(/^[0-9A-Za-z.:-]+$/, "an IP address or host name").default("127.0.0.1"),
});

function newRunId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${stamp}-${randomBytes(2).toString("hex")}`;
}

/** Set once the run is stopping on purpose, so that errors from the closing connection are not reported. */
let interrupted: () => Promise<never> | undefined = () => undefined;

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    help: { type: "boolean", short: "h" },
    template: { type: "string" },
    ideas: { type: "string" },
    reviewers: { type: "string" },
    llm: { type: "string" },
    out: { type: "string" },
    "max-runs": { type: "string" },
    "review-deadline": { type: "string" },
    roles: { type: "string" },
    listen: { type: "string" },
  }, Flags);
  if (flags.help) return line(HELP);
  const started = Date.now();
  const log = rootLogger();

  const template = loadTemplate(flags.template);
  const roles = flags.roles ? parseRoles(flags.roles) : { ideator: 1, critic: 1, coder: 1, writer: 1, areaChair: 1, reviewer: flags.reviewers };
  const llm = chooseLlm(flags.llm);
  const provider = createProvider(llm);
  const offline = provider.name === "offline";
  line(offline
    ? "No model configured: running OFFLINE. A deterministic stand-in answers every request; no language model writes anything."
    : `Model: ${provider.name}/${provider.model}`);

  const natsUrl = process.env.NATS_URL;
  const report = await runPreflight({ nats: true, ...(natsUrl ? { natsUrl } : {}), tex: true, pythonModules: template.manifest.python });
  line(formatPreflight(report));
  assertPreflight(report);

  const runId = newRunId();
  const outDir = resolve(flags.out, runId);
  await mkdir(outDir, { recursive: true });

  let server: LocalNats | undefined;
  let bus: Bus | undefined;
  let node: SwarmNode | undefined;
  let stopping: Promise<never> | undefined;
  const shutdown = (code: number): Promise<never> =>
    (stopping ??= (async () => {
      await node?.stop().catch(() => undefined);
      await bus?.close().catch(() => undefined);
      await server?.stop().catch(() => undefined);
      process.exit(code);
    })());
  interrupted = () => stopping;
  process.once("SIGINT", () => {
    line("\nInterrupted: stopping the agents and the local NATS server…");
    void shutdown(130);
  });
  process.once("SIGTERM", () => void shutdown(143));

  if (!natsUrl) server = await startLocalNats({ storeDir: join(outDir, "nats"), log, host: flags.listen });
  const url = natsUrl ?? server!.url;
  bus = await connectBus(url, { name: `swarm ${runId}` });
  line(`Run ${runId} on template ${template.name}`);
  const loopbackOnly = !natsUrl && /^(127\.|localhost$|::1$)/.test(flags.listen);
  const joinUrl = natsUrl ?? (loopbackOnly ? url : url.replace("127.0.0.1", flags.listen === "0.0.0.0" || flags.listen === "::" ? hostname() : flags.listen));
  line(`NATS: ${url}`);
  line(`Add nodes with: NATS_URL=${joinUrl} npm run node -- --roles reviewer=2${loopbackOnly ? "   (this machine only; --listen 0.0.0.0 for others)" : ""}`);

  const config: RunConfig = {
    runId,
    template: template.name,
    ideas: flags.ideas,
    reviewers: flags.reviewers,
    quorum: flags.reviewers,
    reviewDeadlineMs: flags["review-deadline"] * 1000,
    maxRuns: flags["max-runs"] ?? template.manifest.maxRuns ?? 3,
    maxFixes: 2,
    maxReflections: 3,
    maxRevisions: 1,
    noveltyRounds: 3,
    experimentTimeoutMs: template.manifest.experimentTimeoutS * 1000,
    llm,
    literature: "local",
    startedAt: new Date().toISOString(),
  };
  await putRunConfig(bus, config);
  await writeFile(join(outDir, "config.json"), JSON.stringify(config, null, 2));

  node = await startNode({
    bus,
    roles,
    log: log.child({ runId }),
  });
  const absent = ROLE_NAMES.filter((r) => !roles[r]);
  if (absent.length) line(`This process does not serve ${absent.join(", ")}: the run waits for nodes that do.`);
  await publishJob(bus, "ideate", { jobId: `${runId}.ideate`, runId, count: flags.ideas });

  const summary = await collectRun(bus, runId, outDir, (p) => {
    const who = `${p.by.agent}@${p.by.node === node!.nodeId ? "local" : p.by.node}`;
    line(`[${p.at.slice(11, 19)}] ${who.padEnd(22)} ${p.ideaId ? `${p.ideaId}: ` : ""}${p.text}`);
  });
  printSummary(summary, outDir, offline, (Date.now() - started) / 1000);
  await shutdown(summary.ideas.some((i) => i.decision) ? 0 : 1);
}

function printSummary(s: RunSummary, outDir: string, offline: boolean, seconds: number): void {
  const rel = (p: string) => relative(process.cwd(), join(outDir, p)) || ".";
  line("");
  line(`Run ${s.runId} finished in ${seconds.toFixed(0)} s${offline ? " — OFFLINE: no language model wrote any of it" : ""}.`);
  line(`  results:  ${rel("")}`);
  line(`  ideas:    ${rel("ideas.json")} (${s.ideas.length} novel of ${s.proposed} proposed)`);
  for (const idea of s.ideas) {
    line(`  ${idea.ideaId}:`);
    if (idea.error) line(`    stopped: ${idea.error}`);
    if (idea.pdf) line(`    paper:    ${rel(idea.pdf)}`);
    for (const r of idea.reviews) line(`    review:   ${rel(r.file)} (reviewer ${r.reviewer} on node ${r.node}: Overall ${r.overall}, ${r.decision})`);
    if (idea.decision) line(`    decision: ${idea.decision} — ${rel(idea.metaReview!)}`);
  }
  line(`  cost:     ${rel("cost.json")} ($${s.costUsd.toFixed(4)}, ${s.tokens} tokens${offline ? ", estimated" : ""})`);
}

main().catch((err) => interrupted() ?? fail(err));
