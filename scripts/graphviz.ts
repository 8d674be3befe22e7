import { execa } from "execa";
import { EnvironmentError } from "../bus/errors.js";
import type { Role } from "../machines/index.js";
import { machineDot } from "../machines/dot.js";

// Drawing is pure (machines/dot.ts); laying a drawing out runs Graphviz, which is I/O and so lives here.

/** One of the swarm's machines as SVG text, laid out by Graphviz. */
export async function machineSvg(role: Role): Promise<string> {
  return renderSvg(machineDot(role));
}

/** Lays a DOT graph out with Graphviz's `dot`, which must be on PATH. */
export async function renderSvg(dot: string): Promise<string> {
  const result = await execa("dot", ["-Tsvg"], { input: dot, reject: false, timeout: 60_000, stripFinalNewline: false });
  if (result.code === "ENOENT") {
    throw new EnvironmentError("Graphviz's dot was not found on PATH; it is needed to draw the statecharts", {
      hint: "apt-get install graphviz (scripts/setup.sh installs it)",
    });
  }
  // The DOT is ours, so dot refusing it is a bug here, not something the user can fix.
  if (result.exitCode !== 0 || result.timedOut) {
    throw new Error(`dot -Tsvg failed (${result.timedOut ? "timed out" : `exit code ${result.exitCode}`}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
