import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { debianTexPackage } from "./packages.js";

/** A line's text before its first unescaped `%`. */
function uncommented(line: string): string {
  const m = /(^|[^\\])%/.exec(line);
  return m ? line.slice(0, m.index + m[1]!.length) : line;
}

/** The packages a LaTeX file loads with \usepackage or \RequirePackage, in order, each once. */
export function usedPackages(tex: string): string[] {
  const body = tex.split("\n").map(uncommented).join("\n");
  const found: string[] = [];
  for (const m of body.matchAll(/\\(?:usepackage|RequirePackage)\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}/g)) {
    for (const name of m[1]!.split(",").map((s) => s.trim()).filter(Boolean)) if (!found.includes(name)) found.push(name);
  }
  return found;
}

export interface MissingTexPackage {
  name: string;
  debian: string | undefined;
}

/**
 * The packages `texFile` loads that neither its own folder nor the TeX installation has (asked of kpsewhich,
 * all at once). Undefined when kpsewhich itself is missing: there is no TeX to ask.
 */
export async function missingTexPackages(texFile: string, env: NodeJS.ProcessEnv = process.env): Promise<MissingTexPackage[] | undefined> {
  const dir = join(texFile, "..");
  const wanted = usedPackages(readFileSync(texFile, "utf8")).filter((name) => !existsSync(join(dir, `${name}.sty`)));
  if (!wanted.length) return [];
  const res = await execa("kpsewhich", wanted.map((n) => `${n}.sty`), { reject: false, timeout: 30_000, env, extendEnv: false, stdin: "ignore" });
  if (res.code === "ENOENT") return undefined;
  const have = new Set(res.stdout.split("\n").map((p) => /([^/]+)\.sty$/.exec(p.trim())?.[1]).filter(Boolean));
  return wanted.filter((n) => !have.has(n)).map((name) => ({ name, debian: debianTexPackage(name) }));
}

export function texPackagesFix(missing: MissingTexPackage[]): string {
  const known = [...new Set(missing.map((m) => m.debian).filter((d): d is string => d !== undefined))];
  const unknown = missing.filter((m) => !m.debian).map((m) => `${m.name}.sty`);
  return [
    known.length ? `apt-get install -y ${known.join(" ")}` : "",
    unknown.length ? `find the package that ships ${unknown.join(", ")} (apt-file search ${unknown[0]}), or put the .sty file beside template.tex` : "",
  ].filter(Boolean).join("; ");
}
