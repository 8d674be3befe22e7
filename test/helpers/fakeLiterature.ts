import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A paper in the fake corpus, in the terms both services share. */
export interface FakePaper {
  title: string;
  /** Display names, "First Last". */
  authors: string[];
  year?: number | null;
  venue?: string | null;
  abstract?: string | null;
  citations?: number;
  doi?: string;
  arxiv?: string;
  /**
   * Semantic Scholar only: its `citationStyles.bibtex`. Left out, one is made the way S2 makes them (entry
   * type a Python list, `@['JournalArticle', 'Conference']{...`); null leaves `citationStyles` out.
   */
  bibtex?: string | null;
}

/** A scripted reply, used before the corpus answers. */
export interface Scripted {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface FakeRequest {
  path: string;
  params: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Date.now() when it arrived. */
  at: number;
}

export interface FakeLiteratureServer {
  url: string;
  requests: FakeRequest[];
  /** Replies for the next requests, in order; after them the corpus answers. */
  script: Scripted[];
  papers: FakePaper[];
  close(): Promise<void>;
}

const S2_FIELDS = new Set([
  "paperId", "corpusId", "externalIds", "url", "title", "abstract", "venue", "publicationVenue", "year", "referenceCount",
  "citationCount", "influentialCitationCount", "isOpenAccess", "openAccessPdf", "fieldsOfStudy", "s2FieldsOfStudy",
  "publicationTypes", "publicationDate", "journal", "citationStyles", "authors", "tldr",
]);
const S2_TOO_MANY = {
  message: "Too Many Requests. Please wait and try again or apply for a key for higher rate limits. https://www.semanticscholar.org/product/api#api-key-form",
  code: "429",
};

/**
 * Semantic Scholar's Graph API `/paper/search`, as it answers: `{total, offset, next, data}` with `next` left
 * out on the last page and `data` left out when nothing matches; only the asked `fields` (plus `paperId`);
 * `limit` over 100, a missing query or an unknown field a 400. With `apiKey`, a wrong x-api-key is a 403.
 */
export function startFakeSemanticScholar(
  papers: FakePaper[],
  opts: {
    apiKey?: string;
    /** Answer 429 (Retry-After: 1) to everything for this long from the first request (ms): an outage that a slow start cannot miss. */
    rateLimitedForMs?: number;
  } = {},
): Promise<FakeLiteratureServer> {
  return startServer(papers, (state, path, params, headers, res) => {
    if (opts.rateLimitedForMs !== undefined && Date.now() < state.requests[0]!.at + opts.rateLimitedForMs) {
      return send(res, 429, S2_TOO_MANY, { "retry-after": "1" });
    }
    if (opts.apiKey !== undefined && headers["x-api-key"] !== undefined && headers["x-api-key"] !== opts.apiKey) {
      return send(res, 403, { message: "Forbidden" });
    }
    if (path !== "/graph/v1/paper/search") return send(res, 404, { error: `Requested resource ${path} not found` });
    const query = params.get("query");
    if (!query) return send(res, 400, { error: "Missing required parameter: 'query'" });
    const offset = Number(params.get("offset") ?? 0);
    const limit = Number(params.get("limit") ?? 100);
    if (limit > 100) return send(res, 400, { error: "Invalid limit: must be <= 100" });
    if (offset + limit > 1000) return send(res, 400, { error: "Requested data for this limit and/or offset is not available" });
    const fields = (params.get("fields") ?? "title").split(",");
    const unknown = fields.filter((f) => !S2_FIELDS.has(f));
    if (unknown.length) return send(res, 400, { error: `Unrecognized or unsupported fields: [${unknown.join(", ")}]` });
    const found = matching(state.papers, query);
    const page = found.slice(offset, offset + limit);
    const next = offset + page.length;
    return send(res, 200, {
      total: found.length,
      offset,
      ...(next < found.length ? { next } : {}),
      ...(page.length ? { data: page.map((p) => s2Paper(p, fields)) } : {}),
    });
  }, S2_TOO_MANY);
}

function s2Paper(p: FakePaper, fields: string[]): Record<string, unknown> {
  const paperId = createHash("sha1").update(p.title).digest("hex");
  const full: Record<string, unknown> = {
    paperId,
    url: `https://www.semanticscholar.org/paper/${paperId}`,
    title: p.title,
    // S2 gives an empty venue, not null, for most papers it cannot place.
    venue: p.venue === undefined ? "" : p.venue,
    year: p.year ?? null,
    abstract: p.abstract ?? null,
    citationCount: p.citations ?? 0,
    externalIds: { ...(p.doi ? { DOI: p.doi } : {}), ...(p.arxiv ? { ArXiv: p.arxiv } : {}), CorpusId: parseInt(paperId.slice(0, 7), 16) },
    authors: p.authors.map((name, i) => ({ authorId: i % 3 === 2 ? null : String(1000 + i), name })),
    ...(p.bibtex === null ? {} : { citationStyles: { bibtex: p.bibtex ?? s2Bibtex(p) } }),
  };
  return Object.fromEntries(Object.entries(full).filter(([k]) => k === "paperId" || fields.includes(k)));
}

/** The way S2 writes BibTeX: a Python list as the type, `First Last` names, nothing escaped. */
function s2Bibtex(p: FakePaper): string {
  const last = (p.authors[0] ?? "Unknown").split(" ").at(-1);
  const words = p.title.split(/\s+/);
  const key = `${last}${p.year ?? ""}${words[0]}${words.slice(1, 3).map((w) => w[0]).join("").toUpperCase()}`;
  const lines = [
    p.authors.length ? ` author = {${p.authors.join(" and ")}}` : undefined,
    p.venue ? ` booktitle = {${p.venue}}` : undefined,
    p.venue ? ` journal = {ArXiv}` : undefined,
    ` title = {${p.title}}`,
    p.arxiv ? ` volume = {abs/${p.arxiv}}` : undefined,
    p.year ? ` year = {${p.year}}` : undefined,
  ].filter(Boolean);
  return `@['JournalArticle', 'Conference']{${key},\n${lines.join(",\n")}\n}\n`;
}

const OPENALEX_SELECT = new Set([
  "id", "doi", "title", "display_name", "publication_year", "publication_date", "ids", "language", "primary_location",
  "type", "open_access", "authorships", "cited_by_count", "biblio", "is_retracted", "locations", "referenced_works",
  "abstract_inverted_index", "topics", "keywords", "updated_date", "created_date",
]);

/**
 * OpenAlex `/works?search=`, as it answers: `{meta: {count, db_response_time_ms, page, per_page, groups_count},
 * results, group_by}`; works with `authorships[].author.display_name`, `primary_location.source`, the abstract
 * as an inverted index; `select` honoured; `per-page` over 200 or paging past 10,000 results a 400.
 */
export function startFakeOpenAlex(papers: FakePaper[]): Promise<FakeLiteratureServer> {
  return startServer(papers, (state, path, params, _headers, res) => {
    if (path !== "/works") return send(res, 404, { error: "Not found", message: `${path} is not a valid endpoint` });
    const perPage = Number(params.get("per-page") ?? params.get("per_page") ?? 25);
    const page = Number(params.get("page") ?? 1);
    if (!(perPage >= 1 && perPage <= 200)) {
      return send(res, 400, { error: "Invalid query parameters error.", message: "per-page parameter must be between 1 and 200" });
    }
    if (page * perPage > 10_000) {
      return send(res, 400, { error: "Invalid query parameters error.", message: "Maximum results size of 10,000 records is exceeded. Cursor pagination is required for records beyond 10,000." });
    }
    const select = params.get("select")?.split(",");
    const wrong = select?.filter((f) => !OPENALEX_SELECT.has(f)) ?? [];
    if (wrong.length) {
      return send(res, 400, { error: "Invalid query parameters error.", message: `${wrong[0]} is not a valid select field.` });
    }
    const found = params.get("search") ? matching(state.papers, params.get("search")!) : state.papers;
    const results = found.slice((page - 1) * perPage, page * perPage).map((p, i) => openAlexWork(p, (page - 1) * perPage + i, select));
    return send(res, 200, {
      meta: { count: found.length, db_response_time_ms: 12, page, per_page: perPage, groups_count: null },
      results,
      group_by: [],
    });
  }, { error: "Rate limit exceeded", message: "Too many requests. Slow down or get an API key at https://openalex.org/settings/api" });
}

function openAlexWork(p: FakePaper, n: number, select?: string[]): Record<string, unknown> {
  const id = `https://openalex.org/W${2_100_000_000 + n}`;
  const venue = p.venue ?? null;
  const full: Record<string, unknown> = {
    id,
    doi: p.doi ? `https://doi.org/${p.doi}` : null,
    title: p.title,
    display_name: p.title,
    publication_year: p.year ?? null,
    type: "article",
    cited_by_count: p.citations ?? 0,
    authorships: p.authors.map((name, i) => ({
      author_position: i === 0 ? "first" : i === p.authors.length - 1 ? "last" : "middle",
      author: { id: `https://openalex.org/A${5_000_000_000 + n * 10 + i}`, display_name: name, orcid: null },
      institutions: [],
      countries: [],
      is_corresponding: i === 0,
      raw_author_name: name,
      raw_affiliation_strings: [],
    })),
    primary_location: {
      is_oa: false,
      landing_page_url: p.doi ? `https://doi.org/${p.doi}` : id,
      pdf_url: null,
      source: venue
        ? { id: `https://openalex.org/S${4_000_000_000 + n}`, display_name: venue, issn_l: null, issn: null, is_oa: false, is_in_doaj: false, host_organization: null, type: "journal" }
        : null,
      license: null,
      version: null,
    },
    abstract_inverted_index: p.abstract ? invertedIndex(p.abstract) : null,
  };
  return select ? Object.fromEntries(Object.entries(full).filter(([k]) => select.includes(k))) : full;
}

/** OpenAlex's form of an abstract: each word (punctuation attached) → the positions where it occurs. */
export function invertedIndex(text: string): Record<string, number[]> {
  const index: Record<string, number[]> = {};
  text.split(/\s+/).filter(Boolean).forEach((word, i) => (index[word] ??= []).push(i));
  return index;
}

/** Papers sharing a word with the query, best first (the fakes' stand-in for relevance). */
function matching(papers: FakePaper[], query: string): FakePaper[] {
  const terms = query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((t) => t.length > 2);
  const score = (p: FakePaper) => terms.filter((t) => `${p.title} ${p.abstract ?? ""}`.toLowerCase().includes(t)).length;
  return papers.map((p) => ({ p, s: score(p) })).filter((x) => x.s > 0).sort((a, b) => b.s - a.s).map((x) => x.p);
}

type Handler = (state: FakeLiteratureServer, path: string, params: URLSearchParams, headers: IncomingHttpHeaders, res: ServerResponse) => void;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

async function startServer(papers: FakePaper[], handle: Handler, tooMany: unknown): Promise<FakeLiteratureServer> {
  const state: FakeLiteratureServer = { url: "", requests: [], script: [], papers, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://fake");
    state.requests.push({ path: url.pathname, params: url.searchParams, headers: req.headers, at: Date.now() });
    const step = state.script.shift();
    if (step) {
      const body = step.body ?? (step.status === 429 ? tooMany : { message: "Internal Server Error" });
      return send(res, step.status, body, step.headers);
    }
    handle(state, url.pathname, url.searchParams, req.headers, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
