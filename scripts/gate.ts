/**
 * A person's say in a gated run (`npm run swarm -- --gate ideas,plan,paper`):
 *   npm run gate -- list <runId>
 *   npm run gate -- approve|edit|reject <runId> <ideaId>
 *   npm run gate -- rewind <runId> <ideaId> <stage>
 * It talks to the run's bus: the swarm's local server when it is up, else that server's store opened here for the
 * moment it takes (a gate waits durably, and the swarm finds the decision when it goes on); NATS_URL for a lab's.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { hostname, tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { z } from "zod";
import { connectBus, type Bus } from "../bus/connection.js";
import { UserError } from "../bus/errors.js";
import { GATES, STAGES, Stage, decideGate, editFromText, editableText, gateStates, requestRewind, waitingGate, type Decision, type GateEntry, type GateState } from "../bus/gates.js";
import { inert } from "../bus/inert.js";
import { rootLogger } from "../bus/logger.js";
import { IdeaId, RunId } from "../bus/schemas.js";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { BusFile } from "../bus/cluster.js";
import { readCaFile } from "../bus/tls.js";
import { NATS_IDENTITIES_ENV, readIdentitiesFile } from "../bus/auth.js";
import { fail } from "./cli.js";

const HELP = `npm run gate -- <command> <runId> [<ideaId>] [flags]

  list <runId>                        the gates of the run: what waits, and what was decided (--json for all of it)
  approve <runId> <ideaId>            the idea goes on as it is
  edit <runId> <ideaId> [--file F]    it goes on as edited: at the ideas gate F is the idea (JSON, its fields), at
                                      the plan gate the runs ([{"description": "…"}, …]), at the paper gate notes
                                      the writer revises the paper from (text); without --file, $EDITOR opens it
  reject <runId> <ideaId> --reason R  the idea ends here, for that reason
  rewind <runId> <ideaId> <stage>     the idea starts again from ${STAGES.join(" | ")}, keeping everything before
                                      it; a run that had ended goes on with: npm run swarm -- --resume <runId>

Flags: --out <dir> (results, where the run is), --by <name> (who decides; $USER@host by default), --json.
Gates are asked for with npm run swarm -- --gate ${GATES.join(",")} (any of them).`;

const Flags = z.object({
  help: z.boolean().optional(),
  out: z.string().default("results"),
  by: z.string().min(1).max(200).optional(),
  file: z.string().optional(),
  reason: z.string().min(1).max(2000).optional(),
  json: z.boolean().optional(),
});


/** Whether something listens on a loopback port. */
function listening(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => (socket.destroy(), res(true)));
    socket.once("error", () => res(false));
  });
}

/** The run's bus, with the swarm's identity: the run's configuration and gates are the swarm's to write. */
async function openRunBus(out: string, runId: string): Promise<{ bus: Bus; close(): Promise<void> }> {
  const log = rootLogger().child({ agent: "gate" });
  if (process.env.NATS_URL) {
    const ca = process.env.SWARM_NATS_CA ? readCaFile(process.env.SWARM_NATS_CA) : undefined;
    const identities = process.env[NATS_IDENTITIES_ENV] ? readIdentitiesFile(process.env[NATS_IDENTITIES_ENV]) : undefined;
    const bus = await connectBus(process.env.NATS_URL, { name: "gate", log, ...(ca ? { tls: { ca } } : {}), ...(identities ? { credential: { ...identities.swarm, role: "swarm" } } : {}) });
    return { bus, close: () => bus.close() };
  }
  const dir = resolve(out, runId);
  const busFile = join(dir, "bus.json");
  if (!existsSync(busFile)) {
    throw new UserError(`no run ${runId} under ${resolve(out)}`, { hint: "give the run's id (its folder in results/), and --out if the swarm had one; for a lab's server set NATS_URL" });
  }
  const kept = BusFile.parse(JSON.parse(await readFile(busFile, "utf8")));
  const store = join(dir, "nats");
  const identities = existsSync(join(store, "identities.json")) ? readIdentitiesFile(join(store, "identities.json")) : undefined;
  const caFile = join(store, "tls", "ca.pem");
  const ca = existsSync(caFile) ? readCaFile(caFile) : undefined;
  if (await listening(kept.port)) {
    const bus = await connectBus(`${ca ? "tls" : "nats"}://127.0.0.1:${kept.port}`, {
      name: "gate", log, ...(ca ? { tls: { ca } } : {}), ...(identities ? { credential: { ...identities.swarm, role: "swarm" } } : {}),
    });
    return { bus, close: () => bus.close() };
  }
  if (kept.cluster) {
    throw new UserError(`the servers of run ${runId} are not running, and a cluster's store is not opened here`, { hint: `npm run swarm -- --resume ${runId} first, then decide` });
  }
  // The swarm is stopped: its store, opened on loopback for this one decision, holds the gate it waits at.
  let server: LocalNats | undefined = await startLocalNats({ storeDir: store, log });
  const bus = await connectBus(server.url, { name: "gate", log });
  return {
    bus,
    async close() {
      await bus.close();
      await server?.stop();
      server = undefined;
    },
  };
}

