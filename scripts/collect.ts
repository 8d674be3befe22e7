import { writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Bus } from "../bus/connection.js";
import { watchEvents } from "../bus/events.js";
import { getDirectory } from "../bus/artifacts.js";
import { subjects } from "../bus/subjects.js";
import { LlmExchange, Progress, outcomeSchema, type JobKind, type Outcome } from "../bus/schemas.js";
import { rootLogger } from "../bus/logger.js";

export interface IdeaSummary {
  ideaId: string;
  /** The review round of the decision: 0 for the paper as first written, n for its n-th revision. */
  round?: number;
  pdf?: string;
  reviews: { file: string; reviewer: number; node: string; overall: number; decision: string }[];
  decision?: string;
  metaReview?: string;
  error?: string;
}

/** `no novel idea`: every idea was judged, and none was novel (or the critic could not tell). */
export type RunStatus = "completed" | "partly completed" | "no novel idea" | "budget reached" | "failed";

/** How far the run's ideas got, stage by stage. */
export interface RunCounts {
  proposed: number;
  novel: number;
  undecided: number;
  experimented: number;
  written: number;
  decided: number;
}

export interface RunSummary {
  runId: string;
  status: RunStatus;
  /** Why the run is not `completed`: for every other status. */
  reason?: string;
  counts: RunCounts;
  proposed: number;
  ideas: IdeaSummary[];
  costUsd: number;
  tokens: number;
}

export const NO_COUNTS: RunCounts = { proposed: 0, novel: 0, undecided: 0, experimented: 0, written: 0, decided: 0 };

/** status.json: the status, its reason, the counts and the spend. */
export async function writeStatus(
  outDir: string,
  s: { runId: string; status: RunStatus; reason?: string | undefined; counts: RunCounts; costUsd: number; budgetUsd?: number | undefined },
): Promise<void> {
  const { runId, status, reason, counts, costUsd, budgetUsd } = s;
  await writeFile(
    join(outDir, "status.json"),
    JSON.stringify({ runId, status, ...(reason ? { reason } : {}), counts, costUsd, ...(budgetUsd !== undefined ? { budgetUsd } : {}) }, null, 2),
  );
}

type Totals = { calls: number; inputTokens: number; outputTokens: number; cachedTokens: number; costUsd: number };
const zero = (): Totals => ({ calls: 0, inputTokens: 0, outputTokens: 0, cachedTokens: 0, costUsd: 0 });
function add(t: Totals, e: LlmExchange): void {
  t.calls++;
  t.inputTokens += e.usage.inputTokens;
  t.outputTokens += e.usage.outputTokens;
  t.cachedTokens += e.usage.cachedTokens;
  t.costUsd += e.costUsd;
}

/**
 * Follows a run's conversation until every novel idea has its decision (or has stopped), printing progress
 * as it comes; then mirrors the run's artifacts into `outDir` with ideas.json, llm.jsonl and cost.json.
 */
