import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { IDENTITIES, readCredsFile, writeCredsFile, type WorkerRole } from "../bus/auth.js";
import { UserError } from "../bus/errors.js";
import { parseFlags } from "./cli.js";

const ROLES = IDENTITIES.filter((i): i is WorkerRole => i !== "swarm");

export const CREDS_HELP = `npm run swarm -- creds --role <role> --out <file> [--run <runId>] [--results <dir>]

Writes the credentials one role needs to join a listening swarm (--listen 0.0.0.0) from another machine:
the URL, that role's user and password. Hand the file over (it is private: mode 600) and there run
  npm run node -- --creds <file>
Roles: ${ROLES.join(", ")}. The run is the newest one under --results (default: results) unless --run names it.
Credentials last as long as the run's server: a new run has new passwords. A swarm started with --tls puts a
tls:// URL and its CA's certificate (no key) in the file: the node trusts the server with it.`;

/** A run's credentials, one file per role, written by its swarm when it listens beyond loopback. */
export const runCredsFile = (runDir: string, role: WorkerRole) => join(runDir, "creds", `${role}.json`);

const Flags = z.object({
  help: z.boolean().optional(),
  role: z.enum(ROLES as [WorkerRole, ...WorkerRole[]]).optional(),
  out: z.string().min(1).optional(),
  run: z.string().regex(/^[A-Za-z0-9-]+$/, "a run id").optional(),
  results: z.string().default("results"),
});

/** The newest run under `results` whose swarm handed out credentials. */
function newestRunWithCreds(results: string): string {
  const runs = existsSync(results) ? readdirSync(results).filter((d) => existsSync(join(results, d, "creds"))).sort() : [];
  const newest = runs.at(-1);
  if (!newest) throw new UserError(`no run under ${results} has credentials`, { hint: "start the swarm with --listen 0.0.0.0; it writes them into its run folder" });
  return join(results, newest);
}

export async function credsCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, {
    help: { type: "boolean", short: "h" },
    role: { type: "string" },
    out: { type: "string" },
    run: { type: "string" },
    results: { type: "string" },
  }, Flags);
  if (flags.help || !flags.role || !flags.out) {
    process.stdout.write(`${CREDS_HELP}\n`);
    if (!flags.help) process.exitCode = 2;
    return;
  }
  const runDir = flags.run ? join(resolve(flags.results), flags.run) : newestRunWithCreds(resolve(flags.results));
  const source = runCredsFile(runDir, flags.role);
  if (!existsSync(source)) {
    throw new UserError(`run ${runDir} has no credentials for ${flags.role}`, { hint: "only a swarm started with --listen beyond loopback (e.g. 0.0.0.0) writes them" });
  }
  const creds = readCredsFile(source);
  writeCredsFile(flags.out, creds);
  process.stdout.write(`Wrote ${flags.role} credentials for run ${creds.runId} (${creds.url}) to ${flags.out}; on the other machine: npm run node -- --creds <file>\n`);
}
