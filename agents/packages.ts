import { readFileSync } from "node:fs";
import { z } from "zod";

/** config/packages.json: where a missing Python module or LaTeX package comes from. */
const Packages = z.object({
  python: z.record(z.string(), z.object({ debian: z.string().nullable(), pip: z.string() })),
  tex: z.record(z.string(), z.string()),
});
let table: z.infer<typeof Packages> | undefined;

function packages(): z.infer<typeof Packages> {
  table ??= Packages.parse(JSON.parse(readFileSync(new URL("../config/packages.json", import.meta.url), "utf8")));
  return table;
}

/** Where a Python module comes from: its Debian package, or its pip name where Debian has none. */
export function pythonPackage(module: string): { debian: string | null; pip: string } {
  const top = module.split(".")[0]!;
  return packages().python[top] ?? { debian: `python3-${top.toLowerCase().replace(/_/g, "-")}`, pip: top };
}

/** The Debian package that ships a LaTeX package, where the table knows it. */
export function debianTexPackage(name: string): string | undefined {
  return packages().tex[name];
}
