import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execa } from "execa";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "swarm-e2e-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const runDirOf = (text: string) => {
  const m = /^Run (\S+) on template/m.exec(text);
  if (!m) throw new Error(`no run id in the output:\n${text}`);
  return join(out, m[1]!);
};

/** Processes whose working directory lies under `fragment`: the experiments of one node. */
async function processesWorkingIn(fragment: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`).includes(fragment)) found.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

async function pgrep(pattern: string): Promise<string[]> {
  const { stdout } = await execa("pgrep", ["-af", pattern], { reject: false });
  return stdout.split("\n").filter((l) => l && !l.includes("pgrep"));
}

describe("the whole swarm, offline, on the fast template", () => {
  let output = "";
  let runDir = "";
  let exitCode: number | undefined;

  beforeAll(async () => {
    const res = await runScript("swarm", ["--out", out, "--reviewers", "3"]);
    output = res.all ?? "";
    exitCode = res.exitCode;
    runDir = runDirOf(output);
  }, 180_000);

  it("says it runs offline, names the NATS URL, and exits cleanly", () => {
    expect(exitCode, output).toBe(0);
    expect(output).toMatch(/running OFFLINE/);
    expect(output).toMatch(/^NATS: nats:\/\/127\.0\.0\.1:\d+/m);
    expect(output).toMatch(/OFFLINE: no language model wrote any of it/);
  });

  it("leaves ideas, runs, a figure, notes, the paper, 3 reviews and a decision", () => {
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const accepted = ideas.ideas.filter((i: { status: string }) => i.status === "accepted");
    expect(accepted.length).toBe(1);
    const idea = join(runDir, accepted[0].ideaId);
    const runs = readdirSync(idea).filter((f) => /^run_\d+$/.test(f)).sort();
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const run of runs) expect(existsSync(join(idea, run, "final_info.json")), run).toBe(true);
    expect(readdirSync(idea).some((f) => f.endsWith(".png"))).toBe(true);
    expect(readFileSync(join(idea, "notes.txt"), "utf8")).toMatch(/run_1/);
    expect(existsSync(join(idea, "paper", `${accepted[0].ideaId}.pdf`))).toBe(true);
    expect(readdirSync(join(idea, "reviews"))).toHaveLength(3);
    const meta = JSON.parse(readFileSync(join(idea, "meta_review.json"), "utf8"));
    expect(["Accept", "Reject"]).toContain(meta.decision);
    expect(meta.reviews).toBe(3);
    for (const f of ["config.json", "llm.jsonl", "cost.json"]) expect(existsSync(join(runDir, f)), f).toBe(true);
    expect(output).toContain(`${accepted[0].ideaId}.pdf`);
    expect(output).toMatch(/decision: (Accept|Reject)/);
  });

  it("puts the runs' real numbers in the PDF's text", async () => {
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const idea = join(runDir, ideas.ideas[0].ideaId);
    const { stdout } = await execa("pdftotext", [join(idea, "paper", `${ideas.ideas[0].ideaId}.pdf`), "-"]);
    const text = stdout.replace(/\s+/g, " ");
    const runs = readdirSync(idea).filter((f) => /^run_\d+$/.test(f));
    let checked = 0;
    for (const run of runs) {
      const info = JSON.parse(readFileSync(join(idea, run, "final_info.json"), "utf8")) as Record<string, { means: Record<string, number> }>;
      for (const [, v] of Object.entries(info)) {
        expect(text, `${run} test_accuracy`).toContain(v.means.test_accuracy!.toFixed(4));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(9);
    expect(text).toMatch(/No language model wrote this paper/);
  });

  it("writes every section, with citations that resolve and every number traced in claims.json", async () => {
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const paper = join(runDir, ideas.ideas[0].ideaId, "paper");
    const { stdout } = await execa("pdftotext", [join(paper, `${ideas.ideas[0].ideaId}.pdf`), "-"]);
    for (const heading of ["Abstract", "Introduction", "Related Work", "Background", "Method", "Experimental Setup", "Results", "Conclusions and Future Work", "References"]) {
      expect(stdout, heading).toContain(heading);
    }
    // An unresolved citation prints as [?].
    expect(stdout).not.toContain("[?]");
    expect(readFileSync(join(paper, "template.tex"), "utf8")).toMatch(/\\cite[tp]?\{/);
    const claims = JSON.parse(readFileSync(join(paper, "claims.json"), "utf8")) as { source: unknown }[];
    expect(claims.length).toBeGreaterThanOrEqual(9);
    expect(claims.filter((c) => !c.source)).toEqual([]);
  });

  it("counts every model call in cost.json", () => {
    const cost = JSON.parse(readFileSync(join(runDir, "cost.json"), "utf8"));
    const lines = readFileSync(join(runDir, "llm.jsonl"), "utf8").trim().split("\n");
    expect(cost.total.calls).toBe(lines.length);
    expect(Object.keys(cost.byAgent).sort()).toEqual(["areaChair", "coder", "critic", "ideator", "reviewer", "writer"]);
  });
});

describe("scaling out and stopping", () => {
  it("takes every review from a node that joined over NATS_URL", async () => {
    const swarm = runScript("swarm", ["--out", out, "--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "3"]);
    const natsLine = await waitForLine(swarm, /^NATS: /);
    const url = natsLine.split(/\s+/)[1]!;
    const node = runScript("node", ["--roles", "reviewer=2", "--name", "joined-node"], { env: { NATS_URL: url } });
    const res = await swarm;
    node.kill("SIGINT");
    await node;
    expect(res.exitCode, res.all).toBe(0);
    const runDir = runDirOf(res.all ?? "");
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const reviewsDir = join(runDir, ideas.ideas[0].ideaId, "reviews");
    const nodes = readdirSync(reviewsDir).map((f) => JSON.parse(readFileSync(join(reviewsDir, f), "utf8")).node);
    expect(nodes).toEqual(["joined-node", "joined-node", "joined-node"]);
    expect(res.all).toMatch(/on node joined-node/);
  }, 120_000);

  it("leaves no nats-server or child process behind after Ctrl-C", async () => {
    const swarm = runScript("swarm", ["--out", out], { detached: true });
    const runDir = runDirOf(await waitForLine(swarm, /^Run \S+ on template/));
    await waitForLine(swarm, /running run_1/);
    expect(await pgrep(runDir)).not.toEqual([]);
    // A terminal's Ctrl-C reaches the whole foreground process group.
    process.kill(-swarm.pid!, "SIGINT");
    const res = await swarm;
    expect(res.exitCode).toBe(130);
    expect(await pgrep(runDir)).toEqual([]);
    // Its scratch folders are the run's own, under its output, not in the repository.
    expect(existsSync(join(runDir, "work"))).toBe(true);
    expect(await processesWorkingIn(join(runDir, "work"))).toEqual([]);
  }, 120_000);

  it("stops before any work when nats-server and TeX are missing, and says what to install", async () => {
    const before = readdirSync(out).length;
    const res = await runScript("swarm", ["--out", out], { env: { PATH: "/nonexistent" } });
    expect(res.exitCode).toBe(1);
    expect(res.all).toMatch(/Preflight failed/);
    expect(res.all).toMatch(/apt-get install -y nats-server/);
    expect(res.all).toMatch(/texlive-latex-base/);
    expect(res.all).toMatch(/poppler-utils/);
    expect(readdirSync(out).length).toBe(before);
  });

  it("names the templates when asked for one that does not exist", async () => {
    const res = await runScript("swarm", ["--template", "no_such_template", "--out", out]);
    expect(res.exitCode).toBe(2);
    expect(res.all).toMatch(/unknown template "no_such_template"/);
    expect(res.all).toMatch(/nanofit/);
  });
});