export async function collectRun(
  bus: Bus,
  runId: string,
  outDir: string,
  opts: { budgetUsd: number | undefined; reviewers: number; lateReviewGraceMs: number },
  onProgress: (p: Progress, spentUsd: number) => void,
): Promise<RunSummary> {
  const { budgetUsd } = opts;
  const log = rootLogger().child({ runId, agent: "collector" });
  const stream = await watchEvents(bus, subjects.conversation(runId), z.unknown(), log);
  const exchanges: LlmExchange[] = [];
  let spent = 0;
  const outcomes = new Map<JobKind, Outcome<JobKind>[]>();
  let ideation: Outcome<"ideate"> | undefined;
  const kinds: JobKind[] = ["ideate", "novelty", "experiment", "gpuExperiment", "write", "chair", "review"];

  const chairsOf = (ideaId: string) => ((outcomes.get("chair") ?? []) as Outcome<"chair">[]).filter((o) => o.ideaId === ideaId);
  // Finished once a decision sends it back for no further revision, or a step of it failed.
  const terminal = (ideaId: string) =>
    chairsOf(ideaId).some((o) => !o.ok || !o.result.revisionRequested) ||
    (["experiment", "gpuExperiment", "write"] as JobKind[]).some((k) => (outcomes.get(k) ?? []).some((o) => o.ideaId === ideaId && !o.ok));
  const accepted = () => (ideation?.ok ? ideation.result.ideas.filter((i) => i.status === "accepted").map((i) => i.ideaId) : []);
  const finished = () => ideation !== undefined && accepted().every(terminal);
  // Once every idea is decided, reviews still out (past the quorum) get a little longer to be recorded.
  const reviewsIn = () =>
    accepted().every((ideaId) => {
      const rounds = chairsOf(ideaId).filter((o) => o.ok).length;
      return (outcomes.get("review") ?? []).filter((o) => o.ideaId === ideaId).length >= opts.reviewers * rounds;
    });
  let grace: NodeJS.Timeout | undefined;

  for await (const { subject, value } of stream) {
    // sci.<runId>.conv.<topic>[.<jobId>]
    const topic = subject.split(".")[3] ?? "";
    if (topic === "progress") {
      const p = Progress.safeParse(value);
      if (p.success) onProgress(p.data, spent);
    } else if (topic === "llm") {
      const e = LlmExchange.safeParse(value);
      if (e.success) {
        exchanges.push(e.data);
        spent += e.data.costUsd;
      }
    } else if ((kinds as string[]).includes(topic)) {
      const kind = topic as JobKind;
      const o = outcomeSchema(kind).safeParse(value);
      if (!o.success) {
        log.warn({ subject }, "skipped a malformed outcome");
        continue;
      }
      const outcome = o.data as Outcome<JobKind>;
      outcomes.set(kind, [...(outcomes.get(kind) ?? []), outcome]);
      if (kind === "ideate" && outcome.jobId === `${runId}.ideate`) ideation = outcome as Outcome<"ideate">;
    }
    if (finished()) {
      if (reviewsIn()) break;
      grace ??= setTimeout(() => void stream.close(), opts.lateReviewGraceMs);
    }
  }
  if (grace) clearTimeout(grace);
  await stream.close();

  await getDirectory(bus, runId, outDir);
  const ideasFile = ideation?.ok
    ? ideation.result.ideas
    : [];
  await writeFile(join(outDir, "ideas.json"), JSON.stringify({ runId, ...(ideation && !ideation.ok ? { error: ideation.error } : {}), ideas: ideasFile }, null, 2));
  await writeFile(join(outDir, "llm.jsonl"), exchanges.map((e) => JSON.stringify(e)).join("\n") + (exchanges.length ? "\n" : ""));

  const total = zero();
  const byAgent: Record<string, Totals> = {};
  const byIdea: Record<string, Totals> = {};
  for (const e of exchanges) {
    add(total, e);
    add((byAgent[e.by.agent] ??= zero()), e);
    add((byIdea[e.ideaId ?? "(run)"] ??= zero()), e);
  }
  await writeFile(join(outDir, "cost.json"), JSON.stringify({ runId, estimated: exchanges.some((e) => e.usage.estimated), total, byAgent, byIdea }, null, 2));

  const ideas: IdeaSummary[] = accepted().map((ideaId) => {
    const failed = (["experiment", "gpuExperiment", "write", "chair"] as JobKind[])
      .flatMap((k) => (outcomes.get(k) ?? []).flatMap((o) => (o.ideaId === ideaId && !o.ok ? [{ k, failure: o.failure }] : [])))[0];
    const failure = failed ? `${failed.k}: ${failed.failure.message}${failed.failure.hint ? ` (${failed.failure.hint})` : ""}` : undefined;
    // The latest version of the paper and the latest decision; every round's reviews.
    const papers = ((outcomes.get("write") ?? []) as Outcome<"write">[]).filter((o) => o.ideaId === ideaId && o.ok);
    const paper = papers[papers.length - 1];
    const decisions = chairsOf(ideaId).filter((o): o is Extract<Outcome<"chair">, { ok: true }> => o.ok).sort((a, b) => a.result.round - b.result.round);
    const decided = decisions[decisions.length - 1];
    const roundDir = (round: number) => (round === 0 ? ideaId : `${ideaId}/revision_${round}`);
    const reviews = ((outcomes.get("review") ?? []) as Outcome<"review">[])
      .filter((o): o is Extract<Outcome<"review">, { ok: true }> => o.ideaId === ideaId && o.ok)
      .map((o) => {
        const parts = o.jobId.split(".");
        const reviewer = Number(parts.pop());
        const round = /^r(\d+)$/.exec(parts.pop() ?? "")?.[1];
        const r = o.result.review;
        return { file: `${roundDir(Number(round ?? 0))}/reviews/review_${reviewer}.json`, reviewer, node: o.by.node, overall: r.Overall, decision: r.Decision };
      })
      .filter((r) => existsSync(join(outDir, r.file)));
    return {
      ideaId,
      ...(paper?.ok ? { pdf: paper.result.pdf.slice(runId.length + 1) } : {}),
      reviews,
      ...(decided ? { decision: decided.result.decision, metaReview: `${roundDir(decided.result.round)}/meta_review.json`, round: decided.result.round } : {}),
      ...(failure ? { error: failure } : {}),
    };
  });
  const judged = ideation?.ok ? ideation.result.ideas : [];
  const okFor = (kinds: JobKind[], ideaId: string) => kinds.some((k) => (outcomes.get(k) ?? []).some((o) => o.ideaId === ideaId && o.ok));
  const counts: RunCounts = {
    proposed: judged.length,
    novel: ideas.length,
    undecided: judged.filter((i) => i.status === "undecided").length,
    experimented: ideas.filter((i) => okFor(["experiment", "gpuExperiment"], i.ideaId)).length,
    written: ideas.filter((i) => okFor(["write"], i.ideaId)).length,
    decided: ideas.filter((i) => i.decision).length,
  };
  const budgetHit =
    budgetUsd !== undefined &&
    (total.costUsd >= budgetUsd || [...outcomes.values()].flat().some((o) => !o.ok && o.failure.kind === "budget"));
  const { status, reason } = judgeRun({ budgetHit, budgetUsd, spentUsd: total.costUsd, ideation, ideas, counts });
  await writeStatus(outDir, { runId, status, reason, counts, costUsd: total.costUsd, budgetUsd });
  return {
    runId,
    status,
    ...(reason ? { reason } : {}),
    counts,
    proposed: ideation?.ok ? ideation.result.ideas.length : 0,
    ideas,
    costUsd: total.costUsd,
    tokens: total.inputTokens + total.outputTokens,
  };
}

