import { execa } from "execa";

/** `diff -u` of two files, labelled a/<label> and b/<label>: what a run changed, as a person reads it. */
export async function unifiedDiff(a: string, b: string, label: string): Promise<string> {
  const { stdout } = await execa("diff", ["-u", "--label", `a/${label}`, "--label", `b/${label}`, a, b], { reject: false });
  return stdout;
}
