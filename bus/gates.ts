import { z } from "zod";
import type { Bus } from "./connection.js";
import { UserError } from "./errors.js";
import { Idea, IdeaId, PlannedRun, RunId } from "./schemas.js";
import { followStored, storedKeys } from "./storedReads.js";
import { BUCKET_STREAMS, kvKeys } from "./subjects.js";
import { isKvConflict } from "./connection.js";

/** Where a run may wait for a person (`--gate`): an accepted idea, the coder's plan of runs, a paper before its review. */
export const GATES = ["ideas", "plan", "paper"] as const;
export const GateName = z.enum(GATES);
export type GateName = z.infer<typeof GateName>;

/** The stages an idea can be rewound to, in order: each one's jobs, and every later one's, are done again. */
export const STAGES = ["plan", "experiment", "writing", "review"] as const;
export const Stage = z.enum(STAGES);
export type Stage = z.infer<typeof Stage>;

/** What a gate shows the person, and what an edit replaces: the idea, the plan, or (for a paper) notes the writer revises from. */
export const Proposal = z.discriminatedUnion("gate", [
  z.object({ gate: z.literal("ideas"), idea: Idea }),
  z.object({ gate: z.literal("plan"), idea: Idea, plan: z.array(PlannedRun).min(1) }),
  z.object({ gate: z.literal("paper"), idea: Idea, pdf: z.string(), round: z.number().int().min(0), amendmentsLeft: z.number().int().min(0) }),
]);
export type Proposal = z.infer<typeof Proposal>;

/** A person's decision. An edit of a paper is what the writer should change: it revises the paper from it. */
export const Decision = z.discriminatedUnion("choice", [
  z.object({ choice: z.literal("approve") }),
  z.object({ choice: z.literal("edit"), idea: Idea.optional(), plan: z.array(PlannedRun).min(1).optional(), notes: z.string().min(1).max(20_000).optional() }),
  z.object({ choice: z.literal("reject"), reason: z.string().min(1).max(2000) }),
]);
export type Decision = z.infer<typeof Decision>;

/** One gate of one idea, as KV keeps it (`<runId>.gate.<ideaId>.<request>`): asked by the pipeline, decided by a person. */
export const GateEntry = z.object({
  runId: RunId,
  ideaId: IdeaId,
  /** `<gate>.g<generation>` (and `.a<n>` for a paper's n-th amendment): a rewound idea asks again. */
  request: z.string().regex(/^[a-z]+(\.[a-z]\d+)+$/),
  proposal: Proposal,
  askedAt: z.string(),
  decided: z.object({ decision: Decision, by: z.string().min(1).max(200), at: z.string() }).optional(),
});
export type GateEntry = z.infer<typeof GateEntry>;

/** A rewind of an idea (`<runId>.rewind.<ideaId>`): its `generation`-th, from `stage` on. */
export const Rewind = z.object({
  runId: RunId,
  ideaId: IdeaId,
  stage: Stage,
  generation: z.number().int().min(1),
  /** The generation of each stage's jobs after it, earlier rewinds' included: all a pipeline started afresh needs. */
  stages: z.partialRecord(Stage, z.number().int().min(1)),
  by: z.string().min(1).max(200),
  at: z.string(),
});
export type Rewind = z.infer<typeof Rewind>;

const enc = new TextEncoder();

/** A stored value read as `schema` says, or undefined: a deleted key, or bytes that are not one. */
function parseStored<S extends z.ZodType>(schema: S, data: Uint8Array | undefined): z.infer<S> | undefined {
  if (!data?.length) return undefined;
  try {
    return schema.safeParse(JSON.parse(new TextDecoder().decode(data))).data;
  } catch {
    return undefined;
  }
}

const parseEntry = (data: Uint8Array | undefined) => parseStored(GateEntry, data);
export const readRewind = (data: Uint8Array | undefined) => parseStored(Rewind, data);

/** The current values of the run's keys under `filter` that read as `schema`, in the order of their keys. */
async function storedValues<S extends z.ZodType>(bus: Bus, filter: string, schema: S): Promise<z.infer<S>[]> {
  const out: z.infer<S>[] = [];
  for (const key of await storedKeys(bus, filter)) {
    const entry = await bus.kv.get(key);
    const value = entry?.operation === "PUT" ? parseStored(schema, entry.value) : undefined;
    if (value) out.push(value);
  }
  return out;
}

/**
 * Asks a gate (once: asking again keeps what is there, a decision included) and waits for its decision, which
 * may already be recorded. Every revision of the key is read in order from its stream, riding out an outage.
 */
