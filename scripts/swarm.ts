import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { availableParallelism, hostname, totalmem, userInfo } from "node:os";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { connectBus, describeBusStatus, type Bus } from "../bus/connection.js";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { BusFile, checkClusterSize, startLocalCluster, type LocalCluster } from "../bus/cluster.js";
import { rootLogger } from "../bus/logger.js";
import { UserError } from "../bus/errors.js";
import { putArtifact } from "../bus/artifacts.js";
import { inert } from "../bus/inert.js";
import { GateName } from "../bus/gates.js";
import { Archive, RunConfig, TreeBudget, type FinalInfo, type JobResult } from "../bus/schemas.js";
import { readArchive, withReviews, writeArchive } from "../agents/ideator/archive.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { configuredConcurrency } from "../agents/llm/endpoints.js";
import { TOPIC_LATEX_EXAMPLE, codeFiles, coderSlots, loadTemplate, runNeeds, topicTemplate } from "../agents/templates.js";
import { readTopic, topicSlug } from "../agents/topic.js";
import { detectGpus } from "../agents/gpus.js";
import { assertPreflight, formatPreflight, runPreflight } from "../agents/preflight.js";
import { UNSAFE_NO_SANDBOX_ENV } from "../agents/coder/sandbox.js";
import { createProvider, parseLlm, type LlmChoice } from "../agents/llm/providers.js";
import { replayLogName } from "../agents/llm/replayProvider.js";
import { startNode, type SwarmNode } from "../agents/node.js";
import { ROLE_NAMES, parseRoles, type RoleName } from "../agents/runtime/roles.js";
import { listNodes } from "../agents/runtime/nodeRegistry.js";
import { collectRun, followRun, type RunSummary } from "./collect.js";
import { runPipeline } from "../agents/runtime/pipeline.js";
import { holdRunLease, type RunLease } from "../bus/lease.js";
import { fail, parseFlags } from "./cli.js";
import { startUi, type UiServer } from "./ui/server.js";
import { credsCommand, runCredsFile } from "./creds.js";
import { IDENTITIES, NATS_IDENTITIES_ENV, readIdentitiesFile, writeCredsFile } from "../bus/auth.js";
import { TLS_NAME, checkTlsFlags, joinHost, readCaFile, swarmTls, swarmTlsPaths, type SwarmTls } from "../bus/tls.js";

const HELP = `npm run swarm -- [flags]

  --template <name>   research template in templates/, or a path to one (default: nanofit)
  --topic <file>      start from a research area instead of a template: a Markdown file with a title line
                      (# Title: …) and Keywords, TL;DR and Abstract sections, as the AI Scientist v2's workshop
                      files; the coder writes experiment.py, plot.py, prompt.json and latex/template.tex for it
                      first (kept in results/<runId>/template/), and its first working run is the baseline
  --profile <name>    the template's configuration: full (default) or one its manifest names,
                      e.g. reduced (two CPU cores) for grokking and 2d_diffusion
  --ideas <n>         ideas to propose (default: 1)
  --reviewers <k>     reviews per paper, each by its own reviewer actor (default: 3)
  --quorum <q>        reviews the area chair needs before deciding (default: k); later ones are still recorded
  --revisions <n>     times a rejected paper is revised from the meta-review and reviewed again (default: 1)
  --few-shot <n>      worked example reviews shown to each reviewer, from config/review_examples/ (default: 1)
  --figure-rounds <n> rounds in which the figure critic's critique of each figure goes back to the coder's plot
                      and the writer's captions (default: 2; 0 turns the critic off)
  --llm <provider[/model]>  the model for every agent: offline, openai[/model], anthropic[/model],
                      openai-compatible/<model> (default: config/defaults.json, $SWARM_LLM, else offline)
  --role-llm <role=provider/model,...>  a model per agent role, e.g. reviewer=openai/gpt-4o-mini
  --literature <src>  where the critic and writer search: s2, openalex, auto (S2, falling back to OpenAlex)
                      or local (a BibTeX file; default when offline, else auto)
  --bibliography <file>  the BibTeX file for --literature local (default: config/bibliography.bib)
  --budget <USD>      once the run has spent this much, no new paid work starts
  --gate <points>     wait for a person at these points, any of ideas,plan,paper: an accepted idea before its
                      experiments, the coder's plan before any run, each paper before its review. Decide with
                      npm run gate -- list|approve|edit|reject <runId> <ideaId>; a waiting run costs nothing and
                      survives a restart (--resume). npm run gate -- rewind <runId> <ideaId> <stage> redoes an idea
                      from plan, experiment, writing or review on, keeping what came before
  --replay <runId>    answer every model call from that run's llm.jsonl (in --out); no network call
  --resume <runId>    go on with a run that was stopped or killed (in --out), as it was configured: no model
                      call that had been answered and no experiment run that had finished is made again
  --out <dir>         where results/<runId>/ goes (default: results)
  --max-runs <n>      experiment runs per idea besides the baseline (default: the template's, else 3)
  --search <how>      linear (default): one chain of up to --max-runs runs per idea; tree: a tree search over
                      variants in four stages (implement, tune, research, ablate), its nodes spread over every
                      coder slot of the swarm, the chosen ones re-run over seeds and confirmed on fresh seeds
  --tree <budget>     the tree's budget, e.g. implement=3,tune=3,research=3,ablate=2,debug=2,width=4: nodes per
                      stage, debug steps in a row, jobs in flight (default: the swarm's coder slots)
  --seeds <n>         seed sets each chosen variant and the final comparison run over (default: 3; tree only)
  --review-deadline <s>  seconds the area chair waits for reviews (default: 600)
  --run-timeout <s>   wall-clock limit of one experiment run, baseline included (default: the template's, else 600)
  --literature-wait <s>  longest the critic and writer wait out a rate-limited or unreachable literature service
                      before deciding without it (default: 300); an idea it could not check is "undecided", never novel
  --coders <n>        experiments this process runs at once (default: as many as its cores and memory hold
                      for the template: one per core unless its manifest says a run needs more)
  --roles <list>      roles this process hosts, e.g. ideator,critic,coder,writer,areaChair
                      (default: every role, with reviewer=<k>); others come from joined nodes; a figureCritic
                      is hosted here unless the list says how many (figureCritic=<n>)
  --listen <addr>     address the local nats-server listens on (default: 127.0.0.1, this machine only;
                      0.0.0.0 lets nodes on other machines join, each with a role's credentials: see creds)
  --nats-cluster <n>  start n local nats-servers (odd, at least 3) as one cluster that keeps 3 copies of every
                      stream and store, so the data survives losing any one server: for trying out and testing
                      what a lab's own cluster does (README: "A lab's own NATS cluster"); NATS_URL joins that
  --tls               the local nats-server takes TLS connections only: the swarm makes a CA and a certificate
                      for this machine's names and addresses (kept in the run's nats/tls/, reused by --resume)
                      and hands the CA to nodes inside their credentials files
  --tls-name <names>  more names or addresses the certificate covers, comma-separated, e.g. host.lab (implies --tls)
  --tls-cert <file> --tls-key <file>  TLS with the lab's own certificate and its key instead
  --tls-ca <file>     the CA that signed --tls-cert, handed to nodes (leave it out if their system trusts it)
  --ui                serve the live view of this run on this machine (loopback) and print its URL:
                      every node and actor, each statechart with its state lit, the conversation, ideas, spend
  --unsafe-no-sandbox run generated code even without bubblewrap, with the host's every file in its reach
                      (only on a machine you do not mind losing; install bubblewrap instead)

  npm run swarm -- creds --role <role> --out <file>   writes one role's credentials for a node on another machine

Keys and base URLs come from the environment: OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY,
ANTHROPIC_BASE_URL (openai-compatible: OPENAI_BASE_URL or SWARM_BASE_URL, and SWARM_API_KEY if it needs one).
NATS: set NATS_URL to join a running server; unset, a local nats-server is started and stopped with the run.
Servers a lab runs with the swarm's authorization block admit it with SWARM_NATS_IDENTITIES=<identities.json>
(the file written beside that block); the swarm then writes every role's credentials file for that URL.
A server that speaks TLS is joined with NATS_URL=tls://<host>:<port>, and SWARM_NATS_CA=<file> names its CA
unless this machine's trust store has it.`;

