/**
 * A tunable setting of a template: an UPPER_SNAKE module-level constant with a literal value, or the default
 * of a command-line flag (`parser.add_argument("--lr", type=float, default=1e-3)`, named LR).
 */
export interface Knob {
  name: string;
  /** The literal as written. */
  literal: string;
  value: number | string;
  comment: string;
  line: string;
  kind: "constant" | "flag";
}

const NUMBER = "-?\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?|-?\\.\\d+(?:[eE][-+]?\\d+)?";
const KNOB_LINE = new RegExp(`^([A-Z][A-Z0-9_]*)\\s*=\\s*("[^"]*"|'[^']*'|${NUMBER})\\s*(?:#\\s*(.*))?$`);
const FLAG_LINE = new RegExp(`add_argument\\(\\s*["']--([A-Za-z][A-Za-z0-9_-]*)["'][^\\n]*?default\\s*=\\s*(${NUMBER})(?![\\w.])(?:[^\\n]*?help\\s*=\\s*["']([^"']*)["'])?`);

/**
 * The knobs of an experiment script: the lines between `# --- knobs ---` and `# --- end knobs ---` when the
 * template marks them; else every top-level constant of that shape, and every numeric flag default, as in
 * the reference's templates.
 */
export function parseKnobs(code: string): Knob[] {
  const lines = code.split("\n");
  const start = lines.findIndex((l) => l.trim() === "# --- knobs ---");
  const end = lines.findIndex((l) => l.trim() === "# --- end knobs ---");
  const marked = start !== -1 && end > start;
  const knobs: Knob[] = [];
  for (const line of marked ? lines.slice(start + 1, end) : lines) {
    const m = KNOB_LINE.exec(line);
    if (m) {
      const literal = m[2]!;
      const quoted = /^["']/.test(literal);
      knobs.push({ name: m[1]!, literal, value: quoted ? literal.slice(1, -1) : Number(literal), comment: (m[3] ?? "").trim(), line, kind: "constant" });
      continue;
    }
    const f = marked ? null : FLAG_LINE.exec(line);
    if (f && f[1] !== "out_dir") {
      knobs.push({ name: f[1]!.replace(/-/g, "_").toUpperCase(), literal: f[2]!, value: Number(f[2]), comment: (f[3] ?? "").trim(), line, kind: "flag" });
    }
  }
  return knobs;
}

/** The knob's line with a new value. */
export function withValue(knob: Knob, value: string): string {
  return knob.kind === "constant"
    ? knob.line.replace(/=\s*("[^"]*"|'[^']*'|\S+)/, `= ${value}`)
    : knob.line.replace(new RegExp(`(default\\s*=\\s*)(${NUMBER})(?![\\w.])`), `$1${value}`);
}

/** A Python literal for a number, keeping integers integral. */
export function pyNumber(v: number, integral: boolean): string {
  if (integral) return String(Math.max(1, Math.round(v)));
  const s = Number(v.toPrecision(4)).toString();
  return s.includes(".") || s.includes("e") ? s : `${s}.0`;
}

/** Two values on either side of the default that stay valid: fractions stay in (0, 1), counts stay >= 1. */
export function sweepValues(knob: Knob): string[] {
  const v = knob.value as number;
  const integral = /^-?\d+$/.test(knob.literal);
  if (v === 0) return ["0.001", "0.01"];
  if (!integral && v > 0 && v < 1) return [pyNumber(v / 4, false), pyNumber(Math.min(v * 4, 1 - (1 - v) / 4), false)];
  const costly = /EPOCH|STEP|ITER|SAMPLE/.test(knob.name);
  return costly ? [pyNumber(v / 2, integral), pyNumber(v * 2, integral)] : [pyNumber(v / 4, integral), pyNumber(v * 4, integral)];
}

/** Values in between, for a narrower sweep around the default. */
export function innerValues(knob: Knob, outer: string[]): string[] {
  const v = knob.value as number;
  const integral = /^-?\d+$/.test(knob.literal);
  return outer.map((o) => pyNumber(Math.sqrt(Math.abs(Number(o) * v)) || Number(o) / 2, integral)).filter((x, i, a) => a.indexOf(x) === i && x !== knob.literal);
}

/** Text made safe for LaTeX outside math mode. */
export function texEscape(s: string): string {
  return s.replace(/\\/g, "\\textbackslash{}").replace(/([#$%&_{}])/g, "\\$1").replace(/~/g, "\\textasciitilde{}").replace(/\^/g, "\\textasciicircum{}");
}
