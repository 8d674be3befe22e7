import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { runScript } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";

// A template written for these tests with the traits of the reference's own: no NAME = value line (its numbers
// are argparse defaults, one of them spread over several lines, and literals in calls), and a paper template that
// loads the algorithm packages and keeps an example figure block pointing at images no run makes.
const FIXTURE = new URL("./fixtures/templates/ref_traits", import.meta.url).pathname;
const KEY = "sk-byo-abcdefghijklmnopqrstuvwx";
const dir = mkdtempSync(join(tmpdir(), "swarm-byo-"));
let server: FakeModelServer;
beforeAll(async () => {
  server = await startFakeModelServer({ apiKey: KEY });
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});
const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";
const readJson = (...p: string[]) => JSON.parse(readFileSync(join(...p), "utf8"));

describe("templates as users bring them", () => {
  it("runs a reference-style template, unchanged, through the swarm offline to a reviewed PDF", async () => {
    const template = join(dir, "ref_traits");
    cpSync(FIXTURE, template, { recursive: true });
    const res = await runScript("swarm", ["--template", template, "--out", join(dir, "out"), "--reviewers", "2"]);
    expect(res.exitCode, res.all).toBe(0);
    expect(res.all).toMatch(/✓ LaTeX packages: every package/);
    // The baseline ran before the first model call.
    const all = res.all ?? "";
    expect(all.indexOf("✓ baseline run_0")).toBeGreaterThan(-1);
    expect(all.indexOf("✓ baseline run_0")).toBeLessThan(all.indexOf("drafting idea 1"));
    const run = join(dir, "out", runIdOf(all));
    const status = readJson(run, "status.json");
    expect(status.status).toBe("completed");
    expect(status.counts).toEqual({ proposed: 1, novel: 1, undecided: 0, experimented: 1, written: 1, decided: 1 });
    const idea = readJson(run, "ideas.json").ideas[0];
    // The idea changed a real number of the template: a changed line of its code that holds a number.
    const diff = readFileSync(join(run, idea.ideaId, "run_1", "diff.patch"), "utf8");
    const changed = diff.split("\n").filter((l) => /^\+(?!\+\+)/.test(l));
    expect(changed.some((l) => /\d/.test(l)), diff).toBe(true);
    const paperDir = readdirSync(join(run, idea.ideaId)).includes("revision_1") ? join(run, idea.ideaId, "revision_1", "paper") : join(run, idea.ideaId, "paper");
    const tex = readFileSync(join(paperDir, "template.tex"), "utf8");
    expect(existsSync(join(paperDir, `${idea.ideaId}.pdf`))).toBe(true);
    // The template's example figure and its placeholder author are gone; the figures the runs made are in.
    expect(tex).not.toMatch(/EXAMPLE FIGURE|val_loss_blobs|CAPTION TO FILL IN|Department of Placeholders|[A-Z]+ HERE/);
    expect(tex).toMatch(/\\includegraphics[^{]*\{train_acc_blobs\.png\}/);
    const text = (await execa("pdftotext", [join(paperDir, `${idea.ideaId}.pdf`), "-"])).stdout;
    // It speaks of this template's task and metrics, and prints an integer metric as an integer.
    expect(text).toMatch(/logistic regression/i);
    expect(text).not.toMatch(/We train a classifier/);
    const baseline = readJson(run, idea.ideaId, "run_0", "final_info.json");
    expect(text).toContain(`epochs_to_90pct`);
    expect(text).toMatch(new RegExp(`\\b${baseline.moons.means.epochs_to_90pct}\\b(?!\\.0)`));
    expect(text).not.toMatch(new RegExp(`\\b${baseline.moons.means.epochs_to_90pct}\\.000\\b`));
    expect(readdirSync(join(run, idea.ideaId, "reviews")).filter((f) => f.endsWith(".json"))).toHaveLength(2);
    expect(existsSync(join(run, idea.ideaId, "meta_review.json"))).toBe(true);
  }, 180_000);

  it("refuses a template whose baseline needs CUDA before any model call, saying it needs a GPU node", async () => {
    const template = join(dir, "needs_cuda");
    cpSync(FIXTURE, template, { recursive: true });
    // As in the reference's sketch_rnn: the device is a flag whose default is cuda.
    const code = readFileSync(join(template, "experiment.py"), "utf8")
      .replace("import numpy as np\n", "import numpy as np\nimport torch\n")
      .replace('    args = parser.parse_args()\n', '    parser.add_argument("--device", type=str, default="cuda")\n    args = parser.parse_args()\n    torch.zeros(4, device=args.device)\n');
    writeFileSync(join(template, "experiment.py"), code);
    const before = server.requests.length;
    const res = await runScript("swarm", ["--template", template, "--out", join(dir, "out"), "--llm", "openai/gpt-4o-mini"], {
      env: { OPENAI_BASE_URL: `${server.url}/v1`, OPENAI_API_KEY: KEY },
    });
    expect(res.exitCode, res.all).toBe(1);
    expect(res.all).toMatch(/needs a node with a GPU/);
    expect(res.all).toMatch(/Torch not compiled with CUDA enabled/);
    expect(res.all).toMatch(/"gpu": true/);
    const calls = server.requests.slice(before).filter((r) => /chat\/completions|messages/.test(r.path));
    expect(calls).toEqual([]);
    const status = readJson(dir, "out", runIdOf(res.all ?? ""), "status.json");
    expect(status.status).toBe("failed");
    expect(status.reason).toMatch(/baseline failed before any model call: .*needs a node with a GPU/s);
    expect(status.costUsd).toBe(0);
  }, 180_000);

  it("finds a syntax error and a missing TeX package before anything runs", async () => {
    const template = join(dir, "broken");
    cpSync(FIXTURE, template, { recursive: true });
    writeFileSync(join(template, "plot.py"), "import json\nfor run in labels\n    print(run)\n");
    const tex = readFileSync(join(template, "latex", "template.tex"), "utf8");
    writeFileSync(join(template, "latex", "template.tex"), tex.replace("\\usepackage{algorithm}", "\\usepackage{algorithm}\n\\usepackage{nosuchpackage-swarm}"));
    const res = await runScript("swarm", ["--template", template, "--out", join(dir, "out")]);
    expect(res.exitCode, res.all).toBe(1);
    expect(res.all).toMatch(/✗ template code: .*plot\.py:2: /);
    expect(res.all).toMatch(/✗ LaTeX packages: .*loads nosuchpackage-swarm, which TeX does not have/);
    expect(res.all).not.toMatch(/^Run \S+ on template/m);
  }, 60_000);

  it("refuses --quorum above --reviewers, and a negative count with the message of zero", async () => {
    const quorum = await runScript("swarm", ["--reviewers", "2", "--quorum", "3", "--out", join(dir, "out")]);
    expect(quorum.exitCode).toBe(2);
    expect(quorum.all).toMatch(/--quorum 3 is more than the 2 reviewers/);
    const zero = await runScript("swarm", ["--ideas", "0", "--out", join(dir, "out")]);
    const negative = await runScript("swarm", ["--ideas", "-2", "--out", join(dir, "out")]);
    expect(zero.exitCode).toBe(2);
    expect(negative.exitCode).toBe(2);
    const message = (s: string | undefined) => /error: (.*)/.exec(s ?? "")?.[1];
    expect(message(zero.all)).toBe("--ideas: must be a whole number from 1 to 50");
    expect(message(negative.all)).toBe(message(zero.all));
  }, 60_000);
});
