import { fileURLToPath } from "node:url";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../bus/errors.js";
import { loadBibliography, parseBibliography, searchBibliography } from "../agents/tools/bibliography.js";

const SHIPPED = fileURLToPath(new URL("../config/bibliography.bib", import.meta.url));

const SAMPLE = `
Text outside entries is a comment, even with an e-mail like someone@example.org in it.
@string{ jmlr = "Journal of Machine Learning Research" }
@comment{ this {nested} block is skipped }
@preamble{ "\\newcommand{\\noop}[1]{}" }

@Article{srivastava2014dropout,
  title   = {Dropout: A Simple Way to Prevent {Neural Networks} from Overfitting},
  author  = {Srivastava, Nitish and Hinton, Geoffrey and Krizhevsky, Alex},
  journal = jmlr,
  year    = 2014,
  abstract = "Randomly drops units {"so"} that co-adaptation is prevented.",
}

@inproceedings(muller2019when,
  title = "When Does Label " # {Smoothing} # " Help?",
  author = {M{\\"u}ller, Rafael and Kornblith, Simon and {Hinton and Sons}, Geoffrey},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2019},
  doi = {10.5555/example}
)

@misc{no_fields_but_title, title = {Only a title}}
@misc{srivastava2014dropout, title = {A duplicate key, ignored}}
`;

describe("parseBibliography", () => {
  it("parses braces, quotes, concatenation, @string macros and both delimiters", () => {
    const entries = parseBibliography(SAMPLE);
    expect(entries.map((e) => e.key)).toEqual(["srivastava2014dropout", "muller2019when", "no_fields_but_title"]);
    const [dropout, smoothing, bare] = entries;
    expect(dropout).toMatchObject({
      type: "article",
      title: "Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
      authors: ["Nitish Srivastava", "Geoffrey Hinton", "Alex Krizhevsky"],
      year: 2014,
      venue: "Journal of Machine Learning Research",
      abstract: 'Randomly drops units "so" that co-adaptation is prevented.',
    });
    expect(dropout!.bibtex.startsWith("@Article{srivastava2014dropout,")).toBe(true);
    expect(dropout!.bibtex.endsWith("is prevented.\",\n}")).toBe(true);
    expect(smoothing).toMatchObject({
      type: "inproceedings",
      title: "When Does Label Smoothing Help?",
      authors: ["Rafael Müller", "Simon Kornblith", "Geoffrey Hinton and Sons"],
      venue: "Advances in Neural Information Processing Systems",
      url: "https://doi.org/10.5555/example",
    });
    expect(bare).toEqual({
      key: "no_fields_but_title",
      type: "misc",
      title: "Only a title",
      authors: [],
      bibtex: "@misc{no_fields_but_title, title = {Only a title}}",
    });
  });

  it("names the file and line of a syntax error", () => {
    const text = "@article{ok, title = {Fine}}\n\n@article{broken,\n  title = {Never closed,\n  year = 2020\n}\n";
    expect(() => parseBibliography(text, "refs.bib")).toThrow(UserError);
    expect(() => parseBibliography(text, "refs.bib")).toThrow(
      'refs.bib:7: expected "}" but found the end of the file (in the entry that starts at line 3)',
    );
  });

  it("rejects an entry without a title", () => {
    expect(() => parseBibliography("@article{untitled, year = 2020}", "refs.bib")).toThrow(/refs\.bib:1: entry untitled is invalid.*title/);
  });
});

describe("the shipped config/bibliography.bib", () => {
  it("loads with a title, authors, a year, a venue and an abstract for every entry", async () => {
    const entries = await loadBibliography(SHIPPED);
    expect(entries.length).toBeGreaterThanOrEqual(40);
    for (const e of entries) {
      expect(e.authors.length, e.key).toBeGreaterThan(0);
      expect(e.year, e.key).toBeGreaterThan(1900);
      expect(e.venue, e.key).toBeDefined();
      expect(e.abstract, e.key).toBeDefined();
    }
    const names = entries.find((e) => e.key === "arpit2017closer")!.authors;
    expect(names).toContain("Stanisław Jastrzębski");
  });

  it("throws UserError for a file that does not exist", async () => {
    await expect(loadBibliography("/nonexistent/refs.bib")).rejects.toBeInstanceOf(UserError);
  });
});

describe("searchBibliography", () => {
  it("ranks the paper a query is about first", async () => {
    const entries = await loadBibliography(SHIPPED);
    const cases: [string, string][] = [
      ["grokking generalization beyond overfitting small algorithmic datasets", "power2022grokking"],
      ["decoupled weight decay Adam", "loshchilov2019decoupled"],
      ["large batch training sharp minima generalization gap", "keskar2017largebatch"],
      ["label smoothing", "muller2019when"],
      ["lottery ticket sparse subnetworks pruning", "frankle2019lottery"],
      ["two moons synthetic data", "pedregosa2011scikit"],
      ["denoising diffusion probabilistic models", "ho2020denoising"],
    ];
    for (const [query, key] of cases) {
      const hits = searchBibliography(entries, query);
      expect(hits[0]?.entry.key, query).toBe(key);
      expect(hits.length).toBeLessThanOrEqual(5);
      expect(hits.every((h, i) => h.score > 0 && (i === 0 || hits[i - 1]!.score >= h.score))).toBe(true);
    }
  });

  it("respects the limit", async () => {
    const entries = await loadBibliography(SHIPPED);
    expect(searchBibliography(entries, "neural networks training", 2)).toHaveLength(2);
    expect(searchBibliography(entries, "neural networks training", 0)).toEqual([]);
  });

  it("returns nothing for nonsense or stopwords only", async () => {
    const entries = await loadBibliography(SHIPPED);
    expect(searchBibliography(entries, "xyzzy plugh qwertyuiop")).toEqual([]);
    expect(searchBibliography(entries, "the of and with")).toEqual([]);
    expect(searchBibliography(entries, "")).toEqual([]);
  });

  it("reads a bibliography written to disk", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bib-test-"));
    try {
      await writeFile(join(dir, "refs.bib"), SAMPLE);
      const hits = searchBibliography(await loadBibliography(join(dir, "refs.bib")), "overfitting dropout");
      expect(hits.map((h) => h.entry.key)).toEqual(["srivastava2014dropout"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
