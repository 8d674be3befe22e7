import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";
import { startFakeSemanticScholar } from "./helpers/fakeLiterature.js";

const dir = mkdtempSync(join(tmpdir(), "swarm-lit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a run against a rate-limited Semantic Scholar", () => {
  it("waits out five seconds of 429s, says why, and completes", async () => {
    const started = Date.now();
    const s2 = await startFakeSemanticScholar(
      [
        { title: "Cyclical Learning Rates for Training Neural Networks", authors: ["Leslie N. Smith"], year: 2017, venue: "WACV", citations: 2500, abstract: "Learning rate schedules that cycle between bounds." },
        { title: "Don't Decay the Learning Rate, Increase the Batch Size", authors: ["Samuel L. Smith", "Pieter-Jan Kindermans", "Quoc V. Le"], year: 2018, venue: "ICLR", citations: 1000 },
        { title: "On the importance of initialization and momentum in deep learning", authors: ["Ilya Sutskever", "James Martens", "George Dahl", "Geoffrey Hinton"], year: 2013, venue: "ICML", citations: 5000 },
      ],
      { rateLimitedUntil: started + 5000 },
    );
    try {
      const res = await runScript("swarm", ["--out", join(dir, "out"), "--literature", "s2"], {
        env: { S2_API_URL: `${s2.url}/graph/v1`, SWARM_CACHE_DIR: join(dir, "cache") },
      });
      expect(res.exitCode, res.all).toBe(0);
      const output = res.all ?? "";
      expect(output).toMatch(/Semantic Scholar answered 429 \(rate limit\); waiting \d+\.\d s as its Retry-After asks/);
      expect(output).toMatch(/searched Semantic Scholar for "[^"]+": [1-9]\d* papers/);
      const answered = s2.requests.filter((r) => r.at >= started + 5000);
      expect(answered.length).toBeGreaterThan(0);
      expect(s2.requests.filter((r) => r.at < started + 5000).length).toBeGreaterThan(1);
      const runId = /^Run (\S+) on template/m.exec(output)![1]!;
      const ideas = JSON.parse(readFileSync(join(dir, "out", runId, "ideas.json"), "utf8")).ideas;
      expect(ideas[0].verdict.evidence.length).toBeGreaterThan(0);
      expect(JSON.parse(readFileSync(join(dir, "out", runId, "status.json"), "utf8")).status).toBe("completed");
    } finally {
      await s2.close();
    }
  }, 120_000);
});
