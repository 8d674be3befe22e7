import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { IdeaId, type Review } from "../bus/schemas.js";
import { findPython } from "../agents/preflight.js";
import {
  accuracy,
  balancedAccuracy,
  benchMetrics,
  confusion,
  f1,
  falseNegativeRate,
  falsePositiveRate,
  quantile,
  rocAuc,
  rocCurve,
  seededRandom,
  type Sample,
} from "../agents/reviewBench/metrics.js";
import { csvRecords, formatCsv, formatReviewCsv, parseCsv, readReviewCsv, REVIEW_COLUMNS } from "../agents/reviewBench/csv.js";
import { loadRatings, parseRatings, readPaperText, stratifiedSample } from "../agents/reviewBench/data.js";
import { evaluateReviews, skipReasons } from "../agents/reviewBench/evaluate.js";
import { ensembleRow } from "../agents/reviewBench/ensemble.js";
import { ideaIdOf } from "../agents/reviewBench/reviewPapers.js";
import { writeBenchPlot } from "../agents/reviewBench/plot.js";
import { BenchDataError, CsvFormatError } from "../agents/reviewBench/errors.js";

const DATA = fileURLToPath(new URL("../../shared/data/iclr2022", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/reviewBench", import.meta.url));
const REFERENCE_CSV = join(DATA, "llm_reviews", "gpt-4o-2024-05-13_temp_0_1_fewshot_1_reflect_5_ensemble_5_pages_all.csv");

const T = true;
const F = false;

/** The Mann–Whitney statistic by counting every pair, to check the rank-based one against. */
function pairAuc(truth: boolean[], scores: number[]): number {
  let wins = 0;
  let pairs = 0;
  truth.forEach((t, i) => {
    if (!t) return;
    truth.forEach((u, j) => {
      if (u) return;
      pairs++;
      wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

function trapezoid(xs: number[], ys: number[]): number {
  let area = 0;
  for (let k = 1; k < xs.length; k++) area += ((xs[k]! - xs[k - 1]!) * (ys[k]! + ys[k - 1]!)) / 2;
  return area;
}

describe("metrics, on cases worked by hand", () => {
  // 3 accepted, 5 rejected; one accepted paper missed, one rejected paper let in.
  const truth = [T, T, T, F, F, F, F, F];
  const predicted = [T, T, F, T, F, F, F, F];
  const c = confusion(truth, predicted);

  it("counts the confusion matrix", () => {
    expect(c).toEqual({ tp: 2, fp: 1, tn: 4, fn: 1 });
  });

  it("computes accuracy, balanced accuracy, F1, FPR and FNR", () => {
    expect(accuracy(c)).toBeCloseTo(6 / 8, 12);
    expect(balancedAccuracy(c)).toBeCloseTo((2 / 3 + 4 / 5) / 2, 12);
    expect(f1(c)).toBeCloseTo((2 * 2) / (2 * 2 + 1 + 1), 12);
    expect(falsePositiveRate(c)).toBeCloseTo(1 / 5, 12);
    expect(falseNegativeRate(c)).toBeCloseTo(1 / 3, 12);
  });

  it("computes AUC as the share of (accepted, rejected) pairs ranked right", () => {
    // 3>1, 3<4, 5>1, 5>4: three of four pairs.
    expect(rocAuc([T, T, F, F], [3, 5, 1, 4])).toBe(0.75);
    expect(rocAuc([T, T, F, F], [9, 8, 1, 2])).toBe(1);
    expect(rocAuc([T, T, F, F], [1, 2, 8, 9])).toBe(0);
  });

  it("counts a tie as half a pair in AUC", () => {
    // pairs: 2=2 (½), 2>1, 3>2, 3>1 → 3.5 of 4.
    expect(rocAuc([T, T, F, F], [2, 3, 2, 1])).toBe(0.875);
    expect(rocAuc([T, F, T, F, F], [6, 6, 6, 6, 6])).toBe(0.5);
  });

  it("agrees with counting pairs on scores full of ties, and with the area under its ROC curve", () => {
    const random = seededRandom(7);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + Math.floor(random() * 60);
      const t = Array.from({ length: n }, () => random() < 0.4);
      t[0] = true;
      t[1] = false;
      const s = Array.from({ length: n }, () => 1 + Math.floor(random() * 5));
      const auc = rocAuc(t, s);
      expect(auc).toBeCloseTo(pairAuc(t, s), 12);
      const roc = rocCurve(t, s);
      expect(trapezoid(roc.fpr, roc.tpr)).toBeCloseTo(auc, 12);
      expect([roc.fpr[0], roc.tpr[0], roc.fpr.at(-1), roc.tpr.at(-1)]).toEqual([0, 0, 1, 1]);
    }
  });

  it("makes metrics that need a missing class NaN, and says so rather than guessing", () => {
    const allAccepted = confusion([T, T, T], [T, F, T]);
    expect(accuracy(allAccepted)).toBeCloseTo(2 / 3, 12);
    expect(falseNegativeRate(allAccepted)).toBeCloseTo(1 / 3, 12);
    expect(falsePositiveRate(allAccepted)).toBeNaN();
    expect(balancedAccuracy(allAccepted)).toBeNaN();
    expect(rocAuc([T, T, T], [1, 2, 3])).toBeNaN();
    expect(rocCurve([F, F], [1, 2])).toEqual({ fpr: [], tpr: [], thresholds: [] });
    // No paper accepted and none predicted accept: F1 has nothing to measure.
    expect(f1(confusion([F, F], [F, F]))).toBeNaN();
    expect(accuracy(confusion([], []))).toBeNaN();

    const oneClass: Sample[] = [5, 6, 7].map((score) => ({ truth: false, predicted: score >= 6, score }));
    const m = benchMetrics(oneClass, { iterations: 50, seed: 1 });
    expect(m.metrics.fpr.value).toBeCloseTo(2 / 3, 12);
    expect(m.metrics.auc.value).toBeNaN();
    expect(m.metrics.auc.lo).toBeNaN();
    expect(m.metrics.auc.undefinedResamples).toBe(50);
    expect(() => benchMetrics([])).toThrow(BenchDataError);
  });

  it("reads quantiles the way numpy does by default", () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
    expect(quantile([0, 10], 0.025)).toBeCloseTo(0.25, 12);
    expect(quantile([], 0.5)).toBeNaN();
  });
});

describe("bootstrap intervals", () => {
  const random = seededRandom(3);
  const samples: Sample[] = Array.from({ length: 200 }, () => {
    const truth = random() < 0.4;
    const score = Math.round(4 + (truth ? 1.2 : 0) + random() * 3);
    return { truth, predicted: score >= 6, score };
  });

  it("are the same for the same seed and differ for another", () => {
    const a = benchMetrics(samples, { iterations: 300, seed: 42 });
    const b = benchMetrics(samples, { iterations: 300, seed: 42 });
    const c = benchMetrics(samples, { iterations: 300, seed: 43 });
    expect(b).toEqual(a);
    expect(c.metrics.auc.lo === a.metrics.auc.lo && c.metrics.auc.hi === a.metrics.auc.hi && c.metrics.f1.lo === a.metrics.f1.lo).toBe(false);
    expect(a.bootstrap).toEqual({ iterations: 300, seed: 42, level: 0.95 });
  });

  it("bracket the point estimate with a plausible width", () => {
    const m = benchMetrics(samples, { iterations: 500, seed: 0 });
    for (const [name, e] of Object.entries(m.metrics)) {
      expect(e.lo, name).toBeLessThanOrEqual(e.value);
      expect(e.hi, name).toBeGreaterThanOrEqual(e.value);
      expect(e.hi - e.lo, name).toBeGreaterThan(0.02);
      expect(e.hi - e.lo, name).toBeLessThan(0.4);
      expect(e.undefinedResamples).toBe(0);
    }
  });

  it("draw from a seeded generator that repeats itself", () => {
    const a = seededRandom(9);
    const b = seededRandom(9);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });
});

describe("the CSV parser and writer", () => {
  it("reads quoted fields with commas, doubled quotes and newlines", () => {
    const text = 'a,b,c\n1,"two, three","say ""hi"""\n"multi\nline",,"x\r\ny"\n';
    expect(parseCsv(text)).toEqual([
      ["a", "b", "c"],
      ["1", "two, three", 'say "hi"'],
      ["multi\nline", "", "x\r\ny"],
    ]);
  });

  it("takes CRLF records, a BOM, a last record without newline, blank lines and empty quoted fields", () => {
    expect(parseCsv('\uFEFFa,b\r\n1,""\r\n\r\n2,3')).toEqual([
      ["a", "b"],
      ["1", ""],
      ["2", "3"],
    ]);
    expect(parseCsv('""')).toEqual([[""]]);
    expect(parseCsv("")).toEqual([]);
    expect(parseCsv("a,\n")).toEqual([["a", ""]]);
  });

  it("names the line a record starts on, counting newlines inside quotes", () => {
    const records = csvRecords('h1,h2\n"a\nb",c\nd,e\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 4]);
  });

  it("rejects an unterminated quote and text after a closing quote, saying where", () => {
    expect(() => parseCsv('a,b\n1,"open\n2,3\n')).toThrow(/line 2: a quoted field never closes/);
    expect(() => parseCsv('a,b\n1,"closed"x\n')).toThrow(CsvFormatError);
    expect(() => parseCsv('a,b\n1,"closed"x\n')).toThrow(/line 2/);
  });

  it("writes what it reads back, quoting only where needed", () => {
    const random = seededRandom(5);
    const alphabet = ['a', 'b', ',', '"', "\n", "\r\n", " ", "é", "'"];
    const rows = Array.from({ length: 30 }, () =>
      Array.from({ length: 4 }, () => Array.from({ length: Math.floor(random() * 8) }, () => alphabet[Math.floor(random() * alphabet.length)]).join("")),
    );
    rows[0] = ["plain", "with,comma", 'with "quote"', " padded "];
    const text = formatCsv(rows);
    expect(text.split("\n")[0]).toBe('plain,"with,comma","with ""quote"""," padded "');
    // A record of one empty field is written as "" so that it is not read as a blank line.
    expect(parseCsv(formatCsv([["a"], [""]]))).toEqual([["a"], [""]]);
    expect(parseCsv(text)).toEqual(rows);
  });

  it("reads every reference CSV as Python's csv module does: 500 rows of 17 columns", () => {
    const files = readdirSync(join(DATA, "llm_reviews")).filter((f) => f.endsWith(".csv"));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      const { columns, rows } = readReviewCsv(readFileSync(join(DATA, "llm_reviews", file), "utf8"), file);
      expect(columns, file).toEqual([...REVIEW_COLUMNS]);
      expect(rows.length, file).toBe(500);
      expect(new Set(rows.map((r) => r.paper_id)).size, file).toBe(500);
    }
  });

  it("agrees field for field with Python's csv module on the reference files", async () => {
    const python = await findPython([]);
    if (!python) return;
    for (const file of ["gpt-4o-2024-05-13_temp_0_1_fewshot_1_reflect_5_ensemble_5_pages_all.csv", "claude-3-5-sonnet-20240620_temp_0_1_reflect_5_ensemble_5_pages_all.csv"]) {
      const path = join(DATA, "llm_reviews", file);
      const { stdout } = await execa(python.path, ["-c", "import csv, json, sys; json.dump(list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8'))), sys.stdout)", path], { maxBuffer: 64 * 1024 * 1024 });
      expect(parseCsv(readFileSync(path, "utf8")), file).toEqual(JSON.parse(stdout));
    }
  });

  it("refuses a row whose field count differs from the header's, and a file without Overall", () => {
    expect(() => readReviewCsv("paper_id,Overall\nA,5,extra\n", "x.csv")).toThrow(/x\.csv line 2: 3 fields where the header has 2/);
    expect(() => readReviewCsv("paper_id,Score\nA,5\n", "y.csv")).toThrow(/no Overall column/);
  });
});

describe("the benchmark's data", () => {
  it("reads the ratings, any Accept counting as accept", async () => {
    const ratings = await loadRatings(DATA);
    expect(ratings.length).toBe(500);
    expect(ratings.filter((p) => p.accept).length).toBe(184);
    expect(new Set(ratings.filter((p) => p.accept).map((p) => p.decision))).toEqual(new Set(["Accept (Poster)", "Accept (Spotlight)", "Accept (Oral)"]));
    expect(ratings[0]).toMatchObject({ paperId: "tDirSp3pczB", decision: "Reject", accept: false, humanScores: [6, 8, 6, 8, 6] });
    expect((await readPaperText(DATA, ratings[0]!.paperId)).length).toBeGreaterThan(10_000);
  });

  it("refuses a malformed ratings row and a paper id that could leave papers/", async () => {
    expect(() => parseRatings("paper_id\t0\tdecision\nX1\t5.0\tMaybe\n", "r.tsv")).toThrow(/r\.tsv line 2: decision/);
    expect(() => parseRatings("paper_id\t0\tdecision\nX1\tfive\tReject\n", "r.tsv")).toThrow(BenchDataError);
    await expect(readPaperText(DATA, "../README")).rejects.toThrow();
  });

  it("samples papers reproducibly, in the benchmark's proportion of accepts", async () => {
    const ratings = await loadRatings(DATA);
    const a = stratifiedSample(ratings, 50, 1);
    expect(stratifiedSample(ratings, 50, 1)).toEqual(a);
    expect(stratifiedSample(ratings, 50, 2)).not.toEqual(a);
    expect(a.filter((p) => p.accept).length).toBe(Math.round((50 * 184) / 500));
    for (const n of [2, 3, 5]) {
      const s = stratifiedSample(ratings, n, 0);
      expect(s.length).toBe(n);
      expect(s.some((p) => p.accept) && s.some((p) => !p.accept)).toBe(true);
    }
    expect(stratifiedSample(ratings, 500, 0).length).toBe(500);
    expect(() => stratifiedSample(ratings, 501, 0)).toThrow(BenchDataError);
  });

  it("turns every paper id into a distinct idea id", async () => {
    const ids = (await loadRatings(DATA)).map((p) => p.paperId);
    const ideaIds = ids.map(ideaIdOf);
    for (const id of ideaIds) expect(IdeaId.safeParse(id).success).toBe(true);
    expect(new Set(ideaIds).size).toBe(ids.length);
    expect(ideaIdOf("tDirSp3pczB")).toBe("t_dir_sp3pcz_b");
    expect(new Set(["a_b", "a-b", "aB", "a_9b"].map(ideaIdOf)).size).toBe(4);
  });
});

describe("evaluating a review CSV against the decisions", () => {
  const ratings = parseRatings(readFileSync(join(FIXTURES, "ratings_subset.tsv"), "utf8"), "ratings_subset.tsv");
  const { rows } = readReviewCsv(readFileSync(join(FIXTURES, "messy_reviews.csv"), "utf8"), "messy_reviews.csv");

  it("reads the messy fixture's quoted, multi-line fields", () => {
    expect(rows[0]!.Summary).toBe('A summary with a comma, a "quoted" word\nand a second line.');
    expect(rows[0]!.Questions).toBe(`['Why?', "Isn't it?"]`);
    expect(rows.length).toBe(10);
  });

  it("leaves out rows it cannot score, each with its reason, and scores the rest", () => {
    const e = evaluateReviews(rows, ratings, { by: "threshold", threshold: 6 }, { iterations: 100, seed: 0 });
    expect(e.papers.map((p) => p.paperId)).toEqual(["PaperA", "paper-b", "PaperE", "PaperF", "PaperH"]);
    expect(skipReasons(e.skipped).map((s) => [s.reason, s.paperIds])).toEqual([
      ["Overall is empty", ["paper_C"]],
      ["Overall is not a number", ["PaperD"]],
      ["paper_id repeats an earlier row (the first one counts)", ["PaperA"]],
      ["paper_id is not in the ratings", ["NotRated"]],
      ["Overall is outside 1–10", ["PaperG"]],
    ]);
    expect(e.absent).toBe(0);
    // Overall 7, 5, 6 for the accepted papers, 3 and 6 for the rejected: 6 >= 6 predicts accept.
    expect(e.confusion).toEqual({ tp: 2, fn: 1, tn: 1, fp: 1 });
    expect(e.metrics.accuracy.value).toBeCloseTo(3 / 5, 12);
    expect(e.metrics.balancedAccuracy.value).toBeCloseTo((2 / 3 + 1 / 2) / 2, 12);
    expect(e.metrics.f1.value).toBeCloseTo(4 / 6, 12);
    expect(e.metrics.fpr.value).toBeCloseTo(1 / 2, 12);
    expect(e.metrics.fnr.value).toBeCloseTo(1 / 3, 12);
    // (7>3, 7>6, 5>3, 5<6, 6>3, 6=6) → 4.5 of 6 pairs.
    expect(e.metrics.auc.value).toBeCloseTo(4.5 / 6, 12);
  });

  it("predicts from the Decision field on request, still ranking by Overall for AUC", () => {
    const e = evaluateReviews(rows, ratings, { by: "decision" }, { iterations: 100, seed: 0 });
    expect(e.skipped.find((s) => s.paperId === "PaperH")?.reason).toBe("Decision is neither Accept nor Reject");
    expect(e.confusion).toEqual({ tp: 2, fn: 1, tn: 1, fp: 0 });
    expect(e.metrics.auc.value).toBe(1);
  });

  it("compares a fractional Overall with the threshold as a number", () => {
    const r = [{ paper_id: "PaperA", Overall: "5.99", line: 2 }, { paper_id: "PaperF", Overall: "6.0", line: 3 }];
    const e = evaluateReviews(r, ratings, { by: "threshold", threshold: 6 }, { iterations: 10 });
    expect(e.papers.map((p) => p.predicted)).toEqual([false, true]);
    expect(e.absent).toBe(6);
  });
});

describe("a paper's ensemble row", () => {
  const review = (overall: number, decision: "Accept" | "Reject", extra: Partial<Review> = {}): Review => ({
    Summary: `summary ${overall}`,
    Strengths: ["clear"],
    Weaknesses: [`weak ${overall}`],
    Originality: 2,
    Quality: 3,
    Clarity: 3,
    Significance: 2,
    Questions: ["q?"],
    Limitations: [],
    Ethical_Concerns: false,
    Soundness: 3,
    Presentation: 3,
    Contribution: 2,
    Overall: overall,
    Confidence: 4,
    Decision: decision,
    ...extra,
  });

  it("averages the scores, takes the majority's decision (a tie rejects) and joins the lists", () => {
    const row = ensembleRow("P1", [review(6, "Accept"), review(5, "Reject", { Ethical_Concerns: true }), review(6, "Accept")]);
    expect(row.Overall).toBe("5.67");
    expect(row.Quality).toBe("3");
    expect(row.Decision).toBe("Accept");
    expect(row["Ethical Concerns"]).toBe("True");
    expect(JSON.parse(row.Weaknesses)).toEqual(["weak 6", "weak 5"]);
    expect(JSON.parse(row.Strengths)).toEqual(["clear"]);
    expect(row.Summary).toBe("summary 6");
    expect(ensembleRow("P2", [review(7, "Accept"), review(4, "Reject")]).Decision).toBe("Reject");
  });

  it("leaves every field but paper_id empty when no reviewer delivered, so the row is skipped, not guessed", () => {
    const row = ensembleRow("P3", []);
    expect(Object.keys(row).sort()).toEqual([...REVIEW_COLUMNS].sort());
    expect(Object.entries(row).filter(([, v]) => v !== "")).toEqual([["paper_id", "P3"]]);
    const text = formatReviewCsv([row]);
    const { rows } = readReviewCsv(text, "p3.csv");
    expect(rows[0]).toMatchObject({ paper_id: "P3", Overall: "" });
  });
});

describe("the picture", () => {
  const ratings = parseRatings(readFileSync(join(FIXTURES, "ratings_subset.tsv"), "utf8"), "ratings_subset.tsv");
  const { rows } = readReviewCsv(readFileSync(join(FIXTURES, "messy_reviews.csv"), "utf8"), "messy_reviews.csv");
  const e = evaluateReviews(rows, ratings, { by: "threshold", threshold: 6 }, { iterations: 50 });

  it("is skipped with a fix when no Python has matplotlib", async () => {
    const result = await writeBenchPlot(e, "t", join(tmpdir(), "never.png"), { python: null });
    expect(result).toMatchObject({ written: false });
    expect(!result.written && result.fix).toMatch(/python3-matplotlib.*SWARM_PYTHON/);
  });

  it("is one PNG drawn by matplotlib", async () => {
    const dir = mkdtempSync(join(tmpdir(), "review-bench-plot-"));
    try {
      const file = join(dir, "review_bench.png");
      const result = await writeBenchPlot(e, "fixture", file);
      expect(result, JSON.stringify(result)).toMatchObject({ written: true, file });
      expect(readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("THE ACCEPTANCE CHECK: the AI Scientist's published figures", () => {
  it("reproduces GPT-4o (few-shot, reflect 5, ensemble 5) at Overall >= 6 within 0.01", async () => {
    const ratings = await loadRatings(DATA);
    const { rows } = readReviewCsv(readFileSync(REFERENCE_CSV, "utf8"), REFERENCE_CSV);
    const e = evaluateReviews(rows, ratings, { by: "threshold", threshold: 6 }, { iterations: 1000, seed: 0 });
    expect(e.n).toBe(500);
    expect(e.skipped).toEqual([]);
    const published = { accuracy: 0.66, balancedAccuracy: 0.65, f1: 0.57, fpr: 0.31, fnr: 0.39 } as const;
    for (const [name, value] of Object.entries(published) as [keyof typeof published, number][]) {
      expect(Math.abs(e.metrics[name].value - value), `${name} = ${e.metrics[name].value}`).toBeLessThanOrEqual(0.01);
      expect(e.metrics[name].lo).toBeLessThan(e.metrics[name].value);
      expect(e.metrics[name].hi).toBeGreaterThan(e.metrics[name].value);
    }
    expect(e.confusion).toEqual({ tp: 112, fp: 97, tn: 219, fn: 72 });
    // The paper's "AUC 0.65" is the AUC of the binary prediction, which is its balanced accuracy; ranked by
    // Overall the AUC is higher.
    expect(rocAuc(e.papers.map((p) => p.truth), e.papers.map((p) => (p.predicted ? 1 : 0)))).toBeCloseTo(e.metrics.balancedAccuracy.value, 12);
    expect(e.metrics.auc.value).toBeCloseTo(0.6915, 3);
  });
});
