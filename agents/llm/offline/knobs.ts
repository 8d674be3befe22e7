/** A SEARCH/REPLACE edit, in the shape the coder applies. */
interface Edit {
  search: string;
  replace: string;
}

/** Where a knob's literal stands: a 0-based line of the file and the columns of the literal on it. */
export interface KnobSite {
  line: number;
  start: number;
  end: number;
}

/**
 * How a setting is written: a module-level UPPER_SNAKE constant, an argparse flag's default, a field of a
 * config class, an assignment in code, a keyword (or a well-known positional) argument of a call, a
 * function parameter's default, or an entry of a config dict.
 */
export type KnobKind = "constant" | "flag" | "field" | "assignment" | "keyword" | "argument" | "default" | "entry";

/** A tunable setting of a template, found in experiment.py, with every place that sets it. */
export interface Knob {
  /** Unique in the file, UPPER_SNAKE, and stable when the knob's value changes. */
  name: string;
  /** The literal as written (at the first site). */
  literal: string;
  value: number | string;
  /** What it is, in words: the line's comment for a constant, a flag's help, else a description. */
  comment: string;
  /** The source line of the first site. */
  line: string;
  kind: KnobKind;
  /** The places that set it: several when the same setting is written more than once in one function. */
  sites: KnobSite[];
}

// ---------- a Python tokenizer: enough to tell code from strings and comments ----------

interface Token {
  type: "name" | "number" | "string" | "op";
  text: string;
  line: number;
  col: number;
}

interface LogicalLine {
  tokens: Token[];
  indent: number;
  /** For each bracket token, the index of its partner; -1 for the rest (or an unclosed bracket). */
  partner: number[];
  /** For each token, how many brackets are open before it. */
  depth: number[];
}

