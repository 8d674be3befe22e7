/**
 * Finds the JSON value in a model's text: a fenced ```json block first, then the first balanced object or
 * array (string-aware, so braces inside strings do not count). Returns the parse error when there is none.
 */
export function extractJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  const candidates: string[] = [];
  for (const m of text.matchAll(/```(?:json|JSON)?\s*\n([\s\S]*?)```/g)) candidates.push(m[1]!);
  const balanced = firstBalanced(text);
  if (balanced) candidates.push(balanced);
  candidates.push(text.trim());
  let lastError = "the answer contains no JSON object";
  for (const c of candidates) {
    try {
      return { ok: true, value: JSON.parse(c) };
    } catch (err) {
      lastError = (err as Error).message;
    }
  }
  const open = text.indexOf("{");
  if (open !== -1 && !balanced) lastError = "the JSON object is not closed (the answer looks truncated)";
  return { ok: false, error: lastError };
}

function firstBalanced(text: string): string | undefined {
  for (let start = 0; start < text.length; start++) {
    const ch = text[start];
    if (ch !== "{" && ch !== "[") continue;
    const stack: string[] = [];
    let inString = false;
    for (let i = start; i < text.length; i++) {
      const c = text[i]!;
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{" || c === "[") stack.push(c === "{" ? "}" : "]");
      else if (c === "}" || c === "]") {
        if (stack.pop() !== c) break;
        if (stack.length === 0) return text.slice(start, i + 1);
      }
    }
    return undefined;
  }
  return undefined;
}
