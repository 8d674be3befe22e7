import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { UserError } from "../bus/errors.js";
import type { RunConfig } from "../bus/schemas.js";

/** A run's topic as its config keeps it: the file it came from and its text. */
export type Topic = NonNullable<RunConfig["topic"]>;

/** The most a topic file may hold: it goes into every prompt that writes the template. */
export const TOPIC_MAX_BYTES = 100_000;

/** A topic file read apart: its title and the sections under `## ` headings (Keywords, TL;DR, Abstract, …). */
export interface TopicParts {
  title: string;
  keywords: string[];
  tldr: string;
  abstract: string;
  /** The question the topic asks: its title if that is one, else its first sentence that ends in "?", else its TL;DR's first sentence, else its title. */
  question: string;
}

const TITLE = /^[ \t]*#{0,2}[ \t]*Title[ \t]*:[ \t]*(\S.*?)[ \t]*$/im;
const HEADING = /^[ \t]*#[ \t]+(?!Title[ \t]*:)(\S.*?)[ \t]*$/m;

/** The sections of a topic file, by their heading in lower case, without the `#`s. */
function sections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | undefined;
  let body: string[] = [];
  const flush = () => {
    if (name !== undefined) out.set(name, body.join("\n").trim());
  };
  for (const line of text.split("\n")) {
    const m = /^[ \t]*#{2,}[ \t]*(\S.*?)[ \t]*:?[ \t]*$/.exec(line);
    if (m) {
      flush();
      name = m[1]!.toLowerCase();
      body = [];
    } else if (name !== undefined) body.push(line);
  }
  flush();
  return out;
}

const firstSentence = (text: string) => /^[\s\S]*?[.!?](?=\s|$)/.exec(text.replace(/\s+/g, " ").trim())?.[0] ?? text.replace(/\s+/g, " ").trim();

/** The title line (`# Title: …`, `Title: …`, or a first `# ` heading), or undefined. */
export function topicTitle(text: string): string | undefined {
  const title = TITLE.exec(text)?.[1] ?? HEADING.exec(text)?.[1];
  return title?.replace(/\s+/g, " ").trim() || undefined;
}

/** The parts of a topic in the AI Scientist v2's workshop format (Title, Keywords, TL;DR, Abstract). */
export function parseTopic(text: string): TopicParts {
  const s = sections(text);
  const title = topicTitle(text) ?? "an untitled topic";
  const tldr = s.get("tl;dr") ?? s.get("tldr") ?? "";
  const abstract = s.get("abstract") ?? "";
  const keywords = (s.get("keywords") ?? "").split(/[,;\n]/).map((k) => k.replace(/^[-*\s]+/, "").trim()).filter(Boolean);
  const asked = `${tldr} ${abstract} ${[...s].filter(([k]) => !["tl;dr", "tldr", "abstract", "keywords"].includes(k)).map(([, v]) => v).join(" ")}`
    .replace(/\s+/g, " ")
    .match(/[^.!?]*\?/)?.[0]
    ?.trim();
  const question = title.endsWith("?") ? title : asked || (tldr ? firstSentence(tldr) : `${title.replace(/[.?!]+$/, "")}?`);
  return { title, keywords, tldr, abstract, question };
}

/** A short, file-safe name for a topic: `topic-<words of its title>`, which names its template and its archive. */
export function topicSlug(text: string): string {
  const words = (topicTitle(text) ?? "topic").toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  // Whole words, up to 40 characters (a first word longer than that is cut).
  let kept = "";
  for (const w of words.split("-")) {
    if (kept && kept.length + 1 + w.length > 40) break;
    kept = kept ? `${kept}-${w}` : w.slice(0, 40);
  }
  return `topic-${kept || "untitled"}`;
}

/** Reads and checks a topic file for `--topic`: it must exist, hold text under 100 kB, and have a title line. */
export function readTopic(file: string): Topic {
  const path = resolve(file);
  const hint = "a topic file is Markdown with a title line (`# Title: …`) and, as the AI Scientist v2's workshop files, `## Keywords`, `## TL;DR` and `## Abstract` sections";
  if (!existsSync(path) || !statSync(path).isFile()) throw new UserError(`--topic ${file}: no such file`, { hint });
  const size = statSync(path).size;
  if (size > TOPIC_MAX_BYTES) throw new UserError(`--topic ${file} is ${Math.round(size / 1000)} kB, over the ${TOPIC_MAX_BYTES / 1000} kB a topic may have`, { hint: "describe the research area in a page or two; the coder writes the experiment from it" });
  const text = readFileSync(path, "utf8");
  if (!text.trim()) throw new UserError(`--topic ${file} is empty`, { hint });
  if (text.includes("\u0000")) throw new UserError(`--topic ${file} is not a text file`, { hint });
  if (!topicTitle(text)) throw new UserError(`--topic ${file} has no title line`, { hint });
  return { file: path, text };
}
