import type { Idea } from "../../bus/schemas.js";
import { jaccard, keywords } from "../text.js";

/** Titles this close (share of content words) ask the same question. */
export const DUPLICATE_THRESHOLD = 0.7;

/** The earlier idea this one nearly repeats (same Name, or a title with the same content words), if any. */
export function nearDuplicate(idea: Idea, earlier: Idea[], threshold = DUPLICATE_THRESHOLD): Idea | undefined {
  const mine = keywords(idea.Title, 30);
  return earlier.find(
    (other) => other.Name.toLowerCase() === idea.Name.toLowerCase() || jaccard(mine, keywords(other.Title, 30)) >= threshold,
  );
}
