/**
 * The live view's HTTP server: the page and its assets, each machine's statechart as SVG, a run's status, its
 * artifacts from the object store, and the run's conversation as server-sent events, read from the bus (history
 * first, then live), so one page follows a swarm spread over any number of nodes and replays a finished run.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";
import { BusError, UserError } from "../../bus/errors.js";
import { getArtifact } from "../../bus/artifacts.js";
import { watchEvents } from "../../bus/events.js";
import { AcceptedIdea, JOB_KINDS, LlmExchange, Progress, RunConfig, RunId, StateBatch, outcomeSchema, type JobKind, type StateEvent } from "../../bus/schemas.js";
import { kvKeys, publisherOf, subjects } from "../../bus/subjects.js";
import { ROLE_NEEDS } from "../../bus/auth.js";
import { machines, type Role } from "../../machines/index.js";
import { stateElementId } from "../../machines/dot.js";
import { machineSvg } from "../graphviz.js";
import { readStatus } from "../status.js";
import { decideGate, editFromText, editableText, gateStates, waitingGate, type Decision } from "../../bus/gates.js";
import { IdeaId } from "../../bus/schemas.js";

const STATIC = new URL("./static/", import.meta.url);
const ASSETS: Record<string, string> = {
  "/": "index.html",
  "/app.js": "app.js",
  "/style.css": "style.css",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  json: "application/json; charset=utf-8",
};
const TEXT = "text/plain; charset=utf-8";
/**
 * The types a run's artifacts are served as, none of which can carry script; anything else (a run's HTML, SVG or
 * JavaScript) is offered as a download, never shown as a page of this origin.
 */
const ARTIFACT_TYPES: Record<string, string> = {
  pdf: "application/pdf", png: "image/png", jpg: "image/jpeg", json: TEXT, txt: TEXT, tex: TEXT, py: TEXT, bib: TEXT, log: TEXT, csv: TEXT,
};
/** The page runs only its own script: nothing from the bus can become code, and nothing is fetched from elsewhere. */
const PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'self'; frame-ancestors 'none'";
/** How often the nodes, queues and spend (KV and stream state, not events) are sent again. */
const STATUS_EVERY_MS = 2_000;

const RunQuery = z.object({ run: RunId });
/**
 * An object's name as a URL path may give it: `<runId>/<path>` of plain parts, so that a name cannot climb,
 * hide a control character, or be read as anything but an object of one run.
 */
const ArtifactName = z
  .string()
  .max(512)
  .regex(/^[A-Za-z0-9-]{1,64}(\/[A-Za-z0-9_][A-Za-z0-9._=-]*)+$/, "an artifact name is <runId>/<path> of letters, digits, '.', '_', '=' and '-'");

/** Who puts a kind of job on its queue: the role that asks for it, else the swarm's pipeline. */
const REQUESTER: Record<JobKind, string> = Object.fromEntries(
  JOB_KINDS.map((k) => [k, Object.entries(ROLE_NEEDS).find(([, needs]) => needs.asks.includes(k))?.[0] ?? "pipeline"]),
) as Record<JobKind, string>;

export interface UiServer {
  url: string;
  /**
   * What the page must show to decide at a gate (`#gate=<token>` in the URL the swarm prints): without it a page, or
   * anything else that reaches the port, can look but not decide.
   */
  gateToken?: string;
  close(): Promise<void>;
}

/** A decision from the page: the gate's text box holds an edit as the CLI's --file would. */
const GateChoice = z.discriminatedUnion("choice", [
  z.object({ choice: z.literal("approve") }),
  z.object({ choice: z.literal("edit"), text: z.string().min(1).max(100_000) }),
  z.object({ choice: z.literal("reject"), reason: z.string().trim().min(1).max(2000) }),
]);
const GateQuery = z.object({ run: RunId, idea: IdeaId, request: z.string().max(100) });
const MAX_BODY = 200_000;

export interface UiOptions {
  bus: Bus;
  log: Logger;
  /** Loopback unless told otherwise: the page shows everything the bus holds. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Lets the page decide at the run's gates, naming this person: only the swarm's own view, which has the swarm's identity. */
  gates?: { by: string };
}

/** The paths of a state value's active leaves: `{running: "plotting"}` → [["running", "plotting"]]. */
export function leafPaths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value === "string") return [[...prefix, value]];
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length) return entries.flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  }
  return prefix.length ? [prefix] : [];
}

