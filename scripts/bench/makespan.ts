/**
 * Figure 5: N ideas on C coder slots. One offline run of `--ideas N` (nanofit, the model answering after
 * `--latency-ms`, the swarm's own choice of coder slots unless --coders is given), its makespan (from the
 * ideator's start to the last decision) against the bound no schedule can beat: max(the longest idea's own
 * critical path, the experiments' work / C). An idea's critical path is the time until the critic passed it
 * plus the time its own jobs took (experiments, paper, reviews), waits for a free slot left out.
 *
 *   npm run bench:makespan [-- --ideas 4 --latency-ms 1000 --coders 2]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { report } from "./lib.js";
import { lifetimes, readStates, runSwarm } from "./swarmRun.js";

const { values } = parseArgs({ options: { ideas: { type: "string", default: "4" }, "latency-ms": { type: "string", default: "1000" }, coders: { type: "string" } } });
const Args = z.object({ ideas: z.coerce.number().int().min(2).max(50), "latency-ms": z.coerce.number().int().min(0), coders: z.coerce.number().int().min(1).optional() });
const { ideas, "latency-ms": latencyMs, coders } = Args.parse(values);

const out = await mkdtemp(join(tmpdir(), "bench-makespan-"));
try {
  const run = await runSwarm(out, ["--ideas", String(ideas), "--revisions", "0", ...(coders ? ["--coders", String(coders)] : [])], { SWARM_OFFLINE_LATENCY_MS: String(latencyMs) });
  const slots = coders ?? Number(/Coder slots: (\d+)/.exec(run.output)?.[1]);
  if (!Number.isInteger(slots)) throw new Error("the swarm did not say how many coder slots it started");
  const states = await readStates(run);
  const spans = (re: RegExp) => lifetimes(states, re);
  const ideator = [...spans(/^ideator$/).values()][0];
  const ideasStarted = spans(/^pipeline\/[a-z0-9_]+$/);
  if (!ideator || ideasStarted.size === 0) throw new Error(`run ${run.runId} has no ideator or no accepted idea`);
  const start = ideator[0];
  const len = (s: [number, number] | undefined) => (s ? s[1] - s[0] : 0);
  const coderSpans = spans(/^coder\.[a-z0-9_]+$/);
  const jobsOf = (ideaId: string) => [...spans(new RegExp(`^(coder|writer|areaChair)\\.${ideaId}(\\.r\\d+)?$`)).values()].reduce((t, s) => t + len(s), 0);
  const paths = [...ideasStarted].map(([actor, [accepted, decided]]) => {
    const ideaId = actor.slice("pipeline/".length);
    return { ideaId, path: accepted - start + jobsOf(ideaId), decided };
  });
  const criticalPath = Math.max(...paths.map((p) => p.path));
  const work = [...coderSpans.values()].reduce((t, s) => t + len(s), 0);
  const bound = Math.max(criticalPath, work / slots);
  const makespan = Math.max(...paths.map((p) => p.decided)) - start;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  report(`${ideasStarted.size} ideas (of ${ideas} asked) on ${slots} coder slots (nanofit, offline at ${latencyMs} ms a call):`, [
    {
      figure: 5, what: `makespan / max(critical path, work / C)`, value: makespan / bound, unit: "×", target: { op: "<=", value: 1.1 },
      detail: `${s(makespan)} / max(${s(criticalPath)}, ${s(work)} / ${slots})`,
    },
  ]);
} finally {
  await rm(out, { recursive: true, force: true });
}
