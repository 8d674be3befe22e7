import { z } from "zod";

export const Edit = z.object({
  search: z.string().min(1).describe("lines copied exactly from the current file"),
  replace: z.string().describe("the lines that take their place"),
});
export type Edit = z.infer<typeof Edit>;

/** An edit that does not apply, with what the author needs to correct it. */
export class EditError extends Error {
  override readonly name = "EditError";
}

const norm = (line: string) => line.trim().replace(/\s+/g, " ");

function lineOffsets(lines: string[]): number[] {
  const offsets: number[] = [];
  let at = 0;
  for (const line of lines) {
    offsets.push(at);
    at += line.length + 1;
  }
  return offsets;
}

/**
 * Applies SEARCH/REPLACE edits in order: an exact, unique match first; else a match of whole lines that
 * ignores differences in whitespace. An edit that matches nowhere, or more than once, is refused with the
 * closest lines, so the model can try again.
 */
export function applyEdits(source: string, edits: Edit[], file = "experiment.py"): string {
  let text = source;
  edits.forEach((edit, i) => {
    const label = `edit ${i + 1} of ${edits.length} on ${file}`;
    const first = text.indexOf(edit.search);
    if (first !== -1) {
      if (text.indexOf(edit.search, first + 1) !== -1) {
        throw new EditError(`${label}: the SEARCH text occurs more than once; include more surrounding lines so it is unique`);
      }
      text = text.slice(0, first) + edit.replace + text.slice(first + edit.search.length);
      return;
    }
    const lines = text.split("\n");
    const wanted = edit.search.replace(/\n$/, "").split("\n").map(norm);
    while (wanted.length && wanted[0] === "") wanted.shift();
    while (wanted.length && wanted[wanted.length - 1] === "") wanted.pop();
    if (!wanted.length) throw new EditError(`${label}: the SEARCH text is blank`);
    const matches: number[] = [];
    for (let s = 0; s + wanted.length <= lines.length; s++) {
      if (wanted.every((w, k) => norm(lines[s + k]!) === w)) matches.push(s);
    }
    if (matches.length === 1) {
      const start = matches[0]!;
      const offsets = lineOffsets(lines);
      const from = offsets[start]!;
      const endLine = start + wanted.length - 1;
      const to = offsets[endLine]! + lines[endLine]!.length;
      text = text.slice(0, from) + edit.replace.replace(/\n$/, "") + text.slice(to);
      return;
    }
    if (matches.length > 1) {
      throw new EditError(`${label}: the SEARCH lines match ${matches.length} places (lines ${matches.map((m) => m + 1).join(", ")}); include more context`);
    }
    const firstWanted = wanted[0]!;
    const near = lines
      .map((line, n) => ({ n, line, score: similarity(norm(line), firstWanted) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 3)
      .map(({ n, line }) => `  line ${n + 1}: ${line}`)
      .join("\n");
    throw new EditError(`${label}: the SEARCH text is not in the file. Its first line was:\n  ${firstWanted}\nThe closest lines are:\n${near}`);
  });
  return text;
}

function similarity(a: string, b: string): number {
  const grams = (s: string) => new Set(Array.from({ length: Math.max(0, s.length - 2) }, (_, i) => s.slice(i, i + 3)));
  const ga = grams(a);
  const gb = grams(b);
  let shared = 0;
  for (const g of ga) if (gb.has(g)) shared++;
  return shared / Math.max(1, ga.size + gb.size - shared);
}