export async function awaitDecision(
  bus: Bus,
  entry: Omit<GateEntry, "decided">,
  signal: AbortSignal,
  onWaiting: () => Promise<void> = async () => {},
): Promise<NonNullable<GateEntry["decided"]>> {
  const key = kvKeys.gate(entry.runId, entry.ideaId, entry.request);
  try {
    await bus.kv.create(key, enc.encode(JSON.stringify(GateEntry.parse(entry))));
  } catch (err) {
    if (!isKvConflict(err)) throw err;
    // Asked before (a restart, or the idea rewound): decided then, it is decided now.
    const before = await bus.kv.get(key);
    const decided = before?.operation === "PUT" ? parseEntry(before.value)?.decided : undefined;
    if (decided) return decided;
  }
  await onWaiting();
  const follower = followStored(bus, BUCKET_STREAMS.runs.name, `${BUCKET_STREAMS.runs.subjects}.${key}`);
  const stop = () => void follower.close();
  signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const m of follower) {
      const decided = parseEntry(m.data)?.decided;
      if (decided) return decided;
    }
    throw new Error(`stopped waiting at gate ${entry.request} of ${entry.ideaId}`);
  } finally {
    signal.removeEventListener("abort", stop);
    await follower.close();
  }
}

/** The gates of a run, asked and decided, in the order of their keys. */
export function listGates(bus: Bus, runId: string): Promise<GateEntry[]> {
  return storedValues(bus, `${runId}.gate.>`, GateEntry);
}

/**
 * Records a person's decision at the gate an idea waits at now. The write is conditional on what was read, so
 * of two people deciding at once one wins and the other is told.
 */
