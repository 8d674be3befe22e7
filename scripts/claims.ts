import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../bus/errors.js";
import { checkClaims, collectFacts, unmatched } from "../agents/writer/claims.js";
import { fail, parseFlags } from "./cli.js";

const HELP = `npm run claims -- <results/<runId>/<idea>> [--write]

Checks that every number in the paper's abstract, results, tables and captions matches a run artifact
(final_info.json values at their printed precision, notes.txt, the runs' descriptions). Prints each number
that matches nothing, and exits 1 if there is one; --write saves paper/claims.json.`;

function main(): void {
  const args = process.argv.slice(2);
  const dir = args.find((a) => !a.startsWith("-"));
  const flags = parseFlags(args.filter((a) => a.startsWith("-")), { help: { type: "boolean", short: "h" }, write: { type: "boolean" } }, z.object({ help: z.boolean().optional(), write: z.boolean().optional() }));
  if (flags.help || !dir) {
    process.stdout.write(`${HELP}\n`);
    process.exitCode = flags.help ? 0 : 2;
    return;
  }
  const ideaDir = resolve(dir);
  const tex = join(ideaDir, "paper", "template.tex");
  if (!existsSync(tex)) throw new UserError(`no paper at ${tex}`, { hint: "give an idea's folder in a run's results, e.g. results/<runId>/<idea>" });
  const claims = checkClaims(readFileSync(tex, "utf8"), collectFacts(ideaDir));
  if (flags.write) writeFileSync(join(ideaDir, "paper", "claims.json"), JSON.stringify(claims, null, 2));
  const missing = unmatched(claims);
  for (const c of claims) {
    process.stdout.write(c.source ? `✓ ${c.number} (${c.where}) = ${c.source.file} ${c.source.key}\n` : `✗ ${c.number} (${c.where}) matches no run artifact: "${c.context}"\n`);
  }
  process.stdout.write(`${claims.length - missing.length} of ${claims.length} numbers trace to run artifacts\n`);
  if (missing.length) process.exitCode = 1;
}

try {
  main();
} catch (err) {
  fail(err);
}
