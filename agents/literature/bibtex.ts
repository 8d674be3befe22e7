/**
 * BibTeX that compiles: entries built from a service's metadata, with LaTeX's special characters escaped and
 * text that pdflatex cannot typeset replaced. Entries are written for pdflatex + BibTeX, the AI Scientist's
 * toolchain, under any standard style (plain, plainnat, abbrv, alpha) and either font encoding (OT1 or T1).
 */

const ENTRY_TYPES = ["article", "inproceedings", "misc", "book", "incollection", "phdthesis", "techreport"] as const;
export type EntryType = (typeof ENTRY_TYPES)[number];
/** Fields of a service's entry kept besides those built from metadata; names (editor) are not among them. */
const KEPT_FIELDS = new Set(["volume", "number", "pages", "publisher", "school", "institution", "edition", "series"]);

export interface BibtexInput {
  key: string;
  type: EntryType;
  title: string;
  /** Display names, "First Last". */
  authors: string[];
  year?: number | undefined;
  journal?: string | undefined;
  booktitle?: string | undefined;
  /** Bare DOI, `10.xxxx/...`. */
  doi?: string | undefined;
  url?: string | undefined;
  /** Further fields as plain text (volume, pages, publisher): escaped like the rest. */
  extra?: [string, string][];
}

/** An entry from plain-text metadata: title braced so styles keep its capitals, names as "Last, First". */
export function buildBibtex(entry: BibtexInput): string {
  const fields: [string, string][] = [["title", `{${latexText(entry.title) || "Untitled"}}`]];
  const authors = entry.authors.map(bibtexName).filter((n) => n !== "");
  if (authors.length > 0) fields.push(["author", authors.join(" and ")]);
  if (entry.journal) fields.push(["journal", latexText(entry.journal)]);
  if (entry.booktitle) fields.push(["booktitle", latexText(entry.booktitle)]);
  for (const [name, value] of entry.extra ?? []) fields.push([name, latexText(value)]);
  if (entry.year !== undefined) fields.push(["year", String(entry.year)]);
  const doi = entry.doi && safeDoi(entry.doi);
  const url = entry.url && safeUrl(entry.url);
  // The DOI already links the paper; a second link to the same place only clutters the reference.
  if (doi) fields.push(["doi", doi]);
  else if (url) fields.push(["url", url]);
  const body = fields.filter(([, v]) => v !== "").map(([name, value]) => `  ${name} = {${value}},`);
  return `@${entry.type}{${entry.key},\n${body.join("\n")}\n}`;
}

/**
 * Rewrites a service's own BibTeX (Semantic Scholar's `citationStyles.bibtex`) into one that compiles: its
 * key replaced, its entry type made real (S2 writes `@['JournalArticle', 'Conference']{...`), its values
 * treated as the plain text they are and escaped. Undefined when the text is not one parseable entry.
 */
export function rewriteBibtex(raw: string, key: string, add: { doi?: string | undefined; url?: string | undefined } = {}): string | undefined {
  const parsed = parseEntry(raw);
  if (!parsed) return undefined;
  const values = new Map(parsed.fields);
  const text = (name: string) => (values.get(name) ?? "").replace(/[{}]/g, "").replace(/\s+/g, " ").trim();
  const title = text("title");
  if (!title) return undefined;
  const named = parsed.type.toLowerCase();
  const type: EntryType = (ENTRY_TYPES as readonly string[]).includes(named)
    ? (named as EntryType)
    : text("booktitle") ? "inproceedings" : text("journal") ? "article" : "misc";
  const year = /\d{4}/.exec(text("year"))?.[0];
  return buildBibtex({
    key,
    type,
    title,
    authors: splitAuthors(values.get("author") ?? ""),
    year: year === undefined ? undefined : Number(year),
    // S2 gives conference papers `journal = {ArXiv}` beside the booktitle: one venue per entry type.
    journal: type === "inproceedings" ? undefined : text("journal") || undefined,
    booktitle: type === "article" ? undefined : text("booktitle") || undefined,
    doi: text("doi") || add.doi,
    url: text("url") || add.url,
    extra: parsed.fields.filter(([name]) => KEPT_FIELDS.has(name)).map(([name]) => [name, text(name)]),
  });
}

