import { generationTag } from "../../bus/gates.js";
import { cp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fromPromise } from "xstate";
import { sectionMachine, writerMachine, type Citation, type CitationRef, type PaperParts, type Written } from "../../machines/writer.js";
import type { Idea, Job, JobResult, RunRecord } from "../../bus/schemas.js";
import { Citation as CitationSchema, FigureCritique, RunRecord as RunRecordSchema } from "../../bus/schemas.js";
import { JobFailedError, publishJob } from "../../bus/workQueue.js";
import { awaitOutcome } from "../../bus/outcomes.js";
import { errorOf, failure } from "../../bus/errors.js";
import { paperFigures, plainText, referringSentences, replaceCaption } from "../figureCritic/captions.js";
import { getArtifact, getDirectory, putArtifact, roundPrefix } from "../../bus/artifacts.js";
import { runTemplate } from "../templates.js";
import { compileLatex, texEscape } from "../tools/latex.js";
import { ask } from "../llm/task.js";
import type { AgentContext } from "../runtime/agentContext.js";
import { restoreFrom, runMachine } from "../runtime/runMachine.js";
import type { LiteratureSource } from "../literature/source.js";
import { SEARCH_FIGURE } from "../coder/treeReport.js";
import {
  CHECKLIST, PLACEHOLDERS, SECTIONS, SECTION_NEEDS, SearchSummary, chooseQuery, fixClaims, fixLatex, pickCitations, refineSection, reviseSection, rewriteCaption, writeSection, type Section,
} from "./prompts.js";
import { checkPaper, checkSection } from "./checklist.js";
import { checkClaims, collectFacts, unmatched } from "./claims.js";
import { execa } from "execa";
import { z } from "zod";

