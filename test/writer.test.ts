import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { natsForSuite } from "./helpers/nats.js";
import { recordingNode } from "./helpers/recordingNode.js";
import { runScript } from "./helpers/cli.js";
import { checkPaper, checkSection } from "../agents/writer/checklist.js";
import { checkClaims, collectFacts, matches, unmatched, type Fact } from "../agents/writer/claims.js";
import { experiment } from "../agents/coder/coder.js";
import { citePaper, writePaper } from "../agents/writer/writer.js";
import { SECTIONS, SECTION_NEEDS } from "../agents/writer/prompts.js";
import { createLlm } from "../agents/llm/client.js";
import { offlineProvider } from "../agents/llm/offline/offlineProvider.js";
import { localBibliography } from "../agents/literature/localBibliography.js";
import { DEFAULT_BIBLIOGRAPHY, startNode } from "../agents/node.js";
import { RunConfig, type Idea } from "../bus/schemas.js";
import { putRunConfig } from "../agents/runtime/runConfig.js";
import { getArtifact, getDirectory } from "../bus/artifacts.js";
import type { AgentContext } from "../agents/runtime/agentContext.js";
import type { LlmProvider } from "../agents/llm/types.js";
import type { LiteratureSource } from "../agents/literature/source.js";
import { LiteratureError } from "../agents/literature/errors.js";
import "../agents/offline.js";

const log = pino({ level: "silent" });

/** A suite's own NATS server and scratch folder, there from its first test to its end. */
function writerSuite(prefix: string) {
  const suite = {} as { nats: Awaited<ReturnType<typeof natsForSuite>>; dir: string };
  beforeAll(async () => {
    suite.nats = await natsForSuite();
    suite.dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await suite.nats?.close();
    rmSync(suite.dir, { recursive: true, force: true });
  });
  return suite;
}

const lrIdea: Idea = { Name: "lr", Title: "Learning rate", Experiment: "Set LEARNING_RATE to each of [0.2] (baseline: 0.05), one run per value.", Interestingness: 5, Feasibility: 9, Novelty: 4 };

/** A run of the nanofit template on the offline stand-in, and nodes of its own for each agent, recording every model call by section. */
async function offlineRun(suite: ReturnType<typeof writerSuite>, runId: string, maxRevisions: number) {
  const config = RunConfig.parse({
    runId, template: "nanofit", ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 1, maxFixes: 3, maxReflections: 1,
    maxRevisions, noveltyRounds: 1, experimentTimeoutMs: 60_000, llm: { provider: "offline", model: "offline" }, startedAt: new Date().toISOString(),
    // No figure critic serves here: the figures' round trip is test/figures.e2e.test.ts's.
    figureRounds: 0,
  });
  await putRunConfig(suite.nats.bus, config);
  const node = (name: string, stopAt?: (task: string, data: Record<string, unknown>) => boolean) =>
    recordingNode({ bus: suite.nats.bus, runId, config, log, dir: suite.dir, agent: "writer", label: (d) => (typeof d.section === "string" ? d.section : undefined) }, name, stopAt);
  return { config, node };
}

describe("the checklist", () => {
  const ctx = { figures: ["loss.png"], citationKeys: ["smith2017"], labels: ["fig:loss", "sec:intro"] };
  it("finds unbalanced math, bare special characters, stray headings and unknown figures, refs and citations", () => {
    const problems = checkSection("results", "Accuracy rose by 5% and more.\nA & B, $x_1 = 2 \\cite{nobody} \\ref{fig:none}\n\\section{Again}\n\\includegraphics{gone.png}", ctx);
    const text = problems.join("\n");
    expect(text).toMatch(/unbalanced math/);
    expect(text).toMatch(/a bare % after a number/);
    expect(text).toMatch(/unescaped &/);
    expect(text).toMatch(/contains a \\section/);
    expect(text).toMatch(/figure file gone\.png does not exist/);
    expect(text).toMatch(/\\cite\{nobody\} is not in the bibliography/);
    expect(text).toMatch(/\\ref\{fig:none\} refers to no \\label/);
  });

  it("passes a clean section, with math and tables left alone", () => {
    const clean = "We find $x_1 = 5\\%$ and 3\\% \\citep{smith2017}; see Figure~\\ref{fig:loss}.\n\\begin{tabular}{lr}a & b \\\\\\end{tabular}";
    expect(checkSection("results", clean, ctx)).toEqual([]);
  });

  it("flags a figure used twice or never referred to", () => {
    const fig = "\\begin{figure}\\includegraphics{loss.png}\\caption{Loss.}\\label{fig:loss}\\end{figure}";
    expect(checkPaper({ results: `${fig}\n${fig}` }).join("\n")).toMatch(/included more than once/);
    expect(checkPaper({ results: fig }).join("\n")).toMatch(/fig:loss is never referred to/);
  });
});