const Flags = z.object({
  help: z.boolean().optional(),
  template: z.string().optional(),
  topic: z.string().min(1).optional(),
  profile: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  ideas: count(1, 50).optional(),
  reviewers: count(1, 20).optional(),
  quorum: count(1, 20).optional(),
  revisions: count(0, 5).optional(),
  "few-shot": count(0, 10).optional(),
  "figure-rounds": count(0, 5).optional(),
  llm: z.string().optional(),
  "role-llm": z.string().optional(),
  budget: z.coerce.number().positive().optional(),
  literature: z.enum(["s2", "openalex", "auto", "local"]).optional(),
  bibliography: z.string().optional(),
  replay: z.string().regex(/^[A-Za-z0-9-]+$/, "a run id").optional(),
  resume: z.string().regex(/^[A-Za-z0-9-]+$/, "a run id").optional(),
  out: z.string().default("results"),
  "max-runs": count(1, 20).optional(),
  search: z.enum(["linear", "tree"]).optional(),
  gate: z.string().transform((s) => [...new Set(s.split(",").map((g) => g.trim()).filter(Boolean))]).pipe(z.array(GateName).min(1, "name at least one of ideas, plan, paper")).optional(),
  tree: z.string().optional(),
  seeds: count(1, 20).optional(),
  "review-deadline": z.coerce.number().min(1).default(600),
  "run-timeout": z.coerce.number().min(1, "must be at least 1 second").optional(),
  "literature-wait": z.coerce.number().min(1, "must be at least 1 second").default(300),
  coders: count(1, 64).optional(),
  roles: z.string().optional(),
  listen: z.string().regex(/^[0-9A-Za-z.:-]+$/, "an IP address or host name").default("127.0.0.1"),
  "nats-cluster": z.coerce.number().int("must be a whole number").optional(),
  tls: z.boolean().optional(),
  "tls-name": z.string().transform((s) => s.split(",").map((n) => n.trim()).filter(Boolean)).pipe(z.array(z.string().regex(TLS_NAME, "host names or IP addresses, comma-separated"))).optional(),
  "tls-cert": z.string().min(1).optional(),
  "tls-key": z.string().min(1).optional(),
  "tls-ca": z.string().min(1).optional(),
  "unsafe-no-sandbox": z.boolean().optional(),
  ui: z.boolean().optional(),
});


/** Flags that make up a run's configuration: a resumed run keeps the values it started with. */
const RUN_FLAGS = [
  "template", "topic", "profile", "ideas", "reviewers", "quorum", "revisions", "few-shot", "figure-rounds", "llm", "role-llm", "budget", "literature",
  "bibliography", "max-runs", "search", "tree", "seeds", "review-deadline", "run-timeout", "literature-wait", "gate",
];

