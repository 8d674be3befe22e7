import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.js";
import { startFakeModelServer, type FakeModelServer } from "./helpers/fakeModelServer.js";
import { lineOf, makeNet, netnsSupport, processesOf, swarmOnHost, type Host, type Net } from "./helpers/netns.js";

// Hosts that die or drop off the network in the middle of their work: the swarm on one host, its workers on
// others, each a network namespace on a bridge. A killed host is every process on it, kill -9, at once.
const support = netnsSupport();
if (!support.ok) console.warn(`skipped: ${support.reason}`);

const KEY = "sk-netns-faults-abcdefghijklmnopq";
const ACK_WAIT_MS = 2000;
const REVIEW_MS = 1500;
const out = mkdtempSync(join(tmpdir(), "swarm-netns-crash-"));
let net: Net;
let model: FakeModelServer;
let env: Record<string, string>;

beforeAll(async () => {
  net = await makeNet(3);
  // Reviews take a few seconds each (the offline model answers at once), so that a reviewer can be caught in one.
  model = await startFakeModelServer({ apiKey: KEY, delayFor: (body) => (JSON.stringify(body.messages ?? "").includes("### persona") ? REVIEW_MS : 0) });
  env = { OPENAI_BASE_URL: `http://${await net.forward(Number(new URL(model.url).port))}/v1`, OPENAI_API_KEY: KEY, SWARM_ACK_WAIT_MS: String(ACK_WAIT_MS) };
}, 30_000);
afterEach(async () => {
  for (const host of net?.hosts ?? []) {
    await net.mend(host);
    await net.killHost(host);
  }
});
afterAll(async () => {
  await net?.cleanup();
  await model?.close();
  rmSync(out, { recursive: true, force: true });
});

const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8"));

interface ReviewFile {
  reviewer: number;
  node: string;
}

/** What the area chair counted, and what it left: the meta-review's list, the reviews folder, its own lines. */
function reviewsOf(runDir: string, said: string) {
  const ideaId = (readJson(join(runDir, "ideas.json")).ideas as { ideaId: string }[])[0]!.ideaId;
  const meta = readJson(join(runDir, ideaId, "meta_review.json")) as { decision: string; reviews: number; reviewers: ReviewFile[] };
  const files = readdirSync(join(runDir, ideaId, "reviews")).sort();
  const reviews = files.map((f) => readJson(join(runDir, ideaId, "reviews", f)) as ReviewFile);
  const arrived = [...said.matchAll(/areaChair@\S+\s+(?:\$[\d.]+ )?\S+: review (\d+) arrived from node (\S+)/g)].map((m) => Number(m[1]));
  const over = Number(/decision: (?:Accept|Reject) \(mean Overall [\d.]+ over (\d+) reviews\)/.exec(said)?.[1]);
  return { ideaId, meta, files, reviews, arrived, over };
}

/** Starts a node on a host and resolves once it has joined. */
async function nodeOn(host: Host, args: string[], extra: Record<string, string>) {
  const child = net.runScript(host, "node", args, { env: { ...env, ...extra } });
  let said = "";
  child.all!.on("data", (chunk: Buffer) => void (said += chunk.toString()));
  await lineOf(child, () => said, /^node \S+ joined /, 60_000);
  // Wrapped: a child process is a thenable, which an async function would wait for.
  return { child };
}

