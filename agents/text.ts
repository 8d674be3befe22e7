/** Word-level text measures shared by agents: what an idea or a title is about, and how close two are. */

const STOP = new Set(
  "a an and are as at be by does do for from how in into is it its of on or than that the this to we what when which with without more less over under our their vs versus".split(" "),
);

/** The distinct content words of a text, in order, at most `max`. */
export function keywords(text: string, max = 8): string[] {
  const out: string[] = [];
  for (const w of text.toLowerCase().replace(/[^a-z0-9 ]+/g, " ").split(/\s+/)) {
    if (w.length > 2 && !STOP.has(w) && !out.includes(w)) out.push(w);
    if (out.length >= max) break;
  }
  return out;
}

/** Shared over all distinct items of two lists: 0 for nothing shared, 1 for the same set. */
export function jaccard(a: string[], b: string[]): number {
  const sa = new Set(a);
  const sb = new Set(b);
  let shared = 0;
  for (const x of sa) if (sb.has(x)) shared++;
  return shared / Math.max(1, sa.size + sb.size - shared);
}