const TREE_KEYS = { implement: "implement", tune: "tune", research: "research", ablate: "ablate", debug: "maxDebugDepth", width: "width", seeds: "seeds" } as const;

/** `implement=2,tune=3` → the tree budget's fields it names; the run's config checks their ranges. */
function parseTreeBudget(spec: string | undefined): Partial<TreeBudget> {
  const out: Record<string, number> = {};
  for (const part of (spec ?? "").split(",").map((p) => p.trim()).filter(Boolean)) {
    const [name, value] = part.split("=");
    const key = TREE_KEYS[name as keyof typeof TREE_KEYS];
    const n = Number(value);
    if (!key || !Number.isInteger(n)) {
      throw new UserError(`--tree ${spec}: "${part}" is not <stage or setting>=<whole number>`, { hint: `the names are ${Object.keys(TREE_KEYS).join(", ")}, e.g. --tree implement=3,tune=2` });
    }
    out[key] = n;
  }
  // Checked whole (the rest at their defaults); only what the flag names is returned, over what a replay had.
  const parsed = TreeBudget.safeParse(out);
  if (!parsed.success) throw new UserError(`--tree ${spec}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  return out;
}

/** A whole number in [min, max]: one message for every value outside it, negative or too large alike. */
function count(min: number, max: number) {
  return z.coerce.number().int(`must be a whole number from ${min} to ${max}`).min(min, `must be a whole number from ${min} to ${max}`).max(max, `must be a whole number from ${min} to ${max}`);
}

const Defaults = z.object({
  llm: z.string().nullable().default(null),
  roleLlm: z.record(z.string(), z.string()).default({}),
  budgetUsd: z.number().positive().nullable().default(null),
});

function newRunId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${stamp}-${randomBytes(2).toString("hex")}`;
}

/** How much of a name (a node, an idea) and of a line of text from the bus is printed; failures may take a few lines. */
const ID_CHARS = 80;
const TEXT_CHARS = 500;
const BLOCK_CHARS = 4000;

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Set once the run is stopping on purpose, so that errors from the closing connection are not reported. */
let interrupted: () => Promise<never> | undefined = () => undefined;

function parseRoleLlm(spec: string | undefined, defaults: Record<string, string>): Partial<Record<RoleName, LlmChoice>> {
  const out: Partial<Record<RoleName, LlmChoice>> = {};
  const entries = [...Object.entries(defaults), ...(spec ? spec.split(",").filter(Boolean).map((p) => p.split("=") as [string, string]) : [])];
  for (const [role, choice] of entries) {
    if (!(ROLE_NAMES as string[]).includes(role) || !choice) {
      throw new UserError(`--role-llm: "${role}=${choice ?? ""}" is not role=provider/model`, { hint: `roles are ${ROLE_NAMES.join(", ")}` });
    }
    out[role as RoleName] = parseLlm(choice);
  }
  return out;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    help: { type: "boolean", short: "h" },
    template: { type: "string" },
    topic: { type: "string" },
    profile: { type: "string" },
    ideas: { type: "string" },
    reviewers: { type: "string" },
    quorum: { type: "string" },
    revisions: { type: "string" },
    "few-shot": { type: "string" },
    "figure-rounds": { type: "string" },
    llm: { type: "string" },
    "role-llm": { type: "string" },
    budget: { type: "string" },
    literature: { type: "string" },
    bibliography: { type: "string" },
    replay: { type: "string" },
    resume: { type: "string" },
    out: { type: "string" },
    "max-runs": { type: "string" },
    search: { type: "string" },
    gate: { type: "string" },
    tree: { type: "string" },
    seeds: { type: "string" },
    "review-deadline": { type: "string" },
    "run-timeout": { type: "string" },
    "literature-wait": { type: "string" },
    coders: { type: "string" },
    roles: { type: "string" },
    listen: { type: "string" },
    "nats-cluster": { type: "string" },
    tls: { type: "boolean" },
    "tls-name": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "tls-ca": { type: "string" },
    "unsafe-no-sandbox": { type: "boolean" },
    ui: { type: "boolean" },
  }, Flags);
  if (flags.help) return line(HELP);
  const tlsFlags = { tls: flags.tls, names: flags["tls-name"], cert: flags["tls-cert"], key: flags["tls-key"], ca: flags["tls-ca"] };
  checkTlsFlags(tlsFlags, { natsUrl: process.env.NATS_URL });
  // Joining a server that speaks TLS with a CA of its own.
  const natsCa = process.env.NATS_URL && process.env.SWARM_NATS_CA ? readCaFile(process.env.SWARM_NATS_CA) : undefined;
  if (flags["nats-cluster"] !== undefined) {
    checkClusterSize(flags["nats-cluster"]);
    if (process.env.NATS_URL) throw new UserError("--nats-cluster starts local servers, and NATS_URL names servers to join: give one of them", { hint: "unset NATS_URL, or leave --nats-cluster out to run on the servers it names" });
  }
  // The sandbox reads it when it runs generated code (agents/coder/sandbox.ts).
  if (flags["unsafe-no-sandbox"]) process.env[UNSAFE_NO_SANDBOX_ENV] = "1";
  const started = Date.now();
  const log = rootLogger();
  const defaults = Defaults.parse(JSON.parse(readFileSync(new URL("../config/defaults.json", import.meta.url), "utf8")));
  // Read now, so that a bad limit is said before the run starts rather than by its first model call.
  configuredConcurrency();

  // A replay repeats an earlier run's configuration and answers, so it reads that run first.
  const replayed = flags.replay ? await readReplayed(resolve(flags.out, flags.replay)) : undefined;
  if (flags.replay && flags.resume) throw new UserError("--replay and --resume do not go together", { hint: "--resume <runId> goes on with a run as it was configured; a replay is a new run" });
  // A resumed run keeps the configuration it started with; what is given beside --resume is not applied.
  const resumed = flags.resume ? await readResumed(resolve(flags.out, flags.resume)) : undefined;
  const resumedAt = resumed ? new Date().toISOString() : undefined;
  if (resumed) {
    const given = RUN_FLAGS.filter((f) => process.argv.some((a) => a === `--${f}` || a.startsWith(`--${f}=`)));
    if (given.length) line(`Resuming keeps the run's own configuration: ${given.map((f) => `--${f}`).join(", ")} not applied.`);
  }
  const prior = replayed ?? resumed;
  if (flags.topic && flags.template) throw new UserError("--topic and --template do not go together", { hint: "--topic starts from a research area, for which the coder writes the template; --template starts from one that exists" });
  // A topic run's template is written by its coder: until then it goes by its topic's name, with the manifest's defaults.
  // A replay asks at the gates given to it only: the original run's decisions are that run's, not a replay's.
  const gates = resumed ? resumed.gates : (flags.gate ?? []);
  const topic = resumed ? resumed.topic : flags.topic ? readTopic(flags.topic) : flags.template ? undefined : replayed?.topic;
  const template = topic
    ? topicTemplate(flags.topic ? topicSlug(topic.text) : prior!.template, topic)
    : loadTemplate(flags.template ?? prior?.template ?? "nanofit");
  const reviewers = resumed?.reviewers ?? flags.reviewers ?? replayed?.reviewers ?? 3;
  if (flags.quorum !== undefined && flags.quorum > reviewers) {
    throw new UserError(`--quorum ${flags.quorum} is more than the ${reviewers} reviewers asked for`, { hint: `give --quorum at most ${reviewers}, or more --reviewers` });
  }
  const ideas = resumed?.ideas ?? flags.ideas ?? replayed?.ideas ?? 1;
  const llm: LlmChoice = resumed
    ? resumed.llm
    : replayed
      ? { provider: "replay", model: flags.replay! }
      : parseLlm(flags.llm ?? process.env.SWARM_LLM ?? defaults.llm ?? "offline");
  const roleLlm: Partial<Record<RoleName, LlmChoice>> = resumed ? resumed.roleLlm : replayed ? {} : parseRoleLlm(flags["role-llm"], defaults.roleLlm);
  const choices = [llm, ...Object.values(roleLlm)].filter((c, i, all) => all.findIndex((o) => o.provider === c.provider && o.model === c.model) === i);
  const offline = choices.every((c) => c.provider === "offline");
  line(
    offline
      ? "No model configured: running OFFLINE. A deterministic stand-in answers every request; no language model writes anything."
      : replayed
        ? `Replaying the model answers recorded in run ${flags.replay}: no model is called.`
        : `Models: ${llm.provider}/${llm.model}${Object.entries(roleLlm).map(([r, c]) => `, ${r}: ${c.provider}/${c.model}`).join("")}`,
  );
  if (flags.bibliography && !existsSync(flags.bibliography)) {
    throw new UserError(`no bibliography at ${flags.bibliography}`, { hint: "give a BibTeX file, or leave --bibliography out for the shipped one" });
  }
  const budgetUsd = resumed ? resumed.budgetUsd : (flags.budget ?? defaults.budgetUsd ?? undefined);
  if (budgetUsd !== undefined) line(`Budget: $${budgetUsd.toFixed(4)}; no new paid work starts past it.`);

  const profile = resumed?.profile ?? flags.profile ?? replayed?.profile ?? "full";
  const needs = runNeeds(template, profile);
  // Ideas reach the coder as soon as the critic passes them: each slot here takes one, the machine permitting.
  const fit = coderSlots(needs, { cores: availableParallelism(), memoryMb: totalmem() / 2 ** 20 });
  const coders = flags.coders ?? (needs.gpu ? 1 : fit.slots);
  // The figure critic is light (a pixel check, or one model call per figure): the swarm hosts one unless --roles says how many.
  const roles = flags.roles ? { figureCritic: 1, ...parseRoles(flags.roles) } : { ideator: 1, critic: 1, coder: coders, writer: 1, areaChair: 1, reviewer: reviewers, figureCritic: 1 };
  if (flags.coders !== undefined && flags.roles) throw new UserError("--coders and --roles both say how many coders run here", { hint: "give coder=<n> in --roles, or leave --roles out" });
  if (!flags.roles && !needs.gpu && ideas > 1) line(`Coder slots: ${coders}${flags.coders === undefined ? ` (${fit.why}; --coders to change)` : ""}.`);
  // Experiments run here only if this process codes and can meet the profile's need for a GPU.
  const localGpus = roles.coder ? await detectGpus() : [];
  const codesHere = Boolean(roles.coder) && (!needs.gpu || localGpus.length > 0);
  const natsUrl = process.env.NATS_URL;
  const report = await runPreflight({
    nats: true, ...(natsUrl ? { natsUrl } : {}), tex: true, pythonModules: codesHere ? template.python : [], sandbox: Boolean(roles.coder),
    // A topic run has no template folder yet: the LaTeX packages are those of the example its template is modelled on.
    template: topic ? { texFile: TOPIC_LATEX_EXAMPLE, pythonFiles: [] } : { texFile: join(template.dir, "latex", "template.tex"), pythonFiles: codeFiles(template.dir).filter((f) => f.endsWith(".py")).map((f) => join(template.dir, f)) },
  });
  line(formatPreflight(report));
  assertPreflight(report);

  const runId = resumed?.runId ?? newRunId();
  const outDir = resolve(flags.out, runId);
  await mkdir(outDir, { recursive: true });
  const stopPipeline = new AbortController();

  let server: LocalNats | undefined;
  let bus: Bus | undefined;
  let node: SwarmNode | undefined;
  let lease: RunLease | undefined;
  let ui: UiServer | undefined;
  let stopping: Promise<never> | undefined;
  const shutdown = (code: number): Promise<never> =>
    (stopping ??= (async () => {
      stopPipeline.abort();
      await lease?.stop().catch(() => undefined);
      await ui?.close().catch(() => undefined);
      await node?.stop().catch(() => undefined);
      await bus?.close().catch(() => undefined);
      await server?.stop().catch(() => undefined);
      process.exit(code);
    })());
  interrupted = () => stopping;
  // A Ctrl-C reaches this process twice at once (from the terminal, and passed on by npm): only a second one a
  // moment later means "leave now", with the jobs in flight left for their acknowledgement time to pass.
  let interruptedAt = 0;
  // Once the run is over (the live view is kept up after it), a Ctrl-C only leaves, with the run's own exit code.
  let finishedWith: number | undefined;
  process.on("SIGINT", () => {
    if (finishedWith !== undefined) return void shutdown(finishedWith);
    if (interruptedAt && Date.now() - interruptedAt > 2000) {
      line("Interrupted again: leaving at once.");
      process.exit(130);
    }
    if (interruptedAt) return;
    interruptedAt = Date.now();
    line(`\nInterrupted: stopping the agents and the local NATS server… Go on later with: npm run swarm -- --out ${flags.out} --resume ${runId}`);
    void shutdown(130);
  });
  process.once("SIGTERM", () => void shutdown(finishedWith ?? 143));

  try {
    // A resumed run's server opens the same store on the same port, so that nodes that joined it reconnect by themselves.
    const busFile = join(outDir, "bus.json");
    const kept = resumed && existsSync(busFile) ? BusFile.safeParse(JSON.parse(await readFile(busFile, "utf8"))).data : undefined;
    const port = kept?.port;
    // A cluster run is resumed on its cluster, whatever is given; a single server's store cannot become a cluster's.
    if (kept && !kept.cluster && flags["nats-cluster"]) throw new UserError(`run ${runId} was started on one nats-server: it is resumed on one`, { hint: "leave --nats-cluster out of --resume" });
    const layout = kept?.cluster;
    let cluster: LocalCluster | undefined;
    let tls: SwarmTls | undefined;
    if (!natsUrl) tls = await swarmTls(tlsFlags, { dir: join(outDir, "nats", "tls"), listen: flags.listen, resumed: Boolean(resumed), runId, log });
    if (!natsUrl && (layout || flags["nats-cluster"])) {
      server = cluster = await startLocalCluster({ size: layout?.servers.length ?? flags["nats-cluster"]!, dir: join(outDir, "nats"), log, host: flags.listen, ...(layout ? { layout } : {}), ...(tls ? { tls } : {}) });
    } else if (!natsUrl) server = await startLocalNats({ storeDir: join(outDir, "nats"), log, host: flags.listen, ...(port ? { port } : {}), ...(tls ? { tls } : {}) });
    // The servers' pids are there for whoever must find one of them (a test that kills one).
    const servers = cluster?.servers.map(({ name, port, clusterPort, pid }) => ({ name, port, clusterPort, pid }));
    if (server) await writeFile(busFile, JSON.stringify({ port: server.port, ...(servers ? { cluster: { servers } } : {}) }));
    const url = natsUrl ?? server!.url;
    // A lab's own servers admit the swarm with the identities whose authorization block they were given.
    const identities = server?.identities ?? (natsUrl && process.env[NATS_IDENTITIES_ENV] ? readIdentitiesFile(process.env[NATS_IDENTITIES_ENV]) : undefined);
    bus = await connectBus(url, {
      name: `swarm ${runId}`,
      log,
      ...(identities ? { credential: { ...identities.swarm, role: "swarm" } } : {}),
      ...(cluster ? { replicas: cluster.replicas } : {}),
      ...(tls ? { tls: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.servername ? { servername: tls.servername } : {}) } } : natsCa ? { tls: { ca: natsCa } } : {}),
      // A restart of the server delays the run; the person sees why it pauses and when it goes on.
      onStatus: (status) => {
        // While stopping, its own server going (Ctrl-C reaches it too) is not an outage that the run waits out.
        if (stopping) return;
        if (status.type !== "closed" || status.error) line(`[${new Date().toISOString().slice(11, 19)}] ${inert(describeBusStatus(status), 300)}`);
      },
    });
    line(resumed ? `Resuming run ${runId} on template ${template.name} (started ${resumed.startedAt})` : `Run ${runId} on template ${template.name}${topic ? `, which the coder writes from the topic ${relative(process.cwd(), topic.file) || topic.file}` : ""}`);
    const loopbackOnly = !natsUrl && /^(127\.|localhost$|::1$)/.test(flags.listen);
    const joinUrl = natsUrl ?? (loopbackOnly ? url : url.replaceAll("127.0.0.1", joinHost(tls, flags.listen === "0.0.0.0" || flags.listen === "::" ? hostname() : flags.listen)));
    line(`NATS: ${url}`);
    // Any free port: the page is for this run, and two swarms on one machine must not clash.
    if (flags.ui) {
      // The swarm's own view may decide at the run's gates: its URL carries the token that lets it.
      ui = await startUi({ bus, log: log.child({ agent: "ui" }), gates: { by: `${userInfo().username}@${hostname()} (live view)` } });
      line(`Live view: ${ui.url}?run=${runId}${ui.gateToken && gates.length ? `#gate=${ui.gateToken}` : ""}`);
    }
    if (tls) {
      line(tls.made
        ? `TLS: required; the swarm's own CA is ${relative(process.cwd(), swarmTlsPaths(join(outDir, "nats", "tls")).caFile)}, and every credentials file carries it`
        : `TLS: required, with the lab's certificate; ${tls.ca ? "every credentials file carries its CA" : "nodes trust it through their system's CAs"}`);
    }
    if (identities) {
      // Beyond loopback a node needs its role's credentials: one private file per role, in the run's folder.
      for (const role of IDENTITIES) {
        if (role !== "swarm") writeCredsFile(runCredsFile(outDir, role), { kind: "scientist-swarm-creds", url: joinUrl, role, runId, ...identities[role], ...(bus.domain ? { domain: bus.domain } : {}), ...(tls?.ca ? { ca: tls.ca } : natsCa ? { ca: natsCa } : {}) });
      }
      line(`Add nodes with: npm run node -- --creds ${relative(process.cwd(), runCredsFile(outDir, "reviewer")) || "."} --roles reviewer=2   (copy the file to that machine; other roles: npm run swarm -- creds --role <role> --out <file>)`);
    } else {
      const caEnv = tls?.made ? `SWARM_NATS_CA=${relative(process.cwd(), swarmTlsPaths(join(outDir, "nats", "tls")).caFile)} ` : "";
      line(`Add nodes with: NATS_URL=${joinUrl} ${caEnv}npm run node -- --roles reviewer=2${loopbackOnly ? "   (this machine only; --listen 0.0.0.0 for others)" : ""}`);
    }

    if (replayed) await putArtifact(bus, replayLogName(runId), await readFile(join(resolve(flags.out, flags.replay!), "llm.jsonl")));
    // Credentials and models are proven with one cheap call each before anything is spent.
    for (const choice of choices) {
      await createProvider(choice, { bus, runId, log }).check();
      if (choice.provider !== "offline" && choice.provider !== "replay") line(`✓ ${choice.provider}/${choice.model}: credentials and model accepted`);
    }

    if (!resumed && flags.gate?.includes("plan") && (flags.search ?? replayed?.search) === "tree") {
      throw new UserError("--gate plan gates a linear search's plan of runs: a tree search has none", { hint: "leave plan out of --gate, or --search linear" });
    }
    const config: RunConfig = resumed ?? RunConfig.parse({
      runId,
      template: template.name,
      ...(topic ? { topic } : {}),
      profile,
      ideas,
      reviewers,
      quorum: Math.min(flags.quorum ?? replayed?.quorum ?? reviewers, reviewers),
      reviewDeadlineMs: flags["review-deadline"] * 1000,
      maxRuns: flags["max-runs"] ?? replayed?.maxRuns ?? template.manifest.maxRuns ?? 3,
      maxFixes: 2,
      search: flags.search ?? replayed?.search ?? "linear",
      gates,
      tree: { ...(replayed?.tree ?? {}), ...parseTreeBudget(flags.tree), ...(flags.seeds !== undefined ? { seeds: flags.seeds } : {}) },
      maxReflections: 3,
      maxRevisions: 1,
      revisionRounds: flags.revisions ?? replayed?.revisionRounds ?? 1,
      fewShot: flags["few-shot"] ?? replayed?.fewShot ?? 1,
      figureRounds: flags["figure-rounds"] ?? replayed?.figureRounds ?? 2,
      noveltyRounds: 3,
      reviewReflections: 3,
      citeRounds: 2,
      experimentTimeoutMs: flags["run-timeout"] !== undefined ? flags["run-timeout"] * 1000 : (replayed?.experimentTimeoutMs ?? needs.experimentTimeoutS * 1000),
      literatureWaitS: flags["literature-wait"],
      llm,
      roleLlm,
      ...(budgetUsd !== undefined ? { budgetUsd } : {}),
      literature: flags.literature ?? replayed?.literature ?? (offline || replayed ? "local" : "auto"),
      ...(flags.bibliography ? { bibliography: resolve(flags.bibliography) } : replayed?.bibliography ? { bibliography: replayed.bibliography } : {}),
      startedAt: new Date().toISOString(),
    });
    await putRunConfig(bus, config);
    if (!resumed) await writeFile(join(outDir, "config.json"), JSON.stringify(config, null, 2));
    // The run's jobs are done only while its swarm holds its lease: killed, they wait for --resume.
    lease = await holdRunLease(bus, runId, {
      log,
      onLost: (by) => {
        line(`Run ${runId} was taken over by a swarm on ${inert(by.node, ID_CHARS)} (--resume there): this one stops.`);
        void shutdown(1);
      },
    });

    // Scratch folders live with the run's output; the literature cache beside the runs it serves.
    node = await startNode({ bus, roles, log: log.child({ runId }), workRoot: join(outDir, "work"), cacheDir: join(resolve(flags.out), "cache") });
    const absent = ROLE_NAMES.filter((r) => !roles[r]);
    if (absent.length) line(`This process does not serve ${absent.join(", ")}: the run waits for nodes that do.`);
    if (needs.gpu) {
      const withGpu = (await listNodes(bus)).filter((n) => n.gpus.length > 0);
      line(
        withGpu.length
          ? `Profile ${profile} needs a GPU: ${withGpu.map((n) => `${inert(n.nodeId, ID_CHARS)} (${n.gpus.length} GPU${n.gpus.length > 1 ? "s" : ""})`).join(", ")} will run the experiments.`
          : `Profile ${profile} needs a GPU and no node with one has joined: experiments wait until \`npm run node -- --roles coder\` runs on a GPU machine${template.manifest.profiles.reduced ? ` (or use --profile reduced on CPU)` : ""}.`,
      );
    }
    // The archive of earlier runs' ideas lives beside the results, so that a new run proposes new ideas. Each run
    // keeps the archive it started from; a replay starts from that one and leaves the shared archive alone.
    const archiveFile = join(resolve(flags.out), "archive", `${template.name.replace(/[^A-Za-z0-9_-]/g, "_")}.json`);
    const startFrom = replayed ? join(resolve(flags.out), flags.replay!, "archive.json") : archiveFile;
    const archived = existsSync(startFrom) ? Archive.safeParse(JSON.parse(await readFile(startFrom, "utf8"))) : undefined;
    const startArchive = archived?.success ? archived.data : [];
    if (!resumed) {
      if ((await readArchive(bus, template.name)).length === 0) await writeArchive(bus, template.name, startArchive);
      await writeFile(join(outDir, "archive.json"), JSON.stringify(startArchive, null, 2));
    }
    // The run's pipeline (machines/pipeline.ts) runs here: the baseline, before any model call, then ideation,
    // and each accepted idea's experiments, paper and review; it is persisted at every step, so --resume goes on.
    if (!resumed) line(topic ? `The coder writes the template from the topic "${inert(topicTemplate(template.name, topic).taskDescription, TEXT_CHARS)}", then its first working run is the baseline…` : `Computing the baseline run_0 of ${template.name} before any model call…`);
    const follower = await followRun(bus, runId, {
      progress: (p, spent) => {
        // Everything in it came over the bus: one line, short, with no escape sequence or control character left.
        const who = `${inert(p.by.agent, 20)}@${p.by.node === node!.nodeId ? "local" : inert(p.by.node, ID_CHARS)}`;
        line(`[${inert(p.at.slice(11, 19), 8)}] ${who.padEnd(22)} ${offline ? "" : `$${spent.toFixed(4)} `}${p.ideaId ? `${inert(p.ideaId, ID_CHARS)}: ` : ""}${inert(p.text, TEXT_CHARS)}`);
      },
      // The pipeline's own steps, from its state events: where each idea stands.
      state: (e, spent) => {
        if (e.machine !== "idea" || !e.ideaId) return;
        line(`[${inert(e.at.slice(11, 19), 8)}] ${"pipeline".padEnd(22)} ${offline ? "" : `$${spent.toFixed(4)} `}${inert(e.ideaId, ID_CHARS)}: ${describeIdeaState(e.state)}`);
      },
    }, { since: resumedAt });
    const pipeline = await runPipeline({
      bus, config, baselineKind: needs.gpu ? "gpuBaseline" : "baseline", experimentKind: needs.gpu ? "gpuExperiment" : "experiment",
      by: { agent: "pipeline", node: node.nodeId }, log: log.child({ runId, agent: "pipeline" }), signal: stopPipeline.signal, resume: Boolean(resumed),
      onOutcome: (kind, o) => {
        if (kind === "scaffold" && o.ok) {
          const written = o.result as JobResult<"scaffold">;
          line(`✓ template written from the topic on ${inert(o.by.node, ID_CHARS)} (${written.attempts} attempt${written.attempts === 1 ? "" : "s"}): ${written.files.map((f) => inert(f, ID_CHARS)).join(", ")}`);
        } else if (kind === "scaffold" && !o.ok) {
          line(`\nRun ${runId} failed: the coder could not write a working template from the topic on node ${inert(o.by.node, ID_CHARS)}.\n  ${inert(o.failure.message, BLOCK_CHARS, { lines: true }).replace(/\n/g, "\n  ")}`);
        } else if ((kind === "baseline" || kind === "gpuBaseline") && o.ok) {
          const base = o.result as JobResult<"baseline">;
          line(`✓ baseline run_0 ${base.cached ? "from the cache" : `in ${(base.ms / 1000).toFixed(1)} s`} on ${inert(o.by.node, ID_CHARS)}: ${inert(describeResults(base.run.results), TEXT_CHARS)}`);
        } else if ((kind === "baseline" || kind === "gpuBaseline") && !o.ok) {
          line(`\nRun ${runId} failed: the unchanged template does not run on node ${inert(o.by.node, ID_CHARS)}, so nothing was spent.\n  ${inert(o.failure.message, BLOCK_CHARS, { lines: true }).replace(/\n/g, "\n  ")}`);
        }
      },
    });
    await follower.close();
    const summary = await collectRun(bus, runId, outDir, pipeline, follower.exchanges, { budgetUsd: config.budgetUsd });
    // The run is over: jobs of it still queued (reviews past the quorum) are dropped, not kept for a --resume.
    await lease.end();
    // Each decided idea's last decision goes with it into the archive: the template's next run learns from its reviews.
    const archive = withReviews(await readArchive(bus, template.name), runId, pipeline.ideas);
    if (archive.length && !replayed) {
      await writeArchive(bus, template.name, archive);
      await mkdir(dirname(archiveFile), { recursive: true });
      await writeFile(archiveFile, JSON.stringify(archive, null, 2));
    }
    printSummary(summary, outDir, offline, (Date.now() - started) / 1000);
    const code = summary.status === "failed" ? 1 : 0;
    if (ui) {
      // A page opened on a run that ended in seconds would go dark at once: it stays up to look back through the
      // run (its time slider), with the agents stopped, until Ctrl-C.
      await node?.stop().catch(() => undefined);
      node = undefined;
      finishedWith = code;
      line(`Live view: ${ui.url}?run=${runId}${ui.gateToken && gates.length ? `#gate=${ui.gateToken}` : ""} stays up to look back through the run; Ctrl-C to leave.`);
      return new Promise<never>(() => undefined);
    }
    await shutdown(code);
  } catch (err) {
    if (stopping) return stopping;
    await ui?.close().catch(() => undefined);
    await node?.stop().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    throw err;
  }
}