describe("the claim check", () => {
  const facts: Fact[] = [{ file: "run_1/final_info.json", key: "moons.means.test_accuracy", value: 0.912345 }];
  const tex = (abstract: string) => `\\begin{abstract}${abstract}\\end{abstract}\\section{Results}See run\\_1.\\section{Conclusions}`;

  it("matches a number at its printed precision, or as a percentage", () => {
    expect(matches("0.9123", 0.912345, false)).toBe(true);
    expect(matches("0.91", 0.912345, false)).toBe(true);
    expect(matches("0.9124", 0.912345, false)).toBe(false);
    expect(matches("91.2", 0.912345, true)).toBe(true);
    expect(unmatched(checkClaims(tex("Accuracy 0.9123, or 91.23\\% of points, over 3 datasets."), facts))).toEqual([]);
  });

  it("matches integers printed as integers, and counts of datasets and runs, but not an integer that is off by one", () => {
    const ideaDir = mkdtempSync(join(tmpdir(), "claims-int-"));
    try {
      const datasets = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`molecule_${i}`, { means: { md_steps: 420 + i, rmsf: 0.25 } }]));
      mkdirSync(join(ideaDir, "run_0"));
      writeFileSync(join(ideaDir, "run_0", "final_info.json"), JSON.stringify(datasets));
      writeFileSync(join(ideaDir, "runs.json"), JSON.stringify(Array.from({ length: 11 }, (_, i) => ({ run: `run_${i}`, description: i ? `Set R_MAX = ${i}.5` : "Baseline", ok: true }))));
      const facts = collectFacts(ideaDir);
      const claims = checkClaims(tex("Over 12 datasets and 11 runs, molecule 3 takes 423 steps against 420 for molecule 0."), facts);
      expect(claims.map((c) => c.number)).toEqual(["12", "11", "423", "420"]);
      expect(unmatched(claims)).toEqual([]);
      expect(unmatched(checkClaims(tex("It takes 419 steps."), facts)).map((c) => c.number)).toEqual(["419"]);
    } finally {
      rmSync(ideaDir, { recursive: true, force: true });
    }
  });

  it("catches an invented number, naming it and where it stands", () => {
    const [bad] = unmatched(checkClaims(tex("Accuracy reached 0.9731 on moons."), facts));
    expect(bad).toMatchObject({ number: "0.9731", where: "abstract", source: null });
    expect(bad!.context).toMatch(/reached 0\.9731 on moons/);
  });
});

/** The offline stand-in, except that each task's first answer is spoiled as `spoil` says. */
function clumsy(spoil: Record<string, (answer: Record<string, unknown>, data: Record<string, unknown>) => unknown>): LlmProvider {
  const base = offlineProvider();
  const spoiled = new Set<string>();
  return {
    ...base,
    async complete(req) {
      const answer = await base.complete(req);
      const data = req.data as Record<string, unknown>;
      const key = `${req.task}:${String(data.section ?? "")}`;
      const how = spoil[key];
      if (!how || spoiled.has(key)) return answer;
      spoiled.add(key);
      const json = how(answer.json as Record<string, unknown>, data);
      return { ...answer, json, text: JSON.stringify(json) };
    },
  };
}

