import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "swarm-ideas-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";
const ideasOf = (out: string, text: string) => JSON.parse(readFileSync(join(out, runIdOf(text), "ideas.json"), "utf8")).ideas as {
  ideaId: string;
  idea: { Name: string; Title: string };
  status: string;
  history: string[];
  verdict?: { verdict: string; evidence: { title: string }[] };
}[];
// More than one of the slow roles, so that five ideas go through in parallel.
const wide = ["--roles", "ideator,critic,coder=2,writer=2,areaChair=2,reviewer=3"];
// What these tests are about ends with the critic: one run and one round of review per idea is enough after it.
const brief = ["--max-runs", "1", "--revisions", "0"];

describe("ideas in conversation with the critic", () => {
  it("answers a 'revise' verdict with a revised idea that the critic judges again", async () => {
    const bib = join(dir, "close.bib");
    writeFileSync(
      bib,
      `@inproceedings{close2024,
  title = {How Much Does the {SGD} Step Size Matter? Each Learning Rate Run against the Baseline},
  author = {Doe, Jane and Roe, Richard},
  booktitle = {Workshop on Small Models},
  year = {2024},
  abstract = {We sweep the learning rate of small networks trained with SGD.}
}
`,
    );
    const out = join(dir, "revise");
    const res = await runScript("swarm", ["--out", out, "--bibliography", bib, ...brief]);
    expect(res.exitCode, res.all).toBe(0);
    const [idea] = ideasOf(out, res.all ?? "");
    const turns = idea!.history.filter((h) => /^(critic|revised)/.test(h));
    expect(turns[0]).toMatch(/^critic: revise \(close to "How Much Does/);
    expect(turns[1]).toMatch(/^revised: /);
    expect(turns[2]).toMatch(/^critic: novel/);
    expect(idea!.status).toBe("accepted");
    expect(idea!.idea.Name).toMatch(/_revised$/);
    expect(idea!.verdict?.evidence.map((e) => e.title)).toContain("How Much Does the SGD Step Size Matter? Each Learning Rate Run against the Baseline");
    expect(res.all).toMatch(/critic says revise/);
  }, 120_000);

  it("yields five distinct ideas, and a second run of the template proposes none of them again", async () => {
    const out = join(dir, "five");
    const first = await runScript("swarm", ["--out", out, "--ideas", "5", ...wide, ...brief]);
    expect(first.exitCode, first.all).toBe(0);
    const one = ideasOf(out, first.all ?? "");
    expect(one).toHaveLength(5);
    expect(new Set(one.map((i) => i.idea.Name)).size).toBe(5);
    expect(new Set(one.map((i) => i.idea.Title)).size).toBe(5);

    const second = await runScript("swarm", ["--out", out, "--ideas", "2", ...wide, ...brief]);
    expect(second.exitCode, second.all).toBe(0);
    const two = ideasOf(out, second.all ?? "");
    const before = new Set(one.map((i) => i.idea.Name));
    expect(two.filter((i) => i.status === "accepted").every((i) => !before.has(i.idea.Name))).toBe(true);
    expect(two.every((i) => !before.has(i.idea.Name))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "archive", "nanofit.json"), "utf8")).length).toBeGreaterThanOrEqual(7);
  }, 240_000);
});
