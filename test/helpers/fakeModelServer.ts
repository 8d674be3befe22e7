import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseSections } from "../../agents/llm/sections.js";
import "../../agents/offline.js";
import { offlineTasks } from "../../agents/llm/offline/registry.js";
import { offlineAnswer } from "../../agents/llm/offline/offlineProvider.js";

/** One scripted reply; requests beyond the script are answered by the model. */
export type Step =
  | { status: number; headers?: Record<string, string>; error?: string }
  | { delayMs: number; text?: string; json?: unknown }
  | { text: string }
  | { json: unknown }
  /** A 200 with this answer whose body stops halfway: the response ends early, or the connection closes mid-body. */
  | { cut: "truncated" | "dropped"; json: unknown }
  /** A 200 with this body as it is, whatever its shape. */
  | { body: unknown };

/** An image a request carried, read back from either wire format. */
export interface SeenImage {
  /** The role of the message it came in. */
  role: string;
  /** Chat Completions sends an `image_url` part (a data URL), Messages an `image` block (base64 source). */
  format: "image_url" | "image";
  mediaType: string;
  /** The image's bytes, decoded from the base64 the request carried. */
  bytes: Buffer;
}

export interface FakeRequest {
  path: string;
  body: Record<string, unknown>;
  /** The images in the request's messages, in order. */
  images: SeenImage[];
}

export interface FakeModelServer {
  url: string;
  /** Every request's path and body, in order. */
  requests: FakeRequest[];
  /** The requests whose answer was sent in full, in the order the answers went out. */
  answered: FakeRequest[];
  script: Step[];
  close(): Promise<void>;
}

const tokens = (s: string) => Math.ceil(s.length / 4);

/**
 * Finds which task a request is by the sections of its user turns (their names are the task's data fields)
 * and answers as the offline stand-in would: a model that reads only what a real model receives.
 */
export function answerLikeAModel(userText: string): unknown {
  const data = parseSections(userText);
  const keys = Object.keys(data).sort().join(",");
  // A task's optional fields may be absent from its sections; every section must be one of its fields.
  const fits = (shape: Record<string, { safeParse(v: unknown): { success: boolean } }>) =>
    Object.keys(data).every((k) => k in shape) && Object.entries(shape).every(([k, field]) => k in data || field.safeParse(undefined).success);
  const matches = offlineTasks().filter((t) => fits(t.data.shape as never) && t.data.safeParse(data).success);
  if (matches.length !== 1) throw new Error(`the fake model cannot tell the task from the sections ${keys} (${matches.length} match)`);
  return offlineAnswer(matches[0]!.name, data);
}

function userTurns(messages: { role: string; content: unknown }[]): string {
  const out: string[] = [];
  for (const m of messages) {
    if (m.role === "assistant") break;
    if (m.role !== "user") continue;
    out.push(typeof m.content === "string" ? m.content : (m.content as { type?: string; text?: string }[]).filter((b) => b.type === "text").map((b) => b.text ?? "").join("\n\n"));
  }
  return out.join("\n\n");
}

