import type { Evidence } from "../../bus/schemas.js";

/** Where the critic and the writer look for papers: Semantic Scholar, OpenAlex, or a local bibliography. */
export interface LiteratureSource {
  readonly name: string;
  search(query: string, limit: number, signal?: AbortSignal): Promise<LiteratureHit[]>;
}

export interface LiteratureHit extends Evidence {
  /** BibTeX the writer can put in the paper's bibliography as it is. */
  bibtex: string;
  abstract?: string;
}
