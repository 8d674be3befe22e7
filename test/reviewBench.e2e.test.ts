import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execa } from "execa";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCsv, REVIEW_COLUMNS } from "../agents/reviewBench/csv.js";
import { startFakeModelServer } from "./helpers/fakeModelServer.js";

const ROOT = resolve(import.meta.dirname, "..");
const DATA = fileURLToPath(new URL("../../shared/data/iclr2022", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/reviewBench", import.meta.url));
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const out = mkdtempSync(join(tmpdir(), "review-bench-e2e-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The CLI as a user runs it, in its own process; NATS_URL unset so it starts its own server. */
function reviewBench(args: string[], extraEnv: Record<string, string> = {}) {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), LOG_LEVEL: "warn", ...extraEnv };
  delete env.NATS_URL;
  return execa(process.execPath, ["--import", "tsx", "scripts/reviewBench.ts", ...args], { cwd: ROOT, reject: false, all: true, env, extendEnv: false });
}

describe("npm run review-bench -- --papers 5, offline, end to end", () => {
  const dir = join(out, "papers5");
  let output = "";
  let exitCode: number | undefined;

  beforeAll(async () => {
    const res = await reviewBench(["--papers", "5", "--out", dir, "--data", DATA, "--bootstrap", "200", "--seed", "3"]);
    output = res.all ?? "";
    exitCode = res.exitCode;
  }, 120_000);

  it("says loudly that the offline scores are a stand-in, and exits cleanly", () => {
    expect(exitCode, output).toBe(0);
    expect(output).toMatch(/OFFLINE: no --llm was given/);
    expect(output).toMatch(/NOT a\s+(!! )?language model's judgement/);
    expect(output).toMatch(/review jobs on NATS nats:\/\/127\.0\.0\.1:\d+/);
    expect(output.match(/^\[\d\/5\] /gm)?.length).toBe(5);
  });

  it("writes the reviews as a CSV of 5 rows in the reference's columns", () => {
    const csvs = readdirSync(dir).filter((f) => f.endsWith(".csv"));
    expect(csvs).toEqual(["offline_ensemble_1_papers_5_seed_3.csv"]);
    const [header, ...rows] = parseCsv(readFileSync(join(dir, csvs[0]!), "utf8"));
    expect(header).toEqual([...REVIEW_COLUMNS]);
    expect(rows.length).toBe(5);
    const overall = REVIEW_COLUMNS.indexOf("Overall");
    for (const row of rows) {
      expect(row.length).toBe(REVIEW_COLUMNS.length);
      expect(Number(row[overall])).toBeGreaterThanOrEqual(1);
      expect(["Accept", "Reject"]).toContain(row[REVIEW_COLUMNS.indexOf("Decision")]);
      expect(row[REVIEW_COLUMNS.indexOf("Summary")]).toMatch(/no language model wrote this/);
    }
    expect(new Set(rows.map((r) => r[0])).size).toBe(5);
  });

  it("writes metrics.json for those 5 papers and the picture", () => {
    const metrics = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8"));
    expect(metrics.n).toBe(5);
    expect(metrics.positives).toBe(2);
    expect(metrics.absent).toBe(495);
    expect(metrics.offline).toBe(true);
    expect(metrics.run.papers.length).toBe(5);
    expect(metrics.run.failures).toEqual([]);
    expect(metrics.bootstrap).toMatchObject({ iterations: 200, seed: 3 });
    expect(Object.keys(metrics.metrics).sort()).toEqual(["accuracy", "auc", "balancedAccuracy", "f1", "fnr", "fpr"]);
    expect(existsSync(join(dir, "review_bench.png"))).toBe(true);
    expect(readFileSync(join(dir, "review_bench.png")).subarray(0, 8)).toEqual(PNG);
    expect(output).toMatch(/wrote .*review_bench\.png/);
  });
});

describe("npm run review-bench -- --papers with a model, against a server on loopback", () => {
  it("sends each paper's text to the model from K reviewers, records the cost, and raises no offline warning", async () => {
    const KEY = "sk-bench-abcdefghijklmnopqrstuvwx";
    const server = await startFakeModelServer({ apiKey: KEY });
    try {
      const dir = join(out, "model");
      const res = await reviewBench(["--papers", "3", "--reviewers", "2", "--llm", "openai/gpt-4o-mini", "--out", dir, "--data", DATA, "--bootstrap", "50"], {
        OPENAI_BASE_URL: `${server.url}/v1`,
        OPENAI_API_KEY: KEY,
      });
      const text = res.all ?? "";
      expect(res.exitCode, text).toBe(0);
      expect(text).not.toMatch(/OFFLINE/);
      expect(text).toMatch(/model openai\/gpt-4o-mini/);
      expect(text).toMatch(/Reviewed in \d+ s, \$0\.\d{4}; 0 reviews failed/);
      const metrics = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8"));
      expect(metrics.run.llm).toEqual({ provider: "openai", model: "gpt-4o-mini" });
      expect(metrics.run.costUsd).toBeGreaterThan(0);
      expect(metrics.offline).toBeUndefined();
      const bodies = server.requests.map((r) => JSON.stringify(r.body));
      for (const paperId of metrics.run.papers as string[]) {
        const paper = readFileSync(join(DATA, "papers", `${paperId}.txt`), "utf8");
        const phrase = /[A-Za-z][A-Za-z ]{40,}/.exec(paper)![0].slice(0, 40);
        // Two reviewers write a review and reflect at least once each.
        expect(bodies.filter((b) => b.includes(phrase)).length, paperId).toBeGreaterThanOrEqual(4);
      }
      const rows = parseCsv(readFileSync(join(dir, "openai_gpt-4o-mini_ensemble_2_papers_3_seed_0.csv"), "utf8"));
      expect(rows.length).toBe(4);
      expect(existsSync(join(dir, "review_bench.png"))).toBe(true);
    } finally {
      await server.close();
    }
  }, 120_000);
});

describe("npm run review-bench -- --from-csv", () => {
  it("prints the table with intervals and says which rows it skipped and why", async () => {
    const dir = join(out, "messy");
    const res = await reviewBench(["--from-csv", join(FIXTURES, "messy_reviews.csv"), "--data", FIXTURES, "--out", dir, "--bootstrap", "100"]);
    const text = res.all ?? "";
    expect(res.exitCode, text).toBe(0);
    expect(text).toMatch(/accept when Overall >= 6/);
    expect(text).toMatch(/n = 5 papers \(3 accepted, 2 rejected\) of 10 rows; 5 rows skipped:/);
    expect(text).toMatch(/1 × Overall is not a number: PaperD/);
    expect(text).toMatch(/^accuracy\s+0\.600\s+\[\d\.\d{3}, \d\.\d{3}\]/m);
    for (const label of ["balanced accuracy", "F1 \\(accept\\)", "AUC \\(Overall\\)", "FPR", "FNR"]) expect(text).toMatch(new RegExp(`^${label}\\s+\\d\\.\\d{3}\\s+\\[`, "m"));
    const metrics = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8"));
    expect(metrics.skipped.total).toBe(5);
    expect(metrics.prediction).toEqual({ by: "threshold", threshold: 6 });
    expect(existsSync(join(dir, "review_bench.png"))).toBe(true);
  });

  it("refuses --threshold with --by decision, and neither mode, with exit code 2", async () => {
    const both = await reviewBench(["--from-csv", "x.csv", "--by", "decision", "--threshold", "5"]);
    expect(both.exitCode).toBe(2);
    expect(both.all).toMatch(/--threshold has no effect with --by decision/);
    const none = await reviewBench([]);
    expect(none.exitCode).toBe(2);
    expect(none.all).toMatch(/give either --from-csv FILE or --papers N/);
    const missing = await reviewBench(["--from-csv", join(out, "absent.csv"), "--data", FIXTURES]);
    expect(missing.exitCode).toBe(2);
    expect(missing.all).toMatch(/cannot read .*absent\.csv/);
  });
});
