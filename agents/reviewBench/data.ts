import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { BenchDataError } from "./errors.js";
import { seededRandom } from "./metrics.js";

/**
 * The ICLR 2022 benchmark as the reference published it (review_iclr_bench): `ratings_subset.tsv` and
 * `papers/<paper_id>.txt`. The repository does not ship it; by default it is read from beside the checkout.
 */
export const DEFAULT_DATA_DIR = resolve(fileURLToPath(new URL("../../../shared/data/iclr2022", import.meta.url)));

const DATA_HINT =
  "give --data a folder with ratings_subset.tsv and papers/<paper_id>.txt (review_iclr_bench in SakanaAI/AI-Scientist)";

/** OpenReview ids: letters, digits, '_' and '-'. Also what keeps a paper's file name inside papers/. */
export const PaperId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "an OpenReview id: letters, digits, '_' and '-'");

const Decision = z.string().regex(/^(Accept \([^)]+\)|Accept|Reject)$/, 'Reject, Accept or "Accept (…)"');
const HumanScore = z.union([z.literal(""), z.string().regex(/^\d+(\.\d+)?$/, "a number")]);
const RatingRow = z.object({ paper_id: PaperId, decision: Decision, scores: z.array(HumanScore) });

export interface RatedPaper {
  paperId: string;
  /** As the TSV has it: Reject, Accept (Poster), Accept (Spotlight), Accept (Oral). */
  decision: string;
  /** Any Accept, whatever its presentation format. */
  accept: boolean;
  /** The human reviewers' overall scores, the blanks left out. */
  humanScores: number[];
}

/** Reads `ratings_subset.tsv`: a `paper_id` column, score columns `0`, `1`, …, and `decision`. */
export function parseRatings(text: string, source: string): RatedPaper[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = lines[0]?.split("\t") ?? [];
  const idCol = header.indexOf("paper_id");
  const decisionCol = header.indexOf("decision");
  if (idCol < 0 || decisionCol < 0) {
    throw new BenchDataError(`${source} has no paper_id or decision column (its header: ${header.join(", ")})`, { hint: DATA_HINT });
  }
  const scoreCols = header.flatMap((name, k) => (/^\d+$/.test(name) ? [k] : []));
  const papers: RatedPaper[] = [];
  const seen = new Set<string>();
  lines.slice(1).forEach((raw, k) => {
    if (raw.trim() === "") return;
    const cells = raw.split("\t");
    const parsed = RatingRow.safeParse({ paper_id: cells[idCol], decision: cells[decisionCol], scores: scoreCols.map((c) => cells[c] ?? "") });
    if (!parsed.success) {
      throw new BenchDataError(`${source} line ${k + 2}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, { hint: DATA_HINT });
    }
    const row = parsed.data;
    if (seen.has(row.paper_id)) throw new BenchDataError(`${source} line ${k + 2}: paper ${row.paper_id} is listed twice`, { hint: DATA_HINT });
    seen.add(row.paper_id);
    papers.push({
      paperId: row.paper_id,
      decision: row.decision,
      accept: row.decision.startsWith("Accept"),
      humanScores: row.scores.filter((s) => s !== "").map(Number),
    });
  });
  if (papers.length === 0) throw new BenchDataError(`${source} lists no papers`, { hint: DATA_HINT });
  return papers;
}

async function readData(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new BenchDataError(`cannot read ${path}: ${(err as Error).message}`, { hint: DATA_HINT, cause: err });
  }
}

export async function loadRatings(dataDir: string = DEFAULT_DATA_DIR): Promise<RatedPaper[]> {
  const path = join(dataDir, "ratings_subset.tsv");
  return parseRatings(await readData(path), path);
}

/** A paper's text, already extracted from its PDF. */
export async function readPaperText(dataDir: string, paperId: string): Promise<string> {
  return readData(join(dataDir, "papers", `${PaperId.parse(paperId)}.txt`));
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * `n` papers drawn without replacement, accepts and rejects in the benchmark's proportion (at least one
 * of each when n ≥ 2), in the TSV's order. The same seed gives the same papers, and a larger n with that
 * seed keeps (nearly all of) a smaller n's papers.
 */
export function stratifiedSample(papers: readonly RatedPaper[], n: number, seed: number): RatedPaper[] {
  if (!Number.isInteger(n) || n < 1 || n > papers.length) {
    throw new BenchDataError(`cannot sample ${n} of ${papers.length} papers`, { hint: `--papers takes 1 to ${papers.length}` });
  }
  const accepts = papers.filter((p) => p.accept);
  const rejects = papers.filter((p) => !p.accept);
  let fromAccepts = Math.round((n * accepts.length) / papers.length);
  if (n >= 2 && accepts.length && rejects.length) fromAccepts = Math.min(Math.max(fromAccepts, 1), n - 1);
  fromAccepts = Math.max(Math.min(fromAccepts, accepts.length), n - rejects.length);
  const random = seededRandom(seed);
  const chosen = new Set([...shuffled(accepts, random).slice(0, fromAccepts), ...shuffled(rejects, random).slice(0, n - fromAccepts)]);
  return papers.filter((p) => chosen.has(p));
}