/** An edit from a file, or from $EDITOR over what the gate shows. */
async function editOf(entry: GateEntry, file: string | undefined): Promise<Decision> {
  if (file) {
    if (!existsSync(file)) throw new UserError(`no file ${file}`, { hint: "give --file the edited idea, plan or notes" });
    return editFromText(entry, await readFile(file, "utf8"));
  }
  const editor = process.env.VISUAL ?? process.env.EDITOR;
  if (!editor) throw new UserError("no --file and no $EDITOR to edit in", { hint: "give --file F, or set EDITOR" });
  const dir = await mkdtemp(join(tmpdir(), "swarm-gate-"));
  try {
    const gate = entry.proposal.gate;
    const path = join(dir, gate === "paper" ? "notes.md" : `${gate === "ideas" ? "idea" : "plan"}.json`);
    await writeFile(path, editableText(entry));
    await execa(editor, [path], { stdio: "inherit", shell: true });
    return editFromText(entry, await readFile(path, "utf8"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One gate in a line: every value from the bus made inert. */
function describe(g: GateState): string {
  const p = g.proposal;
  const what = p.gate === "ideas" ? `"${p.idea.Title}"` : p.gate === "plan" ? p.plan.map((r, i) => `run_${i + 1}: ${r.description}`).join(" | ") : `paper ${p.pdf} (version ${p.round})`;
  const state = g.decided
    ? `${g.decided.decision.choice} by ${g.decided.by} at ${g.decided.at}${g.decided.decision.choice === "reject" ? ` (${g.decided.decision.reason})` : ""}`
    : g.state === "superseded" ? "superseded (the idea was rewound past it)" : "WAITING";
  return `  ${inert(g.ideaId, 64)} ${p.gate} [${inert(g.request, 40)}]: ${inert(state, 300)}\n    ${inert(what, 600)}`;
}

async function main(): Promise<void> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: process.argv.slice(2), allowPositionals: true, strict: true,
        options: { help: { type: "boolean", short: "h" }, out: { type: "string" }, by: { type: "string" }, file: { type: "string" }, reason: { type: "string" }, json: { type: "boolean" } },
      });
    } catch (err) {
      throw new UserError((err as Error).message, { hint: "npm run gate -- --help" });
    }
  })();
  const flags = Flags.parse(values);
  const [command, runArg, ideaArg, stageArg] = positionals;
  if (flags.help || !command) return void process.stdout.write(`${HELP}\n`);
  const commands = ["list", "approve", "edit", "reject", "rewind"] as const;
  if (!commands.includes(command as (typeof commands)[number])) throw new UserError(`unknown command "${command}"`, { hint: `commands: ${commands.join(", ")}` });
  const runId = RunId.safeParse(runArg);
  if (!runId.success) throw new UserError(`give the run's id after ${command}`, { hint: "npm run gate -- list <runId>" });
  const ideaId = command === "list" ? undefined : IdeaId.safeParse(ideaArg);
  if (ideaId && !ideaId.success) throw new UserError(`give the idea's id after the run's`, { hint: `npm run gate -- list ${runId.data} shows the ideas that wait` });
  const stage = command === "rewind" ? Stage.safeParse(stageArg) : undefined;
  if (stage && !stage.success) throw new UserError(`rewind to which stage? "${stageArg ?? ""}" is not one`, { hint: `stages: ${STAGES.join(", ")}` });
  if (command === "reject" && !flags.reason) throw new UserError("a reject says why", { hint: '--reason "what is wrong with it"' });
  const by = flags.by ?? `${userInfo().username}@${hostname()}`;

  const { bus, close } = await openRunBus(flags.out, runId.data);
  try {
    const out = (s: string): void => void process.stdout.write(`${s}\n`);
    if (command === "list") {
      const gates = await gateStates(bus, runId.data);
      if (flags.json) return out(JSON.stringify(gates, null, 2));
      out(gates.length ? `gates of run ${inert(runId.data, 64)}:` : `run ${inert(runId.data, 64)} has asked at no gate yet`);
      for (const g of gates) out(describe(g));
      return;
    }
    const idea = ideaId!.data!;
    if (command === "rewind") {
      const r = await requestRewind(bus, runId.data, idea, stage!.data!, by);
      out(`rewind ${r.generation} of ${idea} from ${r.stage}: recorded`);
      const status = join(resolve(flags.out, runId.data), "status.json");
      // A run that had ended has work again: it is no longer over, and --resume goes on with it.
      if (existsSync(status)) {
        await unlink(status);
        out(`run ${runId.data} had ended: go on with  npm run swarm -- --out ${flags.out} --resume ${runId.data}`);
      } else out("the run's swarm takes it up now (or when it is resumed)");
      return;
    }
    let decision: Decision;
    let request: string | undefined;
    if (command === "approve") decision = { choice: "approve" };
    else if (command === "reject") decision = { choice: "reject", reason: flags.reason! };
    else {
      const waiting = await waitingGate(bus, runId.data, idea);
      if (!waiting) throw new UserError(`idea ${idea} of run ${runId.data} is not waiting at a gate`, { hint: `npm run gate -- list ${runId.data}` });
      // An edit is of what the person was shown: it goes to that gate or nowhere.
      request = waiting.request;
      decision = await editOf(waiting, flags.file);
    }
    const decided = await decideGate(bus, runId.data, idea, decision, by, request);
    out(`${decided.proposal.gate} gate of ${idea}: ${decision.choice} (by ${inert(by, 200)})`);
  } finally {
    await close();
  }
}

main().catch(fail);
