/**
 * A task's data as labelled sections, one per field: a `### name` line, then the value in a fenced block
 * (text for strings, JSON otherwise). Models read it easily, and it parses back to the same data, which lets
 * a test stand in for a model over HTTP with nothing but what a real model receives.
 */
export function renderSections(data: Record<string, unknown>): string {
  return Object.entries(data)
    .filter(([, v]) => v !== undefined)
    .map(([name, value]) => {
      const isText = typeof value === "string";
      const body = isText ? value : JSON.stringify(value, null, 2);
      const longestRun = Math.max(2, ...(body.match(/`+/g) ?? []).map((run) => run.length));
      const fence = "`".repeat(longestRun + 1);
      return `### ${name}\n${fence}${isText ? "text" : "json"}\n${body}\n${fence}`;
    })
    .join("\n\n");
}

const SECTION = /^### ([A-Za-z_][A-Za-z0-9_]*)\n(`{3,})(text|json)\n([\s\S]*?)\n\2$/gm;

/** The sections of a message, back as data; text that is not a section is ignored. */
export function parseSections(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of text.matchAll(SECTION)) {
    out[m[1]!] = m[3] === "text" ? m[4]! : JSON.parse(m[4]!);
  }
  return out;
}