export async function decideGate(bus: Bus, runId: string, ideaId: string, decision: Decision, by: string, request?: string): Promise<GateEntry> {
  const entry = await waitingGate(bus, runId, ideaId);
  if (!entry) {
    throw new UserError(`idea ${ideaId} of run ${runId} is not waiting at a gate`, { hint: `npm run gate -- list ${runId} shows what waits` });
  }
  // A decision made on what a person was shown goes to that gate only: a rewind since has asked another.
  if (request !== undefined && entry.request !== request) {
    throw new UserError(`idea ${ideaId} no longer waits at ${request} but at ${entry.request} (it was rewound meanwhile)`, { hint: `npm run gate -- list ${runId}, and decide again` });
  }
  checkEdit(entry, decision);
  const key = kvKeys.gate(runId, ideaId, entry.request);
  const current = await bus.kv.get(key);
  if (!current || parseEntry(current.value)?.decided) throw new UserError(`the ${entry.proposal.gate} gate of ${ideaId} was decided meanwhile`, { hint: `npm run gate -- list ${runId}` });
  const parsed = GateEntry.safeParse({ ...entry, decided: { decision, by, at: new Date().toISOString() } });
  if (!parsed.success) throw new UserError(`that decision cannot be recorded: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, { hint: "notes for the writer are at most 20,000 characters; a reason at most 2,000" });
  const decided = parsed.data;
  try {
    await bus.kv.update(key, enc.encode(JSON.stringify(decided)), current.revision);
  } catch (err) {
    if (isKvConflict(err)) throw new UserError(`someone else decided the ${entry.proposal.gate} gate of ${ideaId} just now`, { hint: `npm run gate -- list ${runId}` });
    throw err;
  }
  return decided;
}

/** An edit says what it replaces, and only what that gate shows. */
function checkEdit(entry: GateEntry, decision: Decision): void {
  if (decision.choice !== "edit") return;
  const gate = entry.proposal.gate;
  const given = [decision.idea && "idea", decision.plan && "plan", decision.notes && "notes"].filter(Boolean);
  const allowed = gate === "ideas" ? ["idea"] : gate === "plan" ? ["plan"] : ["notes"];
  if (entry.proposal.gate === "paper" && entry.proposal.amendmentsLeft === 0) {
    throw new UserError(`the paper of ${entry.ideaId} was sent back with notes as often as it may be`, { hint: "approve it for review, or reject it" });
  }
  if (given.length !== 1 || !allowed.includes(given[0] as string)) {
    throw new UserError(`an edit at the ${gate} gate gives ${allowed[0] === "notes" ? "notes for the writer" : `the ${allowed[0]}`} (and only that)`, {
      hint: gate === "ideas" ? "--file idea.json with the idea's fields (Name, Title, Experiment, …)" : gate === "plan" ? "--file plan.json: [{\"description\": \"…\"}, …]" : "--file notes.md: what the writer should change",
    });
  }
}

/**
 * An edit as a person wrote it (a file, the live view's text box) made into a decision: at the ideas gate the
 * idea as JSON, at the plan gate the runs as JSON, at the paper gate notes for the writer.
 */
export function editFromText(entry: GateEntry, text: string): Decision {
  const gate = entry.proposal.gate;
  if (gate === "paper") return { choice: "edit", notes: text.trim() || "(no notes)" };
  const what = gate === "ideas" ? "idea" : "plan";
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`the edited ${what} is not JSON: ${(err as Error).message}`, { hint: "fix it and give it again" });
  }
  const parsed = gate === "ideas" ? Idea.safeParse(json) : z.array(PlannedRun).min(1).safeParse(json);
  if (!parsed.success) {
    throw new UserError(`the edited ${what} is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`, {
      hint: gate === "ideas" ? "an idea has Name, Title, Experiment, Interestingness, Feasibility, Novelty" : 'a plan is [{"description": "what run_1 changes"}, …]',
    });
  }
  return gate === "ideas" ? { choice: "edit", idea: parsed.data as Idea } : { choice: "edit", plan: parsed.data as PlannedRun[] };
}

/** What a person edits at a gate, as text: the idea or the plan as JSON, or a start for the paper's notes. */
export function editableText(entry: GateEntry): string {
  const p = entry.proposal;
  return p.gate === "ideas" ? JSON.stringify(p.idea, null, 2) : p.gate === "plan" ? JSON.stringify(p.plan, null, 2) : "What the writer should change in the paper:\n";
}

/** The gate an idea waits at now, if any. */
export async function waitingGate(bus: Bus, runId: string, ideaId: string): Promise<GateEntry | undefined> {
  return (await gateStates(bus, runId)).find((g) => g.ideaId === ideaId && g.state === "waiting");
}

export type GateState = GateEntry & { state: "waiting" | "decided" | "superseded" };

/**
 * Every gate of a run, and where it stands: decided, waiting, or superseded (asked, never decided, and passed by a
 * rewind of its stage, whose idea will ask anew under the next generation). An idea waits at the gate it asked last,
 * of those no rewind has passed by, while that one is undecided; any other undecided gate of it is superseded.
 */
export async function gateStates(bus: Bus, runId: string): Promise<GateState[]> {
  const gates = await listGates(bus, runId);
  const rewinds = new Map((await listRewinds(bus, runId)).map((r) => [r.ideaId, r]));
  const stale = (g: GateEntry) => {
    const stage = stageOfGate(g.request);
    const generation = Number(/\.g(\d+)/.exec(g.request)?.[1] ?? 0);
    return stage !== undefined && generation < (rewinds.get(g.ideaId)?.stages[stage] ?? 0);
  };
  const current = gates.filter((g) => !stale(g));
  const latest = new Set(gates.map((g) => g.ideaId).map((idea) => current.filter((g) => g.ideaId === idea).reduce<GateEntry | undefined>((a, g) => (!a || g.askedAt > a.askedAt ? g : a), undefined)));
  return gates.map((g) => ({ ...g, state: g.decided ? "decided" : latest.has(g) ? "waiting" : "superseded" }));
}

/** The stage whose rewind asks a gate anew: the plan's, a first paper's (writing), a revised one's (review). */
function stageOfGate(request: string): Stage | undefined {
  if (request.startsWith("plan.")) return "plan";
  const paper = /^paper\.r(\d+)\./.exec(request);
  return paper ? (paper[1] === "0" ? "writing" : "review") : undefined;
}

/**
 * `.g<n>` when a job belongs to an idea's n-th rewind (its id `<runId>.<kind>.<ideaId>[.r<round>].g<n>…`), else "":
 * what keeps a rewound job's actor and work folder apart from the job it redoes, which may still be running.
 */
export function generationTag(job: { jobId: string }): string {
  const token = job.jobId.split(".").slice(3).find((t) => /^g\d+$/.test(t));
  return token ? `.${token}` : "";
}

/** Asks for an idea to be done again from `stage` on; the pipeline, live or resumed, takes it up. */
export async function requestRewind(bus: Bus, runId: string, ideaId: string, stage: Stage, by: string): Promise<Rewind> {
  const key = kvKeys.rewind(runId, ideaId);
  for (;;) {
    const current = await bus.kv.get(key);
    const before = current?.operation === "PUT" ? readRewind(current.value) : undefined;
    const generation = (before?.generation ?? 0) + 1;
    const stages = { ...before?.stages, ...Object.fromEntries(STAGES.slice(STAGES.indexOf(stage)).map((s) => [s, generation])) };
    const rewind: Rewind = { runId, ideaId, stage, generation, stages, by, at: new Date().toISOString() };
    try {
      if (current) await bus.kv.update(key, enc.encode(JSON.stringify(rewind)), current.revision);
      else await bus.kv.create(key, enc.encode(JSON.stringify(rewind)));
      return rewind;
    } catch (err) {
      if (!isKvConflict(err)) throw err;
    }
  }
}

/** The latest rewind of each idea of a run. */
export function listRewinds(bus: Bus, runId: string): Promise<Rewind[]> {
  return storedValues(bus, `${runId}.rewind.*`, Rewind);
}

/** Every rewind of a run as it is written, those written before included. */
export function followRewinds(bus: Bus, runId: string) {
  return followStored(bus, BUCKET_STREAMS.runs.name, `${BUCKET_STREAMS.runs.subjects}.${runId}.rewind.*`);
}
