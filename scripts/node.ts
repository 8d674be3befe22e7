import { z } from "zod";
import { connectBus, describeBusStatus } from "../bus/connection.js";
import { rootLogger } from "../bus/logger.js";
import { UserError } from "../bus/errors.js";
import { startNode } from "../agents/node.js";
import { ROLE_NAMES, parseRoles } from "../agents/runtime/roles.js";
import { defaultNodeId } from "../agents/runtime/nodeRegistry.js";
import { runPreflight, formatPreflight, assertPreflight } from "../agents/preflight.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `NATS_URL=nats://<host>:<port> npm run node -- --roles reviewer=2[,coder,writer…] [--name <id>]

Joins a running swarm and serves the given roles for every run on that NATS server.
Roles: ${ROLE_NAMES.join(", ")}. The swarm prints the NATS_URL to use when it starts.`;

const Flags = z.object({
  help: z.boolean().optional(),
  roles: z.string().optional(),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '.', '_' and '-'").optional(),
});

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { help: { type: "boolean", short: "h" }, roles: { type: "string" }, name: { type: "string" } }, Flags);
  if (flags.help || !flags.roles) {
    process.stdout.write(`${HELP}\n`);
    if (!flags.help) process.exitCode = 2;
    return;
  }
  const url = process.env.NATS_URL;
  if (!url) throw new UserError("NATS_URL is not set", { hint: "use the URL the swarm printed when it started, e.g. NATS_URL=nats://host:4222" });
  const roles = parseRoles(flags.roles);
  // Check what these roles need on this machine before taking any job.
  const needsTex = Boolean(roles.writer || roles.reviewer);
  // A coder checks its template's own Python modules when it takes a job: a node serves every run.
  const report = await runPreflight({ nats: false, natsUrl: url, tex: needsTex, pythonModules: [] });
  if (!report.ok) process.stdout.write(`${formatPreflight(report)}\n`);
  assertPreflight(report);

  const log = rootLogger();
  const nodeName = flags.name ?? "swarm node";
  // A node rides out a restart of the server: it says so and waits, and leaves only when the connection is closed.
  const bus = await connectBus(url, {
    name: nodeName,
    log,
    onStatus: (status) => {
      if (status.type !== "closed") process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${describeBusStatus(status, "this node")}\n`);
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
    process.stderr.write(`node ${node.nodeId} lost its connection to ${url}${closed ? `: ${closed.message}` : ""}; leaving\n`);
    await node.stop();
    process.exitCode = 1;
  }
}

main().catch(fail);
