import { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import type { RetryPolicy } from "../llm/retry.js";
import { buildBibtex, rewriteBibtex } from "./bibtex.js";
import { sharedKeys, type KeyRegistry } from "./bibtexKey.js";
import { DEFAULT_MAX_WAIT_MS, getJson, pacerFor, WaitBudget, type JsonClientOptions, type OnWait } from "./http.js";
import type { LiteratureHit, LiteratureSource } from "./source.js";

export const S2_DEFAULT_URL = "https://api.semanticscholar.org/graph/v1";
export const S2_FIELDS = "title,authors,venue,year,abstract,citationCount,url,externalIds,citationStyles";
/** Without a key, Semantic Scholar allows about one request a second from a client (shared with everyone unkeyed). */
export const S2_UNKEYED_INTERVAL_MS = 1000;
const PAGE_MAX = 100;
/** Relevance search returns at most this many results, however it is paged. */
const RESULTS_MAX = 1000;

export interface SemanticScholarOptions {
  /** Default: S2_API_URL, else the public Graph API. */
  baseUrl?: string;
  /** Sent as x-api-key. Default: S2_API_KEY; an empty string means none, whatever the environment says. */
  apiKey?: string;
  log: Logger;
  onWait?: OnWait;
  retry?: RetryPolicy;
  /** Longest this source waits out rate limits and outages, in all, before a search gives up (default five minutes). */
  maxWaitMs?: number;
  /** Least time between request starts without a key (default one second); with a key there is no pacing. */
  minIntervalMs?: number;
  /** Limit for one request. */
  timeoutMs?: number;
  /** Where keys are claimed (default: the process's). */
  keys?: KeyRegistry;
}

const Author = z.object({ authorId: z.string().nullish(), name: z.string().nullish() });

/** One paper as the Graph API gives it for S2_FIELDS; any field may be null or absent but the id. */
export const S2Paper = z.object({
  paperId: z.string(),
  title: z.string().nullish(),
  authors: z.array(Author).nullish(),
  venue: z.string().nullish(),
  year: z.number().int().nullish(),
  abstract: z.string().nullish(),
  citationCount: z.number().int().nullish(),
  url: z.string().nullish(),
  externalIds: z.record(z.string(), z.union([z.string(), z.number()]).nullable()).nullish(),
  citationStyles: z.object({ bibtex: z.string().nullish() }).nullish(),
});
export type S2Paper = z.infer<typeof S2Paper>;

/** `/paper/search`: `next` is absent on the last page, `data` absent when nothing matched. */
export const S2SearchPage = z.object({
  total: z.number().int(),
  offset: z.number().int(),
  next: z.number().int().optional(),
  // Papers are checked one by one below, so one odd record costs that record, not the search.
  data: z.array(z.unknown()).optional(),
});

/** Semantic Scholar's Graph API relevance search. */
export function semanticScholar(opts: SemanticScholarOptions): LiteratureSource {
  const baseUrl = (opts.baseUrl || process.env.S2_API_URL || S2_DEFAULT_URL).replace(/\/+$/, "");
  const apiKey = (opts.apiKey ?? process.env.S2_API_KEY ?? "").trim() || undefined;
  const keys = opts.keys ?? sharedKeys;
  const interval = opts.minIntervalMs ?? S2_UNKEYED_INTERVAL_MS;
  const pacer = pacerFor(baseUrl);
  const log = opts.log.child({ literature: "semantic-scholar" });
  const client: JsonClientOptions = {
    service: "Semantic Scholar",
    log,
    onWait: opts.onWait,
    retry: opts.retry,
    budget: new WaitBudget(opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS),
    timeoutMs: opts.timeoutMs,
    headers: apiKey ? { "x-api-key": apiKey } : {},
    pace: apiKey
      ? undefined
      : async (signal) => {
          const waited = await pacer.wait(interval, signal);
          if (waited > 0) log.debug({ waitMs: waited }, "pacing Semantic Scholar requests (no API key)");
        },
    hint: (status) =>
      apiKey && (status === 401 || status === 403)
        ? "Semantic Scholar refused the API key: check S2_API_KEY, or unset it to search without one."
        : apiKey
          ? "Try again later, or search OpenAlex instead with --literature openalex (or auto)."
          : "Set S2_API_KEY (free at https://www.semanticscholar.org/product/api) for a higher rate limit, or search OpenAlex instead with --literature openalex (or auto).",
  };

  return {
    name: "Semantic Scholar",
    async search(query: string, limit: number, signal?: AbortSignal): Promise<LiteratureHit[]> {
      // The Graph API finds nothing for hyphenated terms; spaces find them.
      const q = query.replace(/-/g, " ").replace(/\s+/g, " ").trim();
      if (!q || limit <= 0) return [];
      const papers = new Map<string, S2Paper>();
      for (let offset = 0; papers.size < limit; ) {
        const size = Math.min(PAGE_MAX, limit - papers.size, RESULTS_MAX - offset);
        if (size <= 0) break;
        const url = new URL(`${baseUrl}/paper/search`);
        url.search = new URLSearchParams({ query: q, limit: String(size), offset: String(offset), fields: S2_FIELDS }).toString();
        const page = await getJson(url, S2SearchPage, `search for "${q}"`, client, signal);
        for (const item of page.data ?? []) {
          const paper = S2Paper.safeParse(item);
          if (!paper.success) {
            log.warn({ issues: paper.error.issues.slice(0, 3) }, "skipped a Semantic Scholar record that does not parse");
            continue;
          }
          if (paper.data.title?.trim() && !papers.has(paper.data.paperId)) papers.set(paper.data.paperId, paper.data);
        }
        if (page.next === undefined || page.next <= offset || page.next >= page.total || !page.data?.length) break;
        offset = page.next;
      }
      return [...papers.values()].slice(0, limit).map((p) => keys.assign(toHit(p)));
    },
  };
}

/** A hit with a provisional key; the registry gives it its real one. */
function toHit(p: S2Paper): LiteratureHit {
  const title = p.title!.replace(/\s+/g, " ").trim();
  const authors = (p.authors ?? []).map((a) => a.name?.replace(/\s+/g, " ").trim() ?? "").filter((n) => n !== "");
  const venue = p.venue?.trim() || undefined;
  const year = p.year ?? undefined;
  const doi = stringId(p.externalIds?.DOI);
  const arxiv = stringId(p.externalIds?.ArXiv);
  const url = p.url || `https://www.semanticscholar.org/paper/${p.paperId}`;
  const link = arxiv ? `https://arxiv.org/abs/${arxiv}` : url;
  const key = `s2${p.paperId.slice(0, 12)}`;
  const bibtex =
    (p.citationStyles?.bibtex ? rewriteBibtex(p.citationStyles.bibtex, key, { doi, url: link }) : undefined) ??
    buildBibtex({ key, type: venue ? "article" : "misc", title, authors, year, journal: venue, doi, url: link });
  return {
    key,
    title,
    authors,
    ...(year !== undefined ? { year } : {}),
    ...(venue ? { venue } : {}),
    ...(typeof p.citationCount === "number" ? { citations: p.citationCount } : {}),
    url,
    ...(p.abstract?.trim() ? { abstract: p.abstract.trim() } : {}),
    bibtex,
  };
}

function stringId(value: string | number | null | undefined): string | undefined {
  return value === null || value === undefined || value === "" ? undefined : String(value);
}