/** Replaces the key of a BibTeX entry. */
export function setBibtexKey(bibtex: string, key: string): string {
  return bibtex.replace(/^(\s*@\s*[^{(]*[{(]\s*)[^,\s]*/, `$1${key}`);
}

/** The bare DOI in an entry's `doi` field, lowercased (DOIs are case-insensitive). */
export function bibtexDoi(bibtex: string): string | undefined {
  return /[\s,]doi\s*=\s*[{"]\s*([^}"\s]+)\s*[}"]/i.exec(bibtex)?.[1]?.toLowerCase();
}

/** `https://doi.org/10.1/x`, `doi:10.1/x` or `10.1/x` → `10.1/x`. */
export function bareDoi(value: string | null | undefined): string | undefined {
  const m = /(10\.\d{4,9}\/\S+)$/.exec((value ?? "").trim());
  return m?.[1];
}

// A DOI or URL goes into \doi / \url (the url package reads them verbatim); characters that would end the
// field or start a comment even there are left out rather than half-escaped.
function safeDoi(doi: string): string | undefined {
  const bare = bareDoi(doi);
  return bare && /^[^\s{}%#\\]+$/.test(bare) ? bare : undefined;
}

function safeUrl(url: string): string | undefined {
  return /^https?:\/\/[^\s{}%#\\"]+$/.test(url) ? url : undefined;
}

/** `Ashish Vaswani` → `Vaswani, Ashish`; `Madeleine van Zuylen` → `van Zuylen, Madeleine`; `Martin King Jr.` → `King, Jr., Martin`. */
export function bibtexName(displayName: string): string {
  const name = displayName.replace(/\s+/g, " ").trim();
  if (!name) return "";
  if (name.includes(",")) {
    // Already "Last, First" (as some sources write it): escape the parts, keep the order.
    return name.split(",").map((p) => nameText(p.trim())).filter(Boolean).join(", ");
  }
  const tokens = name.split(" ");
  if (tokens.length === 1) return nameText(tokens[0]!);
  let end = tokens.length;
  const suffix = end > 2 && /^(jr\.?|sr\.?|ii|iii|iv)$/i.test(tokens[end - 1]!) ? tokens[--end] : undefined;
  let start = end - 1;
  // Lowercase particles before the last name belong to it ("van der Waals").
  while (start > 1 && /^\p{Ll}/u.test(tokens[start - 1]!)) start--;
  const last = tokens.slice(start, end).map(nameToken).join(" ");
  const first = tokens.slice(0, start).map(nameToken).join(" ");
  return [last, suffix && nameToken(suffix), first].filter(Boolean).join(", ");
}

/** A lone "and" in a name would split it in two for BibTeX. */
function nameToken(token: string): string {
  return token.toLowerCase() === "and" ? `{${token}}` : nameText(token);
}

function splitAuthors(value: string): string[] {
  return value
    .replace(/[{}]/g, "")
    .split(/\s+and\s+/i)
    .map((n) => n.trim())
    .filter((n) => n !== "" && n.toLowerCase() !== "others");
}

const ESCAPES: Record<string, string> = {
  "\\": "\\textbackslash{}",
  "{": "\\textbraceleft{}",
  "}": "\\textbraceright{}",
  "&": "\\&",
  "%": "\\%",
  $: "\\$",
  "#": "\\#",
  _: "\\_",
  "~": "\\textasciitilde{}",
  "^": "\\textasciicircum{}",
  // OT1 fonts print these three as other glyphs (¡, ¿, —).
  "<": "\\textless{}",
  ">": "\\textgreater{}",
  "|": "\\textbar{}",
};

/**
 * Characters beyond ASCII that pdflatex with inputenc utf8 typesets under both OT1 and T1 (probed with
 * TeX Live 2022): Latin-1 and most of Latin Extended-A, typographic punctuation, a few symbols.
 */
const TYPESETTABLE =
  /[\u00a0-\u00aa\u00ac\u00ae-\u00b4\u00b6-\u00ba\u00bc-\u00cf\u00d1-\u00dd\u00df-\u00ef\u00f1-\u00fd\u00ff-\u0103\u0106-\u010f\u0112-\u0117\u011a-\u0125\u0128-\u012d\u0131-\u0137\u0139-\u013e\u0141-\u0148\u014c-\u0165\u0168-\u0171\u0174-\u017e\u01c4-\u01d4\u01e2-\u01e3\u01e6-\u01e9\u01f4-\u01f5\u0218-\u021b\u0232-\u0233\u2010-\u2016\u2018-\u2019\u201c-\u201d\u2020-\u2022\u2026\u2030-\u2031\u2044\u20ac\u2122]/;

const GREEK: Record<string, string> = Object.fromEntries(
  (
    "α alpha β beta γ gamma δ delta ε epsilon ζ zeta η eta θ theta ι iota κ kappa λ lambda μ mu ν nu ξ xi π pi ρ rho " +
    "σ sigma ς varsigma τ tau υ upsilon φ phi χ chi ψ psi ω omega ϵ epsilon ϑ vartheta ϕ phi ϱ varrho ϖ varpi " +
    "Γ Gamma Δ Delta Θ Theta Λ Lambda Ξ Xi Π Pi Σ Sigma Υ Upsilon Φ Phi Ψ Psi Ω Omega µ mu " +
    "≤ leq ≥ geq ≠ neq ≈ approx ∞ infty → rightarrow ← leftarrow ↔ leftrightarrow ⇒ Rightarrow ∈ in ∑ sum ∏ prod " +
    "√ surd ∂ partial ∇ nabla ∼ sim ≡ equiv ∀ forall ∃ exists ∝ propto ⊂ subset ⊆ subseteq ∩ cap ∪ cup ℓ ell ⋅ cdot"
  )
    .match(/\S+ \S+/g)!
    .map((pair) => {
      const [ch, name] = pair.split(" ") as [string, string];
      return [ch, `\\ensuremath{\\${name}}`];
    }),
);

/** What stays readable when a character cannot be typeset and has no decomposition to fall back on. */
const SUBSTITUTES: Record<string, string> = {
  ð: "d", Ð: "D", þ: "th", Þ: "Th", đ: "d", Đ: "D", ħ: "h", Ħ: "H", ŋ: "ng", Ŋ: "Ng", ŧ: "t", Ŧ: "T", ĸ: "k", ſ: "s",
  "’": "'", "‘": "'", "‐": "-", "‑": "-", "«": '"', "»": '"', "„": '"', "‟": '"', "‚": ",", "‛": "'", "′": "'", "″": "''", "−": "-", "∗": "*",
  Α: "A", Β: "B", Ε: "E", Ζ: "Z", Η: "H", Ι: "I", Κ: "K", Μ: "M", Ν: "N", Ο: "O", Ρ: "P", Τ: "T", Χ: "X", ο: "o",
};

/**
 * Plain text as LaTeX for a BibTeX field: specials escaped; UTF-8 letters pdflatex can typeset kept as they
 * are; Greek and common math symbols as math; other letters folded to ASCII (ą → a); the rest (CJK, emoji,
 * control characters) left out, since a single one stops pdflatex.
 */
export function latexText(text: string): string {
  let out = "";
  for (const ch of text.normalize("NFC")) out += latexChar(ch);
  return out.replace(/ {2,}/g, " ").trim();
}

function latexChar(ch: string): string {
  if (/\s/.test(ch)) return " ";
  const code = ch.codePointAt(0)!;
  if (code >= 0x20 && code < 0x7f) return ESCAPES[ch] ?? ch;
  if (code < 0x20 || code === 0x7f) return "";
  if (TYPESETTABLE.test(ch)) return ch;
  const mapped = GREEK[ch] ?? SUBSTITUTES[ch];
  if (mapped !== undefined) return mapped;
  const folded = ch.normalize("NFKD").replace(/\p{M}/gu, "");
  if (folded !== ch && folded !== "" && [...folded].every((c) => c.codePointAt(0)! < 0x7f || TYPESETTABLE.test(c))) {
    return [...folded].map(latexChar).join("");
  }
  return "";
}

/** BibTeX's own commands for letters it must not cut in half. */
const LETTERS: Record<string, string> = {
  ß: "\\ss", æ: "\\ae", Æ: "\\AE", œ: "\\oe", Œ: "\\OE", ø: "\\o", Ø: "\\O", ł: "\\l", Ł: "\\L", å: "\\aa", Å: "\\AA", ı: "\\i",
};
/** Accents available in both OT1 and T1 (the ogonek, \k, is T1 only: ą falls back to a). */
const ACCENTS: Record<string, string> = {
  "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u", "\u0307": ".",
  "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0323": "d", "\u0327": "c", "\u0331": "b",
};

/**
 * A name part as LaTeX, with accented letters as BibTeX special characters (`{\"{u}}`). Styles that
 * abbreviate first names or build labels (abbrv, alpha) cut names byte by byte, and half a UTF-8 letter
 * stops pdflatex; a special character is cut whole.
 */
function nameText(text: string): string {
  let out = "";
  for (const ch of text.normalize("NFC")) {
    if (ch.codePointAt(0)! < 0x80) {
      out += latexChar(ch);
      continue;
    }
    const letter = LETTERS[ch];
    if (letter) {
      out += `{${letter}}`;
      continue;
    }
    const [base, ...marks] = [...ch.normalize("NFD")];
    if (base && /^[A-Za-z]$/.test(base) && marks.length > 0 && marks.every((m) => ACCENTS[m])) {
      // A dotless i or j under an accent, as LaTeX expects.
      const inner = base === "i" || base === "j" ? `\\${base}` : base;
      out += `{${marks.reduce((acc, m) => `\\${ACCENTS[m]}{${acc}}`, inner)}}`;
      continue;
    }
    // Anything else non-ASCII in a name is folded too: raw UTF-8 is what the cut breaks.
    const folded = ch.normalize("NFKD").replace(/\p{M}/gu, "");
    if (/^[\x20-\x7e]+$/.test(folded)) out += latexText(folded);
    else out += SUBSTITUTES[ch] ?? "";
  }
  return out.replace(/ {2,}/g, " ").trim();
}

/** `@type{key, name = {value}, name = "value", name = 2020}`: the type and fields of one entry. */
function parseEntry(raw: string): { type: string; fields: [string, string][] } | undefined {
  const head = /^\s*@\s*([^{(]*?)\s*([{(])\s*[^,\s]*\s*,/.exec(raw);
  if (!head) return undefined;
  const type = head[1]!;
  const fields: [string, string][] = [];
  let pos = head[0].length;
  const field = /\s*([A-Za-z][\w-]*)\s*=\s*/y;
  for (;;) {
    field.lastIndex = pos;
    const m = field.exec(raw);
    if (!m) break;
    pos = field.lastIndex;
    const value = readValue(raw, pos);
    if (!value) return undefined;
    fields.push([m[1]!.toLowerCase(), value.text]);
    pos = value.end;
    const sep = /\s*,?/y;
    sep.lastIndex = pos;
    pos += sep.exec(raw)![0].length;
  }
  return { type, fields };
}

function readValue(raw: string, at: number): { text: string; end: number } | undefined {
  const open = raw[at];
  if (open === "{" || open === '"') {
    let depth = 0;
    for (let i = at; i < raw.length; i++) {
      const c = raw[i];
      if (c === "{") depth++;
      else if (c === "}") depth--;
      if ((open === "{" && depth === 0) || (open === '"' && c === '"' && i > at && depth === 0)) {
        return { text: raw.slice(at + 1, i), end: i + 1 };
      }
      if (depth < 0) return undefined;
    }
    return undefined;
  }
  const bare = /[A-Za-z0-9_.:+-]+/y;
  bare.lastIndex = at;
  const m = bare.exec(raw);
  return m ? { text: m[0], end: at + m[0].length } : undefined;
}