/** The swarm on one host and reviewer nodes on two others (rev-a, one slot; rev-b, two); resolves once rev-a is reading a paper. */
async function reviewersOnTwoHosts() {
  const [swarmHost, hostA, hostB] = net.hosts as [Host, Host, Host];
  const swarm = await swarmOnHost(net, swarmHost, mkdtempSync(join(out, "run-")), ["--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "3", "--role-llm", "reviewer=openai/gpt-4o-mini", "--literature", "local"], env);
  const creds = join(swarm.runDir, "creds", "reviewer.json");
  await Promise.all([
    nodeOn(hostA, ["--creds", creds, "--roles", "reviewer=1", "--name", "rev-a"], { NATS_URL: swarm.url }),
    nodeOn(hostB, ["--creds", creds, "--roles", "reviewer=2", "--name", "rev-b"], { NATS_URL: swarm.url }),
  ]);
  const reading = await lineOf(swarm.child, swarm.said, /reviewer@rev-a .*reviewer (\d+) is reading the paper/, 90_000);
  return { swarm, hostA, reading };
}

/** Three reviews, one per reviewer, each counted once: in the meta-review, in the folder, in the chair's lines. */
function eachReviewOnce(runDir: string, said: string) {
  const found = reviewsOf(runDir, said);
  expect(found.meta.reviews).toBe(3);
  expect(found.over).toBe(3);
  expect(found.meta.reviewers.map((r) => r.reviewer).sort()).toEqual([0, 1, 2]);
  expect(found.files).toEqual(["review_0.json", "review_1.json", "review_2.json"]);
  expect(found.reviews.map((r) => r.reviewer).sort()).toEqual([0, 1, 2]);
  expect(found.arrived.sort(), said).toEqual([0, 1, 2]);
  return found;
}

describe.skipIf(!support.ok)("a reviewer host killed mid-review", () => {
  it("meets the quorum with no review lost and none counted twice", async () => {
    const { swarm, hostA, reading } = await reviewersOnTwoHosts();
    const killed = await net.killHost(hostA);
    expect(killed.length).toBeGreaterThan(0);
    expect(await processesOf(hostA.ns)).toEqual([]);
    const heldByA = Number(/reviewer (\d+) is reading/.exec(reading)![1]);

    const res = await swarm.child;
    expect(res.exitCode, res.all).toBe(0);
    expect(readJson(join(swarm.runDir, "status.json")).status).toBe("completed");
    const { reviews } = eachReviewOnce(swarm.runDir, res.all ?? "");
    // Host A died before it finished its review: host B wrote it, from the redelivered job.
    expect(reviews.map((r) => r.node)).toEqual(["rev-b", "rev-b", "rev-b"]);
    expect(reviews.find((r) => r.reviewer === heldByA)!.node).toBe("rev-b");
  }, 90_000);
});

/** nanofit whose experiments (not its baseline) take two seconds longer: a window to kill the coder in. */
function slowTemplate(): string {
  const dir = join(out, "slowfit");
  if (existsSync(dir)) return dir;
  cpSync(join(ROOT, "templates", "nanofit"), dir, { recursive: true });
  const file = join(dir, "experiment.py");
  const code = readFileSync(file, "utf8");
  const anchor = "    os.makedirs(args.out_dir, exist_ok=True)\n";
  if (!code.includes(anchor)) throw new Error(`nanofit's experiment.py no longer has the line ${JSON.stringify(anchor)}`);
  writeFileSync(file, code.replace(anchor, `${anchor}    if os.path.basename(os.path.normpath(args.out_dir)) != "run_0":\n        time.sleep(2)\n`));
  return dir;
}

describe.skipIf(!support.ok)("a coder host killed mid-experiment", () => {
  it("leaves the idea to the other coder host, which finishes it", async () => {
    const [swarmHost, hostA, hostB] = net.hosts as [Host, Host, Host];
    const swarm = await swarmOnHost(net, swarmHost, mkdtempSync(join(out, "run-")), ["--template", slowTemplate(), "--roles", "ideator,critic,writer,areaChair,reviewer", "--reviewers", "2", "--literature", "local"], env);
    const creds = join(swarm.runDir, "creds", "coder.json");
    await Promise.all([
      nodeOn(hostA, ["--creds", creds, "--roles", "coder", "--name", "coder-a"], { NATS_URL: swarm.url }),
      nodeOn(hostB, ["--creds", creds, "--roles", "coder", "--name", "coder-b"], { NATS_URL: swarm.url }),
    ]);
    const running = await lineOf(swarm.child, swarm.said, /coder@(coder-[ab]) .*: running run_1$/, 90_000);
    const victim = /coder@(coder-[ab])/.exec(running)![1]!;
    const [dead, survivor] = victim === "coder-a" ? [hostA, "coder-b"] : [hostB, "coder-a"];
    expect((await net.killHost(dead)).length).toBeGreaterThan(0);
    expect(await processesOf(dead.ns)).toEqual([]);

    const res = await swarm.child;
    const said = res.all ?? "";
    expect(res.exitCode, said).toBe(0);
    expect(readJson(join(swarm.runDir, "status.json")).status).toBe("completed");
    const { ideaId, meta } = reviewsOf(swarm.runDir, said);
    expect(["Accept", "Reject"]).toContain(meta.decision);
    for (const run of ["run_1", "run_2"]) expect(existsSync(join(swarm.runDir, ideaId, run, "final_info.json")), run).toBe(true);
    // The victim never finished a run of the idea; the survivor did them all, run_1 again from the start.
    expect(said).not.toMatch(new RegExp(`coder@${victim} .*: run_\\d+ succeeded`));
    expect(said).toMatch(new RegExp(`coder@${survivor} .*: running run_1$`, "m"));
    expect(said).toMatch(new RegExp(`coder@${survivor} .*: run_2 succeeded`));
  }, 90_000);
});

describe.skipIf(!support.ok)("a reviewer host cut off the network for longer than the ack wait", () => {
  it("comes back, and no review is counted twice", async () => {
    const { swarm, hostA, reading } = await reviewersOnTwoHosts();
    const heldByA = Number(/reviewer (\d+) is reading/.exec(reading)![1]);
    await net.cut(hostA);
    const cutAt = Date.now();
    // Host B's own two reviews arrive meanwhile; host A's job outlives its ack wait with no word from A.
    const others = [0, 1, 2].filter((r) => r !== heldByA);
    for (const r of others) await lineOf(swarm.child, swarm.said, new RegExp(`review ${r} arrived from node rev-b`), 60_000);
    await new Promise((r) => setTimeout(r, Math.max(0, 2 * ACK_WAIT_MS - (Date.now() - cutAt))));
    expect(swarm.said()).not.toMatch(new RegExp(`review ${heldByA} arrived`));
    await net.mend(hostA);
    const cutMs = Date.now() - cutAt;
    expect(cutMs).toBeGreaterThan(ACK_WAIT_MS);

    const res = await swarm.child;
    expect(res.exitCode, res.all).toBe(0);
    expect(readJson(join(swarm.runDir, "status.json")).status).toBe("completed");
    const { reviews } = eachReviewOnce(swarm.runDir, res.all ?? "");
    // The review A held was done once, by whichever host ended up with it.
    expect(reviews.filter((r) => r.reviewer === heldByA)).toHaveLength(1);
    console.log(`cut for ${cutMs} ms; review ${heldByA} written by ${reviews.find((r) => r.reviewer === heldByA)!.node}`);
  }, 90_000);
});
