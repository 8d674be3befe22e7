import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Pretty in a terminal, JSON lines otherwise (CI, files, log shippers). */
function makeRoot(): Logger {
  const level = process.env.LOG_LEVEL ?? "info";
  const pretty = process.stderr.isTTY && process.env.LOG_FORMAT !== "json";
  if (pretty) {
    return pino({
      level,
      transport: {
        target: "pino-pretty",
        options: { destination: 2, colorize: true, ignore: "pid,hostname", translateTime: "HH:MM:ss" },
      },
    });
  }
  return pino({ level }, pino.destination(2));
}

let root: Logger | undefined;

export function rootLogger(): Logger {
  root ??= makeRoot();
  return root;
}

/** One child per agent instance, with who and where bound, as STYLE.md asks. */
export function agentLogger(bindings: { runId?: string; agent: string; node: string; [k: string]: unknown }): Logger {
  return rootLogger().child(bindings);
}
