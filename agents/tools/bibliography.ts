import { readFile } from "node:fs/promises";
import { z } from "zod";
import { UserError } from "../../bus/errors.js";

export const BibEntrySchema = z.object({
  key: z.string().min(1),
  /** Lowercase entry type: `article`, `inproceedings`, ... */
  type: z.string().min(1),
  title: z.string().min(1),
  authors: z.array(z.string().min(1)),
  year: z.number().int().optional(),
  venue: z.string().min(1).optional(),
  abstract: z.string().min(1).optional(),
  url: z.string().min(1).optional(),
  /** The entry exactly as written in the file, ready to paste into a paper's .bib. */
  bibtex: z.string().min(1),
});
export type BibEntry = z.infer<typeof BibEntrySchema>;

export interface BibHit {
  entry: BibEntry;
  /** BM25 score; higher is better, always > 0. */
  score: number;
}

/** A local literature source for air-gapped runs: the entries of a BibTeX file. */
export async function loadBibliography(path: string): Promise<BibEntry[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new UserError(`Cannot read bibliography ${path}`, {
      hint: "Pass an existing .bib file (config/bibliography.bib ships with the swarm).",
      cause,
    });
  }
  return parseBibliography(text, path);
}

/**
 * Parses BibTeX: `{...}` and `"..."` values with nested braces, `#` concatenation, @string macros (expanded,
 * not returned), @comment and @preamble skipped, text between entries ignored as BibTeX does.
 * Of two entries with one key the first wins, as in BibTeX.
 */
export function parseBibliography(text: string, source = "<bibtex>"): BibEntry[] {
  const parser = new Cursor(text, source);
  const macros = new Map<string, string>(MONTHS);
  const entries = new Map<string, BibEntry>();
  for (;;) {
    const at = text.indexOf("@", parser.pos);
    if (at < 0) break;
    parser.pos = at + 1;
    parser.entryStart = at;
    parser.skipSpace();
    const type = parser.match(/[A-Za-z]+/y)?.toLowerCase();
    parser.skipSpace();
    const open = parser.peek();
    // An @ that starts no entry (an e-mail address in a comment) is just text.
    if (!type || (open !== "{" && open !== "(")) continue;
    const close = open === "{" ? "}" : ")";
    if (type === "comment" || type === "preamble") {
      parser.skipBalanced();
      continue;
    }
    parser.pos++;
    if (type === "string") {
      const [name, value] = parser.field(macros);
      macros.set(name, value);
      parser.skipSpace();
      parser.expect(close);
      continue;
    }
    const key = parser.match(/[^\s,{}()]+/y) ?? parser.fail(`@${type} has no citation key`);
    const fields = new Map<string, string>();
    parser.skipSpace();
    while (parser.peek() === ",") {
      parser.pos++;
      parser.skipSpace();
      if (parser.peek() === close) break;
      const [name, value] = parser.field(macros);
      fields.set(name, value);
      parser.skipSpace();
    }
    parser.expect(close);
    if (!entries.has(key)) entries.set(key, toEntry(key, type, fields, text.slice(at, parser.pos), parser.where(at)));
  }
  return [...entries.values()];
}

/** Ranks entries by BM25 over title, abstract and venue; entries that share no term with the query are left out. */
export function searchBibliography(entries: BibEntry[], query: string, limit = 5): BibHit[] {
  const terms = [...new Set(tokenize(query))];
  if (terms.length === 0 || limit <= 0 || entries.length === 0) return [];
  const docs = entries.map((entry) => termCounts(tokenize([entry.title, entry.abstract, entry.venue].join(" "))));
  const avgLength = docs.reduce((sum, d) => sum + d.length, 0) / docs.length || 1;
  const idf = new Map(
    terms.map((t) => {
      const n = docs.filter((d) => d.counts.has(t)).length;
      // The +1 inside the log (Lucene's form) keeps idf positive even for terms in most documents.
      return [t, Math.log(1 + (docs.length - n + 0.5) / (n + 0.5))];
    }),
  );
  const hits: BibHit[] = [];
  entries.forEach((entry, i) => {
    const doc = docs[i]!;
    let score = 0;
    for (const t of terms) {
      const tf = doc.counts.get(t) ?? 0;
      if (tf === 0) continue;
      score += idf.get(t)! * ((tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + (BM25_B * doc.length) / avgLength)));
    }
    if (score > 0) hits.push({ entry, score });
  });
  return hits
    .sort((a, b) => b.score - a.score || (b.entry.year ?? 0) - (a.entry.year ?? 0) || a.entry.key.localeCompare(b.entry.key))
    .slice(0, limit);
}

