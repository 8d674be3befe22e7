import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { openAlex, plainText, rebuildAbstract, type OpenAlexOptions } from "../agents/literature/openAlex.js";
import { KeyRegistry } from "../agents/literature/bibtexKey.js";
import { LiteratureError } from "../agents/literature/errors.js";
import { parseBibliography } from "../agents/tools/bibliography.js";
import { invertedIndex, startFakeOpenAlex, type FakeLiteratureServer, type FakePaper } from "./helpers/fakeLiterature.js";

const log = pino({ level: "silent" });
const retry = { attempts: 4, baseMs: 10, maxMs: 2000 };

const DROPOUT: FakePaper = {
  title: "Dropout: a simple way to prevent neural networks from overfitting",
  authors: ["Nitish Srivastava", "Geoffrey E. Hinton", "Alex Krizhevsky"],
  year: 2014,
  venue: "Journal of Machine Learning Research",
  abstract: "Deep neural nets with a large number of parameters are very powerful machine learning systems. However, overfitting is a serious problem in such networks.",
  citations: 35000,
  doi: "10.5555/2627435.2670313",
};
const HTML_TITLE: FakePaper = {
  title: "Dropout in <i>E. coli</i> models &amp; <sub>2</sub> others",
  authors: ["Ana Núñez"],
  year: null,
  venue: null,
};
const MANY: FakePaper[] = Array.from({ length: 230 }, (_, i) => ({ title: `Regularization note ${i}`, authors: [`Reg ${i} Ularizer`], year: 2010 }));

let server: FakeLiteratureServer;
beforeAll(async () => {
  server = await startFakeOpenAlex([DROPOUT, HTML_TITLE, ...MANY]);
});
afterAll(() => server?.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script = [];
  vi.stubEnv("OPENALEX_MAILTO", "");
  vi.stubEnv("OPENALEX_API_KEY", "");
});

function oa(extra: Partial<OpenAlexOptions> = {}) {
  return openAlex({ baseUrl: server.url, log, retry, keys: new KeyRegistry(), ...extra });
}

describe("OpenAlex", () => {
  it("maps a work: display_name, authorships, year, source as venue, citations, DOI as url, BibTeX", async () => {
    const [hit] = await oa({ mailto: "swarm@example.org" }).search("dropout overfitting", 1);
    expect(hit).toEqual({
      key: "srivastava2014dropout",
      title: DROPOUT.title,
      authors: DROPOUT.authors,
      year: 2014,
      venue: "Journal of Machine Learning Research",
      citations: 35000,
      url: "https://doi.org/10.5555/2627435.2670313",
      abstract: DROPOUT.abstract,
      bibtex: [
        "@article{srivastava2014dropout,",
        "  title = {{Dropout: a simple way to prevent neural networks from overfitting}},",
        "  author = {Srivastava, Nitish and Hinton, Geoffrey E. and Krizhevsky, Alex},",
        "  journal = {Journal of Machine Learning Research},",
        "  year = {2014},",
        "  doi = {10.5555/2627435.2670313},",
        "}",
      ].join("\n"),
    });
    const params = Object.fromEntries(server.requests[0]!.params);
    expect(params).toMatchObject({ search: "dropout overfitting", "per-page": "1", page: "1", mailto: "swarm@example.org" });
    expect(params.select!.split(",")).toEqual(expect.arrayContaining(["display_name", "authorships", "primary_location", "abstract_inverted_index"]));
    expect(params).not.toHaveProperty("api_key");
  });

  it("rebuilds the abstract from the inverted index in position order", () => {
    expect(rebuildAbstract({ world: [1, 3], hello: [0], "again,": [2] })).toBe("hello world again, world");
    expect(rebuildAbstract(invertedIndex(DROPOUT.abstract!))).toBe(DROPOUT.abstract);
    expect(rebuildAbstract({})).toBe("");
  });

  it("strips the publishers' HTML from titles and leaves a work without venue or year a @misc", async () => {
    expect(plainText("A <scp>Study</scp> of <i>E. coli</i> &amp; H<sub>2</sub>O &#x3B1;")).toBe("A Study of E. coli & H2O α");
    const hits = await oa().search("dropout", 5);
    const html = hits.find((h) => h.title.includes("coli"))!;
    expect(html).toMatchObject({ title: "Dropout in E. coli models & 2 others", authors: ["Ana Núñez"], key: "nunezdropout" });
    expect(html).not.toHaveProperty("year");
    expect(html).not.toHaveProperty("venue");
    expect(html).not.toHaveProperty("abstract");
    expect(html.url).toMatch(/^https:\/\/openalex\.org\/W\d+$/);
    expect(html.bibtex).toContain("@misc{nunezdropout,");
    expect(html.bibtex).toContain("title = {{Dropout in E. coli models \\& 2 others}}");
    expect(html.bibtex).toContain("author = {N{\\'{u}}{\\~{n}}ez, Ana}");
    expect(html.bibtex).toContain(`url = {${html.url}}`);
    expect(parseBibliography(html.bibtex)[0]).toMatchObject({ key: "nunezdropout", authors: ["Ana Núñez"], title: "Dropout in E. coli models & 2 others" });
  });

  it("pages with one page size until the limit or the end", async () => {
    const hits = await oa().search("regularization note", 250);
    expect(hits).toHaveLength(230);
    expect(server.requests.map((r) => [r.params.get("page"), r.params.get("per-page")])).toEqual([["1", "200"], ["2", "200"]]);
    expect(new Set(hits.map((h) => h.key)).size).toBe(230);

    server.requests.length = 0;
    expect(await oa().search("regularization note", 7)).toHaveLength(7);
    expect(server.requests).toHaveLength(1);
  });

  it("answers [] when nothing matches", async () => {
    expect(await oa().search("zzzz qqqq", 10)).toEqual([]);
    expect(server.requests).toHaveLength(1);
  });

  it("retries a 500 and succeeds, reporting the wait", async () => {
    server.script = [{ status: 500 }];
    const waits: string[] = [];
    const [hit] = await oa({ onWait: (why) => waits.push(why) }).search("dropout overfitting", 1);
    expect(hit!.key).toBe("srivastava2014dropout");
    expect(server.requests).toHaveLength(2);
    expect(waits).toEqual([expect.stringMatching(/^OpenAlex answered 500 \(server error\); waiting \d\.\d s before trying again/)]);
  });

  it("sends the API key, and fails with a LiteratureError that says how to get one", async () => {
    await oa({ apiKey: "oa-key" }).search("dropout", 1);
    expect(server.requests[0]!.params.get("api_key")).toBe("oa-key");
    // Rate limits are waited out until the bound, however many tries that takes.
    server.script = Array.from({ length: 100 }, () => ({ status: 429 }));
    const err = (await oa({ maxWaitMs: 100 }).search("dropout", 1).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.reason).toBe("rate-limited");
    expect(err.message).toMatch(/^OpenAlex search for "dropout" gave up (after \d\.\d s of rate limiting|without waiting) \(it answered 429 \(rate limit\)/);
    expect(err.message).toMatch(/the --literature-wait bound of 0\.1 s$/);
    expect(err.hint).toMatch(/--literature-wait/);
    expect(err.hint).toMatch(/OPENALEX_API_KEY/);
  });

  it("rejects a body that is not OpenAlex's, without retrying", async () => {
    server.script = [{ status: 200, body: { results: "nope" } }];
    const err = (await oa().search("dropout", 1).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.message).toMatch(/answered with an unexpected body \(meta: .*; results: /);
    expect(server.requests).toHaveLength(1);
  });
});
