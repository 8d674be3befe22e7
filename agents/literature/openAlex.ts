import { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import type { RetryPolicy } from "../llm/retry.js";
import { bareDoi, buildBibtex } from "./bibtex.js";
import { sharedKeys, type KeyRegistry } from "./bibtexKey.js";
import { DEFAULT_MAX_WAIT_MS, getJson, WaitBudget, type JsonClientOptions, type OnWait } from "./http.js";
import type { LiteratureHit, LiteratureSource } from "./source.js";

export const OPENALEX_DEFAULT_URL = "https://api.openalex.org";
const PAGE_MAX = 200;
/** Page paging stops at this many results (cursor paging goes further; no search needs that many). */
const RESULTS_MAX = 10_000;
const MAX_ABSTRACT_WORDS = 20_000;
/** Only what a hit needs: the works are large (locations, topics, references) and `select` trims them. */
const SELECT = "id,doi,title,display_name,publication_year,cited_by_count,authorships,primary_location,abstract_inverted_index";

export interface OpenAlexOptions {
  /** Default: OPENALEX_API_URL, else the public API. */
  baseUrl?: string;
  /** Sent as `mailto`, for OpenAlex's polite pool. Default: OPENALEX_MAILTO. */
  mailto?: string;
  /** Sent as `api_key`; OpenAlex asks for one since February 2026 (free). Default: OPENALEX_API_KEY. */
  apiKey?: string;
  log: Logger;
  onWait?: OnWait;
  retry?: RetryPolicy;
  /** Longest this source waits out rate limits and outages, in all, before a search gives up (default five minutes). */
  maxWaitMs?: number;
  /** Limit for one request. */
  timeoutMs?: number;
  /** Where keys are claimed (default: the process's). */
  keys?: KeyRegistry;
}

/** One work as `/works` gives it for SELECT; anything but the id may be null or absent. */
export const OpenAlexWork = z.object({
  id: z.string(),
  doi: z.string().nullish(),
  title: z.string().nullish(),
  display_name: z.string().nullish(),
  publication_year: z.number().int().nullish(),
  cited_by_count: z.number().int().nullish(),
  authorships: z
    .array(z.object({ author: z.object({ display_name: z.string().nullish() }).nullish(), raw_author_name: z.string().nullish() }))
    .nullish(),
  primary_location: z.object({ source: z.object({ display_name: z.string().nullish() }).nullish() }).nullish(),
  abstract_inverted_index: z.record(z.string(), z.array(z.number().int().min(0))).nullish(),
});
export type OpenAlexWork = z.infer<typeof OpenAlexWork>;

export const OpenAlexPage = z.object({
  meta: z.object({ count: z.number().int(), page: z.number().int().nullish(), per_page: z.number().int().nullish() }),
  // Works are checked one by one below, so one odd record costs that record, not the search.
  results: z.array(z.unknown()),
});

/** OpenAlex works search. */
export function openAlex(opts: OpenAlexOptions): LiteratureSource {
  const baseUrl = (opts.baseUrl || process.env.OPENALEX_API_URL || OPENALEX_DEFAULT_URL).replace(/\/+$/, "");
  const mailto = (opts.mailto ?? process.env.OPENALEX_MAILTO ?? "").trim() || undefined;
  const apiKey = (opts.apiKey ?? process.env.OPENALEX_API_KEY ?? "").trim() || undefined;
  const keys = opts.keys ?? sharedKeys;
  const log = opts.log.child({ literature: "openalex" });
  const client: JsonClientOptions = {
    service: "OpenAlex",
    log,
    onWait: opts.onWait,
    retry: opts.retry,
    budget: new WaitBudget(opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS),
    timeoutMs: opts.timeoutMs,
    hint: (status) =>
      status === 401 || status === 403
        ? "OpenAlex refused the request: check OPENALEX_API_KEY (free at https://openalex.org/settings/api)."
        : apiKey
          ? "Try again later, or search Semantic Scholar instead with --literature s2."
          : "Set OPENALEX_API_KEY (free at https://openalex.org/settings/api; without one the daily allowance is tiny), or search Semantic Scholar with --literature s2.",
  };

  return {
    name: "OpenAlex",
    async search(query: string, limit: number, signal?: AbortSignal): Promise<LiteratureHit[]> {
      const q = query.replace(/\s+/g, " ").trim();
      if (!q || limit <= 0) return [];
      // Page paging needs one page size throughout.
      const perPage = Math.min(PAGE_MAX, limit);
      const works = new Map<string, OpenAlexWork>();
      for (let page = 1; works.size < limit; page++) {
        const url = new URL(`${baseUrl}/works`);
        const params = new URLSearchParams({ search: q, "per-page": String(perPage), page: String(page), select: SELECT });
        if (mailto) params.set("mailto", mailto);
        if (apiKey) params.set("api_key", apiKey);
        url.search = params.toString();
        const body = await getJson(url, OpenAlexPage, `search for "${q}"`, client, signal);
        for (const item of body.results) {
          const work = OpenAlexWork.safeParse(item);
          if (!work.success) {
            log.warn({ issues: work.error.issues.slice(0, 3) }, "skipped an OpenAlex record that does not parse");
            continue;
          }
          if (workTitle(work.data) && !works.has(work.data.id)) works.set(work.data.id, work.data);
        }
        if (body.results.length < perPage || page * perPage >= Math.min(body.meta.count, RESULTS_MAX)) break;
      }
      return [...works.values()].slice(0, limit).map((w) => keys.assign(toHit(w)));
    },
  };
}

function toHit(w: OpenAlexWork): LiteratureHit {
  const title = workTitle(w)!;
  const authors = (w.authorships ?? [])
    .map((a) => plainText(a.author?.display_name ?? a.raw_author_name ?? ""))
    .filter((n) => n !== "");
  const venue = plainText(w.primary_location?.source?.display_name ?? "") || undefined;
  const year = w.publication_year ?? undefined;
  const doi = bareDoi(w.doi);
  const url = doi ? `https://doi.org/${doi}` : w.id;
  const abstract = w.abstract_inverted_index ? rebuildAbstract(w.abstract_inverted_index) : "";
  const key = `openalex${w.id.split("/").pop()}`;
  return {
    key,
    title,
    authors,
    ...(year !== undefined ? { year } : {}),
    ...(venue ? { venue } : {}),
    ...(typeof w.cited_by_count === "number" ? { citations: w.cited_by_count } : {}),
    url,
    ...(abstract ? { abstract } : {}),
    bibtex: buildBibtex({ key, type: venue ? "article" : "misc", title, authors, year, journal: venue, doi, url: w.id }),
  };
}

function workTitle(w: OpenAlexWork): string | undefined {
  return plainText(w.display_name ?? w.title ?? "") || undefined;
}

/** OpenAlex keeps abstracts as word → positions; the words in position order are the abstract. */
export function rebuildAbstract(index: Record<string, number[]>): string {
  const words: string[] = [];
  // A bound on positions, so one bogus index cannot make a billion-slot array.
  for (const [word, positions] of Object.entries(index)) for (const p of positions) if (p < MAX_ABSTRACT_WORDS) words[p] = word;
  return words.filter((w) => w !== undefined).join(" ").replace(/\s+/g, " ").trim();
}

/** Titles come with publishers' HTML (`<i>E. coli</i>`, `&amp;`): the text without it. */
export function plainText(html: string): string {
  return html
    .replace(/<\/?[A-Za-z][\w:-]*(\s[^<>]*)?\/?>/g, "")
    .replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|nbsp);/gi, (_m, e: string) => {
      const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };
      if (e[0] !== "#") return named[e.toLowerCase()]!;
      const code = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
    })
    .replace(/\s+/g, " ")
    .trim();
}
