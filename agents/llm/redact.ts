const SECRET_VARS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SWARM_API_KEY", "S2_API_KEY", "OPENALEX_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY"];
const KEY_SHAPES = /\b(sk-(?:ant-)?[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,})\b/g;

/** Removes API keys from anything about to be logged: the values of known key variables, and key-shaped strings. */
export function redact<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  const secrets = SECRET_VARS.map((v) => env[v]).filter((s): s is string => Boolean(s && s.length >= 8));
  const clean = (s: string) => {
    let out = s.replace(KEY_SHAPES, "[redacted]");
    for (const secret of secrets) out = out.split(secret).join("[redacted]");
    return out;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return clean(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}
