import type { Logger } from "../../bus/logger.js";
import type { Bus } from "../../bus/connection.js";
import { Archive, type ArchiveEntry, type ArchivedReview, type Idea, type JobResult, type PastReview } from "../../bus/schemas.js";
import { kvKeys } from "../../bus/subjects.js";

// The archive of a template's earlier ideas, and what their papers' reviews said: a new run proposes new
// ideas, builds on the accepted ones and answers the weaknesses of the rejected ones.

/** Past reviews an ideator or a critic is shown at most, the latest ones: enough to learn from, a prompt that stays short. */
export const SHOWN_REVIEWS = 12;

/** Ideas proposed by earlier runs of the same template, with their reviews; a plain list of ideas (the reference's) reads too. */
export async function readArchive(bus: Bus, template: string): Promise<ArchiveEntry[]> {
  const entry = await bus.kv.get(kvKeys.archive(template));
  if (!entry || entry.operation !== "PUT") return [];
  const parsed = Archive.safeParse(entry.json());
  return parsed.success ? parsed.data : [];
}

export async function writeArchive(bus: Bus, template: string, entries: ArchiveEntry[]): Promise<void> {
  await bus.kv.put(kvKeys.archive(template), JSON.stringify(entries));
}

/** How a past review is named in an idea's Answers. */
export const reviewId = (r: Pick<ArchivedReview, "runId" | "ideaId">) => `${r.runId}/${r.ideaId}`;

/** The archive's reviews as a prompt shows them, oldest first, the latest `SHOWN_REVIEWS` of them. */
export function pastReviews(entries: ArchiveEntry[]): PastReview[] {
  return entries
    .flatMap(({ idea, review }) =>
      review
        ? [{ id: reviewId(review), idea: { Name: idea.Name, Title: idea.Title, Experiment: idea.Experiment }, decision: review.decision, scores: review.scores, weaknesses: review.weaknesses }]
        : [],
    )
    .slice(-SHOWN_REVIEWS);
}

/** The idea with only the Answers that name a review it was shown: a model may make one up, or misspell it. */
export function vetAnswers(idea: Idea, shown: PastReview[], log: Pick<Logger, "warn">): Idea {
  if (!idea.Answers) return idea;
  const known = new Set(shown.map((r) => r.id));
  const kept = [...new Set(idea.Answers.filter((a) => known.has(a)))];
  const dropped = idea.Answers.filter((a) => !known.has(a));
  if (dropped.length) log.warn({ idea: idea.Name, dropped }, `dropped ${dropped.length} of the idea's Answers: they name no review the ideator was shown`);
  const { Answers: _answers, ...rest } = idea;
  return kept.length ? { ...rest, Answers: kept } : rest;
}

/** An idea of a run as it ended: its id, whether it was decided, its rounds' decisions, the idea as it went on. */
export interface DecidedIdea {
  ideaId: string;
  status: string;
  decisions: JobResult<"chair">[];
  idea?: Idea | undefined;
}

/**
 * The archive with the run's decided ideas' last decisions attached: each entry the run's ideator wrote gets
 * the decision, the mean scores and the reviewers' main weaknesses of its paper's last round of review.
 */
export function withReviews(entries: ArchiveEntry[], runId: string, ideas: DecidedIdea[]): ArchiveEntry[] {
  const byId = new Map(ideas.filter((i) => i.status === "decided" && i.decisions.length).map((i) => [i.ideaId, i]));
  return entries.map((entry) => {
    const decided = entry.runId === runId && entry.ideaId ? byId.get(entry.ideaId) : undefined;
    if (!decided) return entry;
    const last = decided.decisions[decided.decisions.length - 1]!;
    const review: ArchivedReview = { runId, ideaId: decided.ideaId, decision: last.decision, scores: last.scores, weaknesses: last.weaknesses ?? [] };
    // The idea as its paper was written and reviewed: a person may have edited it at a gate.
    return { ...entry, idea: decided.idea ?? entry.idea, review };
  });
}
