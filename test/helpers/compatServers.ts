import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Loopback servers that speak Chat Completions the way four real OpenAI-compatible servers do, each with its
 * own routes, authentication, error shape and support for `response_format`, as their documentation and
 * source describe them:
 *
 * - `ollama`: /v1 ignores the key; GET /v1/models and /v1/models/{id}; json_schema and json_object enforced
 *   (since 0.5); errors as {"error":{"message","type","param","code"}}. A cloud model accepts json_schema
 *   and ignores it (pydantic-ai documents this for Ollama Cloud).
 * - `vllm` (started with --api-key): every /v1 route needs the key (401 {"error":"Unauthorized"}); GET
 *   /v1/models but no /v1/models/{id} (FastAPI's 404 {"detail":"Not Found"}); json_schema and json_object
 *   enforced by guided decoding; errors as {"error":{"message","type","param","code":int}}.
 * - `llama.cpp` (llama-server with --api-key): GET /v1/models is public, the rest needs the key; no
 *   /v1/models/{id}; one model, answering to any model name; errors as {"error":{"code","message","type"}}.
 *   `llama.cpp-old` is a build from before json_schema support: it refuses it with 400 "response_format type
 *   must be one of \"text\" or \"json_object\"" and enforces json_object.
 * - `openrouter`: under /api/v1; GET /api/v1/models is public and accepts any key; no /models/{id}; errors as
 *   {"error":{"code","message","metadata"}}, an upstream provider's refusal quoted in metadata.raw; which
 *   models take `response_format` depends on their provider.
 * - `bare`: a thin proxy that forwards only POST /v1/chat/completions: no GET /models at all.
 */
export type CompatKind = "ollama" | "vllm" | "llama.cpp" | "llama.cpp-old" | "openrouter" | "bare";

/** What a served model does with each kind of `response_format`. */
export type FormatSupport = "enforce" | "ignore" | "reject";

export interface CompatModel {
  id: string;
  jsonSchema?: FormatSupport;
  jsonObject?: FormatSupport;
}

/** One scripted reply to a chat completion; requests beyond the script get the model's answer. */
export type CompatStep =
  | { cut: "truncated" | "dropped" }
  | { body: unknown }
  | { status: number; message?: string }
  | { value: unknown }
  /** The model's text exactly, e.g. JSON it stopped writing halfway. */
  | { content: string };

export interface CompatRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface CompatServer {
  kind: CompatKind;
  /** The base URL a client is given (…/v1, or …/api/v1 for OpenRouter). */
  baseURL: string;
  requests: CompatRequest[];
  script: CompatStep[];
  /** The chat completion requests only, in order. */
  completions(): CompatRequest[];
  close(): Promise<void>;
}

interface Profile {
  prefix: string;
  /** Which routes check the key, and the answer to a wrong one; absent where the server takes any key. */
  auth?: { guarded(method: string, route: string): boolean; refusal: unknown };
  /** GET /models, where the server has it. */
  list?: (models: CompatModel[]) => unknown;
  retrieveModel: boolean;
  /** The answer to a model it does not serve; absent where it serves its one model under any name. */
  unknownModel?: (model: string) => { status: number; body: unknown };
  defaults: { jsonSchema: FormatSupport; jsonObject: FormatSupport };
  /** How it refuses a response_format, where some model of it does. */
  refusal?: (type: "json_schema" | "json_object") => { status: number; body: unknown };
  error(status: number, message: string, type: string): unknown;
  routeNotFound: { body: unknown; contentType: string };
}

const created = 1_735_689_600;

const openAiError = (status: number, message: string, type: string) => ({ error: { message, type, param: null, code: status } });

const PROFILES: Record<CompatKind, Profile> = {
  ollama: {
    prefix: "/v1",
    list: (models) => ({ object: "list", data: models.map((m) => ({ id: m.id, object: "model", created, owned_by: "library" })) }),
    retrieveModel: true,
    unknownModel: (model) => ({ status: 404, body: { error: { message: `model "${model}" not found, try pulling it first`, type: "api_error", param: null, code: null } } }),
    defaults: { jsonSchema: "enforce", jsonObject: "enforce" },
    error: (_s, message, type) => ({ error: { message, type, param: null, code: null } }),
    routeNotFound: { body: "404 page not found", contentType: "text/plain" },
  },
  vllm: {
    prefix: "/v1",
    auth: { guarded: () => true, refusal: { error: "Unauthorized" } },
    list: (models) => ({
      object: "list",
      data: models.map((m) => ({ id: m.id, object: "model", created, owned_by: "vllm", root: m.id, parent: null, max_model_len: 32768, permission: [] })),
    }),
    retrieveModel: false,
    unknownModel: (model) => ({ status: 404, body: { error: { message: `The model \`${model}\` does not exist.`, type: "NotFoundError", param: "model", code: 404 } } }),
    defaults: { jsonSchema: "enforce", jsonObject: "enforce" },
    error: openAiError,
    routeNotFound: { body: { detail: "Not Found" }, contentType: "application/json" },
  },
  "llama.cpp": llamaCpp("enforce"),
  "llama.cpp-old": llamaCpp("reject"),
  openrouter: {
    prefix: "/api/v1",
    auth: { guarded: (method, route) => !(method === "GET" && route === "/models"), refusal: { error: { message: "User not found.", code: 401 } } },
    list: (models) => ({
      data: models.map((m) => ({
        id: m.id,
        canonical_slug: m.id,
        name: m.id,
        created,
        context_length: 65536,
        pricing: { prompt: "0.0000003", completion: "0.0000012" },
        supported_parameters: ["max_tokens", "temperature", ...(m.jsonObject === "reject" ? [] : ["response_format"]), ...(m.jsonSchema === "reject" ? [] : ["structured_outputs"])],
      })),
    }),
    retrieveModel: false,
    unknownModel: (model) => ({ status: 400, body: { error: { message: `${model} is not a valid model ID`, code: 400 } } }),
    defaults: { jsonSchema: "enforce", jsonObject: "enforce" },
    // OpenRouter passes the upstream provider's refusal on, quoted.
    refusal: (type) => ({
      status: 400,
      body: {
        error: {
          message: "Provider returned error",
          code: 400,
          metadata: {
            raw: JSON.stringify({
              error: {
                message: type === "json_schema" ? "This response_format type is unavailable now" : "response_format is not supported by this model",
                type: "invalid_request_error",
                param: null,
                code: "invalid_request_error",
              },
            }),
            provider_name: "Upstream",
          },
        },
      },
    }),
    error: (status, message) => ({ error: { code: status, message } }),
    routeNotFound: { body: { error: { message: "Not Found", code: 404 } }, contentType: "application/json" },
  },
  bare: {
    prefix: "/v1",
    auth: { guarded: () => true, refusal: { error: { message: "Incorrect API key provided", type: "invalid_request_error", param: null, code: "invalid_api_key" } } },
    retrieveModel: false,
    unknownModel: (model) => ({
      status: 404,
      body: { error: { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: "invalid_request_error", param: null, code: "model_not_found" } },
    }),
    defaults: { jsonSchema: "enforce", jsonObject: "enforce" },
    error: (_s, message, type) => ({ error: { message, type, param: null, code: null } }),
    routeNotFound: { body: { error: { message: "Not found", type: "invalid_request_error", param: null, code: null } }, contentType: "application/json" },
  },
};

function llamaCpp(jsonSchema: FormatSupport): Profile {
  const error = (status: number, message: string, type: string) => ({ error: { code: status, message, type } });
  return {
    prefix: "/v1",
    auth: { guarded: (method, route) => !(method === "GET" && route === "/models"), refusal: error(401, "Invalid API Key", "authentication_error") },
    list: (models) => ({
      models: models.map((m) => ({ name: m.id, model: m.id, type: "model" })),
      object: "list",
      data: models.map((m) => ({ id: m.id, object: "model", created, owned_by: "llamacpp", meta: { n_ctx_train: 131072 } })),
    }),
    retrieveModel: false,
    defaults: { jsonSchema, jsonObject: "enforce" },
    refusal: (type) => ({ status: 400, body: error(400, `response_format type must be one of "text" or "json_object", but got: ${type}`, "invalid_request_error") }),
    error,
    routeNotFound: { body: error(404, "File Not Found", "not_found_error"), contentType: "application/json; charset=utf-8" },
  };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, body: unknown, contentType = "application/json"): void {
  res.writeHead(status, { "content-type": contentType });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

/** What the fake model writes: bare JSON when the server constrains it, else the JSON inside chatty prose. */
function render(value: unknown, constrained: boolean): string {
  return constrained ? JSON.stringify(value) : `Sure! Here is the answer:\n\`\`\`json\n${JSON.stringify(value, null, 2)}\n\`\`\`\nLet me know if you need anything else.`;
}

/**
 * Starts one kind of server on loopback. `apiKey` is the key the server was started with (Ollama ignores
 * keys); `answer` is what its model means to say to every request, written as the request's
 * `response_format` and the model's support for it allow.
 */
export async function startCompatServer(opts: { kind: CompatKind; models: CompatModel[]; apiKey?: string; answer: unknown }): Promise<CompatServer> {
  const profile = PROFILES[opts.kind];
  const state: CompatServer = {
    kind: opts.kind,
    baseURL: "",
    requests: [],
    script: [],
    completions: () => state.requests.filter((r) => r.method === "POST" && r.path === `${profile.prefix}/chat/completions`),
    close: async () => {},
  };
  let served = 0;
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    const method = req.method ?? "GET";
    const body = await readBody(req);
    state.requests.push({ method, path, authorization: req.headers.authorization, body });
    const notFound = () => send(res, 404, profile.routeNotFound.body, profile.routeNotFound.contentType);
    if (!path.startsWith(`${profile.prefix}/`)) return notFound();
    const route = path.slice(profile.prefix.length);
    if (profile.auth && opts.apiKey !== undefined && profile.auth.guarded(method, route) && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return send(res, 401, profile.auth.refusal);
    }
    const refuseModel = (id: string) => {
      const refusal = profile.unknownModel!(id);
      return send(res, refusal.status, refusal.body);
    };
    if (method === "GET" && route === "/models" && profile.list) return send(res, 200, profile.list(opts.models));
    if (method === "GET" && route.startsWith("/models/") && profile.retrieveModel) {
      const id = decodeURIComponent(route.slice("/models/".length));
      if (!opts.models.some((m) => m.id === id)) return refuseModel(id);
      return send(res, 200, { id, object: "model", created, owned_by: "library" });
    }
    if (method !== "POST" || route !== "/chat/completions") return notFound();

    const requested = String(body.model ?? "");
    // Ollama answers to `name` for `name:latest`.
    const model = profile.unknownModel ? opts.models.find((m) => m.id === requested || m.id === `${requested}:latest`) : opts.models[0];
    if (!model) return refuseModel(requested);
    const format = (body.response_format ?? { type: "text" }) as { type?: string; json_schema?: { name?: unknown; schema?: unknown } };
    let constrained = false;
    if (format.type === "json_schema" || format.type === "json_object") {
      const support = (format.type === "json_schema" ? model.jsonSchema : model.jsonObject) ?? (format.type === "json_schema" ? profile.defaults.jsonSchema : profile.defaults.jsonObject);
      if (support === "reject") {
        const refusal = profile.refusal!(format.type);
        return send(res, refusal.status, refusal.body);
      }
      // Servers that enforce a schema refuse one that is not there to enforce.
      if (format.type === "json_schema" && (typeof format.json_schema?.name !== "string" || typeof format.json_schema?.schema !== "object")) {
        return send(res, 400, profile.error(400, "response_format.json_schema needs a name and a schema", "invalid_request_error"));
      }
      constrained = support === "enforce";
    }

    const step = state.script.shift();
    if (step && "status" in step) return send(res, step.status, profile.error(step.status, step.message ?? `status ${step.status}`, "server_error"));
    if (step && "body" in step) return send(res, 200, step.body);
    const maxTokens = typeof body.max_tokens === "number" ? body.max_tokens : undefined;
    const content = maxTokens === 1 ? "OK" : step && "content" in step ? step.content : render(step && "value" in step ? step.value : opts.answer, constrained);
    const completion = {
      id: opts.kind === "openrouter" ? `gen-${++served}` : `chatcmpl-${++served}`,
      object: "chat.completion",
      created,
      model: model.id,
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: maxTokens === 1 ? "length" : "stop", logprobs: null }],
      usage: { prompt_tokens: 40, completion_tokens: Math.ceil(content.length / 4), total_tokens: 40 + Math.ceil(content.length / 4) },
      ...(opts.kind === "ollama" ? { system_fingerprint: "fp_ollama" } : {}),
      ...(opts.kind === "openrouter" ? { provider: "Upstream" } : {}),
    };
    const full = JSON.stringify(completion);
    if (step && "cut" in step && step.cut === "truncated") {
      // The body ends early but the response itself ends cleanly: the client reads half a JSON document.
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(full.slice(0, Math.floor(full.length / 2)));
    }
    if (step && "cut" in step && step.cut === "dropped") {
      // The length promised is the whole body's; the connection closes halfway through it.
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(full)) });
      return res.write(full.slice(0, Math.floor(full.length / 2)), () => res.destroy());
    }
    return send(res, 200, completion);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}${profile.prefix}`;
  state.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
