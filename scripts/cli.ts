import { parseArgs, type ParseArgsConfig } from "node:util";
import type { z } from "zod";
import { UserError, describeError } from "../bus/errors.js";

/** Parses flags with node:util and validates them with zod; a bad flag is a UserError that says which. */
export function parseFlags<S extends z.ZodType>(argv: string[], options: NonNullable<ParseArgsConfig["options"]>, schema: S): z.infer<S> {
  let values: Record<string, unknown>;
  // `--ideas -2` is a value, not a flag: joined to its option, it gets the range's message like any other.
  const args = argv.flatMap((a, i) => (i > 0 && /^-\d/.test(a) && options[argv[i - 1]!.replace(/^--/, "")]?.type === "string" ? [] : [
    /^--/.test(a) && /^-\d/.test(argv[i + 1] ?? "") && options[a.slice(2)]?.type === "string" ? `${a}=${argv[i + 1]}` : a,
  ]));
  try {
    values = parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UserError((err as Error).message, { hint: "run with --help for the flags" });
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    throw new UserError(parsed.error.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("\n"), { hint: "run with --help for the flags" });
  }
  return parsed.data;
}

/** Prints a clear error for the person at the terminal and exits; no stack trace for expected errors. */
export function fail(err: unknown): never {
  process.stderr.write(`\nerror: ${describeError(err)}\n`);
  if (process.env.LOG_LEVEL === "debug" && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof UserError ? 2 : 1);
}