const NUMBER_TOKEN = /(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d[\d_]*)?[jJ]?)/y;
const NAME_TOKEN = /[\p{L}_][\p{L}\p{N}_]*/uy;
const STRING_PREFIX = /(?:[rR][bBfF]?|[bBfF][rR]?|[uU])?(?='|")/y;
const OPERATORS = ["**=", "//=", ">>=", "<<=", "...", "->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="];
const OPEN: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

function tokenize(code: string): { lines: LogicalLine[]; comments: Map<number, string> } {
  const lines: LogicalLine[] = [];
  const comments = new Map<number, string>();
  let tokens: Token[] = [];
  let line = 0;
  let lineStart = 0;
  let depth = 0;
  const flush = () => {
    if (tokens.length) lines.push({ tokens, indent: tokens[0]!.col, ...brackets(tokens) });
    tokens = [];
  };
  const newline = (at: number) => {
    line++;
    lineStart = at + 1;
  };
  let i = 0;
  while (i < code.length) {
    const c = code[i]!;
    if (c === "\n") {
      if (depth === 0) flush();
      newline(i);
      i++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\f") {
      i++;
      continue;
    }
    if (c === "\\" && (code[i + 1] === "\n" || (code[i + 1] === "\r" && code[i + 2] === "\n"))) {
      i += code[i + 1] === "\n" ? 1 : 2;
      newline(i);
      i++;
      continue;
    }
    if (c === "#") {
      const end = code.indexOf("\n", i);
      comments.set(line, code.slice(i + 1, end === -1 ? code.length : end).trim());
      i = end === -1 ? code.length : end;
      continue;
    }
    const col = i - lineStart;
    STRING_PREFIX.lastIndex = i;
    const prefix = STRING_PREFIX.exec(code);
    if (prefix) {
      const q = i + prefix[0].length;
      const quote = code.startsWith(code[q]!.repeat(3), q) ? code[q]!.repeat(3) : code[q]!;
      let j = q + quote.length;
      const startLine = line;
      while (j < code.length && !code.startsWith(quote, j)) {
        if (code[j] === "\\") {
          if (code[j + 1] === "\n") newline(j + 1);
          j += 2;
          continue;
        }
        if (code[j] === "\n") {
          if (quote.length === 1) break;
          newline(j);
        }
        j++;
      }
      const end = Math.min(code.length, code.startsWith(quote, j) ? j + quote.length : j);
      tokens.push({ type: "string", text: code.slice(i, end), line: startLine, col });
      i = end;
      continue;
    }
    NUMBER_TOKEN.lastIndex = i;
    const number = /[\d.]/.test(c) ? NUMBER_TOKEN.exec(code) : null;
    if (number && number[0] !== ".") {
      tokens.push({ type: "number", text: number[0], line, col });
      i += number[0].length;
      continue;
    }
    NAME_TOKEN.lastIndex = i;
    const name = NAME_TOKEN.exec(code);
    if (name) {
      tokens.push({ type: "name", text: name[0], line, col });
      i += name[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => code.startsWith(o, i)) ?? c;
    if (op in OPEN) depth++;
    else if (op === ")" || op === "]" || op === "}") depth = Math.max(0, depth - 1);
    tokens.push({ type: "op", text: op, line, col });
    i += op.length;
  }
  flush();
  return { lines, comments };
}

function brackets(tokens: Token[]): { partner: number[]; depth: number[] } {
  const partner = tokens.map(() => -1);
  const depth = tokens.map(() => 0);
  const stack: number[] = [];
  tokens.forEach((t, i) => {
    depth[i] = stack.length;
    if (t.type !== "op") return;
    if (t.text in OPEN) stack.push(i);
    else if (t.text === ")" || t.text === "]" || t.text === "}") {
      const open = stack.pop();
      if (open !== undefined) {
        partner[open] = i;
        partner[i] = open;
      }
    }
  });
  return { partner, depth };
}

/** The comma-separated items between a bracket at `open` and its partner, as token index ranges [from, to). */
function items(l: LogicalLine, open: number): [number, number][] {
  const close = l.partner[open]!;
  const out: [number, number][] = [];
  let from = open + 1;
  for (let j = open + 1; j < close; j++) {
    const t = l.tokens[j]!;
    if (t.type === "op" && t.text in OPEN && l.partner[j]! > j) j = l.partner[j]!;
    else if (t.type === "op" && t.text === ",") {
      out.push([from, j]);
      from = j + 1;
    }
  }
  if (from < close) out.push([from, close]);
  return out;
}

/**
 * Where `name = {…}` is assigned, the least indented first: its first and last lines (0-based), its
 * indentation, and the column just after the closing brace; null when the file assigns no such dict.
 */
export function dictAssignment(code: string, name: string): { first: number; last: number; indent: number; after: number } | null {
  const found = tokenize(code)
    .lines.filter((l) => l.tokens[0]?.text === name && l.tokens[1]?.text === "=" && l.tokens[2]?.text === "{" && l.partner[2] === l.tokens.length - 1)
    .sort((a, b) => a.indent - b.indent)[0];
  if (!found) return null;
  const close = found.tokens[found.tokens.length - 1]!;
  return { first: found.tokens[0]!.line, last: close.line, indent: found.indent, after: close.col + 1 };
}

// ---------- reading settings out of the tokens ----------

interface Literal {
  text: string;
  value: number;
  site: KnobSite;
}

/** A number written as a literal (with its sign), or a short tuple or list of them; else null. */
function numbers(l: LogicalLine, from: number, to: number): Literal[] | null {
  let a = from;
  let b = to;
  // Parentheses around the whole value, as in `temperature = (\n    0.8  # note\n)`.
  while (b - a >= 2 && l.tokens[a]!.text === "(" && l.partner[a] === b - 1) {
    a++;
    b--;
  }
  const bracketed = b - a >= 2 && (l.tokens[a]!.text === "(" || l.tokens[a]!.text === "[") && l.partner[a] === b - 1;
  const parts: [number, number][] = bracketed ? items(l, a) : [[a, b]];
  if (!bracketed) {
    // A bare tuple: `betas = 0.9, 0.98`.
    const commas = [];
    for (let j = a; j < b; j++) if (l.tokens[j]!.text === ",") commas.push(j);
    if (commas.length) {
      parts.length = 0;
      let s = a;
      for (const c of commas) {
        parts.push([s, c]);
        s = c + 1;
      }
      if (s < b) parts.push([s, b]);
    }
  }
  if (parts.length === 0 || parts.length > 4) return null;
  const out: Literal[] = [];
  for (const [s, e] of parts) {
    const sign = e - s === 2 && l.tokens[s]!.type === "op" && (l.tokens[s]!.text === "-" || l.tokens[s]!.text === "+") ? l.tokens[s]! : null;
    const num = l.tokens[sign ? s + 1 : s];
    if (e - s !== (sign ? 2 : 1) || !num || num.type !== "number" || /^0[xXbBoO]|[jJ]$/.test(num.text)) return null;
    const text = (sign?.text === "-" ? "-" : "") + num.text;
    const first = sign ?? num;
    if (first.line !== num.line) return null;
    out.push({ text, value: Number(text.replace(/_/g, "")), site: { line: num.line, start: first.col, end: num.col + num.text.length } });
  }
  return out.every((x) => Number.isFinite(x.value)) ? out : null;
}

function stringValue(token: Token | undefined): string | null {
  if (!token || token.type !== "string") return null;
  const body = token.text.replace(/^[rRbBuUfF]*/, "");
  const q = body.startsWith('"""') || body.startsWith("'''") ? 3 : 1;
  return body.slice(q, body.length - q);
}

interface Found {
  raw: string;
  kind: KnobKind;
  /** The enclosing functions and classes, outermost first. */
  scope: string[];
  /** The call or target that qualifies the name when two settings share it. */
  qualifier: string;
  literal: Literal;
  comment: string;
}

interface Scope {
  kind: "def" | "class";
  name: string;
  indent: number;
  dataclass: boolean;
}

const PY_KEYWORDS = new Set(["if", "elif", "while", "for", "in", "not", "and", "or", "is", "return", "yield", "lambda", "assert", "del", "else", "await", "with", "import", "from", "raise"]);
/** Known positional settings: which argument of which call, and the setting's name. */
const POSITIONAL: Record<string, [number, string]> = {
  Dropout: [0, "dropout"], Dropout1d: [0, "dropout"], Dropout2d: [0, "dropout"], Dropout3d: [0, "dropout"], AlphaDropout: [0, "dropout"],
  LeakyReLU: [0, "negative_slope"], clip_grad_norm_: [1, "max_grad_norm"], clip_grad_value_: [1, "clip_value"],
  SGD: [1, "lr"], Adam: [1, "lr"], AdamW: [1, "lr"], RMSprop: [1, "lr"],
};
/** Config-like names: their dict literals hold settings. */
const CONFIG_NAME = /param|config|cfg|setting|hparam|hyper|kwargs|options|opts/i;

/**
 * Reads every literal setting of a file, in order, and which keywords calls pass values other than literals
 * to (`Config(batch_size=args.batch_size)` as `Config.batch_size`): those override a field's or a default's own.
 */
function scan(code: string): { found: Found[]; passed: Set<string> } {
  const { lines, comments } = tokenize(code);
  const defParams = new Map<string, string[]>();
  for (const l of lines) {
    const d = l.tokens[0]?.text === "async" ? 1 : 0;
    if (l.tokens[d]?.text === "def" && l.tokens[d + 2]?.text === "(") {
      defParams.set(l.tokens[d + 1]!.text, items(l, d + 2).map(([s]) => l.tokens[s]!.text).filter((n) => n !== "*" && n !== "**"));
    }
  }
  const out: Found[] = [];
  const passed = new Set<string>();
  const scopes: Scope[] = [];
  let decorated = false;
  for (const l of lines) {
    while (scopes.length && scopes[scopes.length - 1]!.indent >= l.indent) scopes.pop();
    const scope = scopes.map((s) => s.name);
    const innermost = scopes[scopes.length - 1];
    const inClass = innermost?.kind === "class";
    // A dataclass's or a config class's attributes are its settings; another class's are its own business.
    const inConfig = inClass && (innermost.dataclass || CONFIG_NAME.test(innermost.name));
    const t = l.tokens;
    const comment = (line: number) => comments.get(line) ?? "";
    const add = (raw: string, kind: KnobKind, qualifier: string, lits: Literal[], describe: string, within = scope) => {
      lits.forEach((lit, k) => {
        const name = lits.length > 1 ? element(raw, k) : raw;
        out.push({ raw: name, kind, scope: within, qualifier, literal: lit, comment: describe.replace(human(raw), human(name)) || comment(lit.site.line) });
      });
    };
    if (t[0]!.text === "@") {
      decorated ||= t.some((x) => x.text === "dataclass");
      continue;
    }
    const d = t[0]!.text === "async" ? 1 : 0;
    const isDef = t[d]!.text === "def";
    if (t[0]!.text === "class" && t[1]) {
      scopes.push({ kind: "class", name: t[1].text, indent: l.indent, dataclass: decorated });
      decorated = false;
      continue;
    }
    decorated = false;

    // An assignment of a literal: `lr = 1e-3`, `self.dropout = 0.1`, `batch_size: int = 128`, `cfg["wd"] = 0.5`.
    const eq = t.findIndex((x, j) => x.type === "op" && x.text === "=" && l.depth[j] === 0);
    if (!isDef && eq > 0 && !t.some((x, j) => j > eq && x.text === "=" && l.depth[j] === 0)) {
      const colon = t.findIndex((x, j) => j < eq && x.text === ":" && l.depth[j] === 0);
      const target = targetName(t.slice(0, colon === -1 ? eq : colon));
      if (target) {
        const lits = numbers(l, eq + 1, t.length);
        const moduleLevel = scopes.length === 0;
        const kind: KnobKind = moduleLevel && /^[A-Z][A-Z0-9_]*$/.test(target.name) && target.plain ? "constant" : inConfig ? "field" : "assignment";
        if (lits) add(target.name, kind, target.object, lits, kind === "assignment" ? human(target.name) : "");
        else if (kind === "constant" && eq + 2 === t.length && t[eq + 1]!.type === "string") {
          const s = t[eq + 1]!;
          if (/^("[^"\n]*"|'[^'\n]*')$/.test(s.text)) {
            const lit = { text: s.text, value: Number.NaN, site: { line: s.line, start: s.col, end: s.col + s.text.length } };
            out.push({ raw: target.name, kind, scope, qualifier: "", literal: lit, comment: comment(s.line) });
          }
        } else if (t[eq + 1]?.text === "{" && l.partner[eq + 1] === t.length - 1 && CONFIG_NAME.test(target.name)) {
          for (const [s, e] of items(l, eq + 1)) {
            const key = stringValue(t[s]);
            const entry = key !== null && t[s + 1]?.text === ":" ? numbers(l, s + 2, e) : null;
            if (entry && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key!)) add(key!, "entry", target.name, entry, `${key} in ${target.name}`);
          }
        }
      }
    }

    // Calls and definitions: keyword arguments, flag defaults, parameter defaults, well-known positionals.
    for (let j = 0; j < t.length; j++) {
      if (t[j]!.text !== "(" || l.partner[j]! <= j) continue;
      const callee = calleeBefore(t, j);
      const definition = isDef && j === d + 2;
      if (!callee && !definition) continue;
      const args = items(l, j);
      const last = callee?.split(".").pop() ?? "";
      if (definition) {
        const fn = t[d + 1]!.text;
        const owner = fn === "__init__" && inClass ? scope[scope.length - 1]! : fn;
        for (const [s, e] of args) {
          const param = t[s]!;
          if (param.type !== "name") continue;
          let k = s + 1;
          if (t[k]?.text === ":") while (k < e && t[k]!.text !== "=") k++;
          const lits = t[k]?.text === "=" ? numbers(l, k + 1, e) : null;
          if (lits) add(param.text, "default", owner, lits, `default ${human(param.text)} of ${owner}`, [...scope, fn]);
        }
        continue;
      }
      if (last === "add_argument") {
        const flag = stringValue(t[args[0]?.[0] ?? -1]);
        const kw = (name: string) => args.find(([s]) => t[s]!.text === name && t[s + 1]?.text === "=");
        const dflt = kw("default");
        const help = kw("help");
        const lits = flag && dflt ? numbers(l, dflt[0] + 2, dflt[1]) : null;
        if (flag && lits && lits.length === 1) {
          add(flag.replace(/^-+/, "").replace(/-/g, "_"), "flag", "", lits, (help && stringValue(t[help[0] + 2])) || "");
        }
        continue;
      }
      args.forEach(([s, e], position) => {
        if (t[s]!.type === "name" && t[s + 1]?.text === "=" && t[s + 1]!.type === "op") {
          const name = t[s]!.text;
          const lits = numbers(l, s + 2, e);
          if (!lits) {
            passed.add(`${last}.${name}`);
            return;
          }
          // `odeint(f, y0, t, args=(0.001, 14, 7))`: the extra arguments of a function defined here, by its names.
          const fnArgs = name === "args" ? defParams.get(t[args[0]?.[0] ?? -1]?.text ?? "") : undefined;
          if (fnArgs && fnArgs.length >= lits.length) {
            const names = fnArgs.slice(fnArgs.length - lits.length);
            lits.forEach((lit, k) => add(names[k]!, "keyword", last, [lit], `${human(names[k]!)} passed to ${last}`));
          } else add(name, "keyword", last, lits, `${human(name)} passed to ${last}`);
          return;
        }
        const known = POSITIONAL[last];
        if (known && known[0] === position) {
          const lits = numbers(l, s, e);
          if (lits?.length === 1) add(known[1], "argument", last, lits, `${human(known[1])} of ${last}`);
        }
      });
    }
    if (isDef && t[d + 1]) scopes.push({ kind: "def", name: t[d + 1]!.text, indent: l.indent, dataclass: false });
  }
  return { found: out, passed };
}

/** `x`, `self.x`, `cfg.opt.x`, `cfg["x"]`: the name set, and what it is set on. */
function targetName(tokens: Token[]): { name: string; object: string; plain: boolean } | null {
  if (!tokens.length || tokens[0]!.type !== "name" || PY_KEYWORDS.has(tokens[0]!.text)) return null;
  let name = tokens[0]!.text;
  let object = "";
  for (let j = 1; j < tokens.length; j++) {
    const x = tokens[j]!;
    if (x.text === "." && tokens[j + 1]?.type === "name") {
      object = name;
      name = tokens[++j]!.text;
    } else if (x.text === "[") {
      const close = tokens.findIndex((y, k) => k > j && y.text === "]");
      if (close === -1) return null;
      const key = close === j + 2 ? stringValue(tokens[j + 1]) : null;
      if (key !== null) {
        object = name;
        name = key;
      }
      j = close;
    } else return null;
  }
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? { name, object, plain: tokens.length === 1 } : null;
}

/** The dotted name called by the `(` at `open`, or null when the bracket only groups. */
function calleeBefore(tokens: Token[], open: number): string | null {
  const prev = tokens[open - 1];
  if (!prev) return null;
  if (prev.text === ")" || prev.text === "]") return "call";
  if (prev.type !== "name" || PY_KEYWORDS.has(prev.text)) return null;
  const parts = [prev.text];
  for (let j = open - 2; j >= 1 && tokens[j]!.text === "." && tokens[j - 1]!.type === "name"; j -= 2) parts.unshift(tokens[j - 1]!.text);
  return parts.join(".");
}

/** The k-th element of a tuple setting: `betas` gives BETA1 and BETA2. */
function element(raw: string, k: number): string {
  return /[^s]s$/i.test(raw) && raw.length > 3 ? `${raw.slice(0, -1)}${k + 1}` : `${raw}_${k + 1}`;
}

const GLOSSARY: Record<string, string> = {
  lr: "learning rate", wd: "weight decay", bs: "batch size", n_embd: "embedding width", n_layer: "number of layers", n_head: "number of attention heads",
  beta1: "first Adam beta", beta2: "second Adam beta", temp: "temperature", eps: "epsilon", max_iters: "number of training iterations",
};

function human(raw: string): string {
  return GLOSSARY[raw.toLowerCase()] ?? raw.replace(/_/g, " ").toLowerCase();
}

// ---------- which settings are knobs, and in what order ----------

const SEED = /(^|_)(seeds?|random_state|rng)(_|$)/i;
const BOOKKEEPING = /(^|_)(log|eval|print|save|checkpoint|ckpt|vis|plot|progress|report|workers|verbose|interval|every|refresh|mininterval|dpi|patience)(_|$)/i;
/** Keyword arguments that are shapes, indices, formats or plumbing, not settings to tune. */
const NOT_A_SETTING = new Set([
  "dim", "axis", "axes", "keepdim", "keepdims", "indent", "figsize", "fontsize", "linewidth", "lw", "markersize", "ms", "num_workers",
  "n_jobs", "device", "dtype", "diagonal", "start", "stop", "end", "step", "padding", "stride", "dilation", "groups", "kernel_size", "in_channels",
  "out_channels", "in_features", "out_features", "input_size", "output_size", "vocab_size", "num_classes", "n_classes", "n_vocab", "n_out", "seq_len",
  "max_len", "value", "index", "idx", "size", "shape", "maxsplit", "count", "level", "precision", "decimals", "total", "position", "ncols", "bins",
  "protocol", "timeout", "retries", "num_samples", "interval", "mininterval", "high", "low", "minlength", "offset", "exist_ok", "ndim", "ord", "p_norm", "base", "fill_value", "mode",
]);
/** Assignment targets that count, accumulate, time or index rather than set. */
const NOT_A_KNOB = /^(i|j|k|n|t|x|y|z|it|ep|epoch|step|global_step|iter_num|local_iter_num|iteration|count|counter|total|correct|idx|index|t0|t1|dt)$|^(best|total|sum|running|num_correct|start|end|loss|acc|elapsed)(_|$)|_(total|sum|count|idx|index|loss|losses|acc|accuracy|time|start|end)$/i;
const HYPER =
  /(^|_)(lr|learning|rate|weight|decay|wd|dropout|drop|momentum|betas?\d*|gamma|lambda|lam|alpha|l1|l2|reg|penalty|temperature|temp|top|clip|norm|warmup|epochs?|steps?|iters?|iterations|updates|batch|bs|hidden|embd|emb|embedding|dim|d_model|width|depth|layers?|head|heads|units|channels|latent|mixtures|frac|fraction|ratio|scale|noise|smoothing|friction|kl|timesteps|rank|cycles|factor|block|mlp)(_|\d|$)/i;

interface Group {
  raw: string;
  kind: KnobKind;
  scope: string[];
  qualifier: string;
  sites: Found[];
}

const declaredKinds = new Set<KnobKind>(["constant", "flag", "field", "entry"]);

function keep(f: Found): boolean {
  const v = f.literal.value;
  const raw = f.raw;
  if (f.kind === "constant" || f.kind === "flag") return true;
  if (NOT_A_SETTING.has(raw.toLowerCase())) return false;
  if (Number.isNaN(v) || v < 0) return false;
  if (f.kind === "entry") return true;
  if (raw.length === 1 || NOT_A_KNOB.test(raw)) return false;
  const integral = /^-?\d[\d_]*$/.test(f.literal.text);
  // 0 and 1 count, index, switch off or stand in for "none"; a hyperparameter may still be 1.0 (a clip, a scale).
  if (v === 0 || (integral && v === 1)) return false;
  if (v === 1 && !HYPER.test(raw)) return false;
  return true;
}

function score(g: Group): number {
  const raw = g.raw.toLowerCase();
  if (SEED.test(raw)) return -100;
  if (BOOKKEEPING.test(raw)) return -50;
  if (declaredKinds.has(g.kind)) return 100;
  return (HYPER.test(raw) ? 20 : 0) - (g.kind === "default" ? 5 : 0);
}

function upper(s: string): string {
  const u = s.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "").toUpperCase();
  return /^[A-Z]/.test(u) ? u : `K_${u}`;
}

