import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Bus } from "../bus/connection.js";
import { watchEvents } from "../bus/events.js";
import { getDirectory } from "../bus/artifacts.js";
import { subjects } from "../bus/subjects.js";
import { LlmExchange, Progress, StateBatch, type Idea, type StateEvent } from "../bus/schemas.js";
import type { Failure } from "../bus/errors.js";
import { rootLogger } from "../bus/logger.js";
import type { PipelineOutput } from "../machines/pipeline.js";

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

/** An idea of ideas.json with, up front, the past reviews it answers (`<runId>/<ideaId>`) and why. */
function withAnswers<T extends { idea: Idea }>(record: T): T & { answers: string[]; rationale?: string } {
  return { ...record, answers: record.idea.Answers ?? [], ...(record.idea.Rationale ? { rationale: record.idea.Rationale } : {}) };
}

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

export interface RunFollower {
  /** Every model exchange of the run so far, the ones before a resume included. */
  exchanges: LlmExchange[];
  /** Reads on until everything published before this call has been read, then stops reading. */
  close(): Promise<void>;
}

/**
 * Follows a run's conversation while its pipeline runs: progress lines and state events go to the person
 * watching (those older than `since` are not shown again after a resume), model exchanges are kept for the
 * run's log and cost.
 */
export async function followRun(
  bus: Bus,
  runId: string,
  on: { progress(p: Progress, spentUsd: number): void; state(e: StateEvent, spentUsd: number): void },
  opts: { since?: string } = {},
): Promise<RunFollower> {
  const log = rootLogger().child({ runId, agent: "collector" });
  const stream = await watchEvents(bus, subjects.conversation(runId), z.unknown(), log);
  const exchanges: LlmExchange[] = [];
  const endMark = `${runId}.end.${randomUUID()}`;
  let spent = 0;
  const fresh = (at: string) => !opts.since || at >= opts.since;
  const reading = (async () => {
    for await (const { subject, value } of stream) {
      // sci.<runId>.conv.<topic>[.<jobId>]
      const topic = subject.split(".")[3] ?? "";
      if (topic === "progress") {
        const p = Progress.safeParse(value);
        if (p.success && fresh(p.data.at)) on.progress(p.data, spent);
      } else if (topic === "state") {
        const batch = StateBatch.safeParse(value);
        if (batch.success) for (const e of batch.data.events) if (fresh(e.at)) on.state(e, spent);
      } else if (topic === "llm") {
        const e = LlmExchange.safeParse(value);
        if (e.success) {
          exchanges.push(e.data);
          spent += e.data.costUsd;
        }
      } else if (topic === "end" && (value as { mark?: unknown } | null)?.mark === endMark) {
        return;
      }
    }
  })();
  return {
    exchanges,
    async close() {
      // The conversation is one ordered stream: once the mark is read, so is everything said before it.
      await bus.js.publish(subjects.end(runId), JSON.stringify({ mark: endMark }));
      await reading;
      await stream.close();
    },
  };
}

/**
 * What a run leaves behind, read from its pipeline's end state: mirrors the run's artifacts into `outDir` and
 * writes ideas.json, llm.jsonl, cost.json and status.json.
 */
