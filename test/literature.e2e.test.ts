import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";
import { startFakeSemanticScholar, type FakePaper } from "./helpers/fakeLiterature.js";

const dir = mkdtempSync(join(tmpdir(), "swarm-lit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAPERS: FakePaper[] = [
  { title: "Cyclical Learning Rates for Training Neural Networks", authors: ["Leslie N. Smith"], year: 2017, venue: "WACV", citations: 2500, abstract: "Learning rate schedules that cycle between bounds." },
  { title: "Don't Decay the Learning Rate, Increase the Batch Size", authors: ["Samuel L. Smith", "Pieter-Jan Kindermans", "Quoc V. Le"], year: 2018, venue: "ICLR", citations: 1000 },
  { title: "On the importance of initialization and momentum in deep learning", authors: ["Ilya Sutskever", "James Martens", "George Dahl", "Geoffrey Hinton"], year: 2013, venue: "ICML", citations: 5000 },
];

/** Every folder under `root` named like an experiment run after the baseline (run_1, run_2, ...). */
function experimentRuns(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isDirectory() && /^run_[1-9]\d*$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

describe("a run against a rate-limited Semantic Scholar", () => {
  it("waits out five seconds of 429s, says why, and completes", async () => {
    const s2 = await startFakeSemanticScholar(PAPERS, { rateLimitedForMs: 5000 });
    try {
      const res = await runScript("swarm", ["--out", join(dir, "out"), "--literature", "s2"], {
        env: { S2_API_URL: `${s2.url}/graph/v1`, SWARM_CACHE_DIR: join(dir, "cache") },
      });
      expect(res.exitCode, res.all).toBe(0);
      const output = res.all ?? "";
      expect(output).toMatch(/Semantic Scholar answered 429 \(rate limit\); waiting \d+\.\d s as its Retry-After asks/);
      expect(output).toMatch(/searched Semantic Scholar for "[^"]+": [1-9]\d* papers/);
      const outageEnds = s2.requests[0]!.at + 5000;
      expect(s2.requests.filter((r) => r.at >= outageEnds).length).toBeGreaterThan(0);
      expect(s2.requests.filter((r) => r.at < outageEnds).length).toBeGreaterThan(1);
      const runId = /^Run (\S+) on template/m.exec(output)![1]!;
      const ideas = JSON.parse(readFileSync(join(dir, "out", runId, "ideas.json"), "utf8")).ideas;
      expect(ideas[0].verdict.evidence.length).toBeGreaterThan(0);
      expect(JSON.parse(readFileSync(join(dir, "out", runId, "status.json"), "utf8")).status).toBe("completed");
    } finally {
      await s2.close();
    }
  }, 120_000);

  it("gives up after --literature-wait seconds of two minutes of 429s: undecided on the idea, no experiment, not completed", async () => {
    const outageMs = 120_000;
    const s2 = await startFakeSemanticScholar(PAPERS, { rateLimitedForMs: outageMs });
    try {
      const out = join(dir, "out-unreachable");
      // Its own cache: the run before has answers for the same queries on disk.
      const res = await runScript("swarm", ["--out", out, "--literature", "s2", "--literature-wait", "4"], {
        env: { S2_API_URL: `${s2.url}/graph/v1`, SWARM_CACHE_DIR: join(dir, "cache-unreachable") },
      });
      const output = res.all ?? "";
      // The run ended inside the outage: it never waited for Semantic Scholar to answer.
      expect(s2.requests.length, output).toBeGreaterThan(1);
      expect(Date.now() - s2.requests[0]!.at, output).toBeLessThan(outageMs);
      expect(output).toMatch(/Semantic Scholar answered 429 \(rate limit\); waiting \d+\.\d s as its Retry-After asks \(attempt \d+; waited \d+\.\d s of at most 4 s\)/);
      expect(output).toMatch(/gave up after \d+\.\d s of rate limiting .*--literature-wait bound of 4 s/);
      expect(output).toMatch(/critic is undecided on "[^"]+": literature unreachable \(/);

      const runId = /^Run (\S+) on template/m.exec(output)![1]!;
      const ideas = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")).ideas as { ideaId: string; status: string; verdict?: { verdict: string; reason: string; evidence: unknown[]; queries: string[] } }[];
      expect(ideas.length, output).toBeGreaterThan(0);
      for (const idea of ideas) {
        expect(idea.status).toBe("undecided");
        expect(idea.verdict?.verdict).toBe("undecided");
        expect(idea.verdict?.reason).toMatch(/^undecided: literature unreachable \(Semantic Scholar .*\)$/);
        expect(idea.verdict?.evidence).toEqual([]);
        // The critic searched before it gave up, and tried other terms rather than one query again.
        expect(idea.verdict?.queries.length).toBeGreaterThan(1);
        expect(idea.verdict?.queries.every((q) => q.endsWith(" (failed)"))).toBe(true);
        expect(new Set(idea.verdict?.queries).size).toBe(idea.verdict?.queries.length);
      }
      expect(experimentRuns(join(out, runId))).toEqual([]);

      const status = JSON.parse(readFileSync(join(out, runId, "status.json"), "utf8"));
      expect(status.status).not.toBe("completed");
      expect(status.reason).toEqual(expect.stringMatching(/undecided|literature unreachable/));
      expect(status.counts).toMatchObject({ proposed: ideas.length, novel: 0, undecided: ideas.length, experimented: 0, written: 0, decided: 0 });
    } finally {
      await s2.close();
    }
  }, 150_000);
});
