/** What a section may refer to: the figures that exist, the citation keys in the bibliography, and (once the
 * whole paper is written) the labels defined. */
export interface PaperContext {
  figures: string[];
  citationKeys: string[];
  labels?: string[];
}

/** Text with math, comments and command arguments that hold names (files, keys, labels) blanked out. */
function proseOnly(latex: string): string {
  return latex
    .replace(/(?<!\\)%.*$/gm, "")
    .replace(/\$\$[\s\S]*?\$\$|(?<!\\)\$(?:\\\$|[^$])*?(?<!\\)\$|\\\([\s\S]*?\\\)|\\\[[\s\S]*?\\\]/g, " ")
    .replace(/\\begin\{(equation|align|math)\*?\}[\s\S]*?\\end\{\1\*?\}/g, " ")
    .replace(/\\(?:includegraphics|label|ref|eqref|cref|Cref|cite[tp]?|citeauthor|citeyear|nocite|url|href|texttt|input|begin|end)(?:\[[^\]]*\])?\{[^}]*\}/g, " ");
}

const unescaped = (text: string, ch: string) => new RegExp(`(?<!\\\\)\\${ch}`).test(text);

/**
 * The writer's checklist for one section: problems a compile may not catch, or catches too late. Each entry
 * says what is wrong and where, for the model that will fix it.
 */
export function checkSection(section: string, latex: string, ctx: PaperContext): string[] {
  const problems: string[] = [];
  const withoutComments = latex.replace(/(?<!\\)%.*$/gm, "");
  const dollars = (withoutComments.match(/(?<!\\)\$/g) ?? []).length;
  if (dollars % 2 !== 0) problems.push(`${section}: unbalanced math: an odd number of unescaped $`);
  let depth = 0;
  for (const ch of withoutComments.replace(/\\[{}]/g, "")) {
    if (ch === "{") depth++;
    if (ch === "}" && --depth < 0) break;
  }
  if (depth !== 0) problems.push(`${section}: unbalanced braces { }`);
  const prose = proseOnly(latex);
  for (const ch of ["&", "#", "_"]) {
    const inTabular = ch === "&" && /\\begin\{tabular\}/.test(latex);
    if (!inTabular && unescaped(prose, ch)) problems.push(`${section}: unescaped ${ch} in the text (write \\${ch})`);
  }
  // Looked for before comments are stripped: the bare % is what turns the rest of the line into a comment.
  if (/(?<![\\\d.])\d+(?:\.\d+)?%/.test(latex.replace(/\\%/g, ""))) problems.push(`${section}: a bare % after a number starts a comment (write \\%)`);
  if (/\\(?:sub)*section\*?\{/.test(latex)) problems.push(`${section}: contains a \\section command; the template already has the section heading`);
  for (const m of latex.matchAll(/\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}/g)) {
    if (!ctx.figures.includes(m[1]!)) problems.push(`${section}: figure file ${m[1]} does not exist (there are: ${ctx.figures.join(", ") || "none"})`);
  }
  for (const m of ctx.labels ? latex.matchAll(/\\(?:ref|eqref|cref|Cref)\{([^}]*)\}/g) : []) {
    if (!ctx.labels!.includes(m[1]!)) problems.push(`${section}: \\ref{${m[1]}} refers to no \\label`);
  }
  for (const m of latex.matchAll(/\\cite[tp]?\*?(?:\[[^\]]*\])*\{([^}]*)\}/g)) {
    for (const key of m[1]!.split(",").map((k) => k.trim())) {
      if (!ctx.citationKeys.includes(key)) problems.push(`${section}: \\cite{${key}} is not in the bibliography`);
    }
  }
  for (const fig of latex.matchAll(/\\begin\{figure\*?\}([\s\S]*?)\\end\{figure\*?\}/g)) {
    if (!/\\caption\{/.test(fig[1]!)) problems.push(`${section}: a figure has no caption`);
  }
  return problems;
}

/** Checks across the whole paper: figures used twice, figures never referred to, labels defined twice. */
export function checkPaper(sections: Record<string, string>): string[] {
  const all = Object.values(sections).join("\n");
  const problems: string[] = [];
  const used = [...all.matchAll(/\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}/g)].map((m) => m[1]!);
  for (const f of new Set(used)) if (used.filter((u) => u === f).length > 1) problems.push(`figure ${f} is included more than once`);
  const labels = [...all.matchAll(/\\label\{([^}]*)\}/g)].map((m) => m[1]!);
  for (const l of new Set(labels)) if (labels.filter((x) => x === l).length > 1) problems.push(`label ${l} is defined more than once`);
  for (const fig of all.matchAll(/\\begin\{figure\*?\}([\s\S]*?)\\end\{figure\*?\}/g)) {
    const label = /\\label\{([^}]*)\}/.exec(fig[1]!)?.[1];
    if (!label) problems.push("a figure has no \\label, so the text cannot refer to it");
    else if (!new RegExp(`\\\\(?:ref|cref|Cref)\\{${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\}`).test(all)) {
      problems.push(`figure ${label} is never referred to in the text`);
    }
  }
  return problems;
}

export function labelsIn(sections: Record<string, string>, template: string): string[] {
  return [...`${template}\n${Object.values(sections).join("\n")}`.matchAll(/\\label\{([^}]*)\}/g)].map((m) => m[1]!);
}
