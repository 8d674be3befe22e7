import { loadBibliography, searchBibliography, type BibEntry } from "../tools/bibliography.js";
import type { LiteratureHit, LiteratureSource } from "./source.js";

/** A BibTeX file as the literature: for air-gapped runs, the demo and tests. */
export async function localBibliography(path: string): Promise<LiteratureSource> {
  const entries: BibEntry[] = await loadBibliography(path);
  return {
    name: `local bibliography (${entries.length} papers)`,
    async search(query: string, limit: number): Promise<LiteratureHit[]> {
      return searchBibliography(entries, query, limit).map(({ entry }) => ({
        key: entry.key,
        title: entry.title,
        authors: entry.authors,
        ...(entry.year !== undefined ? { year: entry.year } : {}),
        ...(entry.venue ? { venue: entry.venue } : {}),
        ...(entry.url ? { url: entry.url } : {}),
        ...(entry.abstract ? { abstract: entry.abstract } : {}),
        bibtex: entry.bibtex,
      }));
    },
  };
}
