import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { ROOT, runScript, waitForLine } from "./helpers/cli.js";
import { answerLikeAModel, startFakeModelServer } from "./helpers/fakeModelServer.js";
import { startLocalNats } from "../bus/server.js";
import { connectBus } from "../bus/connection.js";
import { watchEvents } from "../bus/events.js";
import { subjects } from "../bus/subjects.js";
import { LlmExchange, Progress, StateBatch, type Idea, type StateEvent } from "../bus/schemas.js";

const KEY = "sk-takeover-abcdefghijklmnopqrstu";
const dir = mkdtempSync(join(tmpdir(), "swarm-takeover-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** nanofit, with run_3 a few seconds longer: the coder is killed while it is under way, never after it. */
function nanofitWithSlowRun3(): string {
  const template = join(dir, "nanofit");
  cpSync(resolve(ROOT, "templates", "nanofit"), template, { recursive: true });
  const file = join(template, "experiment.py");
  const code = readFileSync(file, "utf8");
  const marker = "    args = parser.parse_args()\n";
  expect(code).toContain(marker);
  writeFileSync(file, code.replace(marker, `${marker}    if args.out_dir == "run_3":\n        time.sleep(5)\n`));
  return template;
}

/**
 * The offline stand-in behind the OpenAI wire format, except that the ideator's idea sweeps three values
 * instead of two (its third between the other two), so that the coder plans three runs.
 */
function threeValues(body: Record<string, unknown>) {
  const user = ((body.messages ?? []) as { role: string; content: unknown }[])
    .filter((m) => m.role === "user")
    .map((m) => String(m.content))
    .join("\n\n");
  if (!user.includes("### archive\n")) return undefined;
  const idea = answerLikeAModel(user) as Idea;
  const list = /each of \[([^\]]+)\]/.exec(idea.Experiment)![1]!;
  const [a, b] = list.split(",").map(Number) as [number, number];
  const third = Number.isInteger(a) && Number.isInteger(b) ? Math.round((a + b) / 2) : (a + b) / 2;
  return { json: { ...idea, Experiment: idea.Experiment.replace(`[${list}]`, `[${list}, ${third}]`) } };
}

describe("a coder killed in the middle of an idea", () => {
  it("is taken over by another coder, which runs only the third run; the idea completes with all three", async () => {
    const model = await startFakeModelServer({ apiKey: KEY, stepFor: threeValues });
    const server = await startLocalNats({ storeDir: join(dir, "nats") });
    const out = join(dir, "out");
    const env = { NATS_URL: server.url, OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: KEY, SWARM_ACK_WAIT_MS: "3000" };
    const swarm = runScript("swarm", [
      "--template", nanofitWithSlowRun3(), "--out", out, "--llm", "openai/gpt-4o-mini", "--literature", "local",
      "--max-runs", "3", "--reviewers", "1", "--revisions", "0", "--roles", "ideator,critic,writer,areaChair,reviewer=1",
    ], { env });
    const coders = Object.fromEntries(["coder-a", "coder-b"].map((name) => [name, runScript("node", ["--roles", "coder", "--name", name], { env })]));
    const bus = await connectBus(server.url);
    try {
      const runId = /^Run (\S+) on template/.exec(await waitForLine(swarm, /^Run \S+ on template/, 120_000))![1]!;
      const states: StateEvent[] = [];
      const progress: Progress[] = [];
      const exchanges: LlmExchange[] = [];
      let killed: string | undefined;
      const stream = await watchEvents(bus, subjects.conversation(runId), z.unknown());
      const reading = (async () => {
        for await (const { subject, value } of stream) {
          // sci.<runId>.conv.<topic>[.<jobId>]
          const topic = subject.split(".")[3];
          if (topic === "progress") progress.push(Progress.parse(value));
          else if (topic === "llm") exchanges.push(LlmExchange.parse(value));
          else if (topic === "state") {
            for (const e of StateBatch.parse(value).events) {
              states.push(e);
              // The coder entered `running` a third time: run_1 and run_2 have finished, run_3 is under way.
              const coder = /^coder\.[^/]+$/.test(e.actor);
              if (coder && !killed && e.state === "running" && states.filter((s) => s.actor === e.actor && s.state === "running").length === 3) {
                killed = e.by.node;
                coders[killed]!.kill("SIGKILL");
              }
            }
          }
        }
      })();

      const res = await swarm;
      await stream.close();
      await reading;
      expect(res.exitCode, res.all).toBe(0);
      expect(killed, "a coder was killed after its second run").toBeDefined();
      const survivor = Object.keys(coders).find((n) => n !== killed)!;
      const run = join(out, runId);
      expect(JSON.parse(readFileSync(join(run, "status.json"), "utf8")).status).toBe("completed");
      const { ideaId } = JSON.parse(readFileSync(join(run, "ideas.json"), "utf8")).ideas[0];
      const runs: { run: string; ok: boolean }[] = JSON.parse(readFileSync(join(run, ideaId, "runs.json"), "utf8"));
      expect(runs.map((r) => [r.run, r.ok])).toEqual([["run_0", true], ["run_1", true], ["run_2", true], ["run_3", true]]);

      const ran = (node: string) => progress.filter((p) => p.by.node === node && p.ideaId === ideaId && /^running run_\d+$/.test(p.text)).map((p) => p.text);
      expect(ran(killed!)).toEqual(["running run_1", "running run_2", "running run_3"]);
      expect(ran(survivor)).toEqual(["running run_3"]);
      expect(progress.some((p) => p.by.node === survivor && /^going on from "running", where another coder stopped; kept run_0, run_1, run_2$/.test(p.text))).toBe(true);
      // The plan was asked for once, by the coder that was killed.
      expect(exchanges.filter((e) => e.task === "coder.plan").map((e) => e.by.node)).toEqual([killed]);
      // The survivor's machine went on in `running` (run_3's), and no state before it.
      const taken = states.filter((s) => s.actor === `coder.${ideaId}` && s.by.node === survivor).map((s) => s.state);
      expect(taken).toEqual(["running", "plotting", "runningPlot", "noting", "critiquing", "done"]);
    } finally {
      swarm.kill("SIGKILL");
      for (const c of Object.values(coders)) c.kill("SIGKILL");
      await Promise.allSettled([swarm, ...Object.values(coders)]);
      await bus.close();
      await server.stop();
      await model.close();
    }
  }, 300_000);
});