/**
 * Unique names. Of the groups that share a name, the most declared keeps it when it alone is that declared (a
 * flag over a config field, a field over a keyword); the others are qualified by their call or target, their
 * function, or both, and numbered as a last resort.
 */
function nameGroups(groups: Group[]): string[] {
  const base = groups.map((g) => upper(g.raw));
  const rank = (g: Group) => (g.kind === "flag" ? 0 : g.kind === "constant" ? 1 : declaredKinds.has(g.kind) ? 2 : 3);
  const names = base.map(() => "");
  const used = new Set<string>();
  for (const b of new Set(base)) {
    const members = groups.map((g, i) => ({ g, i })).filter(({ i }) => base[i] === b).sort((x, y) => rank(x.g) - rank(y.g) || x.i - y.i);
    const [first, second] = members;
    if (members.length === 1 || (rank(first!.g) < 3 && rank(first!.g) < rank(second!.g))) {
      names[first!.i] = b;
      used.add(b);
    }
  }
  // A qualifier serves a group only if no other group of its name would get the same one.
  const candidates = groups.map((g, i) => {
    const fn = upper(g.scope.filter((x) => !x.startsWith("__")).pop() ?? "MAIN");
    const q = g.qualifier && g.qualifier !== "self" && g.qualifier !== "call" ? upper(g.qualifier) : "";
    return [q && `${base[i]}_${q}`, `${base[i]}_${fn}`, q && `${base[i]}_${fn}_${q}`];
  });
  for (let level = 0; level < 3; level++) {
    const open = groups.map((_, i) => i).filter((i) => !names[i]);
    for (const i of open) {
      const c = candidates[i]![level];
      const rivals = open.filter((j) => j !== i && base[j] === base[i]);
      if (c && !used.has(c) && !base.includes(c) && rivals.every((j) => candidates[j]![level] !== c)) names[i] = c;
    }
    for (const i of open) if (names[i]) used.add(names[i]!);
  }
  groups.forEach((_, i) => {
    for (let n = 2; !names[i]; n++) if (!used.has(`${base[i]}_${n}`) && !base.includes(`${base[i]}_${n}`)) names[i] = `${base[i]}_${n}`;
    used.add(names[i]!);
  });
  return names;
}

