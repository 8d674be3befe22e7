import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, join, relative, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../bus/errors.js";
import { rootLogger } from "../bus/logger.js";
import { parseLlm } from "../agents/llm/providers.js";
import { formatReviewCsv, readReviewCsv, type ReviewColumn } from "../agents/reviewBench/csv.js";
import { BenchDataError } from "../agents/reviewBench/errors.js";
import { DEFAULT_DATA_DIR, loadRatings, stratifiedSample, type RatedPaper } from "../agents/reviewBench/data.js";
import { evaluateReviews, type Prediction } from "../agents/reviewBench/evaluate.js";
import { writeBenchPlot } from "../agents/reviewBench/plot.js";
import { formatReport, metricsJson } from "../agents/reviewBench/report.js";
import { reviewPapers } from "../agents/reviewBench/reviewPapers.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `npm run review-bench -- --from-csv FILE | --papers N  [flags]

How well does a reviewer predict ICLR 2022's decisions? (The AI Scientist's review benchmark, 500 papers.)

  --from-csv FILE     score a review CSV in the reference's format (one row per paper, with Overall and Decision)
  --papers N          run OUR reviewer over N papers (a seeded sample, accepts and rejects in proportion)
                      and score its reviews; writes them as a CSV in the reference's format first
  --threshold T       predict accept when Overall >= T (default 6)
  --by decision       predict from each review's Decision field instead (AUC still ranks by Overall)
  --bootstrap B       resamples for the 95% intervals (default 1000)
  --seed S            seeds the bootstrap and the paper sample (default 0)
  --out DIR           where metrics.json, review_bench.png (and the CSV) go
                      (default results/review-bench/<csv name>/)
  --data DIR          the benchmark: ratings_subset.tsv and papers/ (default ${relative(process.cwd(), DEFAULT_DATA_DIR) || "."})

