import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";
import { startLocalNats } from "../bus/server.js";

const out = mkdtempSync(join(tmpdir(), "swarm-auth-e2e-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("a swarm that listens beyond loopback", () => {
  it("admits a reviewer node with its credentials only, and takes every review from it", async () => {
    const swarm = runScript("swarm", ["--out", out, "--listen", "0.0.0.0", "--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "3"]);
    let said = "";
    swarm.all!.on("data", (chunk: Buffer) => void (said += chunk.toString()));
    await waitForLine(swarm, /^Add nodes with: npm run node -- --creds /);
    const runId = /^Run (\S+) on template/m.exec(said)![1]!;
    const natsUrl = /^NATS: (\S+)/m.exec(said)![1]!;

    // Without credentials a node is refused, and told what to do.
    const stranger = await runScript("node", ["--roles", "reviewer"], { env: { NATS_URL: natsUrl } });
    expect(stranger.exitCode).not.toBe(0);
    expect(stranger.all).toMatch(/requires credentials/);
    expect(stranger.all).toMatch(/npm run swarm -- creds --role/);

    // The file handed to the other machine comes from the creds subcommand; it is private.
    const file = join(out, "handed", "reviewer.json");
    const handed = await runScript("swarm", ["creds", "--role", "reviewer", "--results", out, "--run", runId, "--out", file]);
    expect(handed.exitCode, handed.all).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const creds = JSON.parse(readFileSync(file, "utf8"));
    expect(creds).toMatchObject({ role: "reviewer", runId, user: "reviewer" });

    // A reviewer's credentials serve no other role.
    const wrongRole = await runScript("node", ["--creds", file, "--roles", "coder"]);
    expect(wrongRole.exitCode).toBe(2);
    expect(wrongRole.all).toMatch(/are for reviewer, not coder/);

    const node = runScript("node", ["--creds", file, "--roles", "reviewer=3", "--name", "joined-node"], { env: { LOG_LEVEL: "error" } });
    const res = await swarm;
    node.kill("SIGINT");
    const left = await node;
    expect(res.exitCode, res.all).toBe(0);
    // The node was refused nothing its work needs.
    expect(left.all).not.toMatch(/NATS refused/);
    expect(res.all).not.toMatch(/nats-server refused/);
    const runDir = join(out, runId);
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const reviewsDir = join(runDir, ideas.ideas[0].ideaId, "reviews");
    const nodes = readdirSync(reviewsDir).map((f) => JSON.parse(readFileSync(join(reviewsDir, f), "utf8")).node);
    expect(nodes).toEqual(["joined-node", "joined-node", "joined-node"]);
    // The chair counted each under the name the server vouched for.
    const meta = JSON.parse(readFileSync(join(runDir, ideas.ideas[0].ideaId, "meta_review.json"), "utf8"));
    expect(meta.reviewers.map((r: { identity: string }) => r.identity)).toEqual(["reviewer", "reviewer", "reviewer"]);
    expect(res.all).toMatch(/on node joined-node/);
  }, 90_000);

  it("joins a lab's own server with the identities its authorization block names, and hands out credentials for it", async () => {
    const lab = await startLocalNats({ storeDir: join(out, "lab-nats"), host: "0.0.0.0" });
    try {
      const env = { NATS_URL: lab.url, SWARM_NATS_IDENTITIES: join(out, "lab-nats", "identities.json") };
      const missing = await runScript("swarm", ["--out", out], { env: { ...env, SWARM_NATS_IDENTITIES: join(out, "none.json") } });
      expect(missing.exitCode).not.toBe(0);
      expect(missing.all).toMatch(/no identities file at .*none\.json/);

      const swarm = runScript("swarm", ["--out", out, "--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "2"], { env });
      const joinLine = await waitForLine(swarm, /^Add nodes with: npm run node -- --creds (\S+)/);
      const file = /--creds (\S+)/.exec(joinLine)![1]!;
      const creds = JSON.parse(readFileSync(file, "utf8"));
      expect(creds).toMatchObject({ role: "reviewer", url: lab.url, user: "reviewer" });
      // The file alone gets a node in: no NATS_URL.
      const node = runScript("node", ["--creds", file, "--roles", "reviewer=2", "--name", "lab-node"], { env: { LOG_LEVEL: "error" } });
      const res = await swarm;
      node.kill("SIGINT");
      await node;
      expect(res.exitCode, res.all).toBe(0);
      expect(res.all).not.toMatch(/nats-server refused|NATS refused/);
      expect(res.all).toMatch(/on node lab-node/);
    } finally {
      await lab.stop();
    }
  }, 90_000);
});
