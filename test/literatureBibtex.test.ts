import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { compileLatex } from "../agents/tools/latex.js";
import { parseBibliography } from "../agents/tools/bibliography.js";
import { bibtexName, buildBibtex, latexText, rewriteBibtex, setBibtexKey } from "../agents/literature/bibtex.js";
import { BIBTEX_KEY, KeyRegistry, bibtexKey } from "../agents/literature/bibtexKey.js";
import { openAlex } from "../agents/literature/openAlex.js";
import { semanticScholar } from "../agents/literature/semanticScholar.js";
import { startFakeOpenAlex, startFakeSemanticScholar, type FakeLiteratureServer, type FakePaper } from "./helpers/fakeLiterature.js";

const log = pino({ level: "silent" });

describe("bibtexKey", () => {
  it("is last name, year, first significant title word, folded to ASCII", () => {
    expect(bibtexKey({ authors: ["John Smith"], year: 2020, title: "Learning to Learn" })).toBe("smith2020learning");
    expect(bibtexKey({ authors: ["Rafael Müller"], year: 2019, title: "When Does Label Smoothing Help?" })).toBe("muller2019label");
    expect(bibtexKey({ authors: ["Martin Luther King Jr."], year: 1963, title: "The Art of the Dream" })).toBe("king1963art");
    expect(bibtexKey({ authors: ["Srivastava, Nitish"], year: 2014, title: "Dropout: a simple way" })).toBe("srivastava2014dropout");
    expect(bibtexKey({ authors: ["Łukasz Kaiser"], title: "One Model To Learn Them All" })).toBe("kaiserone");
    expect(bibtexKey({ authors: ["Madeleine van Zuylen"], year: 2018, title: "Construction of the Graph" })).toBe("vanzuylen2018construction");
    expect(bibtexKey({ authors: ["王小明"], year: 2022, title: "学习" })).toBe("anon2022");
    expect(bibtexKey({ authors: [], year: 2001, title: "On the" })).toBe("anon2001on");
  });

  it("is made unique against the keys taken, and always valid", () => {
    const taken = new Set(["smith2020learning", "smith2020learning-2"]);
    expect(bibtexKey({ authors: ["Jane Smith"], year: 2020, title: "Learning fast" }, taken)).toBe("smith2020learning-3");
    const keys = new KeyRegistry();
    const a = keys.claim("doi:10.1/a", { authors: ["J. Smith"], year: 2020, title: "Learning" });
    const b = keys.claim("doi:10.1/b", { authors: ["K. Smith"], year: 2020, title: "Learning more" });
    expect([a, b]).toEqual(["smith2020learning", "smith2020learning-2"]);
    // The same paper keeps its key, whichever search found it.
    expect(keys.claim("doi:10.1/a", { authors: ["J. Smith"], year: 2020, title: "Learning" })).toBe(a);
    for (const k of [a, b, bibtexKey({ authors: ["O'Brien-Æsir"], year: 1999, title: "¿Qué? — ¡Sí!" })]) expect(k).toMatch(BIBTEX_KEY);
  });
});

