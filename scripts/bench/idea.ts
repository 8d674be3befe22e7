/**
 * Figure 2, and what a paper costs: one idea end to end (`npm run swarm`, offline, the model answering after
 * `--latency-ms`), its wall time against the time in which a model call, an experiment or plot run, the
 * baseline or a LaTeX compile was going on; the rest is the swarm's own. Then the tokens of the idea's calls by
 * agent, and what they would cost at config/models.json's prices for the default models, with and without
 * prompt caching. Prints figures; not run by the tests.
 *
 *   npm run bench:idea [-- --latency-ms 1000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { costOf, modelInfo } from "../../agents/llm/models.js";
import { coveredLength, report, type Figure } from "./lib.js";
import { readCalls, readStates, runSwarm, stays, type Call } from "./swarmRun.js";

const { values } = parseArgs({ options: { "latency-ms": { type: "string", default: "1000" } } });
const { "latency-ms": latencyMs } = z.object({ "latency-ms": z.coerce.number().int().min(0) }).parse(values);

/** One idea's wall time at 1 s a call when issue 14 was filed (42.8 s): the target is half of it. */
const FILED_WALL_S = 42.8;

/** OpenAI caches a prompt's prefix from 1,024 tokens on; Anthropic, blocks the swarm marks, from about as long. */
const MIN_CACHED_TOKENS = 1024;
const tokensOf = (chars: number) => Math.ceil(chars / 4);

/** How agents/llm/task.ts opens the turn of a task's stable data, which it marks for the prompt cache. */
const STABLE_TURN = "The material this task works from";

/**
 * Per call, the input tokens a provider's prompt cache would serve and those it would write. The cacheable part of
 * a prompt is its system prompt and the stable-data turn after it. It is served from the cache (`cached`) when an
 * earlier call with the same part had finished before this one began, and only when it is long enough to cache
 * (calls made at once all miss). A miss whose part is long enough writes it (`written`; what Anthropic surcharges).
 */
function cacheable(calls: Call[]): { cached: number; written: number }[] {
  const finished = new Map<string, number>();
  const byStart = calls.map((c, i) => ({ c, i })).sort((a, b) => a.c.start - b.c.start);
  const out = calls.map(() => ({ cached: 0, written: 0 }));
  for (const { c, i } of byStart) {
    const stable = c.messages.findIndex((m) => m.role === "user" && m.content.startsWith(STABLE_TURN));
    const part = c.messages.slice(0, stable === -1 ? 1 : stable + 1).map((m) => `${m.role}\u0000${m.content}`).join("\u0000");
    const tokens = Math.min(tokensOf(part.length), c.inputTokens);
    if (tokens < MIN_CACHED_TOKENS) continue;
    const ready = finished.get(part);
    if (ready !== undefined && ready <= c.start) out[i]!.cached = tokens;
    else out[i]!.written = tokens;
    finished.set(part, Math.min(ready ?? Infinity, c.end));
  }
  return out;
}

/** Anthropic charges a quarter more than the input price for tokens written to its cache; OpenAI nothing. */
const CACHE_WRITE_SURCHARGE: Record<string, number> = { anthropic: 0.25, openai: 0 };

