import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../../bus/errors.js";
import type { Logger } from "../../bus/logger.js";
import type { RetryPolicy } from "../llm/retry.js";
import { cachedSource } from "./cache.js";
import { LiteratureError } from "./errors.js";
import { DEFAULT_MAX_WAIT_MS, type OnWait } from "./http.js";
import { localBibliography } from "./localBibliography.js";
import { OPENALEX_DEFAULT_URL, openAlex } from "./openAlex.js";
import { S2_DEFAULT_URL, semanticScholar } from "./semanticScholar.js";
import type { LiteratureHit, LiteratureSource } from "./source.js";

export const LiteratureKind = z.enum(["s2", "openalex", "auto", "local"]);
export type LiteratureKind = z.infer<typeof LiteratureKind>;

/** How long a failing primary is left alone before it is tried again. */
export const DEFAULT_COOLDOWN_MS = 10 * 60_000;

/**
 * `primary` while it works; when it fails for good (a LiteratureError, after its own retries) the search is
 * answered by `secondary`, which keeps answering for a cool-down rather than making every search wait out
 * the primary's retries again. `name` says which one the next search uses.
 */
export function withFallback(
  primary: LiteratureSource,
  secondary: LiteratureSource,
  log: Logger,
  onWait?: OnWait,
  opts: { cooldownMs?: number } = {},
): LiteratureSource {
  const cooldownMs = opts.cooldownMs ?? DEFAULT_COOLDOWN_MS;
  let primaryDownUntil = 0;
  const primaryDown = () => Date.now() < primaryDownUntil;
  return {
    get name() {
      return primaryDown() ? `${secondary.name} (instead of ${primary.name})` : primary.name;
    },
    async search(query: string, limit: number, signal?: AbortSignal): Promise<LiteratureHit[]> {
      let failure: LiteratureError | undefined;
      if (!primaryDown()) {
        try {
          return await primary.search(query, limit, signal);
        } catch (err) {
          if (!(err instanceof LiteratureError)) throw err;
          failure = err;
          primaryDownUntil = Date.now() + cooldownMs;
          const why = `${err.message}; searching ${secondary.name} instead for the next ${Math.round(cooldownMs / 60_000)} min`;
          log.warn({ service: err.service, status: err.status, hint: err.hint }, why);
          onWait?.(why, 0);
        }
      }
      try {
        return await secondary.search(query, limit, signal);
      } catch (err) {
        if (!(err instanceof LiteratureError)) throw err;
        const before = failure ? ` after ${failure.message}` : ` while ${primary.name} is left alone after failing`;
        throw new LiteratureError(`${err.message}${before}`, err.service, err.status, {
          hint: `Neither ${primary.name} nor ${secondary.name} can be searched now. ${err.hint ?? ""} Or search a BibTeX file with --literature local.`.trim(),
          cause: err,
          reason: err.reason,
        });
      }
    },
  };
}

export interface ChooseLiteratureOptions {
  /** The BibTeX file for `local`. */
  bibliography: string;
  /** Where searches are kept across runs (not for `local`). */
  cacheDir: string;
  log: Logger;
  onWait?: OnWait;
  /** Longest a source waits out rate limits and outages, in all, before a search gives up (default five minutes). */
  maxWaitMs?: number;
}

/** With OpenAlex behind it, Semantic Scholar is given up on sooner (fewer tries, a shorter wait) than when it is the only source. */
const PRIMARY_RETRY: RetryPolicy = { attempts: 3, baseMs: 1000, maxMs: 10_000 };
const PRIMARY_MAX_WAIT_MS = 20_000;

/**
 * The literature a run asked for: Semantic Scholar, OpenAlex, Semantic Scholar falling back to OpenAlex
 * (each kept in the on-disk cache), or a local BibTeX file.
 */
export async function chooseLiterature(kind: LiteratureKind, opts: ChooseLiteratureOptions): Promise<LiteratureSource> {
  const parsed = LiteratureKind.safeParse(kind);
  if (!parsed.success) {
    throw new UserError(`Unknown literature source ${JSON.stringify(kind)}`, { hint: `Use one of ${LiteratureKind.options.join(", ")}.` });
  }
  const { log, onWait } = opts;
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const common = { log, maxWaitMs, ...(onWait ? { onWait } : {}) };
  // One cache per service address: answers from one server (a mirror, a test double) never stand in for another's.
  const cacheFor = (url: string) => join(opts.cacheDir, url.replace(/^https?:\/\//, "").replace(/[^A-Za-z0-9.-]+/g, "_"));
  const s2Url = process.env.S2_API_URL || S2_DEFAULT_URL;
  const openAlexUrl = process.env.OPENALEX_API_URL || OPENALEX_DEFAULT_URL;
  switch (parsed.data) {
    case "local":
      return localBibliography(opts.bibliography);
    case "s2":
      return cachedSource(semanticScholar({ ...common, baseUrl: s2Url }), cacheFor(s2Url), { log });
    case "openalex":
      return cachedSource(openAlex({ ...common, baseUrl: openAlexUrl }), cacheFor(openAlexUrl), { log });
    case "auto":
      return withFallback(
        cachedSource(semanticScholar({ ...common, baseUrl: s2Url, retry: PRIMARY_RETRY, maxWaitMs: Math.min(maxWaitMs, PRIMARY_MAX_WAIT_MS) }), cacheFor(s2Url), { log }),
        cachedSource(openAlex({ ...common, baseUrl: openAlexUrl }), cacheFor(openAlexUrl), { log }),
        log,
        onWait,
      );
  }
}
