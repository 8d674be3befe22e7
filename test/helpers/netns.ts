import { execa, execaSync, type ResultPromise } from "execa";
import { readFileSync, readdirSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { ROOT } from "./cli.js";

/**
 * Simulated hosts for fault tests: Linux network namespaces on a bridge this test file makes, each with a
 * veth pair and an address in a private /24 of its own. Needs root (as CI runs). Every name carries the
 * creating process's pid, so that what a killed test left behind is found and removed by the next one, and
 * files running at the same time never touch each other's hosts.
 */

const NS_PREFIX = "sfnet-";
const LINK_PREFIXES = ["sfb-", "sfv-"];

export interface Host {
  /** A short name for messages: "h0", "h1", ... */
  name: string;
  /** The network namespace. */
  ns: string;
  /** Its address on the bridge. */
  ip: string;
  /** The veth end on the bridge's side (root namespace): setting it down cuts the host off. */
  link: string;
}

export type Script = "swarm" | "node";

export interface Net {
  hosts: Host[];
  bridge: string;
  /** The bridge's own address, in the root namespace: how hosts reach a server this test process runs. */
  gateway: string;
  /** Runs a command on a host. */
  exec(host: Host, command: string, args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): ResultPromise<{ reject: false; all: true }>;
  /** `npm run swarm|node` on a host, as runScript runs it on this machine. */
  runScript(host: Host, script: Script, args: string[], opts?: { env?: Record<string, string> }): ResultPromise<{ reject: false; all: true }>;
  /** kill -9 of every process on the host (and of their children, sandboxed ones in namespaces of their own too). */
  killHost(host: Host): Promise<number[]>;
  /** Takes the host's link down: its packets go nowhere, its connections stay open on both sides. */
  cut(host: Host): Promise<void>;
  mend(host: Host): Promise<void>;
  /**
   * A TCP forwarder on the gateway address to a server on this process's loopback (a fake model server),
   * so that hosts reach it; closed by cleanup.
   */
  forward(port: number): Promise<string>;
  /** Kills every process on the hosts, removes the namespaces and the bridge. Safe to call twice. */
  cleanup(): Promise<void>;
}

const sh = (cmd: string, args: string[]) => execa(cmd, args, { reject: false });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function namespaces(): Promise<string[]> {
  const { stdout } = await sh("ip", ["-o", "netns", "list"]);
  return stdout.split("\n").map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

async function nsPids(ns: string): Promise<number[]> {
  const { stdout } = await sh("ip", ["netns", "pids", ns]);
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

/** Every live process and its parent, from /proc. */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (field 2) is in parentheses and may hold spaces: the fields after the last ')' are plain.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      map.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  return map;
}

/** The processes of a namespace and all their descendants (a sandbox has a network namespace of its own). */
export async function processesOf(ns: string): Promise<number[]> {
  const found = new Set(await nsPids(ns));
  const tree = parents();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of tree) {
      if (!found.has(pid) && found.has(ppid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return [...found];
}

async function killAll(ns: string): Promise<number[]> {
  const killed: number[] = [];
  // A fork loop or a restarting child can add processes while the first ones die: go round until none is left.
  for (let round = 0; round < 20; round++) {
    const pids = await processesOf(ns);
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
        killed.push(pid);
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return killed;
}

/** Removes what an earlier test process (now dead) left: its namespaces and links. */
async function removeStale(): Promise<void> {
  for (const ns of await namespaces()) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(ns);
    if (!m || alive(Number(m[1]))) continue;
    await killAll(ns);
    await sh("ip", ["netns", "del", ns]);
  }
  const { stdout } = await sh("ip", ["-o", "link", "show"]);
  for (const line of stdout.split("\n")) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    const prefix = LINK_PREFIXES.find((p) => name?.startsWith(p));
    if (!name || !prefix) continue;
    const pid = parseInt(name.slice(prefix.length).split("-")[0]!, 36);
    if (!alive(pid)) await sh("ip", ["link", "del", name]);
  }
}

/** A /24 no interface of this machine has an address in. */
async function freeSubnet(): Promise<string> {
  const { stdout } = await sh("ip", ["-4", "-o", "addr", "show"]);
  const { stdout: routes } = await sh("ip", ["-4", "route", "show"]);
  for (;;) {
    const prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    if (!stdout.includes(` ${prefix}.`) && !routes.includes(`${prefix}.`)) return prefix;
  }
}

let probed: { ok: boolean; reason: string } | undefined;

/** Whether this process can make network namespaces and a bridge (tried once); why not when it cannot. */
export function netnsSupport(): { ok: boolean; reason: string } {
  if (probed) return probed;
  const name = `${NS_PREFIX}${process.pid}-probe`;
  const bridge = `sfb-${process.pid.toString(36)}-p`;
  const tries: [string, string[]][] = [
    ["ip", ["netns", "add", name]],
    ["ip", ["netns", "exec", name, "ip", "link", "set", "lo", "up"]],
    ["ip", ["link", "add", bridge, "type", "bridge"]],
  ];
  let reason = "";
  for (const [cmd, args] of tries) {
    try {
      const res = execaSync(cmd, args, { reject: false, timeout: 10_000 });
      if (res.exitCode !== 0) {
        reason = `\`${cmd} ${args.join(" ")}\` failed: ${(res.stderr || res.stdout || `exit ${res.exitCode}`).toString().trim()}`;
        break;
      }
    } catch (err) {
      reason = `\`${cmd}\` could not run: ${(err as Error).message}`;
      break;
    }
  }
  try {
    execaSync("ip", ["link", "del", bridge], { reject: false });
    execaSync("ip", ["netns", "del", name], { reject: false });
  } catch {
    // nothing was made
  }
  if (!reason && process.getuid?.() !== 0) reason = "not root";
  probed = reason ? { ok: false, reason: `network namespaces cannot be made here (${reason}); these tests need root and iproute2` } : { ok: true, reason: "" };
  return probed;
}

async function must(cmd: string, args: string[]): Promise<void> {
  const res = await sh(cmd, args);
  if (res.exitCode !== 0) throw new Error(`\`${cmd} ${args.join(" ")}\` failed: ${res.stderr || res.stdout}`);
}

/** Makes a bridge and `count` hosts on it; `cleanup()` removes them. */
export async function makeNet(count: number): Promise<Net> {
  await removeStale();
  const tag = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 4)}`;
  const prefix = await freeSubnet();
  const bridge = `sfb-${tag}`;
  const gateway = `${prefix}.1`;
  const hosts: Host[] = [];
  const forwarders: Server[] = [];
  const sockets = new Set<Socket>();
  let cleaned: Promise<void> | undefined;

  const net: Net = {
    hosts,
    bridge,
    gateway,
    exec(host, command, args, opts = {}) {
      return execa("ip", ["netns", "exec", host.ns, command, ...args], {
        cwd: ROOT,
        reject: false,
        all: true,
        env: opts.env ?? {},
        ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
      }) as unknown as ResultPromise<{ reject: false; all: true }>;
    },
    runScript(host, script, args, opts = {}) {
      // `ip netns exec` execs the command: the child is node itself, and a kill reaches it.
      return execa("ip", ["netns", "exec", host.ns, process.execPath, "--import", "tsx", `scripts/${script}.ts`, ...args], {
        cwd: ROOT,
        reject: false,
        all: true,
        env: { LOG_LEVEL: "warn", ...opts.env },
      }) as unknown as ResultPromise<{ reject: false; all: true }>;
    },
    killHost: (host) => killAll(host.ns),
    cut: (host) => must("ip", ["link", "set", host.link, "down"]),
    mend: (host) => must("ip", ["link", "set", host.link, "up"]),
    async forward(port) {
      const server = createServer((client) => {
        const upstream = createConnection({ host: "127.0.0.1", port });
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      forwarders.push(server);
      await new Promise<void>((resolve) => server.listen(0, gateway, resolve));
      const addr = server.address();
      return `${gateway}:${typeof addr === "object" && addr ? addr.port : 0}`;
    },
    cleanup() {
      return (cleaned ??= (async () => {
        for (const s of sockets) s.destroy();
        await Promise.all(forwarders.map((f) => new Promise((r) => f.close(r))));
        for (const host of hosts) {
          await killAll(host.ns);
          await sh("ip", ["netns", "del", host.ns]);
          await sh("ip", ["link", "del", host.link]);
        }
        await sh("ip", ["link", "del", bridge]);
      })());
    },
  };

  try {
    await must("ip", ["link", "add", bridge, "type", "bridge"]);
    await must("ip", ["addr", "add", `${gateway}/24`, "dev", bridge]);
    await must("ip", ["link", "set", bridge, "up"]);
    for (let i = 0; i < count; i++) {
      const host: Host = { name: `h${i}`, ns: `${NS_PREFIX}${process.pid}-${tag.split("-")[1]}-${i}`, ip: `${prefix}.${i + 2}`, link: `sfv-${tag}${i.toString(36)}` };
      hosts.push(host);
      const peer = `${host.link}p`;
      await must("ip", ["netns", "add", host.ns]);
      await must("ip", ["link", "add", host.link, "type", "veth", "peer", "name", peer]);
      await must("ip", ["link", "set", host.link, "master", bridge]);
      await must("ip", ["link", "set", host.link, "up"]);
      await must("ip", ["link", "set", peer, "netns", host.ns]);
      const inNs = (args: string[]) => must("ip", ["netns", "exec", host.ns, "ip", ...args]);
      await inNs(["link", "set", peer, "name", "eth0"]);
      await inNs(["addr", "add", `${host.ip}/24`, "dev", "eth0"]);
      await inNs(["link", "set", "eth0", "up"]);
      await inNs(["link", "set", "lo", "up"]);
    }
  } catch (err) {
    await net.cleanup();
    throw err;
  }
  return net;
}

export interface HostedSwarm {
  child: ResultPromise<{ reject: false; all: true }>;
  /** Everything it has printed so far. */
  said(): string;
  runId: string;
  /** Where its server takes other hosts' connections. */
  url: string;
  runDir: string;
}

/**
 * `npm run swarm -- --out <out> --listen 0.0.0.0 …` on a host, resolved once it has printed how nodes join.
 * Inside the namespace 0.0.0.0 is the host's own address and its loopback, nothing else.
 */
export async function swarmOnHost(net: Net, host: Host, out: string, args: string[], env: Record<string, string> = {}): Promise<HostedSwarm> {
  const child = net.runScript(host, "swarm", ["--out", out, "--listen", "0.0.0.0", ...args], { env });
  let text = "";
  child.all!.on("data", (chunk: Buffer) => void (text += chunk.toString()));
  await lineOf(child, () => text, /^Add nodes with: /, 60_000);
  const runId = /^Run (\S+) on template/m.exec(text)?.[1];
  const port = /^NATS: nats:\/\/[^:]+:(\d+)/m.exec(text)?.[1];
  if (!runId || !port) throw new Error(`no run id or NATS port in the swarm's output:\n${text}`);
  return { child, said: () => text, runId, url: `nats://${host.ip}:${port}`, runDir: join(out, runId) };
}

/** Resolves with the first line, printed so far or later, that matches (`said` is all the child printed). */
export function lineOf(child: ResultPromise, said: () => string, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const find = () => said().split("\n").find((l) => pattern.test(l));
    const check = () => {
      const line = find();
      if (line === undefined) return false;
      clearTimeout(timer);
      child.all?.off("data", onData);
      resolvePromise(line);
      return true;
    };
    // Runs after the listener that appends to `said`, which was attached first.
    const onData = () => void check();
    const timer = setTimeout(() => {
      child.all?.off("data", onData);
      reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${said().slice(-3000)}`));
    }, timeoutMs);
    if (!check()) child.all?.on("data", onData);
    void child.then(() => {
      if (!check()) {
        clearTimeout(timer);
        reject(new Error(`the process ended with no line matching ${pattern}:\n${said().slice(-3000)}`));
      }
    });
  });
}