describe("the writer's loops, against a model that makes mistakes", () => {
  const suite = writerSuite("writer-");

  it("repairs broken LaTeX, removes a missing figure and an invented number, and writes claims.json", async () => {
    const runId = "writer-loops";
    const idea = lrIdea;
    const { config } = await offlineRun(suite, runId, 0);
    const by = { agent: "writer", node: "test" };
    const progress: string[] = [];
    const ctx = (provider: LlmProvider): AgentContext => ({
      bus: suite.nats.bus, runId, config, by, log, signal: new AbortController().signal, workRoot: join(suite.dir, "work"),
      llm: createLlm(provider, { bus: suite.nats.bus, runId, by, log }),
      progress: async (text) => void progress.push(text),
    });
    await experiment({ jobId: "e", runId, ideaId: "lr", idea }, ctx(offlineProvider()));

    const provider = clumsy({
      // A command that does not exist: only the compiler can see it.
      "writer.section:method": (a) => ({ latex: `${a.latex} \\notARealMacro{} done.` }),
      // A number no run produced.
      "writer.section:abstract": (a) => ({ latex: `${a.latex} Accuracy reached 0.9731.` }),
      // A bare % the checklist finds, so the conclusion is refined; and the refinement slips in a figure that does not exist.
      "writer.section:conclusion": (a) => ({ latex: `${a.latex} It is 5% better.` }),
      "writer.refine:conclusion": (a) => ({ latex: `${a.latex}\n\\begin{figure}\\includegraphics{imaginary.png}\\caption{Nothing.}\\label{fig:imaginary}\\end{figure} See Figure~\\ref{fig:imaginary}.` }),
    });
    const result = await writePaper({ jobId: "w", runId, ideaId: "lr", idea, round: 0 }, ctx(provider), await localBibliography(DEFAULT_BIBLIOGRAPHY));
    expect(result.pdf).toMatch(/lr\.pdf$/);
    const said = progress.join("\n");
    // Only the section the checklist found something in is refined.
    expect(progress.filter((p) => p.startsWith("refined"))).toEqual(["refined the conclusion: 1 problem found by the checklist"]);
    expect(said).toMatch(/not compiled: conclusion: figure file imaginary\.png does not exist/);
    expect(said).toMatch(/LaTeX problems: .*Undefined control sequence/);
    expect(said).toMatch(/1 of \d+ numbers match no run artifact/);
    expect(said).toMatch(/all \d+ numbers trace to run artifacts/);
    const out = join(suite.dir, "out");
    await getDirectory(suite.nats.bus, `${runId}/lr/paper`, out);
    const claims = JSON.parse(readFileSync(join(out, "claims.json"), "utf8")) as { number: string; source: unknown }[];
    expect(claims.length).toBeGreaterThan(5);
    expect(claims.filter((c) => !c.source)).toEqual([]);
    const tex = readFileSync(join(out, "template.tex"), "utf8");
    expect(tex).not.toContain("notARealMacro");
    expect(tex).not.toContain("imaginary.png");
    expect(tex).not.toContain("0.9731");
  }, 120_000);
});