const BM25_K1 = 1.2;
const BM25_B = 0.75;

function tokenize(text: string): string[] {
  return text
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .split(/[^a-z0-9]+/)
    .filter((t) => t.length > 1 && !STOPWORDS.has(t));
}

function termCounts(tokens: string[]): { counts: Map<string, number>; length: number } {
  const counts = new Map<string, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  return { counts, length: tokens.length };
}

function toEntry(key: string, type: string, fields: Map<string, string>, bibtex: string, where: string): BibEntry {
  const get = (name: string) => {
    const value = fields.get(name);
    return value === undefined || delatex(value) === "" ? undefined : delatex(value);
  };
  const year = /\d{4}/.exec(fields.get("year") ?? "")?.[0];
  const doi = fields.get("doi")?.trim();
  const eprint = fields.get("eprint")?.trim();
  const url =
    get("url") ??
    (doi ? `https://doi.org/${doi}` : undefined) ??
    (eprint && /arxiv/i.test(fields.get("archiveprefix") ?? "") ? `https://arxiv.org/abs/${eprint}` : undefined);
  const candidate = {
    key,
    type,
    title: get("title"),
    authors: splitAuthors(fields.get("author") ?? fields.get("editor") ?? ""),
    year: year === undefined ? undefined : Number(year),
    venue: get("journal") ?? get("booktitle") ?? get("howpublished") ?? get("school") ?? get("institution") ?? get("publisher"),
    abstract: get("abstract"),
    url,
    bibtex,
  };
  const parsed = BibEntrySchema.safeParse(Object.fromEntries(Object.entries(candidate).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "entry"}: ${i.message}`).join("; ");
    throw new UserError(`${where}: entry ${key} is invalid (${problems})`, {
      hint: "Every entry needs at least a title; fix or remove it.",
    });
  }
  return parsed.data;
}

/** `Last, First and First Last and others` → display names; `and` inside braces is part of a name. */
function splitAuthors(value: string): string[] {
  return splitTopLevel(value, /\s+and\s+/iy)
    .map((name) => {
      const parts = splitTopLevel(name, /\s*,\s*/y);
      // "von Last, Jr, First" and "Last, First" both put the given names last.
      const ordered = parts.length >= 2 ? [parts.at(-1)!, parts[0]!, ...parts.slice(1, -1)] : parts;
      return delatex(ordered.join(" "));
    })
    .map((name) => (name.toLowerCase() === "others" ? "et al." : name))
    .filter((name) => name !== "");
}

/** Splits where `separator` matches outside braces. */
function splitTopLevel(text: string, separator: RegExp): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (depth === 0) {
      separator.lastIndex = i;
      const m = separator.exec(text);
      if (m && m[0].length > 0) {
        out.push(text.slice(start, i));
        start = i + m[0].length;
        i = start - 1;
      }
    }
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim()).filter((s) => s !== "");
}

const ACCENTS: Record<string, string> = {
  '"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304", ".": "\u0307",
  c: "\u0327", v: "\u030c", u: "\u0306", H: "\u030b", k: "\u0328", r: "\u030a",
};
const LETTERS: Record<string, string> = {
  l: "ł", L: "Ł", o: "ø", O: "Ø", ss: "ß", ae: "æ", AE: "Æ", oe: "œ", OE: "Œ", aa: "å", AA: "Å", i: "ı", j: "ȷ",
};

/** Readable text from a BibTeX value: accents composed, commands and braces dropped, whitespace collapsed. */
function delatex(value: string): string {
  return value
    .replace(/\\([cvuHkr])\s*\{\s*(\\?[A-Za-z])\s*\}|\\(["'`^~=.])\s*\{?\s*(\\?[A-Za-z])\s*\}?/g, (_m, c1, l1, c2, l2) => {
      // An accent on a dotless \i or \j goes on a plain i or j.
      const base = String(l1 ?? l2).replace(/^\\/, "");
      return (base + ACCENTS[String(c1 ?? c2)]).normalize("NFC");
    })
    .replace(/\\(ss|ae|AE|oe|OE|aa|AA|l|L|o|O|i|j)(?![A-Za-z])\s*/g, (_m, name: string) => LETTERS[name] ?? name)
    .replace(/\\([&%$#_{}])/g, "$1")
    .replace(/\\[A-Za-z]+\*?\s*/g, "")
    .replace(/---/g, "—")
    .replace(/--/g, "–")
    .replace(/[{}$]/g, "")
    .replace(/~/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/** A position in the text being parsed, with errors that name the file and line. */
class Cursor {
  pos = 0;
  /** Where the entry being read began, so an error at the end of the file still points at its cause. */
  entryStart: number | undefined;
  constructor(
    private readonly text: string,
    private readonly source: string,
  ) {}

  peek(): string | undefined {
    return this.text[this.pos];
  }

  match(sticky: RegExp): string | undefined {
    sticky.lastIndex = this.pos;
    const m = sticky.exec(this.text);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  skipSpace(): void {
    this.match(/\s*/y);
  }

  expect(char: string): void {
    this.skipSpace();
    if (this.peek() !== char) this.fail(`expected "${char}" but found ${this.describeHere()}`);
    this.pos++;
  }

  /** `name = value`, with the value's parts joined and macros expanded. */
  field(macros: Map<string, string>): [string, string] {
    this.skipSpace();
    const name = this.match(/[^\s=,{}()"#]+/y)?.toLowerCase();
    if (!name) this.fail(`expected a field name but found ${this.describeHere()}`);
    this.expect("=");
    let value = "";
    for (;;) {
      this.skipSpace();
      value += this.valuePart(macros);
      this.skipSpace();
      if (this.peek() !== "#") return [name, value];
      this.pos++;
    }
  }

  private valuePart(macros: Map<string, string>): string {
    const c = this.peek();
    if (c === "{") {
      const start = this.pos + 1;
      this.skipBalanced();
      return this.text.slice(start, this.pos - 1);
    }
    if (c === '"') return this.quoted();
    const word = this.match(/[^\s,{}()"#=]+/y);
    if (!word) this.fail(`expected a value but found ${this.describeHere()}`);
    return /^\d+$/.test(word) ? word : (macros.get(word.toLowerCase()) ?? word);
  }

  /** A `"..."` value; a quote inside braces does not end it (as in BibTeX, a backslash does not escape). */
  private quoted(): string {
    const start = this.pos;
    let depth = 0;
    for (let i = this.pos + 1; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === "{") depth++;
      else if (c === "}") depth--;
      else if (c === '"' && depth === 0) {
        this.pos = i + 1;
        return this.text.slice(start + 1, i);
      }
    }
    this.pos = start;
    this.fail("a quoted value is never closed");
  }

  /** From an opening `{` or `(` past its matching closer; only braces nest, as in BibTeX. */
  skipBalanced(): void {
    const start = this.pos;
    const open = this.text[start];
    const close = open === "(" ? ")" : "}";
    let depth = 0;
    for (let i = start; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === "{") depth++;
      else if (c === "}") depth--;
      if (open === "(" ? c === close && depth === 0 : depth === 0) {
        this.pos = i + 1;
        return;
      }
    }
    this.fail(`unbalanced "${open}" (it is never closed)`);
  }

  where(offset = this.pos): string {
    return `${this.source}:${this.line(offset)}`;
  }

  private line(offset: number): number {
    return this.text.slice(0, offset).split("\n").length;
  }

  fail(message: string): never {
    const context = this.entryStart === undefined ? "" : ` (in the entry that starts at line ${this.line(this.entryStart)})`;
    throw new UserError(`${this.where()}: ${message}${context}`, {
      hint: "Fix the BibTeX at that line: braces must balance, fields need `name = value`, separated by commas.",
    });
  }

  private describeHere(): string {
    const c = this.peek();
    return c === undefined ? "the end of the file" : JSON.stringify(this.text.slice(this.pos, this.pos + 20));
  }
}

const MONTHS: [string, string][] = [
  "january", "february", "march", "april", "may", "june",
  "july", "august", "september", "october", "november", "december",
].map((m) => [m.slice(0, 3), m[0]!.toUpperCase() + m.slice(1)]);

const STOPWORDS = new Set(
  `a about above after again against all am an and any are as at be because been before being below between both
  but by can could did do does doing down during each few for from further had has have having he her here hers
  herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
  once only or other our ours ourselves out over own same she should so some such than that the their theirs them
  themselves then there these they this those through to too under until up very was we were what when where which
  while who whom why will with would you your yours yourself yourselves also via using use used based new one two
  may might must shall upon whether`.split(/\s+/),
);
