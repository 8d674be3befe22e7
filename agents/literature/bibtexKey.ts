import { bareDoi, bibtexDoi, setBibtexKey } from "./bibtex.js";
import type { LiteratureHit } from "./source.js";

/** What BibTeX, natbib and hyperref all accept in a key. */
export const BIBTEX_KEY = /^[A-Za-z0-9_:-]+$/;

export interface KeyParts {
  /** Display names, "First Last" (or "Last, First"). */
  authors: readonly string[];
  year?: number | undefined;
  title: string;
}

/**
 * A citation key in the usual form, `smith2020learning`: the first author's last name folded to ASCII, the
 * year, the first significant word of the title. When `taken` has it already, `-2`, `-3`, ... is added.
 */
export function bibtexKey(paper: KeyParts, taken: ReadonlySet<string> = new Set()): string {
  const base = `${lastName(paper.authors[0] ?? "") || "anon"}${paper.year ?? ""}${titleWord(paper.title)}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * Keys for the papers one process cites: the same paper keeps its key across searches and sources, and two
 * papers never share one (a second `smith2020learning` would be taken for the first, or break BibTeX).
 */
export class KeyRegistry {
  private readonly byPaper = new Map<string, string>();
  private readonly taken = new Set<string>();

  /** The key for the paper `identity` names, made on first sight. */
  claim(identity: string, paper: KeyParts): string {
    let key = this.byPaper.get(identity);
    if (key === undefined) {
      key = bibtexKey(paper, this.taken);
      this.taken.add(key);
      this.byPaper.set(identity, key);
    }
    return key;
  }

  /** The hit with its claimed key, in `key` and in its BibTeX alike. */
  assign(hit: LiteratureHit): LiteratureHit {
    const key = this.claim(paperIdentity(hit), hit);
    return { ...hit, key, bibtex: setBibtexKey(hit.bibtex, key) };
  }
}

/** One registry for the whole process, so every source and cache agrees on which key is whose. */
export const sharedKeys = new KeyRegistry();

/** A paper's identity across services: its DOI when known, else its URL, else its title and year. */
export function paperIdentity(hit: Pick<LiteratureHit, "bibtex" | "url" | "title" | "year">): string {
  const doi = bibtexDoi(hit.bibtex) ?? (hit.url && /doi\.org\//i.test(hit.url) ? bareDoi(hit.url)?.toLowerCase() : undefined);
  if (doi) return `doi:${doi}`;
  if (hit.url) return `url:${hit.url}`;
  return `title:${fold(hit.title)}:${hit.year ?? ""}`;
}

/** Lowercase ASCII letters and digits only: `Müller-Lüdenscheidt` → `mullerludenscheidt`. */
export function fold(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .replace(/[ßæœøłđþ]/gi, (c) => FOLDS[c.toLowerCase()] ?? "")
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "");
}

const FOLDS: Record<string, string> = { ß: "ss", æ: "ae", œ: "oe", ø: "o", ł: "l", đ: "d", þ: "th" };
const MAX_PART = 20;

function lastName(author: string): string {
  const name = author.trim();
  // "Last, First" names the last name first.
  if (name.includes(",")) return fold(name.split(",")[0]!).slice(0, MAX_PART);
  // Otherwise it is the last word, suffixes aside, with the particles before it ("van der Waals").
  const words = name.split(/\s+/).filter(Boolean);
  while (words.length > 1 && /^(jr\.?|sr\.?|ii|iii|iv)$/i.test(words.at(-1)!)) words.pop();
  let start = words.length - 1;
  while (start > 1 && /^\p{Ll}/u.test(words[start - 1]!)) start--;
  return fold(words.slice(Math.max(start, 0)).join("")).slice(0, MAX_PART);
}

function titleWord(title: string): string {
  const words = title.split(/[\s\-–—/:]+/).map(fold).filter(Boolean);
  return (words.find((w) => !STOPWORDS.has(w)) ?? words[0] ?? "").slice(0, MAX_PART);
}

const STOPWORDS = new Set(
  `a an the on of in for to and or with without towards toward via from by at as is are be do does can how what
  why when which who we our your its into onto over under about beyond between through using use new`.split(/\s+/),
);
