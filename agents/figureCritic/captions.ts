import type { FigureToCheck } from "../../bus/schemas.js";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Each figure with what the coder's notes say of it: the lines from the one that names its file up to a blank
 * line or a line that names another figure (its caption at this stage), and the notes' other sentences that
 * name it (its references).
 */
export function captionsFromNotes(notes: string, figures: string[]): FigureToCheck[] {
  const lines = notes.split("\n");
  const names = (line: string, f: string) => new RegExp(`(^|[^\\w.-])${escape(f)}($|[^\\w-])`).test(line);
  return figures.map((name) => {
    const caption: string[] = [];
    const first = lines.findIndex((l) => names(l, name));
    if (first >= 0) {
      for (let i = first; i < lines.length; i++) {
        const line = lines[i]!;
        if (i > first && (!line.trim() || figures.some((f) => f !== name && names(line, f)))) break;
        caption.push(line.trim());
      }
    }
    const taken = new Set(caption);
    const references = lines.filter((l, i) => i !== first && !taken.has(l.trim()) && names(l, name)).map((l) => l.trim());
    return { name, caption: caption.join(" "), references };
  });
}

/** A LaTeX figure environment of a paper: the file it includes, its caption, its label. */
export interface PaperFigure {
  file: string;
  caption: string;
  label: string | undefined;
}

/** The balanced brace group that opens at `open`, without its braces. */
function group(tex: string, open: number): string {
  let depth = 0;
  for (let i = open; i < tex.length; i++) {
    if (tex[i] === "\\") i++;
    else if (tex[i] === "{") depth++;
    else if (tex[i] === "}" && --depth === 0) return tex.slice(open + 1, i);
  }
  return tex.slice(open + 1);
}

/** The figures of a paper's LaTeX, each with its caption and label as written. */
export function paperFigures(tex: string): PaperFigure[] {
  const out: PaperFigure[] = [];
  for (const m of tex.matchAll(/\\begin\{figure\*?\}([\s\S]*?)\\end\{figure\*?\}/g)) {
    const body = m[1]!;
    const file = /\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}/.exec(body)?.[1];
    if (!file) continue;
    const at = body.search(/\\caption\s*\{/);
    const caption = at >= 0 ? group(body, body.indexOf("{", at)) : "";
    out.push({ file, caption, label: /\\label\{([^}]*)\}/.exec(body)?.[1] });
  }
  return out;
}

/** The sentences of the paper's text that refer to a label (`\ref{fig:x}` and the like). */
export function referringSentences(texts: string[], label: string | undefined): string[] {
  if (!label) return [];
  const ref = new RegExp(`\\\\(?:ref|cref|Cref|autoref)\\{${escape(label)}\\}`);
  return texts
    .flatMap((t) => t.replace(/\\begin\{(figure|table)\*?\}[\s\S]*?\\end\{\1\*?\}/g, "").replace(/\s+/g, " ").split(/(?<=[.!?])\s+/))
    .filter((s) => ref.test(s));
}

/** LaTeX text as a reader reads it, near enough for the figure check: `run\_3` is run_3, `~` a space. */
export const plainText = (tex: string) => tex.replace(/\\([_%&#$])/g, "$1").replace(/~/g, " ");

/** The section's LaTeX with the caption of the figure that includes `file` replaced; unchanged when it has none. */
export function replaceCaption(latex: string, file: string, caption: string): string {
  return latex.replace(/\\begin\{figure\*?\}[\s\S]*?\\end\{figure\*?\}/g, (env) => {
    if (!new RegExp(`\\\\includegraphics(?:\\[[^\\]]*\\])?\\{${escape(file)}\\}`).test(env)) return env;
    const at = env.search(/\\caption\s*\{/);
    if (at < 0) return env;
    const open = env.indexOf("{", at);
    const old = group(env, open);
    return `${env.slice(0, open + 1)}${caption}${env.slice(open + 1 + old.length)}`;
  });
}