describe("the caption round", () => {
  const suite = writerSuite("writer-captions-");

  it("sends the paper's captions to the figure critic, and rewrites one that names a run with no data", async () => {
    const runId = "writer-captions";
    const { config } = await offlineRun(suite, runId, 0);
    const by = { agent: "writer", node: "test" };
    const progress: string[] = [];
    const ctx = (provider: LlmProvider, figureRounds: number): AgentContext => ({
      bus: suite.nats.bus, runId, config: { ...config, figureRounds }, by, log, signal: new AbortController().signal, workRoot: join(suite.dir, "work"),
      llm: createLlm(provider, { bus: suite.nats.bus, runId, by, log }),
      progress: async (text) => void progress.push(text),
    });
    await experiment({ jobId: "e", runId, ideaId: "lr", idea: lrIdea }, ctx(offlineProvider(), 0));
    const critic = await startNode({ bus: suite.nats.bus, roles: { figureCritic: 1 }, log, nodeId: "critic-node", workRoot: join(suite.dir, "critic") });
    try {
      // The first figure's caption claims a run that never was.
      const provider = clumsy({
        "writer.section:results": (a) => ({ latex: String(a.latex).replace(/(\\includegraphics[^\n]*\n\\caption\{)/, "$1The curve of run\\_7 rises fastest. ") }),
      });
      await writePaper({ jobId: "w", runId, ideaId: "lr", idea: lrIdea, round: 0 }, ctx(provider, 1), await localBibliography(DEFAULT_BIBLIOGRAPHY));
    } finally {
      await critic.stop();
    }
    const said = progress.join("\n");
    expect(said).toMatch(/asking the figure critic about the captions of .*\(round 1 of at most 1\)/);
    expect(said).toMatch(/rewriting the caption of \S+\.png: the text about \S+ names run_7 .*there is no such run/);
    const out = join(suite.dir, "out");
    await getDirectory(suite.nats.bus, `${runId}/lr/paper`, out);
    const tex = readFileSync(join(out, "template.tex"), "utf8");
    expect(tex).not.toContain("run\\_7");
    // Only the sentence the critic quoted went; the rest of the caption stays.
    expect(tex).toMatch(/\\caption\{[^}]*for the baseline and each completed run/);
  }, 120_000);
});

describe("the writer, taken over and revising", () => {
  const suite = writerSuite("writer-resume-");

  it("goes on from another writer's sections and citations, then revises every section from the meta-review without searching again", async () => {
    const runId = "writer-resume";
    const idea = lrIdea;
    const { node } = await offlineRun(suite, runId, 1);
    await experiment({ jobId: "e", runId, ideaId: "lr", idea }, node("coder").ctx);
    const bibliography = await localBibliography(DEFAULT_BIBLIOGRAPHY);

    // Node A stops once the body is written, as the introduction, which is drafted from it, is asked for.
    const a = node("writer-a", (task, data) => task === "writer.section" && data.section === "introduction");
    await expect(writePaper({ jobId: "w", runId, ideaId: "lr", idea, round: 0 }, a.ctx, bibliography)).rejects.toThrow();
    expect(a.tasks.filter((t) => t.startsWith("writer.cite")).length).toBeGreaterThan(0);
    const b = node("writer-b");
    const first = await writePaper({ jobId: "w", runId, ideaId: "lr", idea, round: 0 }, b.ctx, bibliography);
    expect(b.progress[0]).toBe('going on with the paper from "drafting", where another writer stopped');
    // Only what was left: the sections drafted from the body, which were under way when node A stopped.
    const framing = SECTIONS.filter((s) => SECTION_NEEDS[s].length > 0);
    expect(framing.length).toBeGreaterThan(0);
    expect(b.tasks.filter((t) => t.startsWith("writer.section") || t.startsWith("writer.cite")).sort()).toEqual(framing.map((s) => `writer.section ${s}`).sort());
    const out = join(suite.dir, "out");
    await getDirectory(suite.nats.bus, `${runId}/lr/paper`, out);
    const tex = readFileSync(join(out, "template.tex"), "utf8");
    const paper = JSON.parse(readFileSync(join(out, "sections.json"), "utf8")) as { sections: Record<string, string>; citations: { key: string; bibtex: string }[] };
    // The results written on node A are in the paper node B finished, with the citations node A chose.
    expect(a.progress).toContain("wrote the results");
    expect(tex).toContain(paper.sections.results!.trim());
    expect(paper.citations.length).toBeGreaterThan(0);
    for (const c of paper.citations) expect(tex).toContain(c.bibtex);
    expect(first.pdf).toBe(`${runId}/lr/paper/lr.pdf`);

    const c = node("writer-c");
    const revised = await writePaper({ jobId: "w1", runId, ideaId: "lr", idea, round: 1, metaReview: "Main concerns: one dataset only. Decision: Reject" }, c.ctx, bibliography);
    expect(c.tasks.filter((t) => !t.startsWith("writer.refine")).sort()).toEqual(SECTIONS.map((s) => `writer.revise ${s}`).sort());
    const revisedTex = new TextDecoder().decode(await getArtifact(suite.nats.bus, revised.tex));
    expect(revisedTex).toMatch(/In revision, after review: the reviewers' main concerns were these\. one dataset only\./);
    for (const cite of paper.citations) expect(revisedTex).toContain(cite.bibtex);
  }, 180_000);
});

describe("the cite job, beside the experiments", () => {
  const suite = writerSuite("writer-cite-");

  it("finds the citations from the idea alone; the paper then cites them without searching, and a failed search still yields a paper", async () => {
    const runId = "writer-cite";
    const idea = lrIdea;
    const { node } = await offlineRun(suite, runId, 0);
    const bibliography = await localBibliography(DEFAULT_BIBLIOGRAPHY);

    // Before any experiment: the search needs only the idea.
    const citer = node("citer");
    const { citations } = await citePaper({ jobId: "c", runId, ideaId: "lr", idea }, citer.ctx, bibliography);
    expect(citations.length).toBeGreaterThan(0);
    expect(citer.tasks.every((t) => t.startsWith("writer.cite"))).toBe(true);

    const down: LiteratureSource = {
      name: "down",
      search: async () => {
        throw new LiteratureError("Semantic Scholar is unreachable", "Semantic Scholar", undefined, { reason: "unreachable" });
      },
    };
    const failing = node("failing");
    // The client has waited the outage out already: the job ends with no citations, and is not tried again.
    await expect(citePaper({ jobId: "c2", runId, ideaId: "lr", idea }, failing.ctx, down)).resolves.toEqual({ citations: [] });
    expect(failing.progress).toContain("the citation search failed: Semantic Scholar is unreachable; the paper will cite only the template's own references");

    await experiment({ jobId: "e", runId, ideaId: "lr", idea }, node("coder").ctx);
    const writer = node("writer");
    const paper = await writePaper({ jobId: "w", runId, ideaId: "lr", idea, round: 0, citations }, writer.ctx, down);
    expect(writer.tasks.filter((t) => t.startsWith("writer.cite"))).toEqual([]);
    const tex = new TextDecoder().decode(await getArtifact(suite.nats.bus, paper.tex));
    for (const c of citations) expect(tex).toContain(c.bibtex);
    expect(tex).toMatch(new RegExp(`\\\\cite[tp]?\\{${citations[0]!.key}\\}`));

    // After a failed search the paper is written with the template's own references, and says so.
    const plain = node("plain");
    const again = await writePaper({ jobId: "w2", runId, ideaId: "lr", idea, round: 0, citations: [] }, plain.ctx, down);
    expect(again.pdf).toMatch(/lr\.pdf$/);
    expect(plain.tasks.filter((t) => t.startsWith("writer.cite"))).toEqual([]);
    expect(plain.progress).toContain("no citations from the literature search: the paper cites only the template's own references");
  }, 180_000);
});

describe("npm run claims", () => {
  it("fails a paper with one number changed by hand, naming that number", async () => {
    const out = mkdtempSync(join(tmpdir(), "claims-cli-"));
    try {
      const res = await runScript("swarm", ["--out", out]);
      expect(res.exitCode, res.all).toBe(0);
      const runId = /^Run (\S+) on template/m.exec(res.all ?? "")![1]!;
      const { ideaId } = JSON.parse(readFileSync(join(out, runId, "ideas.json"), "utf8")).ideas[0];
      const idea = join(out, runId, ideaId);
      const good = await runScript("claims", [idea]);
      expect(good.exitCode, good.all).toBe(0);
      expect(good.all).toMatch(/(\d+) of \1 numbers trace to run artifacts/);

      const texPath = join(idea, "paper", "template.tex");
      const tex = readFileSync(texPath, "utf8");
      const info = JSON.parse(readFileSync(join(idea, "run_1", "final_info.json"), "utf8"));
      const real = (Object.values(info)[0] as { means: { test_accuracy: number } }).means.test_accuracy.toFixed(4);
      expect(tex).toContain(real);
      const forged = (Number(real) + 0.0123).toFixed(4);
      mkdirSync(join(idea, "forged", "paper"), { recursive: true });
      for (const f of ["notes.txt", "runs.json"]) copyFileSync(join(idea, f), join(idea, "forged", f));
      for (const r of ["run_0", "run_1", "run_2"]) {
        mkdirSync(join(idea, "forged", r), { recursive: true });
        copyFileSync(join(idea, r, "final_info.json"), join(idea, "forged", r, "final_info.json"));
      }
      writeFileSync(join(idea, "forged", "paper", "template.tex"), tex.replace(real, forged));
      const bad = await runScript("claims", [join(idea, "forged")]);
      expect(bad.exitCode).toBe(1);
      expect(bad.all).toContain(`✗ ${forged} (table) matches no run artifact`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
