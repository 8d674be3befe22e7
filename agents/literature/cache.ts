import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { Logger } from "../../bus/logger.js";
import { Evidence } from "../../bus/schemas.js";
import { sharedKeys, type KeyRegistry } from "./bibtexKey.js";
import type { LiteratureHit, LiteratureSource } from "./source.js";

export const LiteratureHitSchema = Evidence.extend({ bibtex: z.string().min(1), abstract: z.string().optional() });

export const CacheFile = z.object({
  version: z.literal(1),
  source: z.string(),
  query: z.string(),
  limit: z.number().int(),
  savedAt: z.string(),
  hits: z.array(LiteratureHitSchema),
});
export type CacheFile = z.infer<typeof CacheFile>;

export interface CacheOptions {
  log?: Logger;
  /** Where keys of cached hits are claimed again (default: the process's), so they never clash with fresh ones. */
  keys?: KeyRegistry;
}

/**
 * Answers a query from `dir` when any run has asked it before (same source, query and limit), else asks
 * `source` and keeps the answer: rate-limited services are asked each question once. Failures are not kept.
 */
export function cachedSource(source: LiteratureSource, dir: string, opts: CacheOptions = {}): LiteratureSource {
  const keys = opts.keys ?? sharedKeys;
  return {
    get name() {
      return source.name;
    },
    async search(query: string, limit: number, signal?: AbortSignal): Promise<LiteratureHit[]> {
      const q = query.replace(/\s+/g, " ").trim();
      if (!q || limit <= 0) return [];
      const file = join(dir, `${createHash("sha256").update(JSON.stringify([source.name, q, limit])).digest("hex")}.json`);
      const cached = await readCache(file, { source: source.name, query: q, limit }, opts.log);
      // Keys were made by the run that asked first; this process's registry decides them here.
      if (cached) return cached.hits.map((h) => keys.assign(h));
      const hits = (await source.search(q, limit, signal)).map((h) => keys.assign(h));
      const entry: CacheFile = { version: 1, source: source.name, query: q, limit, savedAt: new Date().toISOString(), hits };
      await writeAtomically(file, `${JSON.stringify(entry, null, 2)}\n`).catch((err: unknown) =>
        opts.log?.warn({ err, file }, "could not write the literature cache; the search is answered all the same"),
      );
      return hits;
    },
  };
}

async function readCache(file: string, expected: { source: string; query: string; limit: number }, log?: Logger): Promise<CacheFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    log?.warn({ file }, "ignoring a literature cache file that is not JSON; it will be rewritten");
    return undefined;
  }
  const parsed = CacheFile.safeParse(json);
  if (!parsed.success) {
    log?.warn({ file, issues: parsed.error.issues.slice(0, 3) }, "ignoring a literature cache file that fails its schema; it will be rewritten");
    return undefined;
  }
  const { source, query, limit } = parsed.data;
  if (source !== expected.source || query !== expected.query || limit !== expected.limit) return undefined;
  return parsed.data;
}

/** Readers see the old file or the new one, never half of one (runs share the cache). */
async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await writeFile(tmp, text, "utf8");
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
