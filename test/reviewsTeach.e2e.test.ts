import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript } from "./helpers/cli.js";
import { natsForSuite } from "./helpers/nats.js";
import { offlineAnswer } from "../agents/llm/offline/offlineProvider.js";
import { pastReviews, readArchive, vetAnswers, withReviews, writeArchive } from "../agents/ideator/archive.js";
import { proposeIdea } from "../agents/ideator/prompts.js";
import { mainWeaknesses } from "../agents/areaChair/areaChair.js";
import { Archive, type ArchiveEntry, type Idea, type JobResult, type PastReview, type Review } from "../bus/schemas.js";
import { kvKeys } from "../bus/subjects.js";
import "../agents/offline.js";

const REFERENCE_ARCHIVE = join(import.meta.dirname, "fixtures", "archives", "reference-nanofit.json");
const code = readFileSync(join(import.meta.dirname, "..", "templates", "nanofit", "experiment.py"), "utf8");

const momentum: Idea = {
  Name: "momentum_sweep",
  Title: "How much does the heavy-ball momentum coefficient matter? MOMENTUM at 0.6, 0.975 against 0.9",
  Experiment: "Set MOMENTUM to each of [0.6, 0.975] (baseline: 0.9), one run per value, every other setting unchanged.",
  Interestingness: 4,
  Feasibility: 9,
  Novelty: 3,
};
const WEAKNESS = "The study covers one small program and synthetic data; the conclusions may not transfer.";
const rejected: PastReview = {
  id: "run-1/momentum_sweep",
  idea: { Name: momentum.Name, Title: momentum.Title, Experiment: momentum.Experiment },
  decision: "Reject",
  scores: { Overall: 4, Soundness: 2 },
  weaknesses: [WEAKNESS, "Few references to prior work."],
};

function chairResult(decision: "Accept" | "Reject", round: number, weaknesses: string[]): JobResult<"chair"> {
  return { decision, metaReview: "m", scores: { Overall: decision === "Accept" ? 7 : 4 }, reviews: 3, round, reviewers: [], weaknesses };
}

function review(weaknesses: string[]): Review {
  return {
    Summary: "s", Strengths: [], Weaknesses: weaknesses, Originality: 2, Quality: 2, Clarity: 2, Significance: 2, Questions: [], Limitations: [],
    Ethical_Concerns: false, Soundness: 2, Presentation: 2, Contribution: 2, Overall: 4, Confidence: 3, Decision: "Reject",
  };
}

