/**
 * Figure 6: memory. (a) The peak resident set of the process that launches an offline run of --ideas ideas
 * (`scripts/swarm.ts`, which runs every agent in itself), and of the nats-server it starts, read from
 * /proc/<pid>/status every 100 ms: VmHWM, the kernel's own high-water mark, as last read before the process
 * exited (so only what it grew in its last ~100 ms is missed), or the highest VmRSS read if that is larger. (b) What one idle reviewer slot costs: the resident set of an idle `scripts/node.ts --roles reviewer=1`
 * and of one with reviewer=33, side by side on one local nats-server, each read right after a forced garbage
 * collection, and (RSS(33) − RSS(1)) / 32; the median over --trials such pairs, since the resident set of two
 * like processes differs by megabytes. The same difference of the anonymous resident set (no mapped files) and
 * of V8's heap in use are printed beside it. Prints figures; not run by the tests.
 *
 *   npm run bench:memory [-- --ideas 50 --trials 5]
 */
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { pino } from "pino";
import { z } from "zod";
import { connectBus, type Bus } from "../../bus/connection.js";
import { startLocalNats } from "../../bus/server.js";
import { machineLine, median, report, type Figure } from "./lib.js";
import { startReviewerNode, waitJoined, type NodeProcess } from "./swarmRun.js";

const { values } = parseArgs({ options: { ideas: { type: "string", default: "50" }, trials: { type: "string", default: "5" } } });
const { ideas, trials } = z.object({ ideas: z.coerce.number().int().min(1).max(50), trials: z.coerce.number().int().min(1) }).parse(values);

const MIB = 2 ** 20;
/** Idle nodes: the slot counts compared. */
const FEW = 1;
const MANY = 33;
/** After a node has joined: time for every slot to find its queue, then readings a second apart. */
const SETTLE_MS = 5_000;
const READINGS = 5;
const JOIN_TIMEOUT_MS = 120_000;
/** A 50-idea offline run takes minutes on two cores; one still going after this is stuck. */
const RUN_TIMEOUT_MS = 30 * 60_000;

/** VmRSS and VmHWM of a process in bytes, or undefined once it has exited (a zombie's status has neither). */
function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  const rss = kb("VmRSS");
  const hwm = kb("VmHWM");
  return Number.isNaN(rss) || Number.isNaN(hwm) ? undefined : { rss, hwm };
}

/** The direct children of `pid` whose command is `comm`. */
function childrenNamed(pid: number, comm: string): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number)) {
        if (readFileSync(`/proc/${child}/comm`, "utf8").trim() === comm) out.push(child);
      }
    }
  } catch {
    // The process or its child exited between the reads: the next poll sees what is left.
  }
  return out;
}