export async function collectRun(
  bus: Bus,
  runId: string,
  outDir: string,
  run: PipelineOutput,
  exchanges: LlmExchange[],
  opts: { budgetUsd: number | undefined },
): Promise<RunSummary> {
  const { budgetUsd } = opts;
  await getDirectory(bus, runId, outDir);
  const ideation = run.ideation;
  const ideationFailure = run.failedAt === "ideate" ? run.failure : undefined;
  await writeFile(
    join(outDir, "ideas.json"),
    JSON.stringify({ runId, ...(ideationFailure ? { error: ideationFailure.message } : {}), ideas: (ideation?.ideas ?? []).map(withAnswers) }, null, 2),
  );
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

  const roundDir = (ideaId: string, round: number) => (round === 0 ? ideaId : `${ideaId}/revision_${round}`);
  const ideas: IdeaSummary[] = run.ideas.map((idea) => {
    const decided = idea.decisions[idea.decisions.length - 1];
    const reviews = idea.decisions
      .flatMap((d) => d.reviewers.map((r) => ({ file: `${roundDir(idea.ideaId, d.round)}/reviews/review_${r.reviewer}.json`, reviewer: r.reviewer, node: r.node, overall: r.overall, decision: r.decision })))
      .filter((r) => existsSync(join(outDir, r.file)));
    const failure = idea.rejected
      ? `rejected at the ${idea.rejected.gate} gate by ${idea.rejected.by}: ${idea.rejected.reason}`
      : idea.failure ? `${idea.failedAt}: ${idea.failure.message}${idea.failure.hint ? ` (${idea.failure.hint})` : ""}` : undefined;
    return {
      ideaId: idea.ideaId,
      ...(idea.paper ? { pdf: idea.paper.pdf.slice(runId.length + 1) } : {}),
      reviews,
      ...(decided && idea.status === "decided" ? { decision: decided.decision, metaReview: `${roundDir(idea.ideaId, decided.round)}/meta_review.json`, round: decided.round } : {}),
      ...(failure ? { error: failure } : {}),
    };
  });
  const judged = ideation?.ideas ?? [];
  const counts: RunCounts = {
    proposed: judged.length,
    novel: run.ideas.length,
    undecided: judged.filter((i) => i.status === "undecided").length,
    experimented: run.ideas.filter((i) => i.experiment).length,
    written: run.ideas.filter((i) => i.paper).length,
    decided: ideas.filter((i) => i.decision).length,
  };
  const budgetHit =
    budgetUsd !== undefined &&
    (total.costUsd >= budgetUsd || run.failure?.kind === "budget" || run.ideas.some((i) => i.failure?.kind === "budget"));
  const { status, reason } = judgeRun({ budgetHit, budgetUsd, spentUsd: total.costUsd, run, ideas, counts });
  await writeStatus(outDir, { runId, status, reason, counts, costUsd: total.costUsd, budgetUsd });
  return {
    runId,
    status,
    ...(reason ? { reason } : {}),
    counts,
    proposed: judged.length,
    ideas,
    costUsd: total.costUsd,
    tokens: total.inputTokens + total.outputTokens,
  };
}

/** The run's status and, for anything short of completed, why: the first thing a person reads. */
function judgeRun(r: { budgetHit: boolean; budgetUsd: number | undefined; spentUsd: number; run: PipelineOutput; ideas: IdeaSummary[]; counts: RunCounts }): { status: RunStatus; reason?: string } {
  const { counts, ideas, run } = r;
  const stopped = ideas.filter((i) => !i.decision).map((i) => `${i.ideaId} stopped (${i.error ?? "no decision arrived"})`);
  const why = (f: Failure) => `${f.message}${f.hint ? ` (${f.hint})` : ""}`;
  if (r.budgetHit) {
    return { status: "budget reached", reason: `the budget of $${r.budgetUsd!.toFixed(4)} was reached ($${r.spentUsd.toFixed(4)} spent); ${counts.decided} of ${counts.novel} novel ideas decided${stopped.length ? `; ${stopped.join("; ")}` : ""}` };
  }
  if (run.failure && (run.failedAt === "baseline" || run.failedAt === "gpuBaseline")) return { status: "failed", reason: `the baseline failed before any model call: ${why(run.failure)}` };
  if (run.failure && run.failedAt === "scaffold") return { status: "failed", reason: `no working template from the topic: ${why(run.failure)}` };
  if (run.failure && !run.ideas.length) return { status: "failed", reason: `ideation failed: ${why(run.failure)}` };
  const ideation = run.ideation;
  if (!ideation && !run.ideas.length) return { status: "failed", reason: "ideation never reported back" };
  if (counts.novel === 0 && ideation) {
    const judged = ideation.ideas;
    const verdicts = judged.map((i) => `"${i.idea.Title}" ${i.status === "undecided" ? (i.verdict?.reason ?? "undecided: the critic could not decide") : i.status === "rejected" ? (i.verdict ? `not novel: ${i.verdict.reason}` : (i.history.at(-1) ?? "rejected")) : `failed: ${i.history.at(-1) ?? "no verdict"}`}`);
    const failures = ideation.failures ?? [];
    return {
      status: judged.length ? "no novel idea" : "failed",
      reason: judged.length
        ? `no idea was judged novel (${counts.proposed} proposed${counts.undecided ? `, ${counts.undecided} undecided` : ""}): ${verdicts.join("; ")}`
        : `no idea was proposed${failures.length ? `: ${failures.join("; ")}` : ""}`,
    };
  }
  // An idea a person turned down at a gate is settled as much as a decided one.
  const turnedDown = run.ideas.filter((i) => i.status === "rejected");
  if (counts.decided === counts.novel) return { status: "completed" };
  if (counts.decided + turnedDown.length === counts.novel) {
    return { status: "completed", reason: `${turnedDown.length} of ${counts.novel} novel ideas turned down at a gate: ${turnedDown.map((i) => `${i.ideaId} (${i.rejected!.gate}: ${i.rejected!.reason})`).join("; ")}` };
  }
  return { status: counts.decided > 0 ? "partly completed" : "failed", reason: `${counts.decided} of ${counts.novel} novel ideas decided: ${stopped.join("; ")}` };
}