const out = await mkdtemp(join(tmpdir(), "bench-idea-"));
try {
  const run = await runSwarm(out, [], { SWARM_OFFLINE_LATENCY_MS: String(latencyMs) });
  const calls = (await readCalls(run)).sort((a, b) => a.start - b.start);
  const states = await readStates(run);
  const wallMs = run.endedAt - run.startedAt;
  const start = run.startedEpochMs;
  const end = start + wallMs;
  const clip = ([a, b]: [number, number]): [number, number] => [Math.max(a, start), Math.min(b, end)];
  const model = calls.map((c): [number, number] => clip([c.start, c.end]));
  const experiments = [...stays(states, /^coder\./, /^"(running|runningPlot)"$/), ...stays(states, /^pipeline$/, /^"baseline"$/)].map(clip);
  const compiles = stays(states, /^writer\./, /"compiling"/).map(clip);
  const workMs = coveredLength([...model, ...experiments, ...compiles]);
  const ownMs = wallMs - workMs;
  const firstState = Math.min(...states.map((e) => Date.parse(e.at)));
  const decided = Math.max(...states.filter((e) => e.actor.startsWith("areaChair.") && e.done).map((e) => Date.parse(e.at)));
  const during = ([a, b]: [number, number]): [number, number] => [Math.max(a, firstState), Math.min(b, decided)];
  const runOwnMs = decided - firstState - coveredLength([...model, ...experiments, ...compiles].map(during));
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const figures: Figure[] = [
    {
      figure: 2, what: `one idea's wall time, ${latencyMs} ms a model call`, value: wallMs / 1000, unit: "s", target: { op: "<=", value: FILED_WALL_S / 2 },
      detail: `${calls.length} calls; ${FILED_WALL_S} s when issue 14 was filed`,
    },
    {
      figure: 2, what: "the swarm's own share of it", value: (100 * ownMs) / wallMs, unit: "%", target: { op: "<=", value: 2 },
      detail: `${s(ownMs)} of ${s(wallMs)}; model ${s(coveredLength(model))} (overlapping), experiments+plots+baseline ${s(coveredLength(experiments))}, compiles ${s(coveredLength(compiles))}`,
    },
    {
      figure: 2, what: "the swarm's own share, from its first state to the last decision", value: (100 * runOwnMs) / (decided - firstState), unit: "%",
      detail: `${s(runOwnMs)} of ${s(decided - firstState)}: the hops between agents, reading and checking, state and progress`,
    },
    { figure: 2, what: "of the swarm's own: start to the pipeline's first state", value: (firstState - start) / 1000, unit: "s", detail: "Node and its modules, preflight, nats-server" },
    { figure: 2, what: "of the swarm's own: the last decision to the exit", value: (end - decided) / 1000, unit: "s" },
  ];
  report(`One idea end to end (nanofit, offline at ${latencyMs} ms a call, the default 3 reviewers):`, figures);

  // Tokens and cost per idea (one idea here) by agent.
  const caching = cacheable(calls);
  const agents = [...new Set(calls.map((c) => c.agent))];
  const PRICED = [["openai", "gpt-4o-2024-08-06"], ["anthropic", "claude-3-5-sonnet-20241022"]] as const;
  type Tokens = { inputTokens: number; outputTokens: number; cachedTokens: number; writtenTokens: number; estimated: true };
  const none = (): Tokens => ({ inputTokens: 0, outputTokens: 0, cachedTokens: 0, writtenTokens: 0, estimated: true });
  const add = (t: Tokens, c: Call, k: { cached: number; written: number }): Tokens => ({
    inputTokens: t.inputTokens + c.inputTokens, outputTokens: t.outputTokens + c.outputTokens,
    cachedTokens: t.cachedTokens + k.cached, writtenTokens: t.writtenTokens + k.written, estimated: true,
  });
  const rows = agents.map((agent) => {
    const mine = calls.map((c, i) => ({ c, k: caching[i]! })).filter((x) => x.c.agent === agent);
    return { agent, calls: mine.length, usage: mine.reduce((t, { c, k }) => add(t, c, k), none()) };
  });
  const total = calls.reduce((t, c, i) => add(t, c, caching[i]!), none());
  /** The cost of `usage` at the model's prices: with caching, cached input at the cache's price and writes with their surcharge. */
  const usd = (provider: string, m: string, usage: Tokens, cached: boolean) => {
    const info = modelInfo(provider, m);
    if (!cached) return costOf(info, { ...usage, cachedTokens: 0 });
    return costOf(info, usage) + (usage.writtenTokens * (info?.input ?? 0) * (CACHE_WRITE_SURCHARGE[provider] ?? 0)) / 1e6;
  };
  const line = (name: string, calls: number, u: Tokens) =>
    `${name.padEnd(10)} ${String(calls).padStart(5)} ${String(u.inputTokens).padStart(9)} ${String(u.outputTokens).padStart(8)} ${String(u.cachedTokens).padStart(9)}   ${PRICED.map(([p, m]) => `$${usd(p, m, u, false).toFixed(3)} / $${usd(p, m, u, true).toFixed(3)}`.padEnd(20)).join("  ")}\n`;
  process.stdout.write(`\nTokens per idea by agent (the offline stand-in's requests, 4 characters a token: a real model's answers are longer):\n`);
  process.stdout.write(`${"agent".padEnd(10)} ${"calls".padStart(5)} ${"input".padStart(9)} ${"output".padStart(8)} ${"cacheable".padStart(9)}   ${PRICED.map(([p, m]) => `${p}/${m}`.slice(0, 20).padEnd(20)).join("  ")}\n`);
  process.stdout.write(`${"".padEnd(47)}   ${PRICED.map(() => "no cache / cached".padEnd(20)).join("  ")}\n`);
  for (const r of rows) process.stdout.write(line(r.agent, r.calls, r.usage));
  process.stdout.write(line("total", calls.length, total));
  report("What a paper costs at the listed prices (config/models.json):", PRICED.flatMap(([p, m]) => [
    { figure: 0, what: `a paper with ${p}/${m}`, value: usd(p, m, total, false), unit: "USD", detail: `${total.inputTokens} input and ${total.outputTokens} output tokens` },
    {
      figure: 0, what: `the same, its cacheable prefixes from the prompt cache`, value: usd(p, m, total, true), unit: "USD",
      detail: `${total.cachedTokens} input tokens cached, ${total.writtenTokens} written to the cache${CACHE_WRITE_SURCHARGE[p] ? ` at ${100 * CACHE_WRITE_SURCHARGE[p]}% over the input price` : ""}`,
    },
  ]));
} finally {
  await rm(out, { recursive: true, force: true });
}
