import { z } from "zod";
import { CsvFormatError } from "./errors.js";

/** One CSV record and the line of the file it starts on (1-based), for messages that point at it. */
export interface CsvRecord {
  line: number;
  fields: string[];
}

const HINT = "the file should be RFC 4180 CSV: fields with commas, quotes or newlines in double quotes, a quote inside written twice";

/**
 * Parses RFC 4180 CSV: comma-separated fields, CRLF or LF between records, quoted fields that may hold
 * commas, newlines and doubled quotes. A leading BOM and blank lines are ignored; a quote inside an
 * unquoted field is kept as text (as Python's csv module does). Text after a closing quote and a quote
 * that never closes are errors that name the line.
 */
export function csvRecords(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let closedQuote = false;
  let line = 1;
  let recordLine = 1;
  let quoteLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const endRecord = () => {
    const blank = fields.length === 0 && field === "" && !closedQuote;
    if (!blank) records.push({ line: recordLine, fields: [...fields, field] });
    fields = [];
    field = "";
    closedQuote = false;
  };

  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        closedQuote = true;
      } else {
        if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === ",") {
      fields.push(field);
      field = "";
      closedQuote = false;
      i++;
    } else if (c === "\n" || c === "\r") {
      endRecord();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++;
      recordLine = line;
    } else if (closedQuote) {
      throw new CsvFormatError(`CSV line ${line}: ${JSON.stringify(c)} follows a closing quote; a field is either all quoted or not at all`, { hint: HINT });
    } else if (c === '"' && field === "") {
      quoted = true;
      quoteLine = line;
      i++;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new CsvFormatError(`CSV line ${quoteLine}: a quoted field never closes`, { hint: HINT });
  if (fields.length > 0 || field !== "" || closedQuote) endRecord();
  return records;
}

/** The fields of every record. */
export function parseCsv(text: string): string[][] {
  return csvRecords(text).map((r) => r.fields);
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) || value !== value.trim() ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Writes records as CSV (LF between records, as pandas writes the reference's files), quoting only where needed. */
export function formatCsv(records: readonly (readonly string[])[]): string {
  // A record of one empty field is written `""`, or it would read back as a blank line.
  return records.map((r) => (r.length === 1 && r[0] === "" ? '""' : r.map(csvField).join(","))).join("\n") + "\n";
}

/** The reference's review CSV: one row per paper, the review form's fields as its columns. */
export const REVIEW_COLUMNS = [
  "paper_id",
  "Summary",
  "Questions",
  "Limitations",
  "Ethical Concerns",
  "Soundness",
  "Presentation",
  "Contribution",
  "Overall",
  "Confidence",
  "Strengths",
  "Weaknesses",
  "Originality",
  "Quality",
  "Clarity",
  "Significance",
  "Decision",
] as const;
export type ReviewColumn = (typeof REVIEW_COLUMNS)[number];

/** A row as the file has it: every field a string, read and judged later (an Overall may be empty). */
export const ReviewCsvRow = z.looseObject({ paper_id: z.string(), Overall: z.string(), Decision: z.string().optional() });
export type ReviewCsvRow = z.infer<typeof ReviewCsvRow> & { line: number };

/** Reads a review CSV; it needs `paper_id` and `Overall` columns, and every row as many fields as the header. */
export function readReviewCsv(text: string, source: string): { columns: string[]; rows: ReviewCsvRow[] } {
  const [header, ...records] = csvRecords(text);
  if (!header) throw new CsvFormatError(`${source} is empty`, { hint: "give a review CSV with a header row: paper_id,…,Overall,…,Decision" });
  const columns = header.fields.map((c) => c.trim());
  const missing = ["paper_id", "Overall"].filter((c) => !columns.includes(c));
  if (missing.length) {
    throw new CsvFormatError(`${source} has no ${missing.join(" or ")} column (its header: ${columns.join(", ")})`, {
      hint: `a review CSV has the columns ${REVIEW_COLUMNS.join(", ")}`,
    });
  }
  const rows = records.map((r) => {
    if (r.fields.length !== columns.length) {
      throw new CsvFormatError(`${source} line ${r.line}: ${r.fields.length} fields where the header has ${columns.length}`, { hint: HINT });
    }
    const parsed = ReviewCsvRow.safeParse(Object.fromEntries(columns.map((c, k) => [c, r.fields[k]])));
    if (!parsed.success) throw new CsvFormatError(`${source} line ${r.line}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    return { ...parsed.data, line: r.line };
  });
  return { columns, rows };
}

/** Writes rows in the reference's column order. */
export function formatReviewCsv(rows: readonly Record<ReviewColumn, string>[]): string {
  return formatCsv([REVIEW_COLUMNS, ...rows.map((row) => REVIEW_COLUMNS.map((c) => row[c]))]);
}