describe("what the archive keeps of reviews, and how the ideator and the critic use it", () => {
  let nats: Awaited<ReturnType<typeof natsForSuite>>;
  beforeAll(async () => {
    nats = await natsForSuite();
  });
  afterAll(async () => nats?.close());

  it("reads an archive from the reference (a plain list of ideas), from a file and from KV, as entries without reviews", async () => {
    const plain = JSON.parse(readFileSync(REFERENCE_ARCHIVE, "utf8"));
    const entries = Archive.parse(plain);
    expect(entries.map((e) => e.idea.Name)).toEqual(["learning_rate_sweep", "wider_hidden_layer"]);
    expect(entries.every((e) => e.review === undefined && e.runId === undefined)).toBe(true);
    await nats.bus.kv.put(kvKeys.archive("old-style"), JSON.stringify(plain));
    expect((await readArchive(nats.bus, "old-style")).map((e) => e.idea.Title)).toEqual(entries.map((e) => e.idea.Title));
    // New entries beside old ones, as a run appends to an archive it started from.
    const mixed: ArchiveEntry[] = [...entries, { idea: momentum, runId: "run-1", ideaId: "momentum_sweep" }];
    await writeArchive(nats.bus, "mixed", mixed);
    expect(await readArchive(nats.bus, "mixed")).toEqual(mixed);
  });

  it("attaches each decided idea's last decision, mean scores and main weaknesses to the entry its run wrote", () => {
    const entries: ArchiveEntry[] = [
      { idea: momentum, runId: "run-0", ideaId: "momentum_sweep" },
      { idea: momentum, runId: "run-1", ideaId: "momentum_sweep" },
      { idea: { ...momentum, Name: "broken" }, runId: "run-1", ideaId: "broken" },
    ];
    const ideas = [
      { ideaId: "momentum_sweep", status: "decided", decisions: [chairResult("Reject", 0, ["first round"]), chairResult("Reject", 1, [WEAKNESS])] },
      { ideaId: "broken", status: "failed", decisions: [] },
    ];
    const out = withReviews(entries, "run-1", ideas);
    expect(out[0]).toEqual(entries[0]);
    expect(out[1]!.review).toEqual({ runId: "run-1", ideaId: "momentum_sweep", decision: "Reject", scores: { Overall: 4 }, weaknesses: [WEAKNESS] });
    expect(out[2]!.review).toBeUndefined();
    expect(pastReviews(out)).toEqual([{ id: "run-1/momentum_sweep", idea: { Name: momentum.Name, Title: momentum.Title, Experiment: momentum.Experiment }, decision: "Reject", scores: { Overall: 4 }, weaknesses: [WEAKNESS] }]);
  });

  it("the chair's main weaknesses: each once, the most raised first, at most five, each short", () => {
    const long = `Too long ${"word ".repeat(80)}`;
    const got = mainWeaknesses([
      review(["Few references.", "One dataset only", long]),
      review(["few references", "No error bars.", "a", "b", "c"]),
      review(["No  error bars.", "Few references."]),
    ]);
    expect(got.slice(0, 2)).toEqual(["Few references.", "No error bars."]);
    expect(got).toHaveLength(5);
    expect(got[2]).toBe("One dataset only");
    expect(got[3]!.length).toBeLessThanOrEqual(241);
    expect(got[3]).toMatch(/…$/);
  });

  it("offline, a rejected review is answered with its weakness quoted, an accepted one is built on, an answered one left alone", () => {
    const ask = (archive: Idea[], reviews: PastReview[]) => offlineAnswer("ideator.propose", { system: "s", task: "t", code, archive, reviews }) as Idea;
    const answer = ask([momentum], [rejected]);
    expect(answer.Answers).toEqual([rejected.id]);
    expect(answer.Rationale).toContain(`"${WEAKNESS}"`);
    expect(answer.Rationale).toContain("no language model wrote this");
    // Not the rejected sweep again: MOMENTUM with a second setting changed.
    expect(answer.Name).toBe("momentum_with_learning_rate");

    const accepted: PastReview = { ...rejected, id: "run-1/hidden_units_sweep", decision: "Accept", idea: { Name: "hidden_units_sweep", Title: "Width", Experiment: "Set HIDDEN_UNITS to each of [8, 32] (baseline: 16), one run per value." } };
    const built = ask([momentum, answer], [rejected, accepted]);
    expect(built.Answers).toEqual([accepted.id]);
    expect(built.Rationale).toMatch(/^Builds on "Width" \(run-1\/hidden_units_sweep\), accepted/);
    expect(built.Experiment).toMatch(/^Set HIDDEN_UNITS to each of \[/);

    // Every review answered: the ideator goes on as without reviews.
    const next = ask([momentum, answer, built], [rejected, accepted]);
    expect(next.Answers).toBeUndefined();
    expect(next).toEqual(offlineAnswer("ideator.propose", { system: "s", task: "t", code, archive: [momentum, answer, built] }));
  });

  it("keeps only the Answers that name a review the ideator was shown, and logs the others", () => {
    const warned: unknown[] = [];
    const log = { warn: (...args: unknown[]) => void warned.push(args) };
    const idea = vetAnswers({ ...momentum, Answers: [rejected.id, "run-9/made_up", rejected.id] }, [rejected], log as never);
    expect(idea.Answers).toEqual([rejected.id]);
    expect(JSON.stringify(warned)).toContain("run-9/made_up");
    expect(vetAnswers({ ...momentum, Answers: ["run-9/made_up"] }, [rejected], log as never)).not.toHaveProperty("Answers");
  });

  it("the offline critic sends back a repeat of a rejected idea that answers nothing, and names what an answer answers", () => {
    const repeat = offlineAnswer("critic.decide", { idea: { ...momentum, Name: "momentum_again" }, queries: ["q"], found: [], reviews: [rejected] }) as { verdict: string; reason: string };
    expect(repeat.verdict).toBe("revise");
    expect(repeat.reason).toContain(WEAKNESS);
    const answer = offlineAnswer("ideator.propose", { system: "s", task: "t", code, archive: [momentum], reviews: [rejected] }) as Idea;
    const judged = offlineAnswer("critic.decide", { idea: answer, queries: ["q"], found: [], reviews: [rejected] }) as { verdict: string; reason: string };
    expect(judged.verdict).toBe("novel");
    expect(judged.reason).toContain(`it answers the review of ${rejected.id} (Reject), on "${WEAKNESS}"`);
  });

  it("shows the model the reviews, and asks it for Rationale and Answers, only when there are reviews", () => {
    const without = proposeIdea.render({ system: "s", task: "t", code, archive: [momentum] }).at(-1)!.content;
    expect(without).not.toContain("### reviews");
    expect(without).not.toContain("do not repeat what was rejected");
    const withReviews = proposeIdea.render({ system: "s", task: "t", code, archive: [momentum], reviews: [rejected] }).at(-1)!.content;
    expect(withReviews).toContain("### reviews");
    expect(withReviews).toContain(WEAKNESS);
    expect(withReviews).toMatch(/Build on what was accepted; do not repeat what was rejected, and answer its weaknesses/);
    expect(withReviews).toMatch(/list their `id`s in Answers/);
  });
});

describe("two offline runs of nanofit in the same results folder", () => {
  const out = mkdtempSync(join(tmpdir(), "swarm-reviews-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));
  const runIdOf = (text: string) => /^Run (\S+) on template/m.exec(text)?.[1] ?? "";
  // What matters here ends with the decision: one run and one round of review per idea.
  const brief = ["--max-runs", "1", "--revisions", "0"];

  it("the first run's rejected paper reaches the archive, and the second run proposes an idea that answers its weakness", async () => {
    // The archive the first run starts from is the reference's kind: with the learning rate taken, the offline
    // ideator sweeps the momentum, whose paper the offline reviewers reject.
    mkdirSync(join(out, "archive"), { recursive: true });
    copyFileSync(REFERENCE_ARCHIVE, join(out, "archive", "nanofit.json"));
    const first = await runScript("swarm", ["--out", out, ...brief]);
    expect(first.exitCode, first.all).toBe(0);
    const run1 = runIdOf(first.all ?? "");
    const [idea1] = JSON.parse(readFileSync(join(out, run1, "ideas.json"), "utf8")).ideas as { ideaId: string; answers: string[] }[];
    expect(idea1!.answers).toEqual([]);
    const meta = JSON.parse(readFileSync(join(out, run1, idea1!.ideaId, "meta_review.json"), "utf8"));
    expect(meta.decision).toBe("Reject");
    expect(meta.weaknesses.length).toBeGreaterThan(0);

    // What the first run leaves for the next: the reference's ideas as they were, and its own with its review.
    const archive = Archive.parse(JSON.parse(readFileSync(join(out, "archive", "nanofit.json"), "utf8")));
    expect(archive.slice(0, 2).map((e) => e.idea.Name)).toEqual(["learning_rate_sweep", "wider_hidden_layer"]);
    const entry = archive.find((e) => e.runId === run1 && e.ideaId === idea1!.ideaId);
    expect(entry?.review).toEqual({ runId: run1, ideaId: idea1!.ideaId, decision: "Reject", scores: meta.scores, weaknesses: meta.weaknesses });

    const second = await runScript("swarm", ["--out", out, ...brief]);
    expect(second.exitCode, second.all).toBe(0);
    const run2 = runIdOf(second.all ?? "");
    const ideas2 = JSON.parse(readFileSync(join(out, run2, "ideas.json"), "utf8")).ideas as { idea: Idea; status: string; answers: string[]; rationale?: string; verdict?: { reason: string } }[];
    const answering = ideas2.find((i) => i.answers.includes(`${run1}/${idea1!.ideaId}`));
    expect(answering, JSON.stringify(ideas2, null, 2)).toBeDefined();
    // The reviewers' own words, quoted.
    expect((meta.weaknesses as string[]).some((w) => answering!.rationale?.includes(`"${w}"`)), answering!.rationale).toBe(true);
    expect(answering!.idea.Name).not.toBe(entry!.idea.Name);
    expect(answering!.status).toBe("accepted");
    expect(answering!.verdict?.reason).toContain(`it answers the review of ${run1}/${idea1!.ideaId} (Reject)`);
  }, 300_000);
});
