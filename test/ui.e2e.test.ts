import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execa, type ResultPromise } from "execa";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { natsForSuite } from "./helpers/nats.js";
import { ROOT, runScript, waitForLine } from "./helpers/cli.js";
import { publishOutcome, publishProgress, watchEvents } from "../bus/events.js";
import { StateBatch, TreeRecord, outcomeSchema, type JobKind, type StateEvent } from "../bus/schemas.js";
import { STREAMS, subjects } from "../bus/subjects.js";
import { stateElementId } from "../machines/dot.js";
import { putArtifact } from "../bus/artifacts.js";
import { rootLogger } from "../bus/logger.js";
import { litIds, startUi } from "../scripts/ui/server.js";

const CHROMIUM = "/usr/bin/chromium";
const AGENTS_AND_PIPELINE = ["ideator", "critic", "coder", "writer", "reviewer", "areaChair", "pipeline"];

let nats: Awaited<ReturnType<typeof natsForSuite>>;
let browser: Browser;
let ui: ResultPromise;
let uiUrl = "";
let runId = "";
const out = mkdtempSync(join(tmpdir(), "ui-e2e-"));

/** Every state event of the run, in the order the bus holds them: read until as many batches as the stream has. */
async function stateEvents(): Promise<StateEvent[]> {
  const subject = subjects.state(runId);
  const info = await nats.bus.jsm.streams.info(STREAMS.conversation.name, { subjects_filter: subject });
  const batches = info.state.subjects?.[subject] ?? 0;
  const stream = await watchEvents(nats.bus, subject, StateBatch);
  const events: StateEvent[] = [];
  let read = 0;
  for await (const { value } of stream) {
    events.push(...value.events);
    if (++read >= batches) break;
  }
  await stream.close();
  return events;
}

/** The run's outcomes of one kind, as the bus holds them. */
async function outcomesOf(kind: JobKind): Promise<{ at: string; ok: boolean }[]> {
  const filter = subjects.outcomes(runId, kind);
  const info = await nats.bus.jsm.streams.info(STREAMS.conversation.name, { subjects_filter: filter });
  const count = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  const stream = await watchEvents(nats.bus, filter, outcomeSchema(kind));
  const out: { at: string; ok: boolean }[] = [];
  if (count) for await (const { value } of stream) if (out.push(value) >= count) break;
  await stream.close();
  return out;
}

/** Each actor's state at `t` (ms): its event of the highest seq that happened by then. */
function statesAt(events: StateEvent[], t = Infinity): Map<string, StateEvent> {
  const at = new Map<string, StateEvent>();
  for (const e of events) {
    if (Date.parse(e.at) > t) continue;
    const prev = at.get(e.actor);
    if (!prev || e.seq > prev.seq) at.set(e.actor, e);
  }
  return at;
}

/** What each actor's card on the page shows: its state, and the ids of the chart elements lit. */
function shownStates(page: Page): Promise<Record<string, { machine: string; state: string; lit: string[] }>> {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll<HTMLElement>("article.actor")].map((card) => [
    card.dataset.actor!,
    { machine: card.dataset.machine!, state: card.dataset.state ?? "", lit: [...card.querySelectorAll("svg .lit")].map((e) => e.id).sort() },
  ])));
}

function expectShown(shown: Awaited<ReturnType<typeof shownStates>>, expected: Map<string, StateEvent>, actors: string[]): void {
  for (const actor of actors) {
    const e = expected.get(actor);
    expect(shown[actor], actor).toBeDefined();
    expect(shown[actor]!.state, actor).toBe(e ? JSON.stringify(e.state) : "");
    expect(shown[actor]!.lit, actor).toEqual(e ? litIds(e).sort() : []);
  }
}

