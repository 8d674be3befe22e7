import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";

const FIXTURE = new URL("./fixtures/templates/ref_style", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "swarm-exp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";

describe("templates and where their experiments run", () => {
  it("runs a template in the reference's format, copied in unchanged, through the swarm offline", async () => {
    const template = join(dir, "ref_style");
    cpSync(FIXTURE, template, { recursive: true });
    const res = await runScript("swarm", ["--template", template, "--out", join(dir, "out")]);
    expect(res.exitCode, res.all).toBe(0);
    const run = join(dir, "out", runIdOf(res.all ?? ""));
    const idea = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
    expect(idea.status).toBe("accepted");
    const runs = readdirSync(join(run, idea.ideaId)).filter((f) => /^run_\d$/.test(f)).sort();
    expect(runs).toEqual(["run_0", "run_1", "run_2"]);
    // The offline coder changed a flag's default: the knob the idea named.
    expect(readFileSync(join(run, idea.ideaId, "run_1", "diff.patch"), "utf8")).toMatch(/^\+.*add_argument\("--degree".*default=/m);
    expect(JSON.parse(readFileSync(join(run, "status.json"), "utf8")).status).toBe("completed");
  }, 120_000);

  it("gives a GPU template's experiments only to a node that advertises a GPU, one GPU per job", async () => {
    const template = join(dir, "needs_gpu");
    cpSync(FIXTURE, template, { recursive: true });
    writeFileSync(join(template, "manifest.json"), JSON.stringify({ gpu: true, python: ["numpy", "matplotlib"], experimentTimeoutS: 60 }));
    const swarm = runScript("swarm", ["--template", template, "--out", join(dir, "out")]);
    const natsLine = await waitForLine(swarm, /^NATS: /);
    const gpuNode = runScript("node", ["--roles", "coder", "--name", "gpu-node"], { env: { NATS_URL: natsLine.split(/\s+/)[1]!, SWARM_SIMULATE_GPUS: "1" } });
    const res = await swarm;
    gpuNode.kill("SIGINT");
    await gpuNode;
    expect(res.exitCode, res.all).toBe(0);
    expect(res.all).toMatch(/Profile full needs a GPU/);
    const coderLines = (res.all ?? "").split("\n").filter((l) => /\] coder@/.test(l));
    expect(coderLines.length).toBeGreaterThan(0);
    expect(coderLines.every((l) => l.includes("coder@gpu-node"))).toBe(true);
    const run = join(dir, "out", runIdOf(res.all ?? ""));
    const idea = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
    expect(readFileSync(join(run, idea.ideaId, "run_1", "device.txt"), "utf8")).toBe("0");
  }, 120_000);
});