/** Keys already in the template's own bibliography block. */
function templateKeys(tex: string): string[] {
  return [...tex.matchAll(/@\w+\s*[{(]\s*([^,\s]+)\s*,/g)].map((m) => m[1]!);
}

/** The end of the brace group that opens at `open` (the index of its `{`), or -1 when it never closes. */
function closingBrace(tex: string, open: number): number {
  let depth = 0;
  for (let i = open; i < tex.length; i++) {
    if (tex[i] === "\\") i++;
    else if (tex[i] === "{") depth++;
    else if (tex[i] === "}" && --depth === 0) return i;
  }
  return -1;
}

/**
 * The template's own scaffolding made safe for this paper: an example figure (a figure environment whose
 * images this idea did not make), with the comment line that introduces it, is removed; the placeholder
 * author block names who wrote the paper instead.
 */
export function stripScaffolding(template: string, opts: { figures: string[]; author: string }): string {
  let tex = template.replace(/(^[ \t]*%[^\n]*\n)?[ \t]*\\begin\{figure\*?\}[\s\S]*?\\end\{figure\*?\}[ \t]*\n?/gm, (block, comment: string | undefined) => {
    const images = [...block.matchAll(/\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}/g)].map((m) => m[1]!);
    const example = /EXAMPLE|FILL IN|PLACEHOLDER/i.test(block);
    if (!example && images.every((f) => opts.figures.includes(f))) return block;
    return comment && !/EXAMPLE|FIGURE/i.test(comment) ? comment : "";
  });
  const at = tex.search(/\\author\s*\{/);
  if (at !== -1) {
    const open = tex.indexOf("{", at);
    const close = closingBrace(tex, open);
    if (close !== -1) tex = `${tex.slice(0, open)}{${opts.author}}${tex.slice(close + 1)}`;
  }
  return tex;
}

/** Fills the template's placeholders and adds the chosen BibTeX entries to its filecontents block. */
export function assemblePaper(template: string, sections: Partial<Record<Section, string>>, bibtex: string[]): string {
  let tex = template;
  for (const section of SECTIONS) {
    const body = sections[section];
    if (body !== undefined) tex = tex.split(PLACEHOLDERS[section]).join(body.trim());
  }
  if (bibtex.length) tex = tex.replace(/\\end\{filecontents\}/, `${bibtex.join("\n\n")}\n\\end{filecontents}`);
  return tex;
}

/** A written paper's sections and the citations chosen for it, kept so that a revision can start from them. */
const PaperSections = z.object({ sections: z.record(z.string(), z.string()), citations: z.array(CitationSchema) });

/** Pages the paper may have, references included. */
export const PAGE_LIMIT = 10;

/** chktex's warnings about unbalanced delimiters and math: the ones that point at real faults. */
const LINT_THAT_MATTERS = new Set([9, 10, 15, 16, 17]);

async function lint(dir: string): Promise<string[]> {
  const res = await execa("chktex", ["-q", "-f", "%n:%l:%m\n", "template.tex"], { cwd: dir, reject: false, timeout: 30_000 });
  if (res.exitCode === undefined || (typeof res.stdout !== "string")) return [];
  return res.stdout
    .split("\n")
    .map((l) => /^(\d+):(\d+):(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && LINT_THAT_MATTERS.has(Number(m[1])))
    .map((m) => `chktex, template.tex:${m[2]}: ${m[3]}`);
}

async function pageCount(pdf: string): Promise<number> {
  const { stdout } = await execa("pdfinfo", [pdf], { timeout: 10_000 });
  return Number(/^Pages:\s+(\d+)/m.exec(stdout)?.[1] ?? 0);
}

/**
 * The writer's literature search, one round per call: the model chooses a query, the search runs, the model
 * picks what to cite from what it returned. Only works the search returned, and not already in the template's
 * bibliography (`known`), can be cited.
 */
function citationSearch(job: { ideaId: string; idea: Idea }, known: Set<string>, literature: LiteratureSource, ctx: AgentContext, say: (text: string) => Promise<void>) {
  const { idea } = job;
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  return fromPromise<{ found: Citation[]; more: boolean }, { round: number; have: CitationRef[] }>(async ({ input }) => {
    const { query } = await ask(ctx.llm, chooseQuery, { idea, round: input.round, have: input.have }, opts);
    if (!query) return { found: [], more: false };
    const hits = (await literature.search(query, 8, ctx.signal)).filter((h) => h.key && !known.has(h.key) && !input.have.some((c) => c.key === h.key));
    const { keys } = await ask(ctx.llm, pickCitations, {
      idea,
      query,
      candidates: hits.map((h) => ({ key: h.key!, title: h.title, authors: h.authors, ...(h.year ? { year: h.year } : {}), ...(h.abstract ? { abstract: h.abstract } : {}) })),
    }, opts);
    const found: Citation[] = hits.filter((h) => keys.includes(h.key!)).map((h) => CitationSchema.parse(h));
    await say(`citations: "${query}" → ${found.map((h) => h.key).join(", ") || "none chosen"}`);
    return { found, more: found.length > 0 };
  });
}

/**
 * The cite job: the writer machine's citation rounds alone, for an idea whose experiments are still running.
 * A search that fails says so, and the job ends with no citations: the paper is written with the template's own
 * references. The job is not tried again: the literature client has waited out the outage as long as the run
 * allows (`--literature-wait`) already, and the paper is not to wait that long five times over.
 */
export async function citePaper(job: Job<"cite">, ctx: AgentContext, literature: LiteratureSource): Promise<JobResult<"cite">> {
  const template = await runTemplate(ctx);
  const known = new Set(templateKeys(await readFile(join(template.dir, "latex", "template.tex"), "utf8")));
  const say = (text: string) => ctx.progress(text, job.ideaId);
  const actorId = `writer.${job.ideaId}${generationTag(job)}.cite`;
  const snapshot = await restoreFrom(ctx, actorId, writerMachine);
  const machine = writerMachine.provide({ actors: { findCitations: citationSearch(job, known, literature, ctx, say) } });
  const out = await runMachine(machine, { sections: [], citeRounds: ctx.config.citeRounds, maxFixes: 0, citeOnly: true }, ctx, { actorId, ideaId: job.ideaId, snapshot });
  if (out.error) {
    // A job being stopped is given back to its queue; only a search that failed ends the job this way.
    ctx.signal.throwIfAborted();
    // The machine's failure reads "the citation search failed: <why>".
    await say(`${out.error.message}; the paper will cite only the template's own references`);
    ctx.log.warn({ failure: out.error }, `${job.ideaId}: ${out.error.message}`);
    return { citations: [] };
  }
  return { citations: out.citations };
}

/** What a tree search's tree.json tells the paper, each node it shows named by its run (tree.json's `runs`). */
function searchSummary(tree: unknown, figures: string[]): SearchSummary {
  const Named = z.array(z.looseObject({ node: z.string() }));
  const parsed = z.object({ seeded: z.boolean(), runs: z.record(z.string(), z.string()), stats: z.looseObject({ chosen: Named, ablations: Named }) }).parse(tree);
  const named = (xs: { node: string }[]) => xs.map((x) => ({ ...x, run: parsed.runs[x.node] ?? x.node }));
  return SearchSummary.parse({
    ...parsed.stats,
    seeded: parsed.seeded,
    chosen: named(parsed.stats.chosen),
    ablations: named(parsed.stats.ablations),
    ...(figures.includes(SEARCH_FIGURE) ? { figure: SEARCH_FIGURE } : {}),
  });
}

/** The folder a paper is built in on this node, every round in the same one; startNode removes it once the job is done. */
export const paperWorkspace = (workRoot: string, job: { runId: string; ideaId: string; jobId: string }) => join(workRoot, job.runId, `${job.ideaId}${generationTag(job)}-paper`);

export async function writePaper(job: Job<"write">, ctx: AgentContext, literature: LiteratureSource): Promise<JobResult<"write">> {
  const template = await runTemplate(ctx);
  const prefix = `${job.runId}/${job.ideaId}`;
  const ws = paperWorkspace(ctx.workRoot, job);
  await rm(ws, { recursive: true, force: true });
  await mkdir(ws, { recursive: true });
  // The writer may run on another machine than the coder: everything it needs comes from the object store.
  await getDirectory(ctx.bus, prefix, ws);
  await rm(join(ws, "paper"), { recursive: true, force: true });
  await cp(join(template.dir, "latex"), join(ws, "latex"), { recursive: true });
  const runs: RunRecord[] = z.array(RunRecordSchema).parse(JSON.parse(new TextDecoder().decode(await getArtifact(ctx.bus, `${prefix}/runs.json`))));
  const notes = await readFile(join(ws, "notes.txt"), "utf8");
  const figures = (await readdir(ws)).filter((x) => x.endsWith(".png")).sort();
  const texTemplate = stripScaffolding(await readFile(join(ws, "latex", "template.tex"), "utf8"), {
    figures,
    author: `scientist-swarm\\thanks{${texEscape(ctx.llm.disclosure)}}`,
  });
  const known = new Set(templateKeys(texTemplate));
  // One actor per round: a revision is never restored from the round before it.
  const actorId = `writer.${job.ideaId}${job.round ? `.r${job.round}` : ""}${generationTag(job)}`;
  const snapshot = await restoreFrom(ctx, actorId, writerMachine);
  // A revision starts from the sections and citations of the version before it.
  const revision = job.round > 0
    ? {
        metaReview: job.metaReview ?? "",
        ...PaperSections.parse(JSON.parse(new TextDecoder().decode(await getArtifact(ctx.bus, `${roundPrefix(job.runId, job.ideaId, job.round - 1)}/paper/sections.json`)))),
      }
    : undefined;
  const opts = { signal: ctx.signal, ideaId: job.ideaId };
  const say = (text: string) => ctx.progress(text, job.ideaId);
  if (snapshot) await say(`going on with the paper from ${JSON.stringify(snapshot.value)}, where another writer stopped`);
  if (!snapshot && !revision && job.citations?.length === 0) await say("no citations from the literature search: the paper cites only the template's own references");
  const search = existsSync(join(ws, "tree.json")) ? searchSummary(JSON.parse(await readFile(join(ws, "tree.json"), "utf8")), figures) : undefined;
  // The figure critic's last word on the coder's figures, when it looked at them.
  const figureCritiques = existsSync(join(ws, "critiques.json"))
    ? z.array(FigureCritique).parse(JSON.parse(await readFile(join(ws, "critiques.json"), "utf8"))).filter((c) => figures.includes(c.figure))
    : [];
  const material = (citations: CitationRef[]) => ({
    task: template.taskDescription, idea: job.idea, runs, notes, figures, citations, disclosure: ctx.llm.disclosure, ...(search ? { search } : {}),
    ...(figureCritiques.length ? { figureCritiques } : {}),
  });
  const texOf = (paper: PaperParts) => assemblePaper(texTemplate, paper.written, paper.bibtex);
  const latexDir = join(ws, "latex");
  const texPath = join(latexDir, "template.tex");
  const pdfPath = join(latexDir, "template.pdf");
  const compileTex = async (tex: string) => {
    await writeFile(texPath, tex);
    await rm(join(latexDir, "references.bib"), { force: true });
    return compileLatex(latexDir, { mainFile: "template.tex", timeoutMs: 60_000, signal: ctx.signal });
  };
  const changed = (sections: { section: Section; latex: string }[]): Written => Object.fromEntries(sections.map((s) => [s.section, s.latex]));

  const machine = writerMachine.provide({
    actors: {
      findCitations: citationSearch(job, known, literature, ctx, say),
      section: sectionMachine.provide({
        actors: {
          writeSection: fromPromise(async ({ input }) => {
            const section = input.section as Section;
            const { latex } = await ask(ctx.llm, writeSection, { ...material(input.citations), section, written: input.written }, opts);
            await say(`wrote the ${section}`);
            return latex;
          }),
          reviseSection: fromPromise(async ({ input }) => {
            const section = input.section as Section;
            // Every section is revised at once, each reading the whole version before, the same for all of them.
            const before = revision?.sections ?? {};
            const { latex } = await ask(ctx.llm, reviseSection, { ...material(input.citations), section, latex: input.latex, metaReview: input.metaReview, before }, opts);
            await say(`revised the ${section}`);
            return latex;
          }),
          checkSection: fromPromise(async ({ input }) => checkSection(input.section, input.latex, { figures, citationKeys: [...known, ...input.citationKeys] })),
          refineSection: fromPromise(async ({ input }) => {
            const section = input.section as Section;
            const { latex } = await ask(ctx.llm, refineSection, { section, latex: input.latex, problems: input.problems, checklist: CHECKLIST }, opts);
            await say(`refined the ${section}: ${input.problems.length} problem${input.problems.length > 1 ? "s" : ""} found by the checklist`);
            return latex;
          }),
        },
      }),
      compile: fromPromise(async ({ input }) => {
        // What LaTeX would only half-report (a missing figure is a warning) is caught before compiling.
        const before = [
          ...Object.entries(input.written).flatMap(([section, latex]) =>
            [...latex.matchAll(/\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}/g)].filter((m) => !figures.includes(m[1]!)).map((m) => `${section}: figure file ${m[1]} does not exist (there are: ${figures.join(", ")})`),
          ),
          ...checkPaper(input.written),
        ];
        if (before.length) {
          await say(`not compiled: ${before.slice(0, 2).join("; ")}`);
          return { ok: false, errors: before };
        }
        const result = await compileTex(texOf(input));
        const errors = result.errors.map((e) => `${e.file ?? "template.tex"}${e.line ? `:${e.line}` : ""}: ${e.message}`);
        errors.push(...result.warnings.filter((w) => /undefined|does not exist|not found/i.test(w)));
        if (result.ok && result.pdfPath) {
          errors.push(...(await lint(latexDir)));
          const pages = await pageCount(result.pdfPath);
          if (pages > PAGE_LIMIT) errors.push(`the paper has ${pages} pages, over the limit of ${PAGE_LIMIT}: shorten it`);
        }
        await say(errors.length ? `LaTeX problems: ${errors.slice(0, 2).join("; ")}` : "the paper compiles");
        return { ok: errors.length === 0, errors };
      }),
      checkClaims: fromPromise(async ({ input }) => {
        const claims = checkClaims(texOf(input), collectFacts(ws));
        await writeFile(join(latexDir, "claims.json"), JSON.stringify(claims, null, 2));
        const missing = unmatched(claims);
        await say(missing.length ? `${missing.length} of ${claims.length} numbers match no run artifact` : `all ${claims.length} numbers trace to run artifacts`);
        return { unmatched: missing.map((c) => `${c.number} in the ${c.where}: "${c.context}"`) };
      }),
      fixClaims: fromPromise(async ({ input }) => {
        await say(`correcting numbers that match no run (attempt ${input.attempt})`);
        const { sections } = await ask(ctx.llm, fixClaims, { unmatched: input.unmatched, sections: input.written, runs, notes }, opts);
        return changed(sections);
      }),
      fixLatex: fromPromise(async ({ input }) => {
        await say(`fixing LaTeX (attempt ${input.attempt})`);
        const { sections } = await ask(ctx.llm, fixLatex, { errors: input.errors, sections: input.written }, opts);
        return changed(sections);
      }),
      // The figures are the coder's, in the object store under the idea's prefix, where the critic reads them.
      critiqueCaptions: fromPromise(async ({ input }) => {
        const inPaper = paperFigures(texOf(input)).filter((f) => figures.includes(f.file));
        if (!inPaper.length) return [];
        const texts = Object.values(input.written);
        const jobId = `${job.jobId}.captions.${input.round}`;
        await say(`asking the figure critic about the captions of ${inPaper.map((f) => f.file).join(", ")} (round ${input.round + 1} of at most ${ctx.config.figureRounds})`);
        await publishJob(ctx.bus, "figures", {
          jobId, runId: job.runId, ideaId: job.ideaId, round: input.round,
          figures: inPaper.map((f) => ({ name: f.file, caption: plainText(f.caption), references: referringSentences(texts, f.label).map(plainText) })),
          runs: runs.map((r) => ({ run: r.run, description: r.description, ok: r.ok })),
        });
        const outcome = await awaitOutcome(ctx.bus, job.runId, "figures", jobId, { signal: ctx.signal, log: ctx.log });
        if (!outcome.ok) throw errorOf(outcome.failure);
        // Only what a caption can mend: a figure's own faults went back to the coder's plot already.
        return outcome.result.critiques.flatMap((c) => {
          const problems = c.problems.filter((p) => p.kind === "caption-claims" || p.kind === "missing-data");
          const figure = inPaper.find((f) => f.file === c.figure);
          return problems.length && figure ? [{ figure: c.figure, caption: figure.caption, shows: c.shows, problems }] : [];
        });
      }),
      recaption: fromPromise(async ({ input }) => {
        let written = input.written;
        for (const flagged of input.flagged) {
          await say(`rewriting the caption of ${flagged.figure}: ${flagged.problems.map((p) => p.detail).join("; ").slice(0, 300)}`);
          const { caption } = await ask(ctx.llm, rewriteCaption, { ...flagged, runs }, opts);
          written = Object.fromEntries(Object.entries(written).map(([section, latex]) => [section, replaceCaption(latex, flagged.figure, caption)]));
        }
        return Object.fromEntries(Object.entries(written).filter(([section, latex]) => latex !== input.written[section]));
      }),
    },
  });

  const input = {
    sections: [...SECTIONS], needs: SECTION_NEEDS, citeRounds: ctx.config.citeRounds, maxFixes: ctx.config.maxFixes, revision, figureRounds: ctx.config.figureRounds,
    ...(job.citations && !revision ? { citations: job.citations } : {}),
  };
  const out = await runMachine(machine, input, ctx, {
    actorId, ideaId: job.ideaId, snapshot,
  });
  // The paper as the machine ended with it, assembled from its context.
  const tex = texOf({ written: out.written, bibtex: out.citations.map((c) => c.bibtex) });
  const paper = `${roundPrefix(job.runId, job.ideaId, job.round)}/paper`;
  const claimsFile = join(latexDir, "claims.json");
  if (existsSync(claimsFile)) await putArtifact(ctx.bus, `${paper}/claims.json`, await readFile(claimsFile));
  await putArtifact(ctx.bus, `${paper}/sections.json`, JSON.stringify({ sections: out.written, citations: out.citations }, null, 2));
  if (out.error) {
    await putArtifact(ctx.bus, `${paper}/template.tex`, tex).catch(() => undefined);
    throw new JobFailedError(`the paper for ${job.ideaId}${job.round ? ` (revision ${job.round})` : ""} failed: ${out.error.message}`, out.error);
  }
  // A job taken over after its compile step has the TeX that compiled, but its PDF stayed with the writer that stopped.
  if (!existsSync(pdfPath) && !(await compileTex(tex)).ok) {
    const message = `the paper for ${job.ideaId} compiled on the writer that stopped, and not on ${ctx.by.node}`;
    throw new JobFailedError(message, failure("environment", message, { hint: "install the same TeX packages on every writer node" }));
  }
  const pdf = `${paper}/${job.ideaId}.pdf`;
  await putArtifact(ctx.bus, pdf, await readFile(pdfPath));
  await putArtifact(ctx.bus, `${paper}/template.tex`, tex);
  await say(`paper ready: ${pdf}`);
  return { pdf, tex: `${paper}/template.tex` };
}