describe("BibTeX text", () => {
  it("escapes LaTeX specials, keeps typesettable UTF-8, maps Greek to math and drops what pdflatex cannot set", () => {
    expect(latexText("R&D at 100% for $5 #1 a_b {x} ~ ^ \\ <>|")).toBe(
      "R\\&D at 100\\% for \\$5 \\#1 a\\_b \\textbraceleft{}x\\textbraceright{} \\textasciitilde{} \\textasciicircum{} \\textbackslash{} \\textless{}\\textgreater{}\\textbar{}",
    );
    expect(latexText("Über naïve café – “quoted”")).toBe("Über naïve café – “quoted”");
    expect(latexText("α-helices ≤ 3 in Łódź and Ąžuolas")).toBe("\\ensuremath{\\alpha}-helices \\ensuremath{\\leq} 3 in Łódź and Ažuolas");
    expect(latexText("深度学习 for ﬁne\u0000 tuning 🤖")).toBe("for fine tuning");
  });

  it("writes names as Last, First with accents as BibTeX special characters", () => {
    expect(bibtexName("Ashish Vaswani")).toBe("Vaswani, Ashish");
    expect(bibtexName("Madeleine van Zuylen")).toBe("van Zuylen, Madeleine");
    expect(bibtexName("Martin Luther King Jr.")).toBe("King, Jr., Martin Luther");
    expect(bibtexName("Rafael Müller")).toBe('M{\\"{u}}ller, Rafael');
    expect(bibtexName("Łukasz Żółw-Ø")).toBe("{\\.{Z}}{\\'{o}}{\\l}w-{\\O}, {\\L}ukasz");
    expect(bibtexName("Nguyễn Íris")).toBe("{\\'{I}}ris, Nguy{\\~{\\^{e}}}n");
    expect(bibtexName("Tom and Jerry")).toBe("{and} Jerry, Tom");
    expect(bibtexName("Plato")).toBe("Plato");
    expect(bibtexName("Hinton, Geoffrey")).toBe("Hinton, Geoffrey");
  });

  it("rewrites S2's BibTeX into a real entry with our key, or gives up on what is not an entry", () => {
    const s2 = "@['JournalArticle', 'Conference']{Ammar2018ConstructionOT,\n author = {Waleed Ammar and Madeleine van Zuylen},\n booktitle = {North American Chapter of the Association for Computational Linguistics},\n journal = {ArXiv},\n title = {Construction of the Literature Graph in Semantic Scholar},\n volume = {abs/1805.02262},\n year = {2018}\n}\n";
    const out = rewriteBibtex(s2, "ammar2018construction", { doi: "10.18653/v1/N18-3011" })!;
    expect(out).toBe(
      [
        "@inproceedings{ammar2018construction,",
        "  title = {{Construction of the Literature Graph in Semantic Scholar}},",
        "  author = {Ammar, Waleed and van Zuylen, Madeleine},",
        "  booktitle = {North American Chapter of the Association for Computational Linguistics},",
        "  volume = {abs/1805.02262},",
        "  year = {2018},",
        "  doi = {10.18653/v1/N18-3011},",
        "}",
      ].join("\n"),
    );
    expect(rewriteBibtex("not bibtex", "k")).toBeUndefined();
    expect(rewriteBibtex("@article{x, title = {unclosed", "k")).toBeUndefined();
    expect(setBibtexKey("@misc{old,\n  title = {{T}},\n}", "new-2")).toBe("@misc{new-2,\n  title = {{T}},\n}");
    const built = buildBibtex({ key: "k", type: "misc", title: "T", authors: [], url: "https://example.org/a%20b" });
    expect(built).toBe("@misc{k,\n  title = {{T}},\n}");
  });
});

/** Titles and names that break BibTeX or pdflatex when written as they come. */
const HOSTILE: FakePaper[] = [
  { title: "Q&A over 100% of C# code_bases: {braces}, ~tildes~ and ^carets^", authors: ["Rafael Müller", "Zoë Ōkubo"], year: 2021, venue: "Journal of R&D", doi: "10.1000/j.rd_2021.001" },
  { title: "Costs in $ and \\backslashes\\ with <angle> brackets | pipes", authors: ["Łukasz Kaiser", "Ægir Þórsson", "Nguyễn Văn An"], year: 2020, venue: null },
  { title: "α-Divergence ≤ KL: 深度学习 and Ąžuolas’ “quotes”", authors: ["Madeleine van Zuylen", "Martin Luther King Jr.", "王小明"], year: 2019, venue: "Transactions on Machine Learning Research" },
  { title: "The Hinton and Sons paper on #hashtags", authors: ["Geoffrey Hinton and Sons"], year: 2018, venue: "arXiv (Cornell University)" },
  { title: "Anonymous notes on Dropout", authors: [], year: null, venue: null },
  // Two papers whose keys would clash.
  { title: "Learning things", authors: ["John Smith"], year: 2020, venue: "ICML" },
  { title: "Learning other things", authors: ["Jane Smith"], year: 2020, venue: "ICML" },
];

