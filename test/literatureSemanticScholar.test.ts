import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { parseBibliography } from "../agents/tools/bibliography.js";
import { semanticScholar, type SemanticScholarOptions } from "../agents/literature/semanticScholar.js";
import { WaitBudget } from "../agents/literature/http.js";
import { BIBTEX_KEY, KeyRegistry } from "../agents/literature/bibtexKey.js";
import { LiteratureError } from "../agents/literature/errors.js";
import { startFakeSemanticScholar, type FakeLiteratureServer, type FakePaper } from "./helpers/fakeLiterature.js";

const log = pino({ level: "silent" });
const retry = { attempts: 4, baseMs: 10, maxMs: 2000 };

const ATTENTION: FakePaper = {
  title: "Attention Is All You Need",
  authors: ["Ashish Vaswani", "Noam M. Shazeer", "Niki Parmar"],
  year: 2017,
  venue: "Neural Information Processing Systems",
  abstract: "The dominant sequence transduction models are based on complex recurrent networks.",
  citations: 120000,
  arxiv: "1706.03762",
};
const SPARSE: FakePaper[] = [
  { title: "Sparse transformers without a venue", authors: [], year: null, venue: null, abstract: null, bibtex: null },
  { title: "Sparse attention & friends: 100% of the_rest", authors: ["Zoë Ōkubo"], year: 2021, venue: "", bibtex: null },
];
const MANY: FakePaper[] = Array.from({ length: 130 }, (_, i) => ({
  title: `Scaling study number ${i + 1}`,
  authors: [`Author${i} Scaler`],
  year: 2000 + (i % 20),
  venue: i % 2 ? "ICML" : null,
}));

let server: FakeLiteratureServer;
beforeAll(async () => {
  server = await startFakeSemanticScholar([ATTENTION, ...SPARSE, ...MANY], { apiKey: "s2-test-key" });
});
afterAll(() => server?.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script = [];
  // The tests say whether there is a key; the machine running them must not.
  vi.stubEnv("S2_API_KEY", "");
  vi.stubEnv("S2_API_URL", "");
});

function s2(extra: Partial<SemanticScholarOptions> = {}) {
  return semanticScholar({ baseUrl: `${server.url}/graph/v1`, log, retry, minIntervalMs: 0, keys: new KeyRegistry(), ...extra });
}