const MARKED_LINE = /^([A-Z][A-Z0-9_]*)(\s*=\s*)("[^"]*"|'[^']*'|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+(?:[eE][-+]?\d+)?)\s*(?:#\s*(.*))?$/;

function literalValue(literal: string): number | string {
  return /^["']/.test(literal) ? literal.slice(1, -1) : Number(literal.replace(/_/g, ""));
}

/**
 * The knobs of an experiment script. When the template marks them (`# --- knobs ---` … `# --- end knobs ---`),
 * the constants between the markers, in order. Otherwise every literal setting the script writes: constants,
 * flag defaults, config fields and entries, assignments, keyword arguments and parameter defaults — never a
 * number in a string or a comment, and not counters, indices, shapes or plumbing — the declared ones first,
 * then those that look like hyperparameters, seeds and bookkeeping last.
 */
export function parseKnobs(code: string): Knob[] {
  const lines = code.split("\n");
  const start = lines.findIndex((l) => l.trim() === "# --- knobs ---");
  const end = lines.findIndex((l) => l.trim() === "# --- end knobs ---");
  if (start !== -1 && end > start) {
    const knobs: Knob[] = [];
    for (let i = start + 1; i < end; i++) {
      const m = MARKED_LINE.exec(lines[i]!);
      if (!m) continue;
      const at = m[1]!.length + m[2]!.length;
      const literal = m[3]!;
      knobs.push({ name: m[1]!, literal, value: literalValue(literal), comment: (m[4] ?? "").trim(), line: lines[i]!, kind: "constant", sites: [{ line: i, start: at, end: at + literal.length }] });
    }
    return knobs;
  }

  const { found, passed } = scan(code);
  // A field or a default that a call sets by name is overridden there (a dataclass built from the flags, a
  // model from a dict of its arguments): editing it would change nothing.
  const owner = (f: Found) => (f.kind === "field" ? f.scope[f.scope.length - 1]! : f.qualifier);
  const overridden = (f: Found) => (f.kind === "field" || f.kind === "default") && (passed.has(`${owner(f)}.${f.raw}`) || passed.has(`dict.${f.raw}`));
  const groups: Group[] = [];
  for (const f of found.filter((x) => keep(x) && !overridden(x))) {
    const key = (g: Group) => g.raw === f.raw && g.kind === f.kind && g.scope.join(".") === f.scope.join(".") && g.qualifier === f.qualifier;
    // One setting written in several places of one function (an optimizer built twice) is one knob, while
    // the places agree; places that disagree are separate knobs.
    const same = groups.find((g) => key(g) && g.sites[0]!.literal.text === f.literal.text);
    if (same) same.sites.push(f);
    else groups.push({ raw: f.raw, kind: f.kind, scope: f.scope, qualifier: f.qualifier, sites: [f] });
  }
  const names = nameGroups(groups);
  return groups
    .map((g, i) => ({ g, i, s: score(g) }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .map(({ g, i }) => {
      const first = g.sites[0]!;
      return {
        name: names[i]!,
        literal: first.literal.text,
        value: literalValue(first.literal.text),
        comment: first.comment,
        line: lines[first.literal.site.line]!,
        kind: g.kind,
        sites: g.sites.map((s) => s.literal.site),
      };
    });
}

// ---------- editing knobs ----------

const LITERAL = /^-?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d[\d_]*)?$/;

/**
 * The knob of that name in `code`; else the baseline's knob of that name, found again in `code` at the same
 * places with another value. A setting may stop reading as a knob at some values (a count set to 1 looks
 * like a counter), but it is still the setting the idea is about.
 */
export function findKnob(name: string, code: string, baselineCode = code): Knob | undefined {
  const here = parseKnobs(code).find((k) => k.name === name);
  if (here || baselineCode === code) return here;
  const base = parseKnobs(baselineCode).find((k) => k.name === name);
  if (!base) return undefined;
  const from = baselineCode.split("\n");
  const to = code.split("\n");
  const sites: KnobSite[] = [];
  for (const s of base.sites) {
    const prefix = from[s.line]!.slice(0, s.start);
    const suffix = from[s.line]!.slice(s.end);
    const line = to[s.line];
    if (line === undefined || line.length < prefix.length + suffix.length || !line.startsWith(prefix) || !line.endsWith(suffix)) return undefined;
    const end = line.length - suffix.length;
    if (!LITERAL.test(line.slice(s.start, end))) return undefined;
    sites.push({ line: s.line, start: s.start, end });
  }
  const literal = to[sites[0]!.line]!.slice(sites[0]!.start, sites[0]!.end);
  return { ...base, literal, value: Number(literal.replace(/_/g, "")), line: to[sites[0]!.line]!, sites };
}

function occurrences(text: string, search: string): number {
  let n = 0;
  for (let at = text.indexOf(search); at !== -1; at = text.indexOf(search, at + 1)) n++;
  return n;
}

/**
 * SEARCH/REPLACE edits that give each knob its new value at every site: whole lines, with as many lines
 * around them as it takes for each search to occur exactly once, in order, as the coder's applier requires.
 */
export function knobEdits(code: string, changes: { knob: Knob; value: string }[]): Edit[] {
  const lines = code.split("\n");
  const byLine = new Map<number, { start: number; end: number; value: string }[]>();
  for (const { knob, value } of changes) {
    for (const s of knob.sites) byLine.set(s.line, [...(byLine.get(s.line) ?? []), { ...s, value }]);
  }
  const changed = (i: number) =>
    (byLine.get(i) ?? []).sort((a, b) => b.start - a.start).reduce((line, r) => line.slice(0, r.start) + r.value + line.slice(r.end), lines[i]!);
  const ranges = [...byLine.keys()]
    .sort((a, b) => a - b)
    .map((i) => {
      let from = i;
      let to = i;
      while (occurrences(code, lines.slice(from, to + 1).join("\n")) > 1 && (from > 0 || to < lines.length - 1)) {
        if (from > 0) from--;
        else to++;
      }
      return { from, to };
    });
  const merged: { from: number; to: number }[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else merged.push({ ...r });
  }
  const edit = (r: { from: number; to: number }): Edit => ({
    search: lines.slice(r.from, r.to + 1).join("\n"),
    replace: lines.slice(r.from, r.to + 1).map((l, k) => (byLine.has(r.from + k) ? changed(r.from + k) : l)).join("\n"),
  });
  const edits = merged.map(edit);
  // Each search is unique in the file as it is; check that it stays so as the edits before it apply.
  let text = code;
  for (const e of edits) {
    if (occurrences(text, e.search) !== 1) return [edit({ from: merged[0]!.from, to: merged[merged.length - 1]!.to })];
    text = text.replace(e.search, () => e.replace);
  }
  return edits;
}

// ---------- values to try ----------

/** A Python literal for a number, keeping integers integral. */
export function pyNumber(v: number, integral: boolean): string {
  if (integral) return String(Math.max(1, Math.round(v)));
  // Close to 1 (a decay factor, an EMA coefficient), what matters is how far from 1: keep its digits.
  if (v > 0.9 && v < 1) return v.toFixed(Math.ceil(-Math.log10(1 - v)) + 2).replace(/0+$/, "");
  const s = Number(v.toPrecision(4)).toString();
  return s.includes(".") || s.includes("e") ? s : `${s}.0`;
}

const isIntegral = (knob: Knob) => /^-?\d[\d_]*$/.test(knob.literal);
/** Settings whose cost grows with the value: shrunk rather than grown, to keep runs short. */
const COSTLY = /^(?!.*WARMUP).*(EPOCH|STEP|ITER|UPDATE|CYCLE|SAMPLE)/;
/** Sizes of a model or a batch: halved and doubled, since four times the size is often four times the cost. */
const SIZED = /HIDDEN|DIM|EMBD|EMB|WIDTH|LAYER|HEAD|UNITS|CHANNEL|SIZE|LATENT|MIXTURE|BLOCK|RANK/;

function distinct(knob: Knob, values: string[]): string[] {
  const base = Number(knob.literal.replace(/_/g, ""));
  return values.filter((x, i) => values.indexOf(x) === i && Number(x) !== base);
}

/**
 * Two values on either side of the default that stay valid: fractions stay in (0, 1), counts stay >= 1;
 * costly settings (epochs, steps, iterations) only shrink, sizes halve and double. The default itself is never
 * among them, so a knob at 1 may have a single value to try.
 */
export function sweepValues(knob: Knob): string[] {
  const v = knob.value as number;
  const integral = isIntegral(knob);
  if (v === 0) return integral && SEED.test(knob.name) ? ["1", "2"] : ["0.001", "0.01"];
  if (!integral && v > 0 && v < 1) return distinct(knob, [pyNumber(Math.max(v / 4, 1 - (1 - v) * 4), false), pyNumber(Math.min(v * 4, 1 - (1 - v) / 4), false)]);
  if (COSTLY.test(knob.name)) return distinct(knob, [pyNumber(v / 4, integral), pyNumber(v / 2, integral)]);
  if (SIZED.test(knob.name)) return distinct(knob, [pyNumber(v / 2, integral), pyNumber(v * 2, integral)]);
  return distinct(knob, [pyNumber(v / 4, integral), pyNumber(v * 4, integral)]);
}

/** Values in between, for a narrower sweep around the default. */
export function innerValues(knob: Knob, outer: string[]): string[] {
  const v = knob.value as number;
  const integral = isIntegral(knob);
  return distinct(knob, outer.map((o) => pyNumber(Math.sqrt(Math.abs(Number(o) * v)) || Number(o) / 2, integral)));
}
