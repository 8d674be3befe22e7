/**
 * The live view of a swarm: `npm run ui [-- --nats <url> --port <p> --listen <addr>]` serves a page that follows
 * the swarm on that NATS server (every node, every actor's statechart and state, the conversation, ideas, spend)
 * and replays a finished run with a time slider.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { connectBus } from "../bus/connection.js";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { rootLogger } from "../bus/logger.js";
import { UserError } from "../bus/errors.js";
import { readCaFile } from "../bus/tls.js";
import { startUi } from "./ui/server.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `npm run ui -- [--nats <url> | --results <dir>] [--port <p>] [--listen <addr>]

Serves the live view of the swarm on a NATS server: open the URL it prints. It shows the newest run, or the one
picked on the page, live; a finished run is replayed with its time slider.
  --nats <url>     the swarm's NATS server (default: $NATS_URL; the swarm prints it as "NATS: ...")
  --results <dir>  replay a run whose swarm has stopped, from the NATS store it left in its results folder
                   (results/<runId>, a run on one local nats-server): a server is started on that store
  --port <p>       the page's port (default: 8420; 0 for any free one)
  --listen <addr>  the address the page is served on (default: 127.0.0.1, this machine only: the page shows
                   everything the bus holds)
A server started with --tls: --nats tls://<host>:<port> with SWARM_NATS_CA=results/<runId>/nats/tls/ca.pem.`;

const Flags = z.object({
  help: z.boolean().optional(),
  nats: z.string().regex(/^(nats|tls):\/\/\S+$/, "a NATS URL, nats://<host>:<port>").optional(),
  results: z.string().min(1).optional(),
  port: z.coerce.number().int().min(0).max(65535).default(8420),
  listen: z.string().regex(/^[0-9A-Za-z.:-]+$/, "an IP address or host name").default("127.0.0.1"),
});

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    help: { type: "boolean", short: "h" },
    nats: { type: "string" },
    results: { type: "string" },
    port: { type: "string" },
    listen: { type: "string" },
  }, Flags);
  if (flags.help) return void process.stdout.write(`${HELP}\n`);
  const log = rootLogger();
  if (flags.results && flags.nats) throw new UserError("--results starts a server on a run's store, and --nats names one to follow: give one of them", { hint: "--results results/<runId> for a stopped run, --nats for a live swarm" });
  let server: LocalNats | undefined;
  if (flags.results) {
    const store = join(flags.results, "nats");
    if (!existsSync(join(store, "jetstream"))) throw new UserError(`no NATS store in ${store}`, { hint: "give a run's folder (results/<runId>) whose swarm ran its own nats-server; a cluster run's store is replayed on its cluster" });
    // Its swarm must have stopped: one nats-server per store (a running swarm is followed with --nats).
    server = await startLocalNats({ storeDir: store, log });
  }
  const url = server?.url ?? flags.nats ?? process.env.NATS_URL;
  if (!url) throw new UserError("no NATS server to follow", { hint: "give --nats with the URL the swarm printed (NATS: ...), set NATS_URL, or --results results/<runId> for a run that has stopped" });
  const ca = process.env.SWARM_NATS_CA ? readCaFile(process.env.SWARM_NATS_CA) : undefined;
  const bus = await connectBus(url, { name: "ui", log, ...(ca ? { tls: { ca } } : {}) });
  const ui = await startUi({ bus, log, host: flags.listen, port: flags.port });
  process.stdout.write(`Live view of ${flags.results ? `the run in ${flags.results}` : url}: ${ui.url}\n`);
  const stop = async () => {
    await ui.close();
    await bus.close();
    await server?.stop();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
}

main().catch(fail);