describe("Semantic Scholar", () => {
  it("maps a paper's fields and rewrites S2's BibTeX to our key and a real entry type", async () => {
    const [hit, ...rest] = await s2().search("attention is all you need", 5);
    expect(rest.filter((h) => h.title === ATTENTION.title)).toHaveLength(0);
    expect(hit).toMatchObject({
      key: "vaswani2017attention",
      title: "Attention Is All You Need",
      authors: ["Ashish Vaswani", "Noam M. Shazeer", "Niki Parmar"],
      year: 2017,
      venue: "Neural Information Processing Systems",
      citations: 120000,
      abstract: ATTENTION.abstract,
    });
    expect(hit!.url).toMatch(/^https:\/\/www\.semanticscholar\.org\/paper\/[0-9a-f]{40}$/);
    // S2 writes `@['JournalArticle', 'Conference']{Vaswani2017AttentionIA,`; BibTeX cannot read that.
    expect(hit!.bibtex.startsWith("@inproceedings{vaswani2017attention,\n")).toBe(true);
    expect(hit!.bibtex).toContain("author = {Vaswani, Ashish and Shazeer, Noam M. and Parmar, Niki}");
    expect(hit!.bibtex).toContain("title = {{Attention Is All You Need}}");
    expect(hit!.bibtex).toContain("url = {https://arxiv.org/abs/1706.03762}");
    const [entry] = parseBibliography(hit!.bibtex);
    expect(entry).toMatchObject({ key: hit!.key, type: "inproceedings", year: 2017, venue: "Neural Information Processing Systems" });

    const [request] = server.requests;
    expect(request!.path).toBe("/graph/v1/paper/search");
    expect(Object.fromEntries(request!.params)).toEqual({
      query: "attention is all you need",
      limit: "5",
      offset: "0",
      fields: "title,authors,venue,year,abstract,citationCount,url,externalIds,citationStyles",
    });
    expect(request!.headers["x-api-key"]).toBeUndefined();
  });

  it("follows next across pages until the limit, and stops where the results end", async () => {
    const hits = await s2().search("scaling study", 120);
    expect(hits).toHaveLength(120);
    expect(server.requests.map((r) => [r.params.get("offset"), r.params.get("limit")])).toEqual([["0", "100"], ["100", "20"]]);
    expect(new Set(hits.map((h) => h.key)).size).toBe(120);

    server.requests.length = 0;
    const all = await s2().search("scaling study", 500);
    expect(all).toHaveLength(130);
    // The second page is the last: no `next`, so no third request.
    expect(server.requests.map((r) => r.params.get("offset"))).toEqual(["0", "100"]);
  });

  it("gives valid hits for papers with no authors, venue, year, abstract or citationStyles", async () => {
    const hits = await s2().search("sparse", 10);
    expect(hits).toHaveLength(2);
    const [bare, odd] = hits;
    expect(bare).toEqual({
      key: "anonsparse",
      title: "Sparse transformers without a venue",
      authors: [],
      citations: 0,
      url: expect.stringMatching(/^https:\/\/www\.semanticscholar\.org\/paper\//),
      bibtex: expect.stringMatching(/^@misc\{anonsparse,\n/),
    });
    expect(odd).toMatchObject({ key: "okubo2021sparse", authors: ["Zoë Ōkubo"], year: 2021 });
    expect(odd).not.toHaveProperty("venue");
    expect(odd!.bibtex).toContain("title = {{Sparse attention \\& friends: 100\\% of the\\_rest}}");
    expect(odd!.bibtex).toContain('author = {{\\={O}}kubo, Zo{\\"{e}}}');
    for (const hit of hits) {
      expect(hit.key).toMatch(BIBTEX_KEY);
      expect(parseBibliography(hit.bibtex).map((e) => e.key)).toEqual([hit.key]);
    }
  });

  it("answers [] when nothing matches (S2 then leaves out data)", async () => {
    expect(await s2().search("zzzz qqqq", 10)).toEqual([]);
    expect(server.requests).toHaveLength(1);
  });

  it("retries a 500 and succeeds", async () => {
    server.script = [{ status: 500 }];
    const waits: string[] = [];
    const hits = await s2({ onWait: (why) => waits.push(why) }).search("attention", 3);
    expect(hits[0]!.title).toBe(ATTENTION.title);
    expect(server.requests).toHaveLength(2);
    expect(waits).toEqual([expect.stringMatching(/^Semantic Scholar answered 500 \(server error\); waiting \d\.\d s before trying again \(attempt 2 of 4; waited 0\.0 s of at most 300 s\)$/)]);
  });

  it("waits out a storm of 429s as Retry-After asks, says so, and then succeeds", async () => {
    server.script = [
      { status: 429, headers: { "retry-after": "1" } },
      { status: 429, headers: { "retry-after": "0" } },
      { status: 429 },
    ];
    const waits: { why: string; ms: number }[] = [];
    const hits = await s2({ onWait: (why, ms) => waits.push({ why, ms }) }).search("attention", 3);
    expect(hits[0]!.key).toBe("vaswani2017attention");
    expect(server.requests).toHaveLength(4);
    expect(waits.map((w) => w.why)).toEqual([
      expect.stringMatching(/^Semantic Scholar answered 429 \(rate limit\); waiting 1\.\d s as its Retry-After asks \(attempt 2; waited 0\.0 s of at most 300 s\)$/),
      expect.stringMatching(/^Semantic Scholar answered 429 \(rate limit\); waiting 0\.\d s as its Retry-After asks \(attempt 3; waited 1\.\d s of at most 300 s\)$/),
      expect.stringMatching(/^Semantic Scholar answered 429 \(rate limit\); waiting 0\.\d s before trying again \(attempt 4; waited 1\.\d s of at most 300 s\)$/),
    ]);
    expect(waits[0]!.ms).toBeGreaterThanOrEqual(1000);
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1000);
  });

  it("gives up on 500s after the policy's attempts, saying what kind of failure it was", async () => {
    server.script = Array.from({ length: 4 }, () => ({ status: 500 }));
    const err = await s2().search("attention", 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LiteratureError);
    const e = err as LiteratureError;
    expect(e.status).toBe(500);
    expect(e.reason).toBe("server-error");
    expect(e.service).toBe("Semantic Scholar");
    expect(e.message).toMatch(/^Semantic Scholar search for "attention" failed \(4 attempts\): answered 500 \(server error\)/);
    expect(e.hint).toMatch(/S2_API_KEY/);
    expect(e.hint).toMatch(/--literature openalex/);
    expect(server.requests).toHaveLength(4);
  });

  it("does not retry a 400, and reports the service's own message", async () => {
    server.script = [{ status: 400, body: { error: "Unrecognized or unsupported fields: [foo]" } }];
    const err = (await s2().search("attention", 3).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.message).toContain("answered 400: Unrecognized or unsupported fields: [foo]");
    expect(server.requests).toHaveLength(1);
  });

  it("stops waiting when the search is cancelled, with the cancellation rather than a LiteratureError", async () => {
    server.script = [{ status: 429, headers: { "retry-after": "30" } }];
    const controller = new AbortController();
    setTimeout(() => controller.abort(new DOMException("stop", "AbortError")), 50);
    const started = Date.now();
    const err = await s2({ retry: { attempts: 4, baseMs: 10, maxMs: 60_000 } }).search("attention", 3, controller.signal).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(LiteratureError);
    expect((err as Error).name).toBe("AbortError");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("keeps requests at least the interval apart without a key", async () => {
    const interval = 250;
    const source = s2({ minIntervalMs: interval });
    const started = Date.now();
    await source.search("attention", 1);
    await source.search("attention", 1);
    await source.search("attention", 1);
    // Arrival times at the server carry connection set-up jitter; unpaced, the gaps would be about 1 ms.
    const [a, b, c] = server.requests.map((r) => r.at);
    expect(b! - a!).toBeGreaterThanOrEqual(interval - 50);
    expect(c! - b!).toBeGreaterThanOrEqual(interval - 50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * interval - 5);
  });

  it("sends the API key as x-api-key, and then does not pace", async () => {
    const source = s2({ apiKey: "s2-test-key", minIntervalMs: 5000 });
    const started = Date.now();
    await source.search("attention", 1);
    await source.search("attention", 1);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(server.requests.map((r) => r.headers["x-api-key"])).toEqual(["s2-test-key", "s2-test-key"]);

    vi.stubEnv("S2_API_KEY", "s2-test-key");
    await s2({ minIntervalMs: 5000 }).search("attention", 1);
    expect(server.requests.at(-1)!.headers["x-api-key"]).toBe("s2-test-key");
  });

  it("says a refused key is the key's fault", async () => {
    const err = (await s2({ apiKey: "wrong" }).search("attention", 1).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.status).toBe(403);
    expect(err.hint).toMatch(/check S2_API_KEY/);
  });
});

describe("the wait bound", () => {
  it("adds up waits, allows one that reaches the bound exactly, and is cleared by an answer", () => {
    const budget = new WaitBudget(1000);
    expect(budget.allows(1000)).toBe(true);
    expect(budget.allows(1001)).toBe(false);
    budget.spend(600);
    expect(budget.waitedMs).toBe(600);
    expect(budget.allows(400)).toBe(true);
    expect(budget.allows(401)).toBe(false);
    budget.spend(400);
    expect(budget.allows(0)).toBe(true);
    expect(budget.allows(1)).toBe(false);
    budget.clear();
    expect(budget.waitedMs).toBe(0);
    expect(budget.allows(1000)).toBe(true);
  });

  it("waits out 429s past the retry count while the bound lasts, says how much of it is used, then gives up saying how to raise it", async () => {
    // Retry-After: 0 asks for no wait; the jitter makes each one under 250 ms, so 600 ms take at least two.
    server.script = Array.from({ length: 100 }, () => ({ status: 429, headers: { "retry-after": "0" } }));
    const waits: { why: string; ms: number }[] = [];
    const source = s2({ retry: { attempts: 2, baseMs: 10, maxMs: 2000 }, maxWaitMs: 600, onWait: (why, ms) => waits.push({ why, ms }) });
    const err = (await source.search("attention", 3).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.reason).toBe("rate-limited");
    expect(err.status).toBe(429);
    expect(err.message).toMatch(
      /^Semantic Scholar search for "attention" gave up after \d\.\d s of rate limiting \(it answered 429 \(rate limit\): Too Many Requests.*\): waiting \d\.\d s more would pass the --literature-wait bound of 0\.6 s$/,
    );
    expect(err.hint).toMatch(/^Wait longer with --literature-wait <seconds> \(now 0\.6\), or: Set S2_API_KEY/);
    // More tries than the policy's two: the bound, not the count, governs rate limits.
    expect(server.requests.length).toBeGreaterThan(2);
    expect(server.requests).toHaveLength(waits.length + 1);
    const waited = waits.reduce((sum, w) => sum + w.ms, 0);
    expect(waited).toBeLessThanOrEqual(600);
    expect(waited).toBeGreaterThan(350);
    expect(waits.at(-1)!.why).toMatch(/\(attempt \d+; waited \d\.\d s of at most 0\.6 s\)$/);
  });

  it("is per outage: once spent, each search asks once and gives up; an answer refills it", async () => {
    // Each wait is 400 ms and up to 250 of jitter: one fits in 700 ms, two never do.
    const tooMany = { status: 429, headers: { "retry-after-ms": "400" } };
    server.script = Array.from({ length: 100 }, () => tooMany);
    const waits: string[] = [];
    const source = s2({ maxWaitMs: 700, onWait: (why) => waits.push(why) });
    await expect(source.search("attention", 3)).rejects.toBeInstanceOf(LiteratureError);
    expect(server.requests).toHaveLength(2);
    const asked = server.requests.length;
    const again = (await source.search("attention", 3).catch((e: unknown) => e)) as LiteratureError;
    expect(again.message).toMatch(/gave up after \d\.\d s of rate limiting/);
    expect(server.requests).toHaveLength(asked + 1);

    server.script = [];
    expect((await source.search("attention", 3))[0]!.title).toBe(ATTENTION.title);
    // Had the answer not cleared the 400 ms and more waited before, this wait would not fit.
    server.script = [tooMany];
    expect((await source.search("attention", 3))[0]!.title).toBe(ATTENTION.title);
    expect(server.requests).toHaveLength(asked + 4);
    expect(waits.at(-1)).toMatch(/\(attempt 2; waited 0\.0 s of at most 0\.7 s\)$/);
  });

  it("counts the policy's attempts on other failures only: rate limits between them use none up", async () => {
    const tooMany = { status: 429, headers: { "retry-after-ms": "0" } };
    server.script = [{ status: 500 }, tooMany, tooMany, { status: 500 }, { status: 500 }];
    const waits: string[] = [];
    const hits = await s2({ onWait: (why) => waits.push(why) }).search("attention", 3);
    expect(hits[0]!.title).toBe(ATTENTION.title);
    expect(server.requests).toHaveLength(6);
    expect(waits.at(-1)).toMatch(/^Semantic Scholar answered 500 \(server error\); waiting \d\.\d s before trying again \(attempt 6 of 6; /);
  });

  it("gives up at once, without sleeping, when the server asks for a wait longer than the bound", async () => {
    server.script = [{ status: 429, headers: { "retry-after": "30" } }];
    const started = Date.now();
    const err = (await s2({ retry: { attempts: 4, baseMs: 10, maxMs: 60_000 }, maxWaitMs: 4000 }).search("attention", 3).catch((e: unknown) => e)) as LiteratureError;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.message).toMatch(/gave up without waiting \(it answered 429 .*\): waiting 30\.\d s more would pass the --literature-wait bound of 4 s$/);
    expect(server.requests).toHaveLength(1);
  });
});
