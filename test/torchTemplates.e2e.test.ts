import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { runScript } from "./helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "swarm-torch-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

// The paper's two PyTorch templates, in the configuration for two CPU cores: one changed run each.
// Side by side: a reduced run keeps one core busy, so the two take little longer than one.
describe.concurrent.each(["grokking", "2d_diffusion"])("the %s template, reduced, through the whole swarm", (template) => {
  it("runs the baseline and a changed run on the CPU, plots them and writes the paper", async () => {
    const res = await runScript("swarm", ["--template", template, "--profile", "reduced", "--max-runs", "1", "--revisions", "0", "--out", out]);
    expect(res.exitCode, res.all).toBe(0);
    const runId = /^Run (\S+) on template/m.exec(res.all ?? "")![1]!;
    const run = join(out, runId);
    expect(JSON.parse(readFileSync(join(run, "status.json"), "utf8")).status).toBe("completed");
    const { ideaId } = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
    const idea = join(run, ideaId);
    expect(readdirSync(idea).filter((f) => /^run_\d+$/.test(f)).sort()).toEqual(["run_0", "run_1"]);
    expect(readdirSync(idea).filter((f) => f.endsWith(".png")).length).toBeGreaterThan(0);
    const info = JSON.parse(readFileSync(join(idea, "run_1", "final_info.json"), "utf8")) as Record<string, { means: Record<string, number> }>;
    const { stdout } = await execa("pdftotext", [join(idea, "paper", `${ideaId}.pdf`), "-"]);
    const [first] = Object.values(info);
    const metric = Object.keys(first!.means)[0]!;
    // The paper's table prints a metric with 4 decimals below 1, 3 below 100, else 1.
    const x = first!.means[metric]!;
    const printed = Math.abs(x) >= 100 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(3) : x.toFixed(4);
    expect(stdout.replace(/\s+/g, " ")).toContain(printed);
    expect(existsSync(join(idea, "run_1", "diff.patch"))).toBe(true);
  }, 600_000);
});
