import { z } from "zod";
import { connectBus, describeBusStatus } from "../bus/connection.js";
import { rootLogger } from "../bus/logger.js";
import { inert } from "../bus/inert.js";
import { UserError } from "../bus/errors.js";
import { startNode } from "../agents/node.js";
import { ROLE_NAMES, parseRoles } from "../agents/runtime/roles.js";
import { defaultNodeId } from "../agents/runtime/nodeRegistry.js";
import { runPreflight, formatPreflight, assertPreflight } from "../agents/preflight.js";
import { readCredsFile } from "../bus/auth.js";
import { readCaFile } from "../bus/tls.js";
import { UNSAFE_NO_SANDBOX_ENV } from "../agents/coder/sandbox.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `NATS_URL=nats://<host>:<port> npm run node -- --roles reviewer=2[,coder,writer…] [--name <id>]
npm run node -- --creds <file> [--roles reviewer=2] [--name <id>]

Joins a running swarm and serves the given roles for every run on that NATS server.
Roles: ${ROLE_NAMES.join(", ")}. The swarm prints the NATS_URL to use when it starts.
A swarm that listens beyond loopback admits only nodes with credentials: --creds takes the file that
\`npm run swarm -- creds --role <role> --out <file>\` wrote there (it names the URL, and the one role it serves).
A swarm started with --tls is joined over TLS: its credentials file carries the CA to trust. Without a file,
NATS_URL=tls://<host>:<port> SWARM_NATS_CA=<the swarm's nats/tls/ca.pem> names it (a CA this machine's
trust store has, e.g. a lab's, needs no SWARM_NATS_CA).

  --unsafe-no-sandbox  a coder runs generated code even without bubblewrap, with the host's every file in its
                       reach (only on a machine you do not mind losing; install bubblewrap instead)`;

const Flags = z.object({
  help: z.boolean().optional(),
  roles: z.string().optional(),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '.', '_' and '-'").optional(),
  creds: z.string().min(1).optional(),
  "unsafe-no-sandbox": z.boolean().optional(),
});

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { help: { type: "boolean", short: "h" }, roles: { type: "string" }, name: { type: "string" }, creds: { type: "string" }, "unsafe-no-sandbox": { type: "boolean" } }, Flags);
  if (flags.help || (!flags.roles && !flags.creds)) {
    process.stdout.write(`${HELP}\n`);
    if (!flags.help) process.exitCode = 2;
    return;
  }
  const creds = flags.creds ? readCredsFile(flags.creds) : undefined;
  // NATS_URL wins over the file's URL: the swarm's host may have another name from here.
  const url = process.env.NATS_URL ?? creds?.url;
  // Like NATS_URL, SWARM_NATS_CA wins over the file.
  const ca = process.env.SWARM_NATS_CA ? readCaFile(process.env.SWARM_NATS_CA) : creds?.ca;
  if (!url) throw new UserError("NATS_URL is not set", { hint: "use the URL the swarm printed when it started, e.g. NATS_URL=nats://host:4222, or --creds <file>" });
  const roles = parseRoles(flags.roles ?? creds!.role);
  // A credential allows one role's subjects only: any other role would be refused its first job.
  const others = creds ? Object.keys(roles).filter((r) => r !== creds.role) : [];
  if (creds && others.length) {
    throw new UserError(`the credentials in ${flags.creds} are for ${creds.role}, not ${others.join(", ")}`, {
      hint: "start one node per role, each with that role's file from `npm run swarm -- creds --role <role> --out <file>`",
    });
  }
  // The sandbox reads it when it runs generated code (agents/coder/sandbox.ts).
  if (flags["unsafe-no-sandbox"]) process.env[UNSAFE_NO_SANDBOX_ENV] = "1";
  // Check what these roles need on this machine before taking any job.
  const needsTex = Boolean(roles.writer || roles.reviewer);
  // A coder checks its template's own Python modules when it takes a job: a node serves every run.
  const report = await runPreflight({ nats: false, natsUrl: url, tex: needsTex, pythonModules: [], sandbox: Boolean(roles.coder) });
  if (!report.ok) process.stdout.write(`${formatPreflight(report)}\n`);
  assertPreflight(report);

  const log = rootLogger();
  const nodeName = flags.name ?? "swarm node";
  // A node rides out a restart of the server: it says so and waits, and leaves only when the connection is closed.
  const bus = await connectBus(url, {
    name: nodeName,
    log,
    ...(creds ? { credential: { user: creds.user, password: creds.password, role: creds.role } } : {}),
    ...(creds?.domain ? { domain: creds.domain } : {}),
    ...(ca ? { tls: { ca } } : {}),
    onStatus: (status) => {
      if (status.type !== "closed") process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${inert(describeBusStatus(status, "this node"), 300)}\n`);
    },
  });
  const node = await startNode({ bus, roles, log, nodeId: flags.name ?? defaultNodeId() });
  process.stdout.write(`node ${node.nodeId} joined ${url} with ${Object.entries(roles).map(([r, n]) => `${r}=${n}`).join(", ")}; Ctrl-C to leave\n`);
  let leaving = false;
  const leave = async () => {
    if (leaving) return;
    leaving = true;
    process.stdout.write(`node ${node.nodeId} leaving; unfinished jobs go back to the queue\n`);
    await node.stop();
    await bus.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void leave());
  process.once("SIGTERM", () => void leave());
  // Only a closed connection ends the node: a lost one is being reconnected, for as long as it takes.
  const closed = await bus.nc.closed();
  if (!leaving) {
    process.stderr.write(`node ${node.nodeId} lost its connection to ${url}${closed ? `: ${inert(closed.message, 300)}` : ""}; leaving\n`);
    await node.stop();
    process.exitCode = 1;
  }
}

main().catch(fail);