describe.skipIf(!existsSync(CHROMIUM))(`the live view in headless Chromium (skipped without ${CHROMIUM}: scripts/setup.sh installs it)`, () => {
  beforeAll(async () => {
    nats = await natsForSuite();
    browser = await chromium.launch({ executablePath: CHROMIUM });
    ui = execa(process.execPath, ["--import", "tsx", "scripts/ui.ts", "--nats", nats.server.url, "--port", "0"], { cwd: ROOT, all: true, reject: false, env: { LOG_LEVEL: "warn" } });
    uiUrl = /(http:\/\/\S+)/.exec(await waitForLine(ui, /^Live view of /, 30_000))![1]!;
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    ui?.kill("SIGTERM");
    await ui;
    await nats?.close();
    rmSync(out, { recursive: true, force: true });
  });

  it("follows a real offline swarm live: every kind of actor, its state lit as the bus said, a review arriving without a reload", async () => {
    const swarm = runScript("swarm", ["--out", out, "--reviewers", "2", "--budget", "5", "--ui"], { env: { NATS_URL: nats.server.url } });
    // Listened for from the start: the run may end before the page is looked at.
    const staysUp = waitForLine(swarm, /stays up to look back through the run; Ctrl-C to leave/, 120_000);
    // The swarm serves the same page itself with --ui, for its own run (one wait: lines can come in one chunk).
    const [, own, id] = /(http:\/\/127\.0\.0\.1:\d+\/\?run=(\S+))/.exec(await waitForLine(swarm, /^Live view: /))!;
    runId = id!;
    expect((await fetch(own!)).status).toBe(200);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${uiUrl}?run=${runId}`);
    await page.locator('article.actor[data-machine="pipeline"]').waitFor({ timeout: 30_000 });
    // Nothing reviewed yet when the page opened; the marker shows that it is the same document when reviews arrive.
    await page.evaluate(() => ((window as unknown as { marker: string }).marker = "same page"));
    expect(await page.locator("li.review").count()).toBe(0);
    // Text from the bus is shown as text, never parsed as HTML.
    const hostile = `<img src=x onerror="window.pwned=1">`;
    await publishProgress(nats.bus, { runId, by: { agent: "intruder", node: "elsewhere" }, text: hostile });
    // Looked for at once: the panel keeps the latest lines, and a busy run soon has newer ones.
    await expect.poll(() => page.locator("#progress").textContent(), { timeout: 10_000 }).toContain(hostile);
    await page.locator("li.review").first().waitFor({ timeout: 60_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe("same page");
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();

    // The run is over, and the swarm's own page stays up to look back through it until Ctrl-C.
    await staysUp;
    expect((await fetch(own!)).status).toBe(200);
    swarm.kill("SIGINT");
    const finished = await swarm;
    expect(finished.exitCode, finished.all).toBe(0);
    const events = await stateEvents();
    const last = statesAt(events);
    await expect.poll(async () => Object.keys(await shownStates(page)).length, { timeout: 15_000 }).toBe(last.size);
    // Charts load asynchronously: wait until every card that has a chart shows the last state the bus reported.
    await expect.poll(async () => {
      const shown = await shownStates(page);
      return [...last].every(([actor, e]) => shown[actor]?.state === JSON.stringify(e.state) && shown[actor]!.lit.length === litIds(e).length);
    }, { timeout: 15_000 }).toBe(true);
    const shown = await shownStates(page);
    expectShown(shown, last, [...last.keys()]);
    for (const kind of AGENTS_AND_PIPELINE) {
      expect(await page.locator(`article.actor[data-machine="${kind}"] .chart svg`).count(), kind).toBeGreaterThan(0);
      expect(await page.locator(`.kind[data-kind="${kind}"]:not(.absent)`).count(), kind).toBe(1);
    }
    // The pipeline ended decided: its chart lights that very state.
    const pipeline = last.get("pipeline")!;
    expect(shown.pipeline!.lit).toEqual([stateElementId("pipeline", [String(pipeline.state)])]);
    expect(await page.locator("#ideas a.paper").count()).toBeGreaterThan(0);
    const pdf = await page.locator("#ideas a.paper").first().getAttribute("href");
    const res = await page.request.get(new URL(pdf!, uiUrl).href);
    expect(res.headers()["content-type"]).toBe("application/pdf");
    expect((await res.body()).subarray(0, 5).toString()).toBe("%PDF-");
    expect(await page.locator("#sequence .arrow[data-from='reviewer'][data-to='areaChair']").count()).toBe(2);
    expect(await page.locator("#spend").textContent()).toMatch(/spent \$0\.0000 of \$5\.0000/);

    const screenshot = join(out, "live.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    mkdirSync(join(ROOT, "results", "ui-test"), { recursive: true });
    copyFileSync(screenshot, join(ROOT, "results", "ui-test", "live.png"));
    // A failure arrives with its typed reason: whose fault, whether a retry may help, what to do.
    expect(await page.locator("#failures").textContent()).toBe("none");
    await publishOutcome(nats.bus, "review", {
      jobId: `${runId}.review.ghost.9`, runId, ideaId: "ghost", by: { agent: "reviewer", node: "far-node" }, ok: false,
      error: "the provider answered 503", failure: { kind: "provider", retryable: true, message: "the provider answered 503", hint: "try again later" },
    });
    await expect.poll(() => page.locator("#failures").textContent(), { timeout: 10_000 }).toMatch(/review ghost on far-node: provider \(retryable\): the provider answered 503hint: try again later/);
    await page.close();
  }, 80_000);

  it("replays the finished run: at the slider's middle, every actor is in the state its events recorded by then", async () => {
    const events = await stateEvents();
    const times = events.map((e) => Date.parse(e.at));
    const middle = Math.round((Math.min(...times) + Math.max(...times)) / 2);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${uiUrl}?run=${runId}`);
    await expect.poll(() => page.locator("#time-label").textContent(), { timeout: 15_000 }).toContain(`${events.length} of ${events.length} transitions`);
    await page.locator("#time").evaluate((slider: HTMLInputElement, t: number) => {
      slider.value = String(t);
      slider.dispatchEvent(new Event("input", { bubbles: true }));
    }, middle);
    const expected = statesAt(events, middle);
    // The middle of the run has actors done, actors at work and actors not started yet.
    expect(expected.size).toBeGreaterThan(0);
    expect(expected.size).toBeLessThan(new Set(events.map((e) => e.actor)).size);
    await expect.poll(async () => (await page.locator("#time-label").textContent()) ?? "", { timeout: 5_000 }).toMatch(/^replay/);
    await expect.poll(async () => {
      const shown = await shownStates(page);
      return [...expected].every(([actor, e]) => shown[actor]?.lit.length === litIds(e).length);
    }, { timeout: 10_000 }).toBe(true);
    expectShown(await shownStates(page), expected, [...new Set(events.map((e) => e.actor))]);
    // The ideas show the reviews given by then, no later ones.
    const reviews = (await outcomesOf("review")).filter((o) => o.ok);
    expect(reviews.length).toBe(2);
    expect(await page.locator("li.review").count()).toBe(reviews.filter((o) => Date.parse(o.at) <= middle).length);
    await page.screenshot({ path: join(out, "replay.png"), fullPage: true });
    copyFileSync(join(out, "replay.png"), join(ROOT, "results", "ui-test", "replay.png"));
    await page.close();
  }, 40_000);

  it("draws a tree search as it grows, each node under the one it was made from", async () => {
    // nanofit a second slower a run, so that the page sees the search under way.
    const template = join(out, "slow_nanofit");
    cpSync(join(ROOT, "templates", "nanofit"), template, { recursive: true });
    const code = readFileSync(join(template, "experiment.py"), "utf8");
    writeFileSync(join(template, "experiment.py"), code.replace("    args = parser.parse_args()\n", "    args = parser.parse_args()\n    time.sleep(1)\n"));
    const swarm = runScript("swarm", [
      "--out", out, "--template", template, "--search", "tree", "--tree", "implement=2,tune=2,research=1,ablate=1", "--seeds", "1", "--reviewers", "1", "--revisions", "0",
    ], { env: { NATS_URL: nats.server.url } });
    const treeRun = /^Run (\S+) on template/.exec(await waitForLine(swarm, /^Run \S+ on template/, 60_000))![1]!;
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${uiUrl}?run=${treeRun}`);
    await page.locator("li.tree-node").first().waitFor({ timeout: 60_000 });
    const early = await page.locator("li.tree-node").count();
    const res = await swarm;
    expect(res.exitCode, res.all).toBe(0);
    const { ideaId } = JSON.parse(readFileSync(join(out, treeRun, "ideas.json"), "utf8")).ideas[0];
    const tree = TreeRecord.parse(JSON.parse(readFileSync(join(out, treeRun, ideaId, "tree.json"), "utf8")));
    const all = tree.nodes.length + tree.seedRuns.length;
    await expect.poll(() => page.locator("li.tree-node").count(), { timeout: 15_000 }).toBe(all);
    expect(early).toBeLessThan(all);
    for (const n of tree.nodes) {
      const under = n.parent === "root" ? "details.tree > ul.tree > li" : `li.tree-node[data-node="${n.parent}"]`;
      expect(await page.locator(`${under} > ul.tree > li.tree-node[data-node="${n.id}"]`).count(), n.id).toBe(1);
    }
    await page.close();
  }, 180_000);
});

describe.skipIf(!existsSync(CHROMIUM))("deciding at a gate from the live view", () => {
  it("the swarm's own view shows the idea waiting and approves it; a view without its token only shows", async () => {
    const gated = join(out, "gated");
    const swarm = runScript("swarm", ["--out", gated, "--gate", "ideas", "--reviewers", "1", "--revisions", "0", "--ui"], { detached: true });
    const b = await chromium.launch({ executablePath: CHROMIUM });
    try {
      const url = /(http:\/\/\S+#gate=\S+)/.exec(await waitForLine(swarm, /^Live view: \S+#gate=/, 60_000))![1]!;
      const waiting = /waiting at the ideas gate: npm run gate -- approve\|edit\|reject \S+ (\S+)/;
      const [, ideaId] = waiting.exec(await waitForLine(swarm, waiting, 120_000))!;
      const looker = await b.newPage();
      await looker.goto(url.replace(/#gate=.*/, ""));
      await looker.locator(`#gates li.waiting[data-gate^="${ideaId}/"]`).waitFor({ timeout: 15_000 });
      expect(await looker.locator("#gates button").count()).toBe(0);
      await expect.poll(() => looker.locator("#gates li.waiting").textContent()).toMatch(/decide with: npm run gate/);
      // Anything that reaches the port without the token is refused.
      const forged = await fetch(new URL(`/api/gates?run=${/run=([^&#]+)/.exec(url)![1]}&idea=${ideaId}&request=ideas.g0`, url), { method: "POST", body: JSON.stringify({ choice: "approve" }) });
      expect(forged.status).toBe(403);
      const page = await b.newPage();
      await page.goto(url);
      await page.locator(`#gates li.waiting[data-gate^="${ideaId}/"] button[data-choice="approve"]`).click({ timeout: 15_000 });
      await waitForLine(swarm, /stays up to look back through the run/, 180_000);
      await expect.poll(() => page.locator(`#gates li[data-gate^="${ideaId}/"]`).textContent(), { timeout: 10_000 }).toMatch(/approve by \S+ \(live view\)/);
      await page.close();
      await looker.close();
    } finally {
      process.kill(-swarm.pid!, "SIGINT");
      await swarm;
      await b.close();
    }
    const status = JSON.parse(readFileSync(join(gated, readdirSync(gated).find((d) => d.startsWith("20"))!, "status.json"), "utf8"));
    expect(status.status).toBe("completed");
  }, 300_000);
});