/** (a) An offline run of `ideas` ideas, its process's and its nats-server's high-water marks polled until it exits. */
async function swarmPeak(): Promise<Figure[]> {
  const out = await mkdtemp(join(tmpdir(), "bench-memory-"));
  try {
    const start = performance.now();
    const child = execa(process.execPath, ["--import", "tsx", "scripts/swarm.ts", "--ideas", String(ideas), "--out", out], {
      reject: false,
      stdout: "ignore",
      env: { LOG_LEVEL: "warn" },
      timeout: RUN_TIMEOUT_MS,
    });
    const pid = child.pid!;
    let swarm = { hwm: 0, rss: 0, polls: 0 };
    const nats = new Map<number, number>();
    const poll = () => {
      const m = procMemory(pid);
      if (m) swarm = { hwm: m.hwm, rss: Math.max(swarm.rss, m.rss), polls: swarm.polls + 1 };
      for (const c of childrenNamed(pid, "nats-server")) {
        const n = procMemory(c);
        if (n) nats.set(c, n.hwm);
      }
    };
    const timer = setInterval(poll, 100);
    const res = await child;
    clearInterval(timer);
    const seconds = (performance.now() - start) / 1000;
    if (res.timedOut) throw new Error(`the ${ideas}-idea run did not end within ${RUN_TIMEOUT_MS / 60_000} min; it was stopped:\n${String(res.stderr).slice(-2000)}`);
    if (res.exitCode !== 0) throw new Error(`the ${ideas}-idea run exited with code ${res.exitCode}:\n${String(res.stderr).slice(-2000)}`);
    if (!swarm.polls) throw new Error("the run ended before its memory could be read once");
    process.stdout.write(`${ideas}-idea offline run: ${seconds.toFixed(0)} s, ${swarm.polls} readings\n`);
    const figures: Figure[] = [
      {
        figure: 6,
        what: `peak RSS of the swarm process, ${ideas}-idea offline run`,
        // The kernel's counters are per thread and synced lazily: a VmRSS read can exceed the VmHWM read beside it by a little.
        value: Math.max(swarm.hwm, swarm.rss) / MIB,
        unit: "MiB",
        detail: `the larger of VmHWM as last read before it exited (${(swarm.hwm / MIB).toFixed(1)} MiB) and the highest VmRSS read (${(swarm.rss / MIB).toFixed(1)} MiB), polled every 100 ms; run took ${seconds.toFixed(0)} s`,
      },
    ];
    if (nats.size === 1) {
      figures.push({ figure: 6, what: "peak RSS of the nats-server it started", value: [...nats.values()][0]! / MIB, unit: "MiB", detail: "VmHWM last read before it stopped" });
    } else {
      process.stdout.write(`found ${nats.size} nats-server children instead of one: their peak is not reported\n`);
    }
    return figures;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/**
 * Preloaded into each measured node: on SIGUSR2 it collects garbage and prints its memory on one line, so that
 * the reading is of what the node holds, not of garbage not yet collected.
 */
const GC_ON_SIGNAL = `data:text/javascript,process.on("SIGUSR2",()=>{globalThis.gc();process.stdout.write("MEMORY "+JSON.stringify(process.memoryUsage())+"\\n")})`;
const Usage = z.object({ rss: z.number(), heapUsed: z.number() });
/** One reading of an idle node, in bytes: its resident set, the anonymous part of it (no mapped files), and V8's heap in use. */
interface Reading {
  rss: number;
  anon: number;
  heap: number;
}

/** The anonymous part of a process's resident set, in bytes (RssAnon in /proc/<pid>/status). */
function rssAnon(pid: number): number {
  const kb = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no RssAnon`);
  return Number(kb) * 1024;
}

/** Starts an idle node with FEW and one with MANY reviewer slots, side by side, and reads each READINGS times after a forced GC. */
async function idlePair(url: string, bus: Bus, trial: number): Promise<{ few: Reading; many: Reading }> {
  const nodes: (NodeProcess & { readings: Reading[] })[] = [];
  try {
    for (const slots of [FEW, MANY]) {
      const node = { ...startReviewerNode({ name: `bench-mem-${trial}-${slots}`, slots, natsUrl: url, nodeArgs: ["--expose-gc", "--import", GC_ON_SIGNAL] }), readings: [] as Reading[] };
      // A line can arrive in two chunks: only whole lines are read.
      let partial = "";
      node.child.stdout!.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("MEMORY ")) continue;
          const usage = Usage.parse(JSON.parse(line.slice(7)));
          node.readings.push({ rss: usage.rss, anon: rssAnon(node.child.pid!), heap: usage.heapUsed });
        }
      });
      nodes.push(node);
    }
    await waitJoined(bus, nodes, JOIN_TIMEOUT_MS);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    for (let k = 0; k < READINGS; k++) {
      for (const n of nodes) n.child.kill("SIGUSR2");
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const n of nodes) if (n.readings.length !== READINGS) throw new Error(`node ${n.name} answered ${n.readings.length} of ${READINGS} memory readings`);
  } finally {
    for (const n of nodes) n.child.kill("SIGTERM");
    await Promise.all(nodes.map((n) => n.child));
  }
  const [few, many] = nodes.map((n) => ({
    rss: median(n.readings.map((r) => r.rss)),
    anon: median(n.readings.map((r) => r.anon)),
    heap: median(n.readings.map((r) => r.heap)),
  })) as [Reading, Reading];
  return { few, many };
}

/** (b) What an idle reviewer slot costs, from `trials` pairs of idle nodes on one local nats-server, one pair at a time. */
async function slotCost(): Promise<Figure[]> {
  const log = pino({ level: "silent" });
  const store = await mkdtemp(join(tmpdir(), "bench-memory-nats-"));
  const server = await startLocalNats({ storeDir: store, log });
  const bus = await connectBus(server.url, { name: "bench", log });
  const pairs: { few: Reading; many: Reading }[] = [];
  try {
    for (let t = 0; t < trials; t++) pairs.push(await idlePair(server.url, bus, t));
  } finally {
    await bus.close();
    await server.stop();
    await rm(store, { recursive: true, force: true });
  }
  const per = MANY - FEW;
  const perSlot = (of: keyof Reading) => pairs.map((p) => (p.many[of] - p.few[of]) / per / 1024);
  const list = (xs: number[], unit: string) => xs.map((x) => `${x.toFixed(0)}`).join(", ") + ` ${unit}`;
  const how = `each node the median of ${READINGS} readings after a forced GC, idle ${SETTLE_MS / 1000} s after joining; ${trials} pairs`;
  const node = (of: "few" | "many", slots: number): Figure => ({
    figure: 6,
    what: `RSS of an idle node, reviewer=${slots}`,
    value: median(pairs.map((p) => p[of].rss)) / MIB,
    unit: "MiB",
    detail: `median of ${trials}: ${list(pairs.map((p) => p[of].rss / MIB), "MiB")}; heap used ${(median(pairs.map((p) => p[of].heap)) / MIB).toFixed(1)} MiB`,
  });
  return [
    node("few", FEW),
    node("many", MANY),
    {
      figure: 6,
      what: "memory per idle reviewer slot (RSS)",
      value: median(perSlot("rss")),
      unit: "KiB",
      detail: `(RSS(${MANY}) − RSS(${FEW})) / ${per}, median of ${list(perSlot("rss"), "KiB")}; ${how}`,
    },
    {
      figure: 6,
      what: "memory per idle reviewer slot (anonymous RSS)",
      value: median(perSlot("anon")),
      unit: "KiB",
      detail: `RssAnon, without mapped files; median of ${list(perSlot("anon"), "KiB")}`,
    },
    {
      figure: 6,
      what: "memory per idle reviewer slot (V8 heap used)",
      value: median(perSlot("heap")),
      unit: "KiB",
      detail: `median of ${list(perSlot("heap"), "KiB")}`,
    },
  ];
}

process.stdout.write(`${machineLine()}\n`);
const figures = [...(await swarmPeak()), ...(await slotCost())];
report(`Memory (offline model, no latency; LOG_LEVEL=warn)`, figures);