/** The images in a request's messages, from OpenAI `image_url` parts or Anthropic `image` blocks. */
function imagesIn(body: Record<string, unknown>): SeenImage[] {
  const out: SeenImage[] = [];
  for (const m of (body.messages ?? []) as { role: string; content: unknown }[]) {
    if (!Array.isArray(m.content)) continue;
    for (const part of m.content as Record<string, unknown>[]) {
      if (part.type === "image_url") {
        const url = String((part.image_url as { url?: unknown } | undefined)?.url ?? "");
        const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
        out.push({ role: m.role, format: "image_url", mediaType: data?.[1] ?? "", bytes: Buffer.from(data?.[2] ?? "", "base64") });
      } else if (part.type === "image") {
        const source = (part.source ?? {}) as { type?: string; media_type?: string; data?: string };
        out.push({ role: m.role, format: "image", mediaType: source.media_type ?? "", bytes: Buffer.from(source.type === "base64" ? (source.data ?? "") : "", "base64") });
      }
    }
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A loopback server in the OpenAI Chat Completions and Anthropic Messages wire formats. */
export async function startFakeModelServer(opts: {
  apiKey: string;
  /** Extra latency for some requests, e.g. to hold a review in flight. */
  delayFor?: (body: Record<string, unknown>) => number;
  /** A reply for this request in particular (a critic's request, say), before the script's next. */
  stepFor?: (body: Record<string, unknown>) => Step | undefined;
}): Promise<FakeModelServer> {
  const state: FakeModelServer = { url: "", requests: [], answered: [], script: [], close: async () => {} };
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    const body = await readBody(req);
    const seen: FakeRequest = { path, body, images: imagesIn(body) };
    state.requests.push(seen);
    res.on("finish", () => state.answered.push(seen));
    // Anthropic's SDK says which API version it speaks; it authenticates with x-api-key or a bearer token.
    const anthropic = req.headers["anthropic-version"] !== undefined;
    const key = (anthropic ? req.headers["x-api-key"] : undefined) ?? req.headers.authorization?.replace(/^Bearer /, "");
    if (key !== opts.apiKey) {
      return send(res, 401, anthropic
        ? { type: "error", error: { type: "authentication_error", message: "invalid x-api-key" } }
        : { error: { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" } });
    }
    if (req.method === "GET" && path.startsWith("/v1/models")) {
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      if (!id) return send(res, 200, { object: "list", data: [{ id: "gpt-4o-mini", object: "model", created: 0, owned_by: "fake" }] });
      return send(res, 200, anthropic
        ? { type: "model", id, display_name: id, created_at: "2024-10-22T00:00:00Z" }
        : { id, object: "model", created: 0, owned_by: "fake" });
    }

    const extra = opts.delayFor?.(body) ?? 0;
    if (extra > 0) {
      await new Promise((r) => setTimeout(r, extra));
      if (res.destroyed) return;
    }
    const step = opts.stepFor?.(body) ?? state.script.shift();
    if (step && "delayMs" in step) {
      await new Promise((r) => setTimeout(r, step.delayMs));
      if (res.destroyed) return;
    }
    if (step && "status" in step) {
      return send(res, step.status, anthropic
        ? { type: "error", error: { type: step.status === 429 ? "rate_limit_error" : "api_error", message: step.error ?? `status ${step.status}` } }
        : { error: { message: step.error ?? `status ${step.status}`, type: "server_error" } }, step.headers);
    }
    if (step && "body" in step) return send(res, 200, step.body);
    const messages = (body.messages ?? []) as { role: string; content: unknown }[];
    const prompt = JSON.stringify(body);
    let value: unknown;
    let text: string | undefined;
    try {
      if (step && "text" in step && step.text !== undefined) text = step.text;
      else value = step && "json" in step && step.json !== undefined ? step.json : answerLikeAModel(userTurns(messages));
    } catch (err) {
      return send(res, 500, { error: { message: (err as Error).message, type: "server_error" } });
    }
    const content = text ?? JSON.stringify(value);
    const reply = (answer: unknown) => {
      if (!step || !("cut" in step)) return send(res, 200, answer);
      const full = JSON.stringify(answer);
      const half = full.slice(0, Math.floor(full.length / 2));
      if (step.cut === "truncated") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(half);
      }
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(full)) });
      res.write(half, () => res.destroy());
    };
    if (path.startsWith("/v1/messages")) {
      const tool = (body.tool_choice as { name?: string } | undefined)?.name ?? "answer";
      return reply({
        id: `msg_${state.requests.length}`,
        type: "message",
        role: "assistant",
        model: body.model,
        content: text !== undefined ? [{ type: "text", text }] : [{ type: "tool_use", id: `toolu_${state.requests.length}`, name: tool, input: value }],
        stop_reason: text !== undefined ? "end_turn" : "tool_use",
        stop_sequence: null,
        usage: { input_tokens: tokens(prompt), output_tokens: tokens(content), cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      });
    }
    return reply({
      id: `chatcmpl-${state.requests.length}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop", logprobs: null }],
      usage: { prompt_tokens: tokens(prompt), completion_tokens: tokens(content), total_tokens: tokens(prompt) + tokens(content), prompt_tokens_details: { cached_tokens: 0 } },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return state;
}
