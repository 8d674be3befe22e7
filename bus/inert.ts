/**
 * Text that came over the bus, made safe to print or to use in a file name: anyone who can publish could
 * otherwise clear a console, move its cursor, retitle it, or reorder what it shows.
 */

/** Terminal escape sequences: CSI (ESC [ or the 8-bit CSI), OSC, DCS/SOS/PM/APC strings, and two-character escapes. */
const ESCAPES =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[ -/]*[0-~]?/g;
/** Controls left after the sequences are gone (C0 but tab and newline, DEL, C1), and bidi and invisible format characters. */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
/** What a single line turns a line break or a tab into, so that words stay apart. */
const BREAKS = /\r\n|[\r\n\t\v\f\u2028\u2029]/g;

export interface InertOptions {
  /** Keep newlines and tabs, for a block of text meant to be shown on several lines; else it becomes one line. */
  lines?: boolean;
}

/**
 * `text` with every escape sequence and control character removed and at most `maxChars` characters of it
 * kept; what was cut is said, with how much, so a shortened line cannot pass for a whole one.
 */
export function inert(text: string, maxChars: number, opts: InertOptions = {}): string {
  const clean = (opts.lines ? text.replace(/\r\n?/g, "\n") : text.replace(BREAKS, " "))
    .replace(ESCAPES, "")
    .replace(CONTROLS, "");
  if (clean.length <= maxChars) return clean;
  let end = Math.max(0, maxChars);
  // Never half a surrogate pair.
  if (end > 0 && /[\ud800-\udbff]/.test(clean[end - 1]!)) end--;
  return `${clean.slice(0, end)}… [${clean.length - end} more characters cut]`;
}
