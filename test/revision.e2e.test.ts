import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "swarm-revision-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("the revision round", () => {
  it("sends a rejected paper back with the meta-review, reviews the revision, and keeps both", async () => {
    // With the learning-rate idea already in the archive, the offline ideator proposes the momentum sweep,
    // whose paper the offline reviewers reject.
    mkdirSync(join(out, "archive"), { recursive: true });
    writeFileSync(
      join(out, "archive", "nanofit.json"),
      JSON.stringify([{ Name: "learning_rate_sweep", Title: "Sweeping LEARNING_RATE", Experiment: "Set LEARNING_RATE to each of [0.01, 0.2].", Interestingness: 4, Feasibility: 9, Novelty: 3 }]),
    );
    const res = await runScript("swarm", ["--out", out, "--revisions", "1"]);
    expect(res.exitCode, res.all).toBe(0);
    // The pipeline's own state events say where the idea went.
    expect(res.all).toMatch(/pipeline +\w+: → revising \(writer\)/);
    const runId = /^Run (\S+) on template/m.exec(res.all ?? "")![1]!;
    const { ideaId } = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")).ideas[0];
    const idea = join(out, runId, ideaId);
    const first = JSON.parse(readFileSync(join(idea, "meta_review.json"), "utf8"));
    const second = JSON.parse(readFileSync(join(idea, "revision_1", "meta_review.json"), "utf8"));
    expect(first).toMatchObject({ decision: "Reject", round: 0 });
    expect(first.reviewers).toHaveLength(3);
    expect(second).toMatchObject({ round: 1 });
    expect(existsSync(join(idea, "paper", `${ideaId}.pdf`))).toBe(true);
    expect(existsSync(join(idea, "revision_1", "paper", `${ideaId}.pdf`))).toBe(true);
    expect(readdirSync(join(idea, "reviews"))).toHaveLength(3);
    expect(readdirSync(join(idea, "revision_1", "reviews"))).toHaveLength(3);
    expect(readFileSync(join(idea, "revision_1", "paper", "template.tex"), "utf8")).toMatch(/In revision, after review/);
    expect(readFileSync(join(idea, "paper", "template.tex"), "utf8")).not.toMatch(/In revision, after review/);
    expect(res.all).toMatch(/decision: \w+ after 1 revision/);
  }, 120_000);
});
