import { afterAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { z } from "zod";
import { ROOT, runScript, waitForLine } from "./helpers/cli.js";
import { startLocalNats } from "../bus/server.js";
import { connectBus } from "../bus/connection.js";
import { watchEvents } from "../bus/events.js";
import { STREAMS, subjects } from "../bus/subjects.js";
import { FinalInfo, Progress, TreeRecord, outcomeSchema } from "../bus/schemas.js";
import { valueOf } from "../machines/metric.js";

const dir = mkdtempSync(join(tmpdir(), "swarm-tree-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";

/**
 * nanofit, refusing a learning rate above 0.15 with an error that names the setting (as a program that
 * checks its arguments would): the offline idea's second value, 0.2, fails until it is debugged. `slow`
 * makes every run take a second longer, for a coder to be killed in the middle of one.
 */
function plantedNanofit(name: string, slow = false): string {
  const template = join(dir, name);
  cpSync(resolve(ROOT, "templates", "nanofit"), template, { recursive: true });
  const file = join(template, "experiment.py");
  const code = readFileSync(file, "utf8");
  const marker = "    args = parser.parse_args()\n";
  expect(code).toContain(marker);
  const planted = `    if LEARNING_RATE > 0.15:\n        raise ValueError(f"LEARNING_RATE = {LEARNING_RATE} is more than this program trains with")\n${slow ? "    time.sleep(1)\n" : ""}`;
  writeFileSync(file, code.replace(marker, `${marker}${planted}`));
  return template;
}

/** When each step of a run's tree search had its outcome recorded, read back from the run's own NATS store. */
async function outcomeTimes(storeDir: string, runId: string): Promise<Map<string, number>> {
  const server = await startLocalNats({ storeDir });
  const bus = await connectBus(server.url);
  try {
    const filter = subjects.outcomes(runId, "experiment");
    const info = await bus.jsm.streams.info(STREAMS.conversation.name, { subjects_filter: filter });
    const count = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    const times = new Map<string, number>();
    const stream = await watchEvents(bus, filter, outcomeSchema("experiment"));
    let read = 0;
    if (count) for await (const { value } of stream) {
      times.set(value.jobId.split(".").at(-1)!, Date.parse(value.at));
      if (++read >= count) break;
    }
    await stream.close();
    return times;
  } finally {
    await bus.close();
    await server.stop();
  }
}

const Tree = TreeRecord.extend({
  stats: z.object({
    variantsTried: z.number(),
    confirmation: z.object({ holds: z.boolean(), seeds: z.array(z.number()), independent: z.boolean(), foundBy: z.string().optional(), confirmedBy: z.array(z.string()) }).optional(),
  }),
});
const Claims = z.array(z.object({ number: z.string(), source: z.object({ file: z.string(), key: z.string(), value: z.number() }).nullable() }));

describe("a tree search over an idea's experiment variants", () => {
  it("searches four stages offline on nanofit, debugs the planted failure, confirms on fresh seeds, and every number in the paper traces", async () => {
    const out = join(dir, "out");
    const res = await runScript("swarm", [
      "--template", plantedNanofit("planted"), "--out", out, "--search", "tree", "--tree", "implement=2,tune=3,research=2,ablate=2", "--seeds", "2",
      "--reviewers", "1", "--revisions", "0",
    ]);
    expect(res.exitCode, res.all).toBe(0);
    const run = join(out, runIdOf(res.all ?? ""));
    const { ideaId } = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
    const ideaDir = join(run, ideaId);
    const tree = Tree.parse(JSON.parse(readFileSync(join(ideaDir, "tree.json"), "utf8")));

    expect(tree.nodes.length).toBeGreaterThanOrEqual(8);
    expect(new Set(tree.nodes.map((n) => n.stage))).toEqual(new Set(["implement", "tune", "research", "ablate"]));
    expect(tree.nodes.every((n) => n.status === "works" || n.status === "buggy")).toBe(true);
    // The planted failure: a draft fails naming its setting, and a debug step of it, backed off, works.
    const buggy = tree.nodes.filter((n) => n.status === "buggy");
    expect(buggy.length).toBeGreaterThan(0);
    expect(buggy[0]!.error).toMatch(/LEARNING_RATE = 0\.2 is more than this program trains with/);
    const debugged = tree.nodes.filter((n) => n.action === "debug");
    expect(debugged.some((n) => n.status === "works" && buggy.some((b) => b.id === n.parent))).toBe(true);
    // Best-first: each improvement's parent was the best working node when it was made, never a buggy one.
    for (const n of tree.nodes.filter((m) => m.action === "improve")) expect(tree.nodes.find((p) => p.id === n.parent)?.status).toBe("works");

    // Every node's value is its own final_info.json's metric, from the folder the node left behind.
    for (const n of tree.nodes.filter((m) => m.status === "works")) {
      const info = FinalInfo.parse(JSON.parse(readFileSync(join(ideaDir, "tree", n.id, "final_info.json"), "utf8")));
      expect(valueOf(info, tree.metric)).toBeCloseTo(n.value!, 12);
      expect(readFileSync(join(ideaDir, "tree", n.id, "diff.patch"), "utf8")).toMatch(/^\+[A-Z_]+ = /m);
    }
    // The chosen node's claim comes with its confirmation: itself and the baseline on two fresh seed sets each.
    expect(tree.final).toBeDefined();
    const confirm = tree.seedRuns.filter((r) => r.purpose === "confirm");
    expect(confirm.map((r) => r.id).sort()).toEqual([`${tree.final}-s1000`, `${tree.final}-s1001`, "root-s1000", "root-s1001"].sort());
    expect(confirm.every((r) => r.status === "works" && existsSync(join(ideaDir, "tree", r.id, "final_info.json")))).toBe(true);
    expect(tree.stats.confirmation?.seeds).toEqual([1000, 1001]);
    // Fresh seeds give fresh numbers: the template read SWARM_SEED.
    const values = confirm.filter((r) => r.of === "root").map((r) => r.value);
    expect(values[0]).not.toBe(values[1]);

    // The paper says how many variants were tried and what the confirmation found; every number in it traces.
    const tex = readFileSync(join(ideaDir, "paper", "template.tex"), "utf8");
    expect(tex).toContain(`A tree search tried ${tree.stats.variantsTried} variants`);
    expect(tex).toMatch(tree.stats.confirmation!.holds ? /the gain holds\./ : /the gain does not hold up, and we do not claim it\./);
    expect(tex).toContain("\\subsection{Ablations}");
    expect(tex).toContain("\\includegraphics[width=0.85\\linewidth]{search_tree.png}");
    const claims = Claims.parse(JSON.parse(readFileSync(join(ideaDir, "paper", "claims.json"), "utf8")));
    expect(claims.length).toBeGreaterThan(20);
    expect(claims.filter((c) => !c.source)).toEqual([]);
    expect(claims.some((c) => c.source!.file.startsWith("tree/") || c.source!.file === "tree.json")).toBe(true);
    // The drawing is there, and is well-formed.
    const svg = readFileSync(join(ideaDir, "tree.svg"), "utf8");
    await execa("python3", ["-c", "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())"], { input: svg });
    for (const n of tree.nodes) expect(svg).toContain(`>${n.id}`);
  }, 300_000);

  it("goes on after every process of the swarm was killed mid-search, redoing only the nodes that were in flight", async () => {
    const out = join(dir, "out3");
    const args = ["--template", plantedNanofit("resumed", true), "--out", out, "--search", "tree", "--tree", "implement=2,tune=2,research=1,ablate=1", "--seeds", "1", "--reviewers", "1", "--revisions", "0"];
    // Its own process group: the swarm, its node and its nats-server, killed together as by a power cut.
    const first = runScript("swarm", args, { detached: true });
    const runId = /^Run (\S+) on template/.exec(await waitForLine(first, /^Run \S+ on template/, 120_000))![1]!;
    await waitForLine(first, /: n3 (works|is buggy)/, 120_000);
    process.kill(-first.pid!, "SIGKILL");
    const killedAt = Date.now();
    const before = (await first).all ?? "";
    const res = await runScript("swarm", ["--out", out, "--resume", runId]);
    expect(res.exitCode, res.all).toBe(0);
    const ran = (text: string) => [...text.matchAll(/: running (\S+)$/gm)].map((m) => m[1]!);
    const again = ran(res.all ?? "");
    // Which steps' outcomes the bus had recorded before the kill: those must not run again; the others must.
    const recorded = await outcomeTimes(join(out, runId, "nats"), runId);
    const finished = [...recorded].filter(([, at]) => at < killedAt).map(([step]) => step);
    expect(finished.length).toBeGreaterThan(0);
    expect(again.filter((step) => finished.includes(step))).toEqual([]);
    expect(again).toEqual(expect.arrayContaining(ran(before).filter((step) => !finished.includes(step))));
    const { ideaId } = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")).ideas[0];
    const tree = Tree.parse(JSON.parse(readFileSync(join(out, runId, ideaId, "tree.json"), "utf8")));
    expect(tree.nodes.every((n) => n.status === "works" || n.status === "buggy")).toBe(true);
    expect(tree.seedRuns.filter((r) => r.purpose === "confirm").length).toBe(2);
  }, 300_000);

  it("spreads its nodes over two coder node processes, and a coder killed mid-node loses only that node's run", async () => {
    const server = await startLocalNats({ storeDir: join(dir, "nats") });
    const out = join(dir, "out2");
    const env = { NATS_URL: server.url, SWARM_ACK_WAIT_MS: "3000" };
    const swarm = runScript("swarm", [
      "--template", plantedNanofit("slow", true), "--out", out, "--search", "tree", "--tree", "implement=2,tune=2,research=1,ablate=1,width=2", "--seeds", "1",
      "--reviewers", "1", "--revisions", "0", "--roles", "ideator,critic,writer,areaChair,reviewer=1",
    ], { env });
    const coders: Record<string, ReturnType<typeof runScript>> = Object.fromEntries(["coder-a", "coder-b"].map((name) => [name, runScript("node", ["--roles", "coder", "--name", name], { env })]));
    const bus = await connectBus(server.url);
    try {
      const runId = /^Run (\S+) on template/.exec(await waitForLine(swarm, /^Run \S+ on template/, 120_000))![1]!;
      const progress: Progress[] = [];
      let killed: { node: string; step: string } | undefined;
      const stream = await watchEvents(bus, subjects.progress(runId), Progress);
      const reading = (async () => {
        for await (const { value } of stream) {
          progress.push(value);
          const step = /^running (n\d+)$/.exec(value.text)?.[1];
          // Killed as it starts a node, once it has finished one: its run of this node is lost, nothing else.
          const finished = progress.some((p) => p.by.node === value.by.node && / works| is buggy/.test(p.text));
          if (step && !killed && finished && Number(step.slice(1)) >= 3) {
            killed = { node: value.by.node, step };
            coders[value.by.node]!.kill("SIGKILL");
            // A lab replaces the machine it lost: the confirmation then has another coder than its finder to run on.
            coders["coder-c"] = runScript("node", ["--roles", "coder", "--name", "coder-c"], { env });
          }
        }
      })();
      const res = await swarm;
      await stream.close();
      await reading;
      expect(res.exitCode, res.all).toBe(0);
      expect(killed, "a coder was killed mid-node").toBeDefined();
      const run = join(out, runId);
      const { ideaId } = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
      const tree = Tree.parse(JSON.parse(readFileSync(join(run, ideaId, "tree.json"), "utf8")));
      // Each node names the coder node that ran it; both first coders ran some.
      const by = new Set(tree.nodes.map((n) => n.by));
      expect(by.has("coder-a") && by.has("coder-b")).toBe(true);
      // The final comparison was replicated on another coder node than the one that found it.
      const confirmation = tree.stats.confirmation!;
      expect(confirmation.independent, JSON.stringify(confirmation)).toBe(true);
      expect(confirmation.confirmedBy).not.toContain(confirmation.foundBy);
      // Every step ran once, but the killed one: twice, the second time elsewhere.
      const runs = new Map<string, string[]>();
      for (const p of progress) {
        const step = /^running (\S+)$/.exec(p.text)?.[1];
        if (step && p.ideaId === ideaId) runs.set(step, [...(runs.get(step) ?? []), p.by.node]);
      }
      // The killed step was taken by one of the coders still there.
      for (const [step, ran] of runs) {
        if (step !== killed!.step) expect(ran, step).toEqual([ran[0]]);
        else expect(ran.length === 2 && ran[0] === killed!.node && ran[1] !== killed!.node, `${step}: ${ran.join(", ")}`).toBe(true);
      }
      expect(tree.nodes.find((n) => n.id === killed!.step)?.by).not.toBe(killed!.node);
      // The survivor ran the edit the killed coder had made (kept in the object store), not the parent's code.
      expect(readFileSync(join(run, ideaId, "tree", killed!.step, "diff.patch"), "utf8")).toMatch(/^\+[A-Z_]+ = /m);
    } finally {
      swarm.kill("SIGKILL");
      for (const c of Object.values(coders)) c.kill("SIGKILL");
      await Promise.allSettled([swarm, ...Object.values(coders)]);
      await bus.close();
      await server.stop();
    }
  }, 300_000);
});
