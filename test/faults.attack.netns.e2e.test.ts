import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.js";
import { lineOf, makeNet, netnsSupport, processesOf, swarmOnHost, type Net } from "./helpers/netns.js";
import type { Plan, Result } from "./helpers/intruder.js";

// An attacker on a host of its own: without credentials, with a reviewer's, with an area chair's; and generated
// code that attacks the coder's host. The swarm's server must refuse, and the runs must not notice.
const support = netnsSupport();
if (!support.ok) console.warn(`skipped: ${support.reason}`);

const out = mkdtempSync(join(tmpdir(), "swarm-netns-attack-"));
let net: Net;
beforeAll(async () => {
  net = await makeNet(3);
}, 30_000);
afterEach(async () => {
  for (const host of net?.hosts ?? []) await net.killHost(host);
});
afterAll(async () => {
  await net?.cleanup();
  rmSync(out, { recursive: true, force: true });
});

const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const credsOf = (runDir: string, role: string) => readJson(join(runDir, "creds", `${role}.json`)) as { user: string; password: string };

/** Runs the intruder (test/helpers/intruder.ts) on a host with this plan; one result per attempt. */
async function intrude(host: Net["hosts"][number], plan: Plan): Promise<Result[]> {
  const file = join(out, `plan-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(plan));
  const res = await net.exec(host, process.execPath, ["--import", "tsx", "test/helpers/intruder.ts", file], { timeoutMs: 60_000 });
  const lines = (res.stdout ?? "").split("\n").filter((l) => l.startsWith("{"));
  if (!lines.length) throw new Error(`the intruder said nothing (exit ${res.exitCode}):\n${res.all}`);
  return lines.map((l) => JSON.parse(l) as Result);
}

describe.skipIf(!support.ok)("attacks from a host of their own", () => {
  it("refuses a stranger and a reviewer's forgeries, and 1,000 malformed jobs leave the run unaffected", async () => {
    const [swarmHost, reviewerHost, attacker] = net.hosts as [Net["hosts"][number], Net["hosts"][number], Net["hosts"][number]];
    const swarm = await swarmOnHost(net, swarmHost, mkdtempSync(join(out, "run-")), ["--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "2"]);
    const { runId, runDir, url } = swarm;
    const node = net.runScript(reviewerHost, "node", ["--creds", join(runDir, "creds", "reviewer.json"), "--roles", "reviewer=2", "--name", "honest-reviewer"], {
      env: { NATS_URL: url, LOG_LEVEL: "error" },
    });
    // The run's configuration is in KV from here on, and its experiments and reviews are still to come.
    await lineOf(swarm.child, swarm.said, /^Computing the baseline run_0/);

    // No credentials: the server does not let the connection in.
    const [stranger] = await intrude(attacker, { url, attempts: [] });
    expect(stranger).toMatchObject({ attempt: "connect", ok: false });
    expect(stranger!.error).toMatch(/Authorization/i);

    // A reviewer's credentials: connected, but every forgery is refused by the server, not stored.
    const ideaId = "forged_idea";
    const idea = { Name: ideaId, Title: "Forged", Experiment: "rm -rf /", Interestingness: 9, Feasibility: 9, Novelty: 9 };
    const experimentJob = { jobId: `${runId}.experiment.${ideaId}`, runId, ideaId, idea };
    const chairJobId = `${runId}.chair.learning_rate_sweep`;
    const decision = {
      jobId: chairJobId, runId, ideaId: "learning_rate_sweep", by: { agent: "areaChair", node: "forger" }, instance: "forged", at: new Date().toISOString(), ok: true,
      result: { decision: "Accept", metaReview: "FORGED DECISION", scores: { Overall: 10 }, reviews: 9, round: 0, reviewers: [] },
    };
    const originalConfig = readJson(join(runDir, "config.json"));
    const forgedConfig = { ...originalConfig, reviewers: 1, quorum: 1, ideas: 7 };
    const reviewer = credsOf(runDir, "reviewer");
    const forged = await intrude(attacker, {
      url,
      credential: reviewer,
      attempts: [
        { kind: "publish", subject: `sci.${runId}.jobs.experiment`, data: JSON.stringify(experimentJob), msgId: experimentJob.jobId },
        { kind: "publish", subject: `sci.${runId}.conv.chair.areaChair.${chairJobId}`, data: JSON.stringify(decision) },
        { kind: "kvPut", bucket: "sci-runs", key: `${runId}.config`, value: JSON.stringify(forgedConfig) },
        // What a reviewer may read: the configuration as it is now.
        { kind: "kvGet", bucket: "sci-runs", key: `${runId}.config` },
      ],
    });
    expect(forged[0]).toMatchObject({ attempt: "connect", ok: true });
    for (const r of forged.slice(1, 4)) {
      expect(r.ok, JSON.stringify(r)).toBe(false);
      expect(r.error, JSON.stringify(r)).toMatch(/permission/i);
    }
    expect(forged[4]).toMatchObject({ attempt: "kvGet", ok: true });
    expect(JSON.parse(forged[4]!.detail as string)).toEqual(originalConfig);

    // What the streams hold, read with the swarm's own identity: no forged job, no forged decision.
    const ids = readJson(join(runDir, "nats", "identities.json")) as Record<string, { user: string; password: string }>;
    const audit = await intrude(attacker, {
      url,
      credential: ids.swarm!,
      attempts: [
        { kind: "lastMsg", stream: "SCI_JOBS", subject: `sci.${runId}.jobs.experiment` },
        { kind: "lastMsg", stream: "SCI_CONV", subject: `sci.${runId}.conv.chair.*.${chairJobId}` },
      ],
    });
    expect(audit[1]).toMatchObject({ attempt: "lastMsg", ok: true });
    expect(String(audit[1]!.detail)).not.toContain(ideaId);
    expect(audit[2]).toMatchObject({ attempt: "lastMsg", ok: true });
    expect(String(audit[2]!.detail)).not.toContain("FORGED");

    // The area chair may queue review jobs: 1,000 malformed ones (half not even JSON), stored, before the run's own.
    const chair = credsOf(runDir, "areaChair");
    const flood = await intrude(attacker, {
      url,
      credential: chair,
      attempts: [
        { kind: "flood", subject: `sci.${runId}.jobs.review`, data: JSON.stringify({ jobId: `${runId}.review.x`, runId, reviewer: "all of them" }), count: 500 },
        { kind: "flood", subject: `sci.${runId}.jobs.review`, data: "{not json", count: 500 },
      ],
    });
    expect(flood.slice(1).map((r) => r.detail)).toEqual([500, 500]);

    const res = await swarm.child;
    node.kill("SIGINT");
    await node;
    expect(res.exitCode, res.all).toBe(0);
    // The server told the swarm whom it refused.
    expect(res.all).toMatch(/nats-server refused a client/);
    const refusals = (res.all ?? "").split("\n").filter((l) => l.includes("nats-server refused a client") && l.includes('User \\"reviewer\\"'));
    for (const subject of [`sci.${runId}.jobs.experiment`, `sci.${runId}.conv.chair.areaChair.${chairJobId}`, `$KV.sci-runs.${runId}.config`]) {
      expect(refusals.some((l) => l.includes(`Subject \\"${subject}\\"`)), subject).toBe(true);
    }

    // The run went as configured, its reviews arrived, and nothing forged shows in what it left.
    expect(readJson(join(runDir, "status.json")).status).toBe("completed");
    const ideas = readJson(join(runDir, "ideas.json")).ideas as { ideaId: string }[];
    expect(ideas.map((i) => i.ideaId)).toEqual(["learning_rate_sweep"]);
    const meta = readJson(join(runDir, "learning_rate_sweep", "meta_review.json"));
    expect(meta.reviews).toBe(2);
    expect(meta.metaReview).not.toContain("FORGED");
    expect(meta.reviewers.map((r: { node: string }) => r.node)).toEqual(["honest-reviewer", "honest-reviewer"]);
    expect(readdirSync(join(runDir, "learning_rate_sweep", "reviews")).sort()).toEqual(["review_0.json", "review_1.json"]);
    expect(existsSync(join(runDir, ideaId))).toBe(false);
    expect(readFileSync(join(runDir, "llm.jsonl"), "utf8")).not.toContain(ideaId);
    expect(readdirSync(join(runDir, "work"), { recursive: true }).map(String).filter((p) => p.includes(ideaId))).toEqual([]);
  }, 120_000);
});

/** nanofit whose experiment.py attacks the host, and reports what it got to stderr before it fails. */
function hostileTemplate(tag: string): string {
  const dir = join(out, `hostile-${tag}`);
  cpSync(join(ROOT, "templates", "nanofit"), dir, { recursive: true });
  const escapes = [join(ROOT, `escape-${tag}`), join(tmpdir(), `escape-${tag}`), join(dir, `escape-${tag}`), `/escape-${tag}`];
  writeFileSync(
    join(dir, "experiment.py"),
    `import json, os, sys, time
report = {}
# A daemon that outlives the run, if it can: double fork, new session, sleep with the tag in its command line.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "daemon-${tag}"])
    os._exit(0)
time.sleep(0.2)
for path in ["/etc/shadow", ${JSON.stringify(join(ROOT, "package.json"))}, ${JSON.stringify(join(ROOT, "bus", "auth.ts"))}]:
    try:
        report["read " + path] = open(path).read()[:20]
    except OSError as e:
        report["read " + path] = "denied: errno %d" % e.errno
for path in ${JSON.stringify(escapes)}:
    try:
        open(path, "w").write("escaped")
        report["wrote " + path] = "WROTE"
    except OSError as e:
        report["wrote " + path] = "denied: errno %d" % e.errno
children = 0
limit = None
try:
    while children < 5000:
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        children += 1
except OSError as e:
    report["fork"] = "stopped after %d: errno %d" % (children, e.errno)
    limit = e
else:
    report["fork"] = "FORKED %d" % children
sys.stderr.write("HOSTILE " + json.dumps(report) + "\\n")
sys.stderr.flush()
# It fails as a fork bomb does, with the fork's error.
if limit:
    raise limit
sys.exit(3)
`,
  );
  return dir;
}

/** Processes anywhere on this machine whose command line holds `tag`. */
function processesWith(tag: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(tag)) found.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe.skipIf(!support.ok)("a hostile experiment on a coder host", () => {
  it("is contained, leaves no process, and fails the run with the reason", async () => {
    const [swarmHost, coderHost] = net.hosts as [Net["hosts"][number], Net["hosts"][number]];
    const tag = Math.random().toString(36).slice(2, 10);
    const template = hostileTemplate(tag);
    const swarm = await swarmOnHost(net, swarmHost, mkdtempSync(join(out, "run-")), ["--template", template, "--roles", "ideator,critic,writer,areaChair,reviewer", "--run-timeout", "30"]);
    const node = net.runScript(coderHost, "node", ["--creds", join(swarm.runDir, "creds", "coder.json"), "--roles", "coder", "--name", "coder-host"], { env: { NATS_URL: swarm.url } });
    let nodeSaid = "";
    node.all!.on("data", (chunk: Buffer) => void (nodeSaid += chunk.toString()));
    const res = await swarm.child;
    // The node is still there, and it alone: the experiment left nothing on its host.
    const left = (await processesOf(coderHost.ns)).filter((p) => p !== node.pid);
    expect(processesWith(`daemon-${tag}`)).toEqual([]);
    expect(left).toEqual([]);
    node.kill("SIGINT");
    await node;

    expect(res.exitCode, res.all).toBe(1);
    expect(res.all).toMatch(new RegExp(`Run ${swarm.runId} failed: the unchanged template does not run on node coder-host`));
    expect(res.all).toMatch(/fails \(exit code 1\)/);
    expect(res.all).toMatch(/BlockingIOError: \[Errno 11\] Resource temporarily unavailable/);
    // The sandbox says which of its limits the code ran into.
    expect(res.all).toMatch(/\[the experiment hit the limit of \d+ processes and threads: it may not start more\]/);
    const report = JSON.parse(/HOSTILE (\{.*\})/.exec(res.all ?? "")![1]!) as Record<string, string>;
    for (const [what, got] of Object.entries(report)) {
      // Its /tmp is a private one, and may be written; what it wrote there is gone with it (checked below).
      if (what.startsWith("read ") || (what.startsWith("wrote ") && !what.startsWith(`wrote ${tmpdir()}`))) expect(got, what).toMatch(/^denied/);
    }
    expect(report.fork).toMatch(/^stopped after \d+/);
    expect(Number(/stopped after (\d+)/.exec(report.fork!)![1])).toBeLessThanOrEqual(256);
    for (const escaped of [join(ROOT, `escape-${tag}`), join(tmpdir(), `escape-${tag}`), join(template, `escape-${tag}`), `/escape-${tag}`]) {
      expect(existsSync(escaped), escaped).toBe(false);
    }
    expect(readJson(join(swarm.runDir, "status.json")).status).toBe("failed");
    expect(nodeSaid).not.toMatch(/NATS refused/);
  }, 90_000);
});
