import { createHash } from "node:crypto";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import type { Logger as Log } from "../bus/logger.js";
import { z } from "zod";
import { natsForSuite } from "./helpers/nats.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";
import { Limiter } from "../agents/llm/retry.js";
import { openAiProvider } from "../agents/llm/openaiProvider.js";
import { anthropicProvider } from "../agents/llm/anthropicProvider.js";
import { replayLogName, replayProvider } from "../agents/llm/replayProvider.js";
import { createLlm } from "../agents/llm/client.js";
import { modelInfo } from "../agents/llm/models.js";
import { figureImages, MAX_IMAGES } from "../agents/llm/images.js";
import type { ChatMessage, ImagePart, LlmProvider } from "../agents/llm/types.js";
import { review } from "../agents/reviewer/reviewer.js";
import type { AgentContext } from "../agents/runtime/agentContext.js";
import { putArtifact } from "../bus/artifacts.js";
import { watchEvents } from "../bus/events.js";
import { STREAMS, subjects } from "../bus/subjects.js";
import { LlmExchange, RunConfig } from "../bus/schemas.js";
import "../agents/offline.js";

// A model that sees images gets a request's figures in its API's own wire format, decoded to the very bytes that
// were sent; a model that does not gets none. The key of a request counts its images, the log only names them.

const KEY = "sk-test-0123456789abcdefghij";
const retry = { attempts: 1, baseMs: 10, maxMs: 10 };
const Answer = z.object({ title: z.string(), score: z.number().int().min(1).max(10) });
const good = { title: "A figure", score: 7 };

/** A real PNG of `w`×`h` pixels of one colour. */
function png(w: number, h: number, [r, g, b]: [number, number, number]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(w, 0);
  header.writeUInt32BE(h, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc((1 + 3 * w) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rows.set([r, g, b], y * (1 + 3 * w) + 1 + 3 * x);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}
const pngA = png(4, 3, [200, 10, 10]);
const pngB = png(5, 2, [10, 10, 200]);
const image = (name: string, bytes: Buffer): ImagePart => ({ name, mediaType: "image/png", base64: bytes.toString("base64") });
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A logger whose lines the test reads. */
function recordingLog() {
  const lines: { level: number; msg: string; model?: string }[] = [];
  return { lines, log: pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) }) };
}
/** The warnings logged; `about` picks those that mention it. */
const warnings = (lines: { level: number; msg: string }[], about = "") => lines.filter((l) => l.level === 40 && l.msg.includes(about));

let nats: Awaited<ReturnType<typeof natsForSuite>>;
let server: FakeModelServer;
beforeAll(async () => {
  nats = await natsForSuite();
  server = await startFakeModelServer({ apiKey: KEY });
});
afterAll(async () => {
  await server?.close();
  await nats?.close();
});
beforeEach(() => {
  server.requests.length = 0;
  server.script = [];
});

const silent = pino({ level: "silent" });
const openai = (model: string, log: Log = silent, name: "openai" | "openai-compatible" = "openai") =>
  openAiProvider({ name, model, apiKey: KEY, baseURL: `${server.url}/v1`, info: modelInfo(name, model), timeoutMs: 5000, retry, limiter: new Limiter(4), log });
const anthropic = (model: string, log: Log = silent) =>
  anthropicProvider({ model, apiKey: KEY, baseURL: server.url, info: modelInfo("anthropic", model), timeoutMs: 5000, retry, limiter: new Limiter(4), log });

let run = 0;
const newRun = () => `vision-test-${++run}`;
const llmFor = (provider: LlmProvider, opts: { runId?: string; scope?: string; log?: Log } = {}) =>
  createLlm(provider, { bus: nats.bus, runId: opts.runId ?? newRun(), by: { agent: "tester", node: "test" }, log: opts.log ?? silent, ...(opts.scope ? { scope: opts.scope } : {}) });
const withFigures = (...images: ImagePart[]): ChatMessage[] => [{ role: "system", content: "be brief" }, { role: "user", content: "rate this figure", images }];
const askAbout = (llm: ReturnType<typeof llmFor>, ...images: ImagePart[]) => llm.ask({ task: "test.rate", messages: withFigures(...images), schema: Answer, data: {} });

