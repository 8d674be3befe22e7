/**
 * What a resume costs after `kill -9` of a whole swarm (its local nats-server included) at each stage of an
 * offline run: how long `--resume` takes to pick the interrupted job up, how long it takes to finish the run,
 * and what is done again. Prints figures; not run by the tests.
 *
 *   npm run bench:resume [-- --ack-wait-ms 10000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { execa, type ResultPromise } from "execa";
import { z } from "zod";

const { values } = parseArgs({ options: { "ack-wait-ms": { type: "string", default: "10000" } } });
const ackWaitMs = z.coerce.number().int().min(500).parse(values["ack-wait-ms"]);
const root = resolve(import.meta.dirname, "../..");

/** Where to kill, and how to name the steps that the run's output announces, to tell which were done in both lives. */
const STAGES = [
  { stage: "experimenting", killAt: /coder@local .*: run_1 succeeded/, redone: /running (run_\d)|running (the baseline)/ },
  { stage: "writing", killAt: /writer@local .*: wrote the introduction/, redone: /(?:wrote|revised) the (\w+)|(planned \d+ runs?)/ },
  { stage: "reviewing", killAt: /reviewer@local .*: reviewer \d is reading/, redone: /(reviewer \d) is reading|(paper ready)/ },
];

function swarm(args: string[], detached: boolean): ResultPromise<{ all: true; reject: false }> {
  return execa(process.execPath, ["--import", "tsx", "scripts/swarm.ts", ...args], {
    cwd: root, all: true, reject: false, detached, env: { LOG_LEVEL: "warn", SWARM_ACK_WAIT_MS: String(ackWaitMs) },
  }) as unknown as ResultPromise<{ all: true; reject: false }>;
}

/** Resolves with the time (ms since `since`) at which a line matching `pattern` appeared. */
function lineAt(child: ResultPromise, pattern: RegExp, since: number): Promise<number> {
  return new Promise((done, fail) => {
    let text = "";
    const timer = setTimeout(() => fail(new Error(`no line matching ${pattern}:\n${text.slice(-2000)}`)), 600_000);
    child.all!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        done(performance.now() - since);
      }
    });
  });
}

process.stdout.write(`kill -9 of the whole offline swarm at each stage, then --resume (ack wait ${ackWaitMs} ms)\n\n`);
process.stdout.write(`${"stage".padEnd(14)} ${"pick-up s".padStart(9)} ${"finish s".padStart(9)}  done again after the resume\n`);
for (const { stage, killAt, redone } of STAGES) {
  const out = await mkdtemp(join(tmpdir(), "bench-resume-"));
  try {
    const first = swarm(["--out", out], true);
    await lineAt(first, killAt, performance.now());
    process.kill(-first.pid!, "SIGKILL");
    const killed = await first;
    const id = /^Run (\S+) on template/m.exec(killed.all ?? "")![1]!;
    const t0 = performance.now();
    const resumed = swarm(["--out", out, "--resume", id], false);
    // The first line an agent prints after the resume: the interrupted job is being worked on again.
    const pickup = lineAt(resumed, /^Resuming[\s\S]*\n\[\d\d:\d\d:\d\d\] (?!pipeline)\S+@/m, t0);
    const res = await resumed;
    const finish = performance.now() - t0;
    if (res.exitCode !== 0) throw new Error(`the resume of ${stage} failed:\n${(res.all ?? "").slice(-3000)}`);
    // Work of the same name in both lives: what the kill made the run do twice.
    const done = (text: string) => new Set([...text.matchAll(new RegExp(redone, "g"))].map((m) => m[1] ?? m[2]).filter((w): w is string => Boolean(w)));
    const before = done(killed.all ?? "");
    const again = [...done(res.all ?? "")].filter((w) => before.has(w));
    process.stdout.write(`${stage.padEnd(14)} ${((await pickup) / 1000).toFixed(1).padStart(9)} ${(finish / 1000).toFixed(1).padStart(9)}  ${again.join(", ") || "nothing"}\n`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
