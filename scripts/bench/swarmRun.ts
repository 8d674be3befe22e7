/**
 * Whole offline runs of the swarm for the benchmarks, as a user starts them (`npm run swarm`, its own local
 * nats-server), and what each recorded: every model call (llm.jsonl) and every state every actor went
 * through, read back from the run's own store once the swarm has exited. And reviewer nodes as processes of
 * their own (`npm run node`), as a person on another machine starts them.
 */
import { readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa, type ResultPromise } from "execa";
import { pino } from "pino";
import { connectBus, type Bus } from "../../bus/connection.js";
import { listNodes } from "../../agents/runtime/nodeRegistry.js";
import { startLocalNats } from "../../bus/server.js";
import { nextStored } from "../../bus/storedReads.js";
import { STREAMS, subjects } from "../../bus/subjects.js";
import { LlmExchange, StateBatch, type StateEvent } from "../../bus/schemas.js";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface SwarmRun {
  runId: string;
  dir: string;
  /** From the process's start to its exit, milliseconds (performance.now). */
  startedAt: number;
  endedAt: number;
  /** The epoch milliseconds at the process's start, to put the run's own timestamps on the same line. */
  startedEpochMs: number;
  exitCode: number | undefined;
  output: string;
}

/** Runs `scripts/swarm.ts` with `args` (an --out is added) and `env` (e.g. SWARM_OFFLINE_LATENCY_MS); throws unless it completes. */
export async function runSwarm(out: string, args: string[], env: Record<string, string> = {}): Promise<SwarmRun> {
  const startedEpochMs = Date.now();
  const startedAt = performance.now();
  const res = await execa(process.execPath, ["--import", "tsx", "scripts/swarm.ts", "--out", out, ...args], {
    cwd: ROOT, all: true, reject: false, env: { LOG_LEVEL: "warn", ...env },
  });
  const endedAt = performance.now();
  const runId = /Run (\d{8}-\d{6}-[0-9a-f]{4})/.exec(res.all ?? "")?.[1] ?? (await readdir(out)).filter((d) => /^\d{8}-/.test(d)).sort().at(-1);
  if (res.exitCode !== 0 || !runId) throw new Error(`the swarm failed (exit ${res.exitCode}):\n${(res.all ?? "").slice(-3000)}`);
  return { runId, dir: join(out, runId), startedAt, endedAt, startedEpochMs, exitCode: res.exitCode, output: res.all ?? "" };
}

/** A model call as llm.jsonl has it, its start and end in epoch milliseconds. */
export interface Call {
  agent: string;
  task: string;
  ideaId: string | undefined;
  start: number;
  end: number;
  inputTokens: number;
  outputTokens: number;
  messages: { role: string; content: string }[];
}

export async function readCalls(run: SwarmRun): Promise<Call[]> {
  const text = await readFile(join(run.dir, "llm.jsonl"), "utf8");
  return text.split("\n").filter(Boolean).map((l) => {
    const x = LlmExchange.parse(JSON.parse(l));
    const end = Date.parse(x.at);
    return { agent: x.by.agent, task: x.task, ideaId: x.ideaId, start: end - x.ms, end, inputTokens: x.usage.inputTokens, outputTokens: x.usage.outputTokens, messages: x.messages };
  });
}

/** Every state event of the run, from its persisted conversation (a nats-server started on the run's store). */
export async function readStates(run: SwarmRun): Promise<StateEvent[]> {
  const log = pino({ level: "silent" });
  const server = await startLocalNats({ storeDir: join(run.dir, "nats"), log });
  const bus = await connectBus(server.url, { name: "bench-reader", log });
  try {
    const events: StateEvent[] = [];
    for (let seq = 1; ; ) {
      const m = await nextStored(bus, STREAMS.conversation.name, subjects.state(run.runId), seq);
      if (!m) break;
      seq = m.seq + 1;
      const batch = StateBatch.safeParse(m.json());
      if (batch.success) events.push(...batch.data.events);
    }
    return events;
  } finally {
    await bus.close();
    await server.stop();
  }
}

/** [start, end] epoch milliseconds of each stay of actor ids matching `actor` in a state whose value matches `state`. */
export function stays(events: StateEvent[], actor: RegExp, state: RegExp): [number, number][] {
  const byActor = new Map<string, StateEvent[]>();
  for (const e of events) {
    if (!actor.test(e.actor)) continue;
    const list = byActor.get(e.actor);
    if (list) list.push(e);
    else byActor.set(e.actor, [e]);
  }
  const out: [number, number][] = [];
  for (const list of byActor.values()) {
    list.sort((a, b) => a.seq - b.seq);
    for (let i = 0; i < list.length; i++) {
      if (!state.test(JSON.stringify(list[i]!.state))) continue;
      const next = list[i + 1];
      if (next) out.push([Date.parse(list[i]!.at), Date.parse(next.at)]);
    }
  }
  return out;
}

/** [first, last] epoch milliseconds of each actor whose id matches. */
export function lifetimes(events: StateEvent[], actor: RegExp): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const e of events) {
    if (!actor.test(e.actor)) continue;
    const at = Date.parse(e.at);
    const [a, b] = out.get(e.actor) ?? [at, at];
    out.set(e.actor, [Math.min(a, at), Math.max(b, at)]);
  }
  return out;
}

export interface NodeProcess {
  name: string;
  slots: number;
  child: ResultPromise<{ all: true; reject: false }>;
}

/** Starts `scripts/node.ts --roles reviewer=<slots> --name <name>` on `natsUrl`; `nodeArgs` go to Node itself. */
export function startReviewerNode(o: { name: string; slots: number; natsUrl: string; env?: Record<string, string>; nodeArgs?: string[] }): NodeProcess {
  const child = execa(process.execPath, [...(o.nodeArgs ?? []), "--import", "tsx", "scripts/node.ts", "--roles", `reviewer=${o.slots}`, "--name", o.name], {
    cwd: ROOT, all: true, reject: false, env: { NATS_URL: o.natsUrl, LOG_LEVEL: "warn", ...o.env },
  });
  return { name: o.name, slots: o.slots, child };
}

/** Waits until every one of `procs` has advertised itself with its reviewer slots; fails with a node's output if one exits first. */
export async function waitJoined(bus: Bus, procs: NodeProcess[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const gone = procs.find((p) => p.child.exitCode !== null);
    if (gone) throw new Error(`node ${gone.name} exited (code ${gone.child.exitCode}) before it joined:\n${String((await gone.child).all).slice(-2000)}`);
    const joined = new Set((await listNodes(bus)).map((a) => `${a.nodeId}:${a.roles.reviewer}`));
    if (procs.every((p) => joined.has(`${p.name}:${p.slots}`))) return;
    if (Date.now() > deadline) throw new Error(`only ${procs.filter((p) => joined.has(`${p.name}:${p.slots}`)).length} of ${procs.length} nodes joined within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