/** The configuration of a run to go on with; one that has ended is not resumed. */
async function readResumed(dir: string): Promise<RunConfig> {
  if (!existsSync(join(dir, "config.json"))) {
    throw new UserError(`no run to resume in ${dir}`, { hint: "give the id of a run under --out (the folder name in results/)" });
  }
  if (existsSync(join(dir, "status.json"))) {
    const status = z.object({ status: z.string() }).safeParse(JSON.parse(await readFile(join(dir, "status.json"), "utf8"))).data?.status ?? "unknown";
    throw new UserError(`run ${dir.split("/").pop()} has already ended (${status}); there is nothing to resume`, { hint: "start a new run, or --replay it" });
  }
  return RunConfig.parse(JSON.parse(await readFile(join(dir, "config.json"), "utf8")));
}

async function readReplayed(dir: string): Promise<RunConfig> {
  if (!existsSync(join(dir, "llm.jsonl")) || !existsSync(join(dir, "config.json"))) {
    throw new UserError(`no finished run to replay in ${dir}`, { hint: "give the id of a run under --out that has llm.jsonl and config.json" });
  }
  return RunConfig.parse(JSON.parse(await readFile(join(dir, "config.json"), "utf8")));
}

const IDEA_STATES: Record<string, string> = {
  awaitingIdea: "→ waiting at the ideas gate (npm run gate)",
  planning: "→ planning its runs (coder)",
  awaitingPlan: "→ waiting at the plan gate (npm run gate)",
  experimenting: "→ experimenting (coder)",
  writing: "→ writing the paper (writer)",
  reviewing: "→ under review (area chair)",
  revising: "→ revising (writer)",
  awaitingPaper: "→ waiting at the paper gate (npm run gate)",
  decided: "→ decided",
  rejected: "→ turned down at a gate",
  failed: "→ failed",
};

