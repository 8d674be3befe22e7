import { afterAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";
import { startLocalNats, type LocalNats } from "../bus/server.js";

const FIXTURE = new URL("./fixtures/templates/ref_style", import.meta.url).pathname;
const OUTAGE_MS = 60_000;
const dir = mkdtempSync(join(tmpdir(), "swarm-outage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The reference-style template, with every run but the baseline taking long enough to be cut by the outage. */
function slowTemplate(): string {
  const template = join(dir, "slow_ref_style");
  cpSync(FIXTURE, template, { recursive: true });
  const file = join(template, "experiment.py");
  const code = readFileSync(file, "utf8");
  const marker = "args = parser.parse_args()\n";
  expect(code).toContain(marker);
  writeFileSync(file, code.replace(marker, `${marker}import time\nif args.out_dir != "run_0":\n    time.sleep(8)\n`));
  return template;
}

describe("riding out the bus", () => {
  it("completes a run whose nats-server was down for 60 s in the middle of an experiment, keeping every run that succeeded", async () => {
    const storeDir = join(dir, "nats");
    let server: LocalNats = await startLocalNats({ storeDir });
    const out = join(dir, "out");
    const swarm = runScript("swarm", ["--template", slowTemplate(), "--out", out, "--max-runs", "2", "--reviewers", "1"], {
      env: { NATS_URL: server.url },
    });
    // A node joined from elsewhere must stay through the outage too.
    const node = runScript("node", ["--roles", "reviewer", "--name", "outage-node"], { env: { NATS_URL: server.url } });
    try {
      await Promise.all([waitForLine(swarm, /running run_1/, 120_000), waitForLine(node, /^node outage-node joined/, 120_000)]);
      // Listen before acting: the swarm may say it at once.
      const lost = Promise.all([
        waitForLine(swarm, /NATS connection lost; reconnecting \(the run waits\)/, 10_000),
        waitForLine(node, /NATS connection lost; reconnecting \(this node waits\)/, 10_000),
      ]);
      await server.stop();
      await lost;
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      const backLines = Promise.all([waitForLine(swarm, /NATS back after \d+ s/, 30_000), waitForLine(node, /NATS back after \d+ s/, 30_000)]);
      server = await startLocalNats({ storeDir, port: server.port });
      const [back] = await backLines;
      expect(Number(/after (\d+) s/.exec(back)![1])).toBeGreaterThanOrEqual(OUTAGE_MS / 1000 - 1);
      expect(node.exitCode, "the joined node is still running").toBeNull();

      const res = await swarm;
      expect(res.exitCode, res.all).toBe(0);
      const runId = /^Run (\S+) on template/m.exec(res.all ?? "")![1]!;
      const run = join(out, runId);
      expect(JSON.parse(readFileSync(join(run, "status.json"), "utf8")).status).toBe("completed");
      const idea = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
      const ideaDir = join(run, idea.ideaId);
      for (const r of ["run_1", "run_2"]) expect(existsSync(join(ideaDir, r, "final_info.json")), `${r}/final_info.json`).toBe(true);
      const runs: { run: string; ok: boolean }[] = JSON.parse(readFileSync(join(ideaDir, "runs.json"), "utf8"));
      expect(runs.filter((r) => r.run === "run_1" || r.run === "run_2").map((r) => [r.run, r.ok])).toEqual([
        ["run_1", true],
        ["run_2", true],
      ]);
      expect(res.all).not.toMatch(/set aside/);
      node.kill("SIGINT");
      const left = await node;
      expect(left.all).toMatch(/leaving; unfinished jobs go back to the queue/);
      expect(left.all).not.toMatch(/lost its connection/);
    } finally {
      swarm.kill("SIGKILL");
      node.kill("SIGKILL");
      await Promise.all([swarm, node]);
      await server.stop();
    }
  }, 360_000);
});