type IdeationOutcome = Outcome<"ideate"> | undefined;

/** The run's status and, for anything short of completed, why: the first thing a person reads. */
function judgeRun(r: { budgetHit: boolean; budgetUsd: number | undefined; spentUsd: number; ideation: IdeationOutcome; ideas: IdeaSummary[]; counts: RunCounts }): { status: RunStatus; reason?: string } {
  const { counts, ideas, ideation } = r;
  const stopped = ideas.filter((i) => !i.decision).map((i) => `${i.ideaId} stopped (${i.error ?? "no decision arrived"})`);
  if (r.budgetHit) {
    return { status: "budget reached", reason: `the budget of $${r.budgetUsd!.toFixed(4)} was reached ($${r.spentUsd.toFixed(4)} spent); ${counts.decided} of ${counts.novel} novel ideas decided${stopped.length ? `; ${stopped.join("; ")}` : ""}` };
  }
  if (!ideation) return { status: "failed", reason: "ideation never reported back" };
  if (!ideation.ok) return { status: "failed", reason: `ideation failed: ${ideation.failure.message}${ideation.failure.hint ? ` (${ideation.failure.hint})` : ""}` };
  if (counts.novel === 0) {
    const judged = ideation.result.ideas;
    const why = judged.map((i) => `"${i.idea.Title}" ${i.status === "undecided" ? (i.verdict?.reason ?? "undecided: the critic could not decide") : i.status === "rejected" ? (i.verdict ? `not novel: ${i.verdict.reason}` : (i.history.at(-1) ?? "rejected")) : `failed: ${i.history.at(-1) ?? "no verdict"}`}`);
    const failures = ideation.result.failures ?? [];
    return {
      status: judged.length ? "no novel idea" : "failed",
      reason: judged.length
        ? `no idea was judged novel (${counts.proposed} proposed${counts.undecided ? `, ${counts.undecided} undecided` : ""}): ${why.join("; ")}`
        : `no idea was proposed${failures.length ? `: ${failures.join("; ")}` : ""}`,
    };
  }
  if (counts.decided === counts.novel) return { status: "completed" };
  return { status: counts.decided > 0 ? "partly completed" : "failed", reason: `${counts.decided} of ${counts.novel} novel ideas decided: ${stopped.join("; ")}` };
}