let oaServer: FakeLiteratureServer;
let s2Server: FakeLiteratureServer;
let dir: string;
beforeAll(async () => {
  oaServer = await startFakeOpenAlex(HOSTILE);
  s2Server = await startFakeSemanticScholar(HOSTILE);
  dir = await mkdtemp(join(tmpdir(), "literature-bibtex-"));
});
afterAll(async () => {
  await oaServer?.close();
  await s2Server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("BibTeX from the services", () => {
  it("compiles with pdflatex + bibtex, every key cited and none undefined: plainnat with T1 (as the template), abbrv and alpha with OT1", async () => {
    const keys = new KeyRegistry();
    const query = "learning paper notes divergence costs over";
    const fromOpenAlex = await openAlex({ baseUrl: oaServer.url, log, keys }).search(query, 20);
    // S2's own entries (list-typed, nothing escaped) go through the rewrite; one registry keeps keys apart.
    const fromS2 = await semanticScholar({ baseUrl: `${s2Server.url}/graph/v1`, apiKey: "k", log, keys }).search(query, 20);
    expect(fromOpenAlex).toHaveLength(HOSTILE.length);
    expect(fromS2).toHaveLength(HOSTILE.length);
    const hits = [...fromOpenAlex, ...fromS2];
    const citeKeys = hits.map((h) => h.key!);
    expect(citeKeys.every((k) => BIBTEX_KEY.test(k))).toBe(true);
    expect(citeKeys).toContain("smith2020learning");
    expect(citeKeys).toContain("smith2020learning-2");
    // S2 and OpenAlex agree on the key of a paper with a DOI.
    expect(fromS2.find((h) => h.title.startsWith("Q&A"))!.key).toBe(fromOpenAlex.find((h) => h.title.startsWith("Q&A"))!.key);
    const entries = [...new Map(hits.map((h) => [h.key!, h.bibtex])).entries()];
    const bib = entries.map(([, b]) => b).join("\n\n");
    expect(parseBibliography(bib).map((e) => e.key).sort()).toEqual(entries.map(([k]) => k).sort());
    await writeFile(join(dir, "refs.bib"), `${bib}\n`);

    // As the shipped templates do (entries in a filecontents block, as the writer puts them), and a bare
    // preamble (OT1 fonts) with styles that abbreviate names and build labels from them.
    const TEMPLATE = "\\usepackage[T1]{fontenc}\n\\usepackage{times}\n\\usepackage{url}\n\\usepackage[numbers,sort&compress]{natbib}\n\\usepackage{hyperref}";
    const documents = [
      { file: "template.tex", preamble: `${TEMPLATE}\n\\begin{filecontents}{references.bib}\n${bib}\n\\end{filecontents}`, bib: "references", style: "plainnat" },
      { file: "bare.tex", preamble: "\\usepackage{url}", bib: "refs", style: "abbrv" },
      { file: "alpha.tex", preamble: "\\usepackage{url}", bib: "refs", style: "alpha" },
    ];
    for (const { file, preamble, bib: bibFile, style } of documents) {
      const cites = entries.map(([k]) => `\\cite{${k}}`).join(", ");
      await writeFile(
        join(dir, file),
        `\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n${preamble}\n\\begin{document}\nRelated work: ${cites}.\n\\bibliographystyle{${style}}\n\\bibliography{${bibFile}}\n\\end{document}\n`,
      );
      const result = await compileLatex(dir, { mainFile: file });
      expect({ file, errors: result.errors, undefined: result.warnings.filter((w) => /undefined/i.test(w)) }).toEqual({ file, errors: [], undefined: [] });
      expect(result.ok).toBe(true);
    }
  });
});