/** An idea machine's state, for a person. */
function describeIdeaState(state: unknown): string {
  return IDEA_STATES[String(state)] ?? `→ ${inert(JSON.stringify(state) ?? "", ID_CHARS)}`;
}

/** `moons: acc 0.912, loss 0.3`: the first metrics of each dataset, for one line. */
function describeResults(results: FinalInfo | undefined): string {
  return Object.entries(results ?? {})
    .slice(0, 3)
    .map(([ds, v]) => `${ds}: ${Object.entries(v.means).slice(0, 3).map(([k, x]) => `${k} ${Number.isInteger(x) ? x : x.toPrecision(4)}`).join(", ")}`)
    .join("; ");
}

function printSummary(s: RunSummary, outDir: string, offline: boolean, seconds: number): void {
  const rel = (p: string) => relative(process.cwd(), join(outDir, p)) || ".";
  line("");
  line(`Run ${s.runId} ${s.status} in ${seconds.toFixed(0)} s${offline ? " — OFFLINE: no language model wrote any of it" : ""}.`);
  line(`  results:  ${rel("")}`);
  if (s.reason) line(`  why:      ${inert(s.reason, TEXT_CHARS)}`);
  const c = s.counts;
  line(`  ideas:    ${rel("ideas.json")} (${c.novel} novel of ${c.proposed} proposed${c.undecided ? `, ${c.undecided} undecided` : ""}; ${c.experimented} experimented, ${c.written} written, ${c.decided} decided)`);
  for (const idea of s.ideas) {
    line(`  ${inert(idea.ideaId, ID_CHARS)}:`);
    if (idea.error) line(`    stopped: ${inert(idea.error, TEXT_CHARS)}`);
    if (idea.pdf) line(`    paper:    ${inert(rel(idea.pdf), TEXT_CHARS)}`);
    for (const r of idea.reviews) {
      line(`    review:   ${inert(rel(r.file), TEXT_CHARS)} (reviewer ${r.reviewer} on node ${inert(r.node, ID_CHARS)}: Overall ${inert(String(r.overall), 8)}, ${inert(r.decision, 20)})`);
    }
    if (idea.decision) line(`    decision: ${inert(idea.decision, 20)}${idea.round ? ` after ${idea.round} revision${idea.round > 1 ? "s" : ""}` : ""} — ${inert(rel(idea.metaReview!), TEXT_CHARS)}`);
  }
  line(`  cost:     ${rel("cost.json")} ($${s.costUsd.toFixed(4)}, ${s.tokens} tokens${offline ? ", estimated" : ""})`);
}

(process.argv[2] === "creds" ? credsCommand(process.argv.slice(3)) : main()).catch((err) => interrupted() ?? fail(err));