/** Every exchange recorded in the run, with the subject (and so the key) it is on. */
async function recorded(runId: string): Promise<{ subject: string; value: LlmExchange }[]> {
  const { state } = await nats.bus.jsm.streams.info(STREAMS.conversation.name, { subjects_filter: subjects.llms(runId) });
  const n = Object.values(state.subjects ?? {}).reduce((a, b) => a + b, 0);
  const out: { subject: string; value: LlmExchange }[] = [];
  if (n === 0) return out;
  const stream = await watchEvents(nats.bus, subjects.llms(runId), LlmExchange);
  for await (const e of stream) {
    out.push(e);
    if (out.length === n) break;
  }
  await stream.close();
  return out;
}

describe("a model that sees images gets them in its API's wire format", () => {
  it("OpenAI Chat Completions: a text part, then one image_url part with a data URL per image", async () => {
    server.script = [{ json: good }];
    expect(await askAbout(llmFor(openai("gpt-4o-mini")), image("a.png", pngA), image("b.png", pngB))).toEqual(good);
    const [req] = server.requests;
    expect(req!.body.messages).toEqual([
      { role: "system", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "text", text: "rate this figure" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${pngA.toString("base64")}` } },
          { type: "image_url", image_url: { url: `data:image/png;base64,${pngB.toString("base64")}` } },
        ],
      },
    ]);
    expect(req!.images.map((i) => [i.format, i.role, i.mediaType])).toEqual([["image_url", "user", "image/png"], ["image_url", "user", "image/png"]]);
    expect(req!.images[0]!.bytes.equals(pngA)).toBe(true);
    expect(req!.images[1]!.bytes.equals(pngB)).toBe(true);
  });

  it("Anthropic Messages: one base64 image block per image, before the text", async () => {
    server.script = [{ json: good }];
    expect(await askAbout(llmFor(anthropic("claude-3-5-sonnet-20241022")), image("a.png", pngA), image("b.png", pngB))).toEqual(good);
    const [req] = server.requests;
    expect(req!.body.system).toEqual([{ type: "text", text: "be brief" }]);
    expect(req!.body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "image", source: { type: "base64", media_type: "image/png", data: pngA.toString("base64") } },
          { type: "image", source: { type: "base64", media_type: "image/png", data: pngB.toString("base64") } },
          { type: "text", text: "rate this figure" },
        ],
      },
    ]);
    expect(req!.images.map((i) => i.format)).toEqual(["image", "image"]);
    expect(req!.images[0]!.bytes.equals(pngA)).toBe(true);
    expect(req!.images[1]!.bytes.equals(pngB)).toBe(true);
  });
});

describe("a model without vision is sent no image", () => {
  const cases: [string, (log: Log) => LlmProvider, string][] = [
    ["openai/o3-mini", (log) => openai("o3-mini", log), "o3-mini"],
    ["anthropic/claude-3-5-haiku-20241022", (log) => anthropic("claude-3-5-haiku-20241022", log), "claude-3-5-haiku-20241022"],
    // Not in config/models.json: nothing says it takes images.
    ["openai-compatible/llava:7b", (log) => openai("llava:7b", log, "openai-compatible"), "llava:7b"],
  ];
  for (const [who, make, model] of cases) {
    it(`${who}: through the client, with one warning naming the model, and the log names no image`, async () => {
      const { lines, log } = recordingLog();
      const runId = newRun();
      const llm = llmFor(make(log), { runId, log });
      expect(llm.seesImages).toBe(false);
      server.script = [{ json: good }, { json: good }];
      await askAbout(llm, image("a.png", pngA));
      await askAbout(llm, image("b.png", pngB));
      expect(server.requests).toHaveLength(2);
      for (const req of server.requests) {
        expect(req.images).toEqual([]);
        expect(JSON.stringify(req.body)).not.toMatch(/image_url|"image"|base64/);
      }
      // An unlisted model is also warned about for its cost; of images, one warning.
      const warned = warnings(lines, "image");
      expect(warned).toHaveLength(1);
      expect(warned[0]!.msg).toContain(model);
      expect(warned[0]!.msg).toContain("not sent");
      const logged = await recorded(runId);
      expect(logged).toHaveLength(2);
      expect(JSON.stringify(logged)).not.toContain("[image ");
    });

    it(`${who}: asked directly, the provider itself drops them`, async () => {
      const { lines, log } = recordingLog();
      server.script = [{ json: good }];
      await make(log).complete({ task: "test.rate", messages: withFigures(image("a.png", pngA)), jsonSchema: z.toJSONSchema(Answer) as Record<string, unknown>, data: {}, by: { agent: "tester", node: "test" } });
      expect(server.requests[0]!.images).toEqual([]);
      expect(JSON.stringify(server.requests[0]!.body)).not.toContain(pngA.toString("base64"));
      expect(warnings(lines).map((l) => l.msg).join("\n")).toContain(model);
    });
  }
});

describe("the key counts each image; the log names it and holds no bytes", () => {
  it("a redo of the same request reuses its answer, another figure is another request, and the log holds lines, not base64", async () => {
    const runId = newRun();
    const scope = `${runId}.review.0`;
    server.script = [{ json: { title: "red", score: 3 } }, { json: { title: "blue", score: 4 } }];
    expect((await askAbout(llmFor(openai("gpt-4o-mini"), { runId, scope }), image("fig.png", pngA))).title).toBe("red");
    // The same job redone: the same request, the same figure, the answer recorded for it.
    expect((await askAbout(llmFor(openai("gpt-4o-mini"), { runId, scope }), image("fig.png", pngA))).title).toBe("red");
    expect(server.requests).toHaveLength(1);
    // The same job redone with another figure under the same name and the same text: a new request.
    expect((await askAbout(llmFor(openai("gpt-4o-mini"), { runId, scope }), image("fig.png", pngB))).title).toBe("blue");
    expect(server.requests).toHaveLength(2);

    const logged = await recorded(runId);
    expect(logged).toHaveLength(2);
    expect(new Set(logged.map((l) => l.subject)).size).toBe(2);
    const text = JSON.stringify(logged);
    expect(text).not.toContain(pngA.toString("base64"));
    expect(text).not.toContain(pngB.toString("base64"));
    expect(logged.map((l) => l.value.messages[1]!.content)).toEqual([
      `rate this figure\n[image fig.png, ${pngA.length} bytes, sha256 ${sha(pngA).slice(0, 12)}]`,
      `rate this figure\n[image fig.png, ${pngB.length} bytes, sha256 ${sha(pngB).slice(0, 12)}]`,
    ]);

    // A replay of that log answers each request with the answer recorded for its own figure, not the first in order.
    const replayRun = newRun();
    await putArtifact(nats.bus, replayLogName(replayRun), logged.map((l) => JSON.stringify(l.value)).join("\n"));
    const replay = replayProvider(nats.bus, replayRun, runId);
    const answer = await replay.complete({ task: "test.rate", messages: withFigures(image("fig.png", pngB)), jsonSchema: {}, data: {}, by: { agent: "tester", node: "test" } });
    expect(answer.json).toEqual({ title: "blue", score: 4 });
  });
});

describe("reviewers see the paper's figures when their model does", () => {
  const paper = `Abstract We study how the learning rate changes the final loss. ${"The runs are compared with the baseline in Figure 1 and Table 1. ".repeat(8)}`;
  const config = (runId: string) =>
    RunConfig.parse({
      runId, template: "templates/none", ideas: 1, reviewers: 1, quorum: 1, reviewDeadlineMs: 60_000, maxRuns: 1, maxFixes: 1, maxReflections: 1,
      maxRevisions: 0, noveltyRounds: 1, experimentTimeoutMs: 4000, llm: { provider: "openai", model: "gpt-4o-mini" }, literature: "local",
      fewShot: 0, reviewReflections: 1, startedAt: new Date().toISOString(),
    });
  const reviewWith = async (provider: LlmProvider, runId: string, figures: string[], log: Log = silent) => {
    const by = { agent: "reviewer", node: "test" };
    const ctx: AgentContext = {
      bus: nats.bus, runId, config: config(runId), by, log, signal: new AbortController().signal, workRoot: join(nats.dir, "work"),
      llm: createLlm(provider, { bus: nats.bus, runId, by, log, scope: `${runId}.review.idea_1.0` }),
      progress: async () => undefined,
    };
    return review({ jobId: `${runId}.review.idea_1.0`, runId, ideaId: "idea_1", pdf: `${runId}/idea_1/paper.txt`, reviewer: 0, round: 0, figures }, ctx);
  };
  const setUp = async (runId: string) => {
    await putArtifact(nats.bus, `${runId}/idea_1/paper.txt`, paper);
    await putArtifact(nats.bus, `${runId}/idea_1/loss.png`, pngA);
    await putArtifact(nats.bus, `${runId}/idea_1/acc.png`, pngB);
  };
  const userText = (body: Record<string, unknown>) =>
    (body.messages as { role: string; content: unknown }[])
      .filter((m) => m.role === "user")
      .map((m) => (typeof m.content === "string" ? m.content : (m.content as { type: string; text?: string }[]).filter((p) => p.type === "text").map((p) => p.text).join("\n")))
      .join("\n");

  it("a vision model's review and reflection carry the figures that exist, with the paper's turn; a missing one is skipped with a warning", async () => {
    const runId = newRun();
    await setUp(runId);
    const { lines, log } = recordingLog();
    const out = await reviewWith(openai("gpt-4o-mini"), runId, ["loss.png", "gone.png", "acc.png"], log);
    expect(out.review.Decision).toMatch(/Accept|Reject/);
    expect(server.requests.length).toBeGreaterThanOrEqual(2);
    const tasks = server.requests.map((r) => (r.body.response_format as { json_schema?: { name?: string } }).json_schema?.name);
    expect(tasks.slice(0, 2)).toEqual(["reviewer_review", "reviewer_reflect"]);
    for (const req of server.requests) {
      expect(req.images).toHaveLength(2);
      expect(req.images[0]!.bytes.equals(pngA)).toBe(true);
      expect(req.images[1]!.bytes.equals(pngB)).toBe(true);
      // The images go with the paper's own turn (the cached material), not with the instructions.
      const material = (req.body.messages as { role: string; content: unknown }[])[1]!;
      expect(Array.isArray(material.content)).toBe(true);
      expect(JSON.stringify(material.content)).toContain("image_url");
      expect(JSON.stringify(material.content)).toContain("Abstract We study");
    }
    expect(userText(server.requests[0]!.body)).toContain("The paper's figures (`figures`: loss.png, acc.png) are attached as images");
    expect(userText(server.requests[1]!.body)).toContain("and its attached figures");
    expect(warnings(lines).map((l) => l.msg).join("\n")).toContain("figure gone.png is not in the object store");
  });

  it("a model without vision reviews the text alone, and is not told of figures", async () => {
    const runId = newRun();
    await setUp(runId);
    const { lines, log } = recordingLog();
    await reviewWith(openai("o3-mini"), runId, ["loss.png", "acc.png"], log);
    expect(server.requests.length).toBeGreaterThanOrEqual(2);
    for (const req of server.requests) {
      expect(req.images).toEqual([]);
      expect(userText(req.body)).not.toContain("attached");
    }
    // The reviewer never attached them, so nothing was dropped either.
    expect(warnings(lines)).toEqual([]);
  });

  it(`at most ${MAX_IMAGES} figures are shown, in the order given`, async () => {
    const runId = newRun();
    const names = Array.from({ length: MAX_IMAGES + 2 }, (_, i) => `fig_${i}.png`);
    for (const [i, n] of names.entries()) await putArtifact(nats.bus, `${runId}/idea_1/${n}`, png(1 + i, 1, [i, i, i]));
    const { lines, log } = recordingLog();
    const shown = await figureImages(nats.bus, { runId, ideaId: "idea_1" }, ["plot.svg", ...names], { log });
    expect(shown.map((i) => i.name)).toEqual(names.slice(0, MAX_IMAGES));
    expect(Buffer.from(shown[3]!.base64, "base64").equals(png(4, 1, [3, 3, 3]))).toBe(true);
    const said = warnings(lines).map((l) => l.msg).join("\n");
    expect(said).toContain("plot.svg is not PNG or JPEG");
    expect(said).toContain(`only ${MAX_IMAGES} figures are shown`);
  });
});