describe("the live view's server", () => {
  it("serves a run's artifacts under names that cannot climb, and never serves a run's HTML or SVG as a page", async () => {
    const suite = await natsForSuite();
    const server = await startUi({ bus: suite.bus, log: rootLogger() });
    try {
      const run = "20261201-120000-abcd";
      await putArtifact(suite.bus, `${run}/alpha/notes.txt`, "runs went well");
      await putArtifact(suite.bus, `${run}/alpha/evil.svg`, `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`);
      const get = (path: string) => fetch(new URL(path, server.url));
      const notes = await get(`/artifacts/${run}/alpha/notes.txt`);
      expect(notes.status).toBe(200);
      expect(notes.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(await notes.text()).toBe("runs went well");
      const svg = await get(`/artifacts/${run}/alpha/evil.svg`);
      expect(svg.headers.get("content-type")).toBe("application/octet-stream");
      expect(svg.headers.get("content-disposition")).toBe("attachment");
      for (const bad of [`/artifacts/${run}/..%2F..%2Fetc%2Fpasswd`, `/artifacts/${run}/alpha/%0Anotes.txt`, `/artifacts/${run}/alpha/%E0%A4%A`, "/artifacts/notes.txt"]) expect((await get(bad)).status, bad).toBe(400);
      expect((await get(`/artifacts/${run}/alpha/missing.pdf`)).status).toBe(404);
      expect((await get("/api/events?run=../x")).status).toBe(400);
      const page = await get("/");
      expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
      expect((await get("/machines/reviewer.svg")).headers.get("content-type")).toBe("image/svg+xml");
      for (const nobody of ["nobody", "constructor"]) expect((await get(`/machines/${nobody}.svg`)).status, nobody).toBe(404);
    } finally {
      await server.close();
      await suite.close();
    }
  }, 30_000);
});
