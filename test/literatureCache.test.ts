import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { UserError } from "../bus/errors.js";
import { CacheFile, cachedSource } from "../agents/literature/cache.js";
import { chooseLiterature, withFallback, type LiteratureKind } from "../agents/literature/fallback.js";
import { KeyRegistry } from "../agents/literature/bibtexKey.js";
import { LiteratureError } from "../agents/literature/errors.js";
import { openAlex } from "../agents/literature/openAlex.js";
import { semanticScholar } from "../agents/literature/semanticScholar.js";
import { startFakeOpenAlex, startFakeSemanticScholar, type FakeLiteratureServer, type FakePaper } from "./helpers/fakeLiterature.js";

const log = pino({ level: "silent" });
const retry = { attempts: 3, baseMs: 10, maxMs: 2000 };
const PAPERS: FakePaper[] = [
  { title: "Grokking: generalization beyond overfitting on small algorithmic datasets", authors: ["Alethea Power", "Yuri Burda"], year: 2022, venue: "arXiv", doi: "10.48550/arXiv.2201.02177" },
  { title: "Omnigrok: grokking beyond algorithmic data", authors: ["Ziming Liu", "Eric J. Michaud", "Max Tegmark"], year: 2022, venue: "ICLR" },
];

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: { msg: string; level: number }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)) as { msg: string; level: number });
      done();
    },
  });
  return { log: pino({ level: "warn" }, stream), lines };
}

let oaServer: FakeLiteratureServer;
let s2Server: FakeLiteratureServer;
let dir: string;
beforeAll(async () => {
  oaServer = await startFakeOpenAlex(PAPERS);
  s2Server = await startFakeSemanticScholar(PAPERS);
});
afterAll(async () => {
  await oaServer?.close();
  await s2Server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  for (const s of [oaServer, s2Server]) {
    s.requests.length = 0;
    s.script = [];
  }
  vi.stubEnv("S2_API_KEY", "");
  vi.stubEnv("OPENALEX_API_KEY", "");
  vi.stubEnv("OPENALEX_MAILTO", "");
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = await mkdtemp(join(tmpdir(), "literature-cache-"));
});

const oa = () => openAlex({ baseUrl: oaServer.url, log, retry, keys: new KeyRegistry() });
const s2 = (maxWaitMs?: number) =>
  semanticScholar({ baseUrl: `${s2Server.url}/graph/v1`, log, retry, minIntervalMs: 0, keys: new KeyRegistry(), ...(maxWaitMs ? { maxWaitMs } : {}) });

