import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { findPython } from "../agents/preflight.js";
import { pino } from "pino";
import { runScript, ROOT } from "./helpers/cli.js";
import { natsForSuite } from "./helpers/nats.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";
import { decodePng } from "../agents/figureCritic/png.js";
import { checkFigure } from "../agents/figureCritic/check.js";
import { startNode } from "../agents/node.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { putArtifact } from "../bus/artifacts.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { publishJob } from "../bus/workQueue.js";
import { FigureCritique, RunConfig } from "../bus/schemas.js";

const dir = mkdtempSync(join(tmpdir(), "swarm-figures-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The planted fault: plot.py keeps nanofit's `labels` dict (which the coder edits) but draws nothing, on a canvas
// of 800×500 px, where the figures the plotting round makes are 960×600.
const BLANK_PLOT = `"""Writes test_accuracy.png, and plots nothing in it."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

labels = {
    "run_0": "Baseline",
}

fig = plt.figure(figsize=(8, 5))
fig.add_subplot().axis("off")
fig.savefig("test_accuracy.png", dpi=100)
print("plot.py: wrote test_accuracy.png for", ", ".join(labels))
`;

describe("a blank figure, seen by the figure critic offline", () => {
  let output = "";
  let exitCode: number | undefined;
  let ideaDir = "";

  beforeAll(async () => {
    const template = join(dir, "nanofit_blank");
    cpSync(join(ROOT, "templates", "nanofit"), template, { recursive: true });
    writeFileSync(join(template, "plot.py"), BLANK_PLOT);
    const out = join(dir, "out");
    const res = await runScript("swarm", ["--template", template, "--out", out, "--reviewers", "1", "--revisions", "0", "--max-runs", "2"]);
    output = res.all ?? "";
    exitCode = res.exitCode;
    const runId = /^Run (\S+) on template/m.exec(output)?.[1] ?? "";
    const ideas = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")) as { ideas: { ideaId: string; status: string }[] };
    ideaDir = join(out, runId, ideas.ideas.find((i) => i.status === "accepted")!.ideaId);
  }, 300_000);

  it("is flagged by the critic, and a plotting round fixes it", () => {
    expect(exitCode, output).toBe(0);
    expect(output).toMatch(/figure critic \(pixel and caption check; no model looked\), round 0: test_accuracy\.png: blank/);
    expect(output).toMatch(/plotting again for the figure critic: test_accuracy\.png \(blank\)/);
    expect(output).toMatch(/figure critic \(pixel and caption check; no model looked\), round 1: \d+ figures fine/);
    // The critic's last word, which the writer's captions were given: every figure passes.
    const critiques = FigureCritique.array().parse(JSON.parse(readFileSync(join(ideaDir, "critiques.json"), "utf8")));
    expect(critiques.map((c) => c.figure)).toContain("test_accuracy.png");
    expect(critiques.every((c) => c.ok && !c.seen)).toBe(true);
  });

  it("ends with the paper built from the fixed figure", async () => {
    const fixed = readFileSync(join(ideaDir, "test_accuracy.png"));
    const pixels = decodePng(fixed);
    expect([pixels.width, pixels.height]).toEqual([960, 600]);
    expect(checkFigure({ name: "test_accuracy.png", caption: "", references: [] }, fixed, []).problems).toEqual([]);
    const paper = join(ideaDir, "paper");
    const tex = readFileSync(join(paper, "template.tex"), "utf8");
    expect(tex).toMatch(/\\includegraphics(\[[^\]]*\])?\{test_accuracy\.png\}/);
    const pdf = readdirSync(paper).find((f) => f.endsWith(".pdf"))!;
    // The PDF carries an image of the fixed figure's size, and none of the blank one's.
    const { stdout } = await execa("pdfimages", ["-list", join(paper, pdf)]);
    const sizes = stdout.split("\n").slice(2).map((l) => l.trim().split(/\s+/).slice(3, 5).join("×"));
    expect(sizes).toContain("960×600");
    expect(sizes).not.toContain("800×500");
  });
});

describe("the figure critic with a model that sees images", () => {
  const KEY = "sk-figures-0123456789abcdefghij";
  let nats: Awaited<ReturnType<typeof natsForSuite>>;
  let server: FakeModelServer;
  let node: Awaited<ReturnType<typeof startNode>>;

  beforeAll(async () => {
    nats = await natsForSuite();
    server = await startFakeModelServer({ apiKey: KEY });
    Object.assign(process.env, { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: `${server.url}/v1`, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: server.url });
    node = await startNode({ bus: nats.bus, roles: { figureCritic: 1 }, log: pino({ level: "silent" }), nodeId: "critic-node", workRoot: join(dir, "work") });
  });
  afterAll(async () => {
    await node?.stop();
    await server?.close();
    await nats?.close();
  });

  it.each([
    ["OpenAI", { provider: "openai", model: "gpt-4o" }],
    ["Anthropic", { provider: "anthropic", model: "claude-sonnet-4-20250514" }],
  ])("sends the figure itself in the %s wire format, and keeps the pixel check's word", async (wire, llm) => {
    const runId = `figures-${wire.toLowerCase()}`;
    await putRunConfig(nats.bus, RunConfig.parse({
      runId, template: "nanofit", ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 1, maxFixes: 1, maxReflections: 1,
      maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 60_000, llm, literature: "local", startedAt: new Date().toISOString(),
    }));
    // A real plot and a blank one, made by matplotlib.
    const py = join(dir, `${runId}-figs`);
    mkdirSync(py, { recursive: true });
    const python = await findPython(["matplotlib"]);
    expect(python, "a Python with matplotlib").toBeDefined();
    await execa(python!.path, ["-c", [
      "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt",
      "fig, ax = plt.subplots(figsize=(6, 4)); ax.plot([1, 2, 3], [3, 1, 2], label='baseline'); ax.set_xlabel('epoch'); ax.legend(); fig.savefig('good.png', dpi=100)",
      "fig = plt.figure(figsize=(6, 4)); fig.add_subplot().axis('off'); fig.savefig('blank.png', dpi=100)",
    ].join("\n")], { cwd: py });
    const good = readFileSync(join(py, "good.png"));
    const blank = readFileSync(join(py, "blank.png"));
    await putArtifact(nats.bus, `${runId}/an_idea/good.png`, good);
    await putArtifact(nats.bus, `${runId}/an_idea/blank.png`, blank);
    server.requests.length = 0;

    const jobId = `${runId}.experiment.an_idea.figures.0`;
    await publishJob(nats.bus, "figures", {
      jobId, runId, ideaId: "an_idea", round: 0,
      figures: [
        { name: "good.png", caption: "Loss of the baseline per epoch.", references: [] },
        { name: "blank.png", caption: "Accuracy of run_1.", references: [] },
        // Never uploaded: there is nothing to show a model, and the pixel check's word stands.
        { name: "gone.png", caption: "Loss.", references: [] },
      ],
      runs: [{ run: "run_0", description: "Baseline", ok: true }, { run: "run_1", description: "Set LR = 0.1 (baseline: 0.01)", ok: true }],
    });
    const outcome = await awaitOutcome(nats.bus, runId, "figures", jobId);
    expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
    if (!outcome.ok) return;

    // One request per figure there is, each carrying that figure's very bytes.
    const looks = server.requests.filter((r) => JSON.stringify(r.body).includes("pixelCheck"));
    expect(looks.length).toBe(2);
    const sent = looks.map((r) => {
      const messages = r.body.messages as { role: string; content: unknown }[];
      const parts = messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Record<string, unknown>[]) : []));
      if (wire === "OpenAI") {
        const urls = parts.filter((p) => p.type === "image_url").map((p) => (p.image_url as { url: string }).url);
        expect(urls.every((u) => u.startsWith("data:image/png;base64,"))).toBe(true);
        return urls.map((u) => Buffer.from(u.slice("data:image/png;base64,".length), "base64"));
      }
      const images = parts.filter((p) => p.type === "image").map((p) => p.source as { type: string; media_type: string; data: string });
      expect(images.every((i) => i.type === "base64" && i.media_type === "image/png")).toBe(true);
      return images.map((i) => Buffer.from(i.data, "base64"));
    });
    expect(sent.map((images) => images.length)).toEqual([1, 1]);
    expect(sent[0]![0]!.equals(good)).toBe(true);
    expect(sent[1]![0]!.equals(blank)).toBe(true);

    // What the model said joins the check's finding: the blank figure stays flagged, and both are marked as seen.
    expect(outcome.result.seen).toBe(true);
    const [g, b, gone] = outcome.result.critiques;
    expect(g).toMatchObject({ figure: "good.png", ok: true, seen: true });
    expect(g!.shows).toMatch(/as its caption says/);
    expect(b).toMatchObject({ figure: "blank.png", ok: false, seen: true });
    expect(b!.problems.map((p) => p.kind)).toEqual(["blank"]);
    expect(gone).toMatchObject({ figure: "gone.png", ok: false, seen: false, shows: "nothing: the file is missing" });
  });
});
