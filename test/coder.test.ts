import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { recordingNode } from "./helpers/recordingNode.js";
import { experiment } from "../agents/coder/coder.js";
import { createLlm } from "../agents/llm/client.js";
import { offlineProvider } from "../agents/llm/offline/offlineProvider.js";
import { RunConfig } from "../bus/schemas.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { getArtifact, hasArtifact } from "../bus/artifacts.js";
import type { AgentContext } from "../agents/runtime/agentContext.js";
import "../agents/offline.js";

const log = pino({ level: "silent" });
const FIXTURE = new URL("./fixtures/templates/ref_style", import.meta.url).pathname;
let nats: Awaited<ReturnType<typeof natsForSuite>>;
let dir: string;
let server: Server;
let port = 0;
let connections = 0;
const outside = join(tmpdir(), `coder-escape-${randomBytes(4).toString("hex")}`);

beforeAll(async () => {
  nats = await natsForSuite();
  dir = mkdtempSync(join(tmpdir(), "coder-"));
  server = createServer((s) => {
    connections++;
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await nats?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the coder, with a hostile run among good ones", () => {
  it("keeps runs one and two when the third reads keys, dials out, writes outside and never ends", async () => {
    const template = join(dir, "hostile");
    cpSync(FIXTURE, template, { recursive: true });
    const code = readFileSync(join(template, "experiment.py"), "utf8").replace(
      "args = parser.parse_args()\n",
      `args = parser.parse_args()\nif args.degree == 9:\n    import socket, time\n    print("key:", os.environ.get("OPENAI_API_KEY"))\n    try:\n        socket.create_connection(("127.0.0.1", ${port}), timeout=1)\n    except OSError as e:\n        print("no network:", e)\n    try:\n        open(${JSON.stringify(outside)}, "w").write("x")\n    except OSError as e:\n        print("read-only:", e)\n    time.sleep(1000)\n`,
    );
    writeFileSync(join(template, "experiment.py"), code);

    const runId = "coder-hostile";
    const config = RunConfig.parse({
      runId, template, ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 3, maxFixes: 1, maxReflections: 1,
      maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 4000, llm: { provider: "offline", model: "offline" }, literature: "local",
      // No figure critic serves here: the figures' round trip is test/figures.e2e.test.ts's.
      figureRounds: 0,
      startedAt: new Date().toISOString(),
    });
    await putRunConfig(nats.bus, config);
    const by = { agent: "coder", node: "test" };
    const progress: string[] = [];
    const ctx: AgentContext = {
      bus: nats.bus, runId, config, by, log, signal: new AbortController().signal, workRoot: join(dir, "work"),
      llm: createLlm(offlineProvider(), { bus: nats.bus, runId, by, log }),
      progress: async (text) => void progress.push(text),
    };
    process.env.OPENAI_API_KEY = "sk-must-not-leak-0123456789";
    let result;
    try {
      result = await experiment(
        {
          jobId: "j1", runId, ideaId: "degree_sweep",
          idea: { Name: "degree_sweep", Title: "Degree", Experiment: "Set DEGREE to each of [1, 5, 9] (baseline: 3), one run per value.", Interestingness: 5, Feasibility: 9, Novelty: 4 },
        },
        ctx,
      );
    } finally {
      delete process.env.OPENAI_API_KEY;
    }
    expect(result.runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", true], ["run_2", true], ["run_3", false]]);
    const failed = result.runs[3]!;
    expect(failed.attempts).toBe(2);
    expect(failed.error).toMatch(/exceeded the wall-clock limit/);
    expect(failed.error).not.toContain("sk-must-not-leak");
    expect(result.figures).toContain("fits.png");
    expect(result.notes).toMatch(/run_3: .*FAILED/);
    expect(connections).toBe(0);
    expect(existsSync(outside)).toBe(false);
    // What the runs that worked made is in the object store, code and diff included.
    const diff = new TextDecoder().decode(await getArtifact(nats.bus, `${runId}/degree_sweep/run_2/diff.patch`));
    expect(diff).toMatch(/^\+.*default=5/m);
    expect(progress.some((p) => /run_3 set aside/.test(p))).toBe(true);
  }, 60_000);
});

describe("the coder, taken over by another node", () => {
  it("goes on from the persisted machine after run_2: runs only run_3, asks for no plan again, and keeps all three runs", async () => {
    const runId = "coder-takeover";
    const config = RunConfig.parse({
      runId, template: "nanofit", ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 3, maxFixes: 1, maxReflections: 1,
      maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 60_000, llm: { provider: "offline", model: "offline" }, literature: "local",
      figureRounds: 0,
      startedAt: new Date().toISOString(),
    });
    await putRunConfig(nats.bus, config);
    const job = {
      jobId: "j2", runId, ideaId: "lr_sweep",
      idea: { Name: "lr_sweep", Title: "Learning rate", Experiment: "Set LEARNING_RATE to each of [0.01, 0.1, 0.2] (baseline: 0.05), one run per value.", Interestingness: 5, Feasibility: 9, Novelty: 4 },
    };
    const node = (name: string, stopAt?: (task: string, data: Record<string, unknown>) => boolean) =>
      recordingNode({ bus: nats.bus, runId, config, log, dir, agent: "coder", label: (d) => (typeof d.run === "string" ? d.run : undefined) }, name, stopAt);

    // The first node stops (as a killed process would) while the model edits run_3.
    const a = node("node-a", (task, data) => task === "coder.edit" && data.run === "run_3");
    await expect(experiment(job, a.ctx)).rejects.toThrow();
    expect(a.tasks).toEqual(["coder.plan", "coder.edit run_1", "coder.edit run_2", "coder.edit run_3"]);
    expect(await hasArtifact(nats.bus, `${runId}/lr_sweep/work/experiment.py`)).toBe(true);

    const b = node("node-b");
    const result = await experiment(job, b.ctx);
    expect(b.tasks).toEqual(["coder.edit run_3", "coder.plot", "coder.notes"]);
    expect(b.progress.filter((p) => p.startsWith("running "))).toEqual(["running run_3"]);
    expect(b.progress[0]).toMatch(/^going on from "editing", where another coder stopped; kept run_0, run_1, run_2$/);
    expect(result.runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", true], ["run_2", true], ["run_3", true]]);
    expect(result.runs.map((r) => r.description)).toEqual([expect.stringMatching(/^Baseline/), ...["0.01", "0.1", "0.2"].map((v) => `Set LEARNING_RATE = ${v} (baseline: 0.05)`)]);
    // plot.py read every run's folder on node B, those made on node A included.
    expect(result.figures.length).toBeGreaterThan(0);
    expect(result.notes).toMatch(/run_1: Set LEARNING_RATE = 0.01/);
    const diff = new TextDecoder().decode(await getArtifact(nats.bus, `${runId}/lr_sweep/run_3/diff.patch`));
    expect(diff).toMatch(/^\+LEARNING_RATE = 0\.2\b/m);
  }, 120_000);
});