describe("cachedSource", () => {
  it("answers a query it has seen from disk, with no request, in this run and the next", async () => {
    const first = await cachedSource(oa(), dir, { keys: new KeyRegistry() }).search("grokking", 5);
    expect(first.map((h) => h.key)).toEqual(["power2022grokking", "liu2022omnigrok"]);
    expect(oaServer.requests).toHaveLength(1);

    // Another run: a new source and a new registry, the same directory.
    const again = await cachedSource(oa(), dir, { keys: new KeyRegistry() }).search("  grokking ", 5);
    expect(again).toEqual(first);
    expect(oaServer.requests).toHaveLength(1);

    // Another limit is another question.
    await cachedSource(oa(), dir).search("grokking", 1);
    expect(oaServer.requests).toHaveLength(2);

    const files = (await readdir(dir)).filter((f) => f.endsWith(".json"));
    expect(files).toHaveLength(2);
    expect(files.every((f) => /^[0-9a-f]{64}\.json$/.test(f))).toBe(true);
    expect((await readdir(dir)).some((f) => f.endsWith(".tmp"))).toBe(false);
  });

  it("gives cached hits keys that do not clash with the ones this process already gave", async () => {
    await cachedSource(oa(), dir, { keys: new KeyRegistry() }).search("grokking", 5);
    const keys = new KeyRegistry();
    keys.claim("doi:10.9999/someone-else", { authors: ["Ann Power"], year: 2022, title: "Grokking elsewhere" });
    const hits = await cachedSource(oa(), dir, { keys }).search("grokking", 5);
    expect(hits[0]!.key).toBe("power2022grokking-2");
    expect(hits[0]!.bibtex.startsWith("@article{power2022grokking-2,")).toBe(true);
  });

  it("ignores a corrupt cache file, asks again and rewrites it", async () => {
    const { log: warnLog, lines } = capturingLogger();
    await cachedSource(oa(), dir).search("grokking", 5);
    const [file] = await readdir(dir);
    const path = join(dir, file!);

    await writeFile(path, "{ not json");
    const hits = await cachedSource(oa(), dir, { log: warnLog }).search("grokking", 5);
    expect(hits).toHaveLength(2);
    expect(oaServer.requests).toHaveLength(2);
    expect(CacheFile.parse(JSON.parse(await readFile(path, "utf8"))).hits).toHaveLength(2);

    await writeFile(path, JSON.stringify({ version: 1, source: "OpenAlex", query: "grokking", limit: 5, savedAt: "x", hits: [{ title: 3 }] }));
    await cachedSource(oa(), dir, { log: warnLog }).search("grokking", 5);
    expect(oaServer.requests).toHaveLength(3);
    expect(lines.map((l) => l.msg)).toEqual([
      "ignoring a literature cache file that is not JSON; it will be rewritten",
      "ignoring a literature cache file that fails its schema; it will be rewritten",
    ]);
    await cachedSource(oa(), dir).search("grokking", 5);
    expect(oaServer.requests).toHaveLength(3);
  });

  it("does not keep failures", async () => {
    oaServer.script = Array.from({ length: 3 }, () => ({ status: 503 }));
    await expect(cachedSource(oa(), dir).search("grokking", 5)).rejects.toBeInstanceOf(LiteratureError);
    expect(await readdir(dir)).toEqual([]);
    expect(await cachedSource(oa(), dir).search("grokking", 5)).toHaveLength(2);
  });
});

