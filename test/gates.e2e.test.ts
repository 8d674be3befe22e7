import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "swarm-gates-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const gate = (...args: string[]) => runScript("gate", [...args, "--out", out, "--by", "ada@lab"]);
const WAITING = (at: string) => new RegExp(`waiting at the ${at} gate: npm run gate -- approve\\|edit\\|reject (\\S+) (\\S+)`);
/** The model exchanges of the run, by task. */
const exchanges = (runId: string) =>
  readFileSync(join(out, runId, "llm.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { task: string; messages: { content: string }[] });

let runId = "";
let ideaId = "";

describe("a run gated by a person (offline)", () => {
  it("waits at ideas, survives a kill while waiting, runs the idea and the plan as edited, and goes on after approve", async () => {
    const args = ["--out", out, "--gate", "ideas,plan,paper", "--ideas", "1", "--reviewers", "1", "--revisions", "0"];
    // Its own process group: the swarm and its nats-server, killed together.
    const first = runScript("swarm", args, { detached: true });
    const waiting = waitForLine(first, WAITING("ideas"), 120_000);
    // The ideator has reported its ideation by then (it said so just before): the kill finds nothing of it in hand.
    await waitForLine(first, /ideator@local +done: 1 of 1 ideas judged novel/, 120_000);
    const named = WAITING("ideas").exec(await waiting)!;
    runId = named[1]!;
    ideaId = named[2]!;
    process.kill(-first.pid!, "SIGKILL");
    await first;
    expect(existsSync(join(out, runId, "status.json"))).toBe(false);

    // The swarm is down: the gate is read from, and decided in, the run's own store.
    const listed = await gate("list", runId);
    expect(listed.exitCode, listed.all).toBe(0);
    expect(listed.all).toMatch(new RegExp(`${ideaId} ideas \\[ideas\\.g0\\]: WAITING`));
    const proposed = JSON.parse((await gate("list", runId, "--json")).stdout as string)[0].proposal.idea;
    const edited = { ...proposed, Title: "A person's sharper question about the step size", Experiment: `${proposed.Experiment} (as a person put it)` };
    writeFileSync(join(out, "idea.json"), JSON.stringify(edited));
    const edit = await gate("edit", runId, ideaId, "--file", join(out, "idea.json"));
    expect(edit.exitCode, edit.all).toBe(0);
    // A bad edit is refused with what an idea needs, and changes nothing.
    writeFileSync(join(out, "bad.json"), JSON.stringify({ Title: "no name" }));
    const bad = await gate("edit", runId, ideaId, "--file", join(out, "bad.json"));
    expect(bad.exitCode).toBe(2);

    const resumed = runScript("swarm", ["--out", out, "--resume", runId], { detached: true });
    try {
      await waitForLine(resumed, WAITING("plan"), 120_000);
      writeFileSync(join(out, "plan.json"), JSON.stringify([{ description: "Set LEARNING_RATE = 0.3 (baseline: 0.05)" }]));
      expect((await gate("edit", runId, ideaId, "--file", join(out, "plan.json"))).exitCode).toBe(0);
      await waitForLine(resumed, WAITING("paper"), 180_000);
      const approve = await gate("approve", runId, ideaId);
      expect(approve.exitCode, approve.all).toBe(0);
      const res = await resumed;
      expect(res.exitCode, res.all).toBe(0);
      expect(JSON.parse(readFileSync(join(out, runId, "status.json"), "utf8")).status).toBe("completed");
    } finally {
      if (resumed.exitCode === null) process.kill(-resumed.pid!, "SIGKILL");
    }

    // The coder was given the idea as edited, and ran the plan as edited: one run, the person's.
    const told = (task: string) => exchanges(runId).filter((e) => e.task === task).map((e) => e.messages.map((m) => m.content).join("\n"));
    expect(told("coder.plan").length).toBeGreaterThan(0);
    expect(told("coder.edit").length).toBeGreaterThan(0);
    for (const said of [...told("coder.plan"), ...told("coder.edit"), ...told("writer.section")]) {
      expect(said).toContain(edited.Title);
      expect(said).not.toContain(proposed.Title);
    }
    const runs = JSON.parse(readFileSync(join(out, runId, ideaId, "runs.json"), "utf8")) as { run: string; description: string }[];
    expect(runs.map((r) => [r.run, r.description])).toEqual([["run_0", "Baseline: the template unchanged"], ["run_1", "Set LEARNING_RATE = 0.3 (baseline: 0.05)"]]);
    const decided = JSON.parse((await gate("list", runId, "--json")).stdout as string) as { request: string; decided?: { by: string; decision: { choice: string } } }[];
    expect(decided.map((g) => [g.request, g.decided?.decision.choice, g.decided?.by])).toEqual([
      ["ideas.g0", "edit", "ada@lab"], ["paper.r0.g0", "approve", "ada@lab"], ["plan.g0", "edit", "ada@lab"],
    ]);
  }, 400_000);

  it("rewind to writing re-writes and re-reviews the paper only, keeping the experiments", async () => {
    expect(runId).not.toBe("");
    const before = exchanges(runId);
    const pdf = join(out, runId, ideaId, "paper", `${ideaId}.pdf`);
    const pdfAt = statSync(pdf).mtimeMs;
    const results = readFileSync(join(out, runId, ideaId, "run_1", "final_info.json"), "utf8");
    const rewind = await gate("rewind", runId, ideaId, "writing");
    expect(rewind.exitCode, rewind.all).toBe(0);
    expect(rewind.all).toMatch(/had ended: go on with/);

    const resumed = runScript("swarm", ["--out", out, "--resume", runId], { detached: true });
    try {
      // Every gate before the paper was decided: only the rewound paper's asks again.
      await waitForLine(resumed, WAITING("paper"), 120_000);
      expect((await gate("approve", runId, ideaId)).exitCode).toBe(0);
      const res = await resumed;
      expect(res.exitCode, res.all).toBe(0);
      expect(res.all).not.toMatch(/waiting at the (ideas|plan) gate: npm run gate/);
      expect(res.all).not.toMatch(/running run_\d/);
      expect(res.all).toMatch(/the paper compiles/);
    } finally {
      if (resumed.exitCode === null) process.kill(-resumed.pid!, "SIGKILL");
    }
    const added = exchanges(runId).slice(before.length).map((e) => e.task);
    expect(added.filter((t) => t.startsWith("writer."))).not.toEqual([]);
    expect(added.filter((t) => t.startsWith("reviewer."))).not.toEqual([]);
    // Nothing before the writing was asked again: no idea, no novelty check, no plan, no code.
    expect(added.filter((t) => /^(ideator|critic|coder)\./.test(t))).toEqual([]);
    expect(statSync(pdf).mtimeMs).toBeGreaterThan(pdfAt);
    expect(readFileSync(join(out, runId, ideaId, "run_1", "final_info.json"), "utf8")).toBe(results);
    expect(JSON.parse(readFileSync(join(out, runId, "status.json"), "utf8")).status).toBe("completed");
  }, 300_000);

  it("a reject ends the idea with its reason", async () => {
    const run = runScript("swarm", ["--out", out, "--gate", "ideas", "--ideas", "1", "--reviewers", "1"], { detached: true });
    try {
      const [, rid, iid] = WAITING("ideas").exec(await waitForLine(run, WAITING("ideas"), 120_000))!;
      const noReason = await gate("reject", rid!, iid!);
      expect(noReason.exitCode).toBe(2);
      expect(noReason.all).toMatch(/a reject says why/);
      expect((await gate("reject", rid!, iid!, "--reason", "the step size was studied to death")).exitCode).toBe(0);
      const res = await run;
      expect(res.exitCode, res.all).toBe(0);
      expect(res.all).toMatch(/rejected at the ideas gate by ada@lab: the step size was studied to death/);
      expect(res.all).not.toMatch(/running run_\d/);
    } finally {
      if (run.exitCode === null) process.kill(-run.pid!, "SIGKILL");
    }
  }, 200_000);
});