With --papers:
  --llm provider[/model]  the reviewers' model: openai[/model], anthropic[/model], openai-compatible/<model>
                      (default offline: a deterministic stand-in, NOT a model's judgement)
  --reviewers K       reviews per paper, Overall averaged over them (default 1; the reference's best used 5)
  --concurrency C     reviewer workers in this process (default 4); with NATS_URL set, the jobs go to that
                      server and nodes that joined it (npm run node -- --roles reviewer=2) review too
  --budget USD        no new review starts once this much is spent

Rows whose Overall is empty, not a number or outside 1–10, whose paper is not rated, or that repeat a paper
are left out of every metric and reported; with --by decision so are rows whose Decision is neither
Accept nor Reject. The picture needs a Python with matplotlib (SWARM_PYTHON, python3, /usr/bin/python3).`;

const Flags = z
  .object({
    help: z.boolean().optional(),
    "from-csv": z.string().min(1).optional(),
    papers: z.coerce.number().int().min(1).max(10_000).optional(),
    threshold: z.coerce.number().min(1).max(10).optional(),
    by: z.enum(["threshold", "decision"]).default("threshold"),
    bootstrap: z.coerce.number().int().min(1).max(100_000).default(1000),
    seed: z.coerce.number().int().min(0).max(2 ** 32 - 1).default(0),
    out: z.string().min(1).optional(),
    data: z.string().min(1).default(DEFAULT_DATA_DIR),
    llm: z.string().optional(),
    reviewers: z.coerce.number().int().min(1).max(20).optional(),
    concurrency: z.coerce.number().int().min(1).max(64).optional(),
    budget: z.coerce.number().positive().optional(),
  })
  .refine((f) => f.help || (f["from-csv"] === undefined) !== (f.papers === undefined), { message: "give either --from-csv FILE or --papers N", path: ["from-csv"] })
  .refine((f) => !(f.by === "decision" && f.threshold !== undefined), { message: "--threshold has no effect with --by decision; give one or the other", path: ["threshold"] })
  .refine((f) => f.papers !== undefined || [f.llm, f.reviewers, f.concurrency, f.budget].every((v) => v === undefined), {
    message: "--llm, --reviewers, --concurrency and --budget go with --papers",
    path: ["papers"],
  });
type Flags = z.infer<typeof Flags>;

const line = (text = ""): void => void process.stdout.write(`${text}\n`);
const rel = (p: string) => {
  const r = relative(process.cwd(), p);
  return r === "" ? "." : r.startsWith("..") ? p : r;
};
const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "_");

const OFFLINE_WARNING = [
  "!! OFFLINE: no --llm was given, so the offline provider wrote these reviews. Its scores are a deterministic",
  "!! stand-in computed from surface features of each text (length, figures, tables, references), NOT a",
  "!! language model's judgement: the metrics below measure that stand-in. Give --llm openai/gpt-4o (or",
  "!! anthropic/…, openai-compatible/…) to benchmark a model.",
].join("\n");

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new BenchDataError(`cannot read ${path}: ${(err as Error).message}`, { hint: "give --from-csv the path of a review CSV" });
  }
}

/** Scores one CSV, prints the table, writes metrics.json and the picture into `outDir`. */
async function scoreCsv(flags: Flags, csvPath: string, ratings: RatedPaper[], outDir: string, extra: Record<string, unknown> = {}, offline = false): Promise<void> {
  const prediction: Prediction = flags.by === "decision" ? { by: "decision" } : { by: "threshold", threshold: flags.threshold ?? 6 };
  const { rows } = readReviewCsv(await readText(csvPath), csvPath);
  const evaluation = evaluateReviews(rows, ratings, prediction, { iterations: flags.bootstrap, seed: flags.seed });
  await mkdir(outDir, { recursive: true });
  line(formatReport(evaluation, `Review benchmark (ICLR 2022): ${basename(csvPath)}`));
  line();
  const metricsFile = join(outDir, "metrics.json");
  const source = { csv: resolve(csvPath), ratings: resolve(flags.data, "ratings_subset.tsv") };
  await writeFile(metricsFile, `${JSON.stringify(metricsJson(evaluation, source, { ...extra, ...(offline ? { offline: true } : {}) }), null, 2)}\n`);
  line(`wrote ${rel(metricsFile)}`);
  const picture = join(outDir, "review_bench.png");
  const title = `${basename(csvPath)}: ${prediction.by === "threshold" ? `Overall >= ${prediction.threshold}` : "Decision"}, n = ${evaluation.n}${offline ? " — OFFLINE stand-in, not a model" : ""}`;
  const plot = await writeBenchPlot(evaluation, title, picture);
  if (plot.written) line(`wrote ${rel(picture)}`);
  else process.stderr.write(`warning: no picture: ${plot.reason}.\n  The metrics above are complete; to get the picture: ${plot.fix}\n`);
}

async function runPapers(flags: Flags, n: number, ratings: RatedPaper[]): Promise<void> {
  const reviewers = flags.reviewers ?? 1;
  const concurrency = flags.concurrency ?? 4;
  const llm = parseLlm(flags.llm ?? "offline");
  const offline = llm.provider === "offline";
  if (offline) line(`${OFFLINE_WARNING}\n`);
  const sample = stratifiedSample(ratings, n, flags.seed);
  const name = slug(`${llm.provider === llm.model ? llm.provider : `${llm.provider}_${llm.model}`}_ensemble_${reviewers}_papers_${n}_seed_${flags.seed}`);
  const outDir = resolve(flags.out ?? join("results", "review-bench", name));
  const accepted = sample.filter((p) => p.accept).length;
  line(`Reviewing ${n} papers (${accepted} accepted, ${n - accepted} rejected; sample seed ${flags.seed}) with ${reviewers} reviewer${reviewers > 1 ? "s" : ""} each, model ${llm.provider}/${llm.model}.`);

  const controller = new AbortController();
  process.once("SIGINT", () => {
    line("\nInterrupted: stopping the reviewers and the local NATS server…");
    controller.abort();
  });
  const started = Date.now();
  const finished: Record<ReviewColumn, string>[] = [];
  const csvPath = join(outDir, `${name}.csv`);
  // What was reviewed before a Ctrl-C is kept; --from-csv scores it.
  const stopped = async (): Promise<never> => {
    if (finished.length) {
      await mkdir(outDir, { recursive: true });
      const partial = csvPath.replace(/\.csv$/, ".partial.csv");
      await writeFile(partial, formatReviewCsv(finished));
      line(`Stopped after ${finished.length} of ${n} papers; their reviews are in ${rel(partial)}.`);
    } else line("Stopped before any paper was reviewed: nothing was written.");
    process.exit(130);
  };
  const result = await reviewPapers({
    papers: sample,
    dataDir: flags.data,
    llm,
    reviewers,
    concurrency,
    ...(flags.budget !== undefined ? { budgetUsd: flags.budget } : {}),
    ...(process.env.NATS_URL ? { natsUrl: process.env.NATS_URL } : {}),
    log: rootLogger(),
    signal: controller.signal,
    onStarted: ({ runId, natsUrl, local }) => {
      line(`Run ${runId}: review jobs on NATS ${natsUrl}${local ? " (a local server for this benchmark)" : ""}; ${concurrency} reviewer workers here.`);
      if (!local) line(`More reviewers: NATS_URL=${natsUrl} npm run node -- --roles reviewer=2`);
    },
    onPaper: ({ paper, done, total, reviews, failures, row }) => {
      finished.push(row);
      const scores = reviews.map((r) => r.overall);
      const mean = scores.length ? (scores.reduce((a, b) => a + b, 0) / scores.length).toFixed(2) : "—";
      const who = [...new Set(reviews.map((r) => r.node))].join(", ");
      const failed = failures.length ? `; ${failures.length} failed: ${failures[0]!.error.slice(0, 120)}` : "";
      line(`[${String(done).padStart(String(total).length)}/${total}] ${paper.paperId.padEnd(12)} Overall ${mean} (${scores.join(", ")})  truth: ${paper.decision}${who ? `  by ${who}` : ""}${failed}`);
    },
  }).catch((err: unknown) => (controller.signal.aborted ? stopped() : Promise.reject(err)));
  if (controller.signal.aborted) await stopped();
  line(`Reviewed in ${((Date.now() - started) / 1000).toFixed(0)} s${offline ? "" : `, $${result.costUsd.toFixed(4)}`}; ${result.failures.length} reviews failed.`);
  await mkdir(outDir, { recursive: true });
  await writeFile(csvPath, formatReviewCsv(result.rows));
  line(`wrote ${rel(csvPath)}\n`);
  const run = {
    runId: result.runId,
    llm,
    offline,
    papers: sample.map((p) => p.paperId),
    reviewers,
    sampleSeed: flags.seed,
    nodes: result.nodes,
    costUsd: result.costUsd,
    failures: result.failures,
  };
  await scoreCsv(flags, csvPath, ratings, outDir, { run }, offline);
  if (offline) line(`\n${OFFLINE_WARNING}`);
}

async function main(): Promise<void> {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      help: { type: "boolean", short: "h" },
      "from-csv": { type: "string" },
      papers: { type: "string" },
      threshold: { type: "string" },
      by: { type: "string" },
      bootstrap: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      data: { type: "string" },
      llm: { type: "string" },
      reviewers: { type: "string" },
      concurrency: { type: "string" },
      budget: { type: "string" },
    },
    Flags,
  );
  if (flags.help) return line(HELP);
  const ratings = await loadRatings(flags.data);
  if (flags.papers !== undefined) {
    if (flags.papers > ratings.length) throw new UserError(`--papers ${flags.papers}: the benchmark has ${ratings.length} papers`);
    return runPapers(flags, flags.papers, ratings);
  }
  const csvPath = flags["from-csv"]!;
  const outDir = resolve(flags.out ?? join("results", "review-bench", slug(basename(csvPath).replace(/\.csv$/i, ""))));
  await scoreCsv(flags, csvPath, ratings, outDir);
}

main().catch(fail);