/** The SVG element ids of the states an event says the actor is in; none for a machine that is not drawn. */
export function litIds(e: Pick<StateEvent, "machine" | "state">): string[] {
  if (!Object.hasOwn(machines, e.machine)) return [];
  return leafPaths(e.state).map((path) => stateElementId(e.machine as Role, path));
}

export async function startUi(opts: UiOptions): Promise<UiServer> {
  const { bus, log } = opts;
  const svgs = new Map<Role, Promise<string>>();
  const streams = new Set<() => Promise<void>>();
  const gateToken = opts.gates ? randomBytes(18).toString("base64url") : undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      const status = err instanceof UserError ? 400 : err instanceof BusError ? 404 : 500;
      if (status === 500) log.error({ err: err.message, url: req.url }, "the live view failed a request");
      if (!res.headersSent) send(res, status, TEXT, `${err.message}\n`);
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://ui.local");
    if (req.method === "POST" && url.pathname === "/api/gates") return decide(req, res, url);
    if (req.method !== "GET") return send(res, 405, TEXT, "GET only\n");
    if (url.pathname === "/api/gates") {
      const gates = await gateStates(bus, query(url, RunQuery).run);
      // With what a person edits at each, as `npm run gate -- edit` opens it.
      return sendJson(res, { canDecide: Boolean(gateToken), gates: gates.map((g) => ({ ...g, editable: editableText(g) })) });
    }
    const asset = ASSETS[url.pathname];
    if (asset) return send(res, 200, TYPES[asset.split(".").pop()!]!, await readFile(new URL(asset, STATIC)), { "Content-Security-Policy": PAGE_CSP });
    const chart = /^\/machines\/([A-Za-z]+)\.svg$/.exec(url.pathname);
    if (chart) {
      const role = chart[1]!;
      if (!Object.hasOwn(machines, role)) return send(res, 404, TEXT, "no such machine\n");
      // Drawn once per machine; a drawing that failed (no Graphviz) is tried again on the next request.
      if (!svgs.has(role as Role)) svgs.set(role as Role, machineSvg(role as Role).catch((err: Error) => (svgs.delete(role as Role), Promise.reject(err))));
      return send(res, 200, TYPES.svg!, await svgs.get(role as Role)!, { "Cache-Control": "max-age=3600" });
    }
    if (url.pathname === "/api/runs") {
      const { runs } = await readStatus(bus);
      return sendJson(res, runs.map(({ runId, template, startedAt, lease }) => ({ runId, template, startedAt, lease })));
    }
    if (url.pathname === "/api/events") return events(req, res, query(url, RunQuery).run);
    if (url.pathname.startsWith("/artifacts/")) {
      const parsed = ArtifactName.safeParse(decoded(url.pathname.slice("/artifacts/".length)));
      if (!parsed.success) return send(res, 400, TEXT, `${parsed.error.issues[0]?.message ?? "bad name"}\n`);
      const type = ARTIFACT_TYPES[parsed.data.split(".").pop()!.toLowerCase()];
      const data = await getArtifact(bus, parsed.data);
      return send(res, 200, type ?? "application/octet-stream", data, type ? {} : { "Content-Disposition": "attachment" });
    }
    send(res, 404, TEXT, "not found\n");
  }

  /**
   * A decision from the page, for the gate an idea waits at. The token (a header a page of another origin cannot send
   * without this server's leave, which it never gives) shows that the page is the one the swarm printed.
   */
  async function decide(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const given = Buffer.from(String(req.headers["x-swarm-gate"] ?? ""));
    if (!gateToken || given.length !== gateToken.length || !timingSafeEqual(given, Buffer.from(gateToken))) {
      return send(res, 403, TEXT, "this view may not decide at gates: open the URL the swarm printed\n");
    }
    const { run, idea, request } = query(url, GateQuery);
    let body = "";
    // Decoded as one text: a character split across two chunks is not garbled.
    req.setEncoding("utf8");
    for await (const chunk of req) {
      body += chunk as string;
      if (body.length > MAX_BODY) return send(res, 413, TEXT, "too long\n");
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new UserError("the decision is not JSON", { hint: '{"choice": "approve"}' });
    }
    const choice = GateChoice.safeParse(json);
    if (!choice.success) throw new UserError(`not a decision: ${choice.error.issues.map((i) => i.message).join("; ")}`, { hint: '{"choice": "approve" | "edit" | "reject", …}' });
    const waiting = await waitingGate(bus, run, idea);
    // The page decides the gate it showed: one a rewind has passed by since is not decided in its place.
    if (!waiting || waiting.request !== request) throw new UserError(`idea ${idea} of run ${run} is not waiting at that gate (now: ${waiting?.request ?? "none"})`, { hint: "reload the page" });
    const decision: Decision = choice.data.choice === "edit" ? editFromText(waiting, choice.data.text) : choice.data;
    const decided = await decideGate(bus, run, idea, decision, opts.gates!.by, request);
    log.info({ runId: run, ideaId: idea, gate: decided.proposal.gate, choice: decision.choice }, "decided at a gate from the live view");
    sendJson(res, decided);
  }

  /** The run's conversation as server-sent events: a reset, the config, every message since the run began, then live. */
  async function events(req: IncomingMessage, res: ServerResponse, runId: string): Promise<void> {
    const stream = await watchEvents(bus, subjects.conversation(runId), z.unknown(), log);
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", Connection: "keep-alive", "X-Content-Type-Options": "nosniff" });
    const emit = (type: string, data: unknown) => res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    let open = true;
    const status = async () => {
      const report = await readStatus(bus);
      if (open) emit("status", { nodes: report.nodes, run: report.runs.find((r) => r.runId === runId) ?? null });
    };
    const sendStatus = () => void status().catch((err: Error) => log.warn({ err: err.message }, "could not read the status"));
    const timer = setInterval(sendStatus, STATUS_EVERY_MS);
    const stop = async () => {
      if (!open) return;
      open = false;
      clearInterval(timer);
      streams.delete(stop);
      await stream.close();
      res.end();
    };
    streams.add(stop);
    req.on("close", () => void stop());
    try {
      emit("reset", { runId });
      const config = await bus.kv.get(kvKeys.config(runId));
      emit("config", config?.operation === "PUT" ? (RunConfig.safeParse(config.json()).data ?? null) : null);
      sendStatus();
      for await (const { subject, value } of stream) {
        if (!open) break;
        const message = conversationMessage(subject, value);
        if (message) emit(message.type, message.data);
      }
    } finally {
      await stop();
    }
  }

  function conversationMessage(subject: string, value: unknown): { type: string; data: unknown } | undefined {
    // sci.<runId>.conv.<topic>[.<identity>.<jobId>]
    const topic = subject.split(".")[3] ?? "";
    if (topic === "state") {
      const batch = StateBatch.safeParse(value);
      return batch.success ? { type: "state", data: batch.data.events.map((e) => ({ ...e, lit: litIds(e) })) } : undefined;
    }
    if (topic === "progress") {
      const p = Progress.safeParse(value);
      return p.success ? { type: "progress", data: p.data } : undefined;
    }
    if (topic === "accepted") {
      const a = AcceptedIdea.safeParse(value);
      return a.success ? { type: "accepted", data: a.data } : undefined;
    }
    if (topic === "llm") {
      // The model's side of the conversation is large; the page shows who asked what, and what it cost.
      const e = LlmExchange.safeParse(value);
      return e.success ? { type: "llm", data: { by: e.data.by, ideaId: e.data.ideaId, task: e.data.task, model: `${e.data.provider}/${e.data.model}`, costUsd: e.data.costUsd, ms: e.data.ms, error: e.data.error, at: e.data.at } } : undefined;
    }
    if ((JOB_KINDS as string[]).includes(topic)) {
      const kind = topic as JobKind;
      const o = outcomeSchema(kind).safeParse(value);
      if (!o.success) return undefined;
      return { type: "outcome", data: { kind, from: o.data.by.agent, to: REQUESTER[kind], identity: publisherOf(subject) ?? "", outcome: o.data } };
    }
    return undefined;
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new UserError(`port ${opts.port} is in use`, { hint: "give another with --port, or --port 0 for any free one" }) : err),
    );
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${address.port}/`,
    ...(gateToken ? { gateToken } : {}),
    async close() {
      await Promise.all([...streams].map((stop) => stop()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A path's percent-decoding, or undefined where it is malformed (then the name's schema refuses it). */
function decoded(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

function query<S extends z.ZodType>(url: URL, schema: S): z.infer<S> {
  const parsed = schema.safeParse(Object.fromEntries(url.searchParams));
  if (!parsed.success) throw new UserError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "), { hint: "e.g. /api/events?run=<runId>" });
  return parsed.data;
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": type, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", ...headers });
  res.end(body);
}

function sendJson(res: ServerResponse, value: unknown): void {
  send(res, 200, TYPES.json!, JSON.stringify(value), { "Cache-Control": "no-store" });
}