describe("withFallback", () => {
  it("answers from OpenAlex when Semantic Scholar keeps failing, says why, and leaves S2 alone for a while", async () => {
    // Retry-After: 1 asks for more than S2's half-second bound: it gives up at its first answer.
    s2Server.script = [{ status: 429, headers: { "retry-after": "1" } }];
    const { log: warnLog, lines } = capturingLogger();
    const waits: string[] = [];
    const source = withFallback(s2(500), oa(), warnLog, (why) => waits.push(why));
    expect(source.name).toBe("Semantic Scholar");

    const hits = await source.search("grokking", 5);
    expect(hits.map((h) => h.url)).toEqual(["https://doi.org/10.48550/arXiv.2201.02177", expect.stringMatching(/^https:\/\/openalex\.org\/W/)]);
    expect(s2Server.requests).toHaveLength(1);
    expect(oaServer.requests).toHaveLength(1);
    expect(source.name).toBe("OpenAlex (instead of Semantic Scholar)");
    const why =
      /^Semantic Scholar search for "grokking" gave up without waiting \(it answered 429 \(rate limit\): Too Many Requests\. Please wait and try again or apply for a key for higher rate limits\. https:\/\/www\.semanticscholar\.org\/product\/api#api-key-form\): waiting 1\.\d s more would pass the --literature-wait bound of 0\.5 s; searching OpenAlex instead for the next 10 min$/;
    expect(waits).toEqual([expect.stringMatching(why)]);
    expect(lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(why));

    await source.search("omnigrok", 5);
    expect(s2Server.requests).toHaveLength(1);
    expect(oaServer.requests).toHaveLength(2);
  });

  it("tries the primary again after the cool-down, and fails with both reasons when neither answers", async () => {
    s2Server.script = Array.from({ length: 3 }, () => ({ status: 500 }));
    oaServer.script = Array.from({ length: 3 }, () => ({ status: 503 }));
    const source = withFallback(s2(), oa(), log, undefined, { cooldownMs: 0 });
    const err = (await source.search("grokking", 5).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.message).toMatch(/^OpenAlex search for "grokking" failed \(3 attempts\): answered 503 .* after Semantic Scholar search for "grokking" failed \(3 attempts\): answered 500/);
    expect(err.hint).toMatch(/Neither Semantic Scholar nor OpenAlex/);
    expect(source.name).toBe("Semantic Scholar");
    expect((await source.search("grokking", 5))[0]!.title).toBe(PAPERS[0]!.title);
    expect(s2Server.requests).toHaveLength(4);
  });

  it("passes a cancellation on without falling back", async () => {
    const controller = new AbortController();
    controller.abort(new DOMException("stop", "AbortError"));
    const source = withFallback(s2(), oa(), log);
    await expect(source.search("grokking", 5, controller.signal)).rejects.toMatchObject({ name: "AbortError" });
    expect(oaServer.requests).toHaveLength(0);
  });
});

describe("chooseLiterature", () => {
  it("builds each kind: cached S2 or OpenAlex, S2 falling back to OpenAlex, a local bibliography", async () => {
    vi.stubEnv("S2_API_URL", `${s2Server.url}/graph/v1`);
    vi.stubEnv("S2_API_KEY", "k");
    vi.stubEnv("OPENALEX_API_URL", oaServer.url);
    const opts = { bibliography: join(import.meta.dirname, "..", "config", "bibliography.bib"), cacheDir: dir, log };
    const local = await chooseLiterature("local", opts);
    expect(local.name).toMatch(/^local bibliography \(\d+ papers\)$/);
    expect(await readdir(dir)).toEqual([]);

    const s2source = await chooseLiterature("s2", opts);
    expect(s2source.name).toBe("Semantic Scholar");
    await s2source.search("grokking", 2);
    await s2source.search("grokking", 2);
    expect(s2Server.requests).toHaveLength(1);

    const auto = await chooseLiterature("auto", opts);
    s2Server.script = Array.from({ length: 3 }, () => ({ status: 429 }));
    // Cached: S2 is not asked again, so nothing falls back.
    expect(await auto.search("grokking", 2)).toHaveLength(2);
    expect(s2Server.requests).toHaveLength(1);
    expect(auto.name).toBe("Semantic Scholar");

    const oaSource = await chooseLiterature("openalex", opts);
    expect(oaSource.name).toBe("OpenAlex");
    await oaSource.search("omnigrok", 2);
    expect(oaServer.requests).toHaveLength(1);
    expect((await readdir(dir)).length).toBe(2);

    await expect(chooseLiterature("scholar" as LiteratureKind, opts)).rejects.toBeInstanceOf(UserError);
  });

  it("gives each source the run's wait bound: S2 alone gives up at it, auto then searches OpenAlex", async () => {
    vi.stubEnv("S2_API_URL", `${s2Server.url}/graph/v1`);
    vi.stubEnv("S2_API_KEY", "k");
    vi.stubEnv("OPENALEX_API_URL", oaServer.url);
    const opts = { bibliography: join(import.meta.dirname, "..", "config", "bibliography.bib"), cacheDir: dir, log, maxWaitMs: 500 };
    s2Server.script = [{ status: 429, headers: { "retry-after": "1" } }];
    const err = (await (await chooseLiterature("s2", opts)).search("grokking", 2).catch((e: unknown) => e)) as LiteratureError;
    expect(err).toBeInstanceOf(LiteratureError);
    expect(err.message).toMatch(/gave up without waiting .*the --literature-wait bound of 0\.5 s$/);

    s2Server.script = [{ status: 429, headers: { "retry-after": "1" } }];
    const auto = await chooseLiterature("auto", opts);
    expect(await auto.search("grokking", 2)).toHaveLength(2);
    expect(auto.name).toBe("OpenAlex (instead of Semantic Scholar)");
    expect(s2Server.requests).toHaveLength(2);
  });
});
