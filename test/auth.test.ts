import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { connectBus, type Bus } from "../bus/connection.js";
import { publishJob, serveJobs } from "../bus/workQueue.js";
import { publishOutcome, publishProgress } from "../bus/events.js";
import { awaitOutcome } from "../bus/outcomes.js";
import { getArtifact, putArtifact } from "../bus/artifacts.js";
import { kvKeys, subjects } from "../bus/subjects.js";
import { CredsFile, loadOrCreateIdentities, readCredsFile, writeCredsFile, type WorkerRole } from "../bus/auth.js";
import { review } from "./helpers/review.js";

const idea = { Name: "n", Title: "t", Experiment: "e", Interestingness: 5, Feasibility: 5, Novelty: 5 };

describe("a swarm's server beyond loopback", () => {
  const log = pino({ level: "silent" });
  /** What the server refused anyone, as the swarm logs it. */
  const refused: string[] = [];
  const serverLog = pino({ level: "warn" }, { write: (line: string) => void refused.push(line) });
  const violation = (subject: string) => new RegExp(`Permissions Violation for Publish to "${subject.replace(/[.$]/g, "\\$&")}"`);
  let dir: string;
  let server: LocalNats;
  let swarm: Bus;
  let reviewer: Bus;
  const as = (role: WorkerRole | "swarm", name: string = role) => connectBus(server.url, { name, log, credential: { ...server.identities![role], role } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "swarm-auth-"));
    server = await startLocalNats({ storeDir: join(dir, "nats"), host: "0.0.0.0", log: serverLog });
    swarm = await as("swarm");
    reviewer = await as("reviewer");
  });
  afterAll(async () => {
    await reviewer?.close();
    await swarm?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps its configuration and identities from everyone but their owner", () => {
    expect(server.identities).toBeDefined();
    for (const f of ["auth.conf", "identities.json"]) expect(statSync(join(dir, "nats", f)).mode & 0o077).toBe(0);
  });

  it("refuses a client without credentials, and one with another server's", async () => {
    await expect(connectBus(server.url, { log })).rejects.toThrow(/requires credentials/);
    await expect(connectBus(server.url, { log, credential: { user: "reviewer", password: "x".repeat(32), role: "reviewer" } })).rejects.toThrow(
      /refused the credentials of reviewer/,
    );
  });

  it("lets a reviewer take a review job, upload its review and publish its outcome", async () => {
    await putArtifact(swarm, "run-a/idea_a/paper.pdf", "paper");
    const worker = serveJobs(reviewer, "review", async (job) => {
      await putArtifact(reviewer, `run-a/idea_a/reviews/review_${job.reviewer}.json`, new TextDecoder().decode(await getArtifact(reviewer, job.pdf)));
      await publishProgress(reviewer, { runId: job.runId, by: { agent: "reviewer", node: "joined" }, text: "reviewing" });
      return { review, reflections: 0 };
    }, { concurrency: 1, by: { agent: "reviewer", node: "joined" }, log });
    try {
      await publishJob(swarm, "review", { jobId: "run-a.review.idea_a.0", runId: "run-a", ideaId: "idea_a", pdf: "run-a/idea_a/paper.pdf", reviewer: 0 });
      const outcome = await awaitOutcome(swarm, "run-a", "review", "run-a.review.idea_a.0");
      expect(outcome.ok).toBe(true);
      expect(outcome.by.node).toBe("joined");
      expect(new TextDecoder().decode(await getArtifact(swarm, "run-a/idea_a/reviews/review_0.json"))).toBe("paper");
      // Everything its work needs is allowed: the server refused it nothing.
      expect(refused).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("refuses a reviewer an experiment job, a chair's decision and a run's configuration", async () => {
    await expect(publishJob(reviewer, "experiment", { jobId: "run-a.exp.x", runId: "run-a", ideaId: "idea_a", idea })).rejects.toThrow(
      violation("sci.run-a.jobs.experiment"),
    );
    const decision = { decision: "Accept" as const, metaReview: "m", scores: {}, reviews: 3, round: 0, reviewers: [] };
    await expect(
      publishOutcome(reviewer, "chair", { jobId: "run-a.chair.idea_a", runId: "run-a", ideaId: "idea_a", by: { agent: "areaChair", node: "forged" }, ok: true, result: decision }),
    ).rejects.toThrow(violation("sci.run-a.conv.chair.reviewer.run-a.chair.idea_a"));
    await expect(reviewer.kv.put(kvKeys.config("run-a"), "{}")).rejects.toThrow(violation("$KV.sci-runs.run-a.config"));
    await expect(reviewer.kv.put(kvKeys.lease("run-a"), "{}")).rejects.toThrow(violation("$KV.sci-runs.run-a.lease"));
    // Nor hold up or end another role's job, nor rewrite the pipeline's state or another agent's.
    const exp = "run-a.experiment.idea_a";
    await expect(reviewer.kv.put(kvKeys.done("run-a", "experiment", exp), "ok")).rejects.toThrow(violation(`$KV.sci-runs.${kvKeys.done("run-a", "experiment", exp)}`));
    await expect(reviewer.kv.put(kvKeys.claim("run-a", "experiment", exp), "{}")).rejects.toThrow(violation(`$KV.sci-runs.${kvKeys.claim("run-a", "experiment", exp)}`));
    await expect(reviewer.kv.put(kvKeys.snapshot("run-a", "pipeline"), "{}")).rejects.toThrow(violation("$KV.sci-runs.run-a.snap.pipeline"));
    await expect(reviewer.kv.put(kvKeys.snapshot("run-a", "areaChair.idea_a"), "{}")).rejects.toThrow(violation("$KV.sci-runs.run-a.snap.areaChair.idea_a"));
    // Its own kind's claims and its own agents' snapshots it may write.
    await reviewer.kv.put(kvKeys.claim("run-a", "review", "run-a.review.idea_a.9"), "{}");
    await reviewer.kv.put(kvKeys.snapshot("run-a", "reviewer.idea_a.9"), "{}");
    // Nor may it make streams of its own.
    await expect(reviewer.jsm.streams.add({ name: "FORGED", subjects: ["forged.>"] })).rejects.toThrow(violation("$JS.API.STREAM.CREATE.FORGED"));
    // The swarm's server logs each refusal with the identity that asked.
    await expect.poll(() => refused.join("\n")).toMatch(/User \\?"reviewer\\?".*sci\.run-a\.jobs\.experiment/);
    // Only the swarm writes a run's configuration.
    await swarm.kv.put(kvKeys.config("run-a"), "{}");
  });

  it("lets no worker role decide at a person's gate or rewind an idea: only the swarm's identity", async () => {
    const gate = kvKeys.gate("run-a", "idea_a", "ideas.g0");
    for (const role of ["reviewer", "coder", "figureCritic", "ideator"] as const) {
      const worker = role === "reviewer" ? reviewer : await as(role);
      try {
        await expect(worker.kv.put(gate, "{}"), role).rejects.toThrow(violation(`$KV.sci-runs.${gate}`));
        await expect(worker.kv.put(kvKeys.rewind("run-a", "idea_a"), "{}"), role).rejects.toThrow(violation(`$KV.sci-runs.${kvKeys.rewind("run-a", "idea_a")}`));
      } finally {
        if (worker !== reviewer) await worker.close();
      }
    }
    await swarm.kv.put(gate, "{}");
    await swarm.kv.put(kvKeys.rewind("run-a", "idea_a"), "{}");
  });

  it("keeps a run's identities when a role was added since: credentials handed out stay good", () => {
    const file = join(dir, "older", "identities.json");
    const now = loadOrCreateIdentities(file);
    const { figureCritic: _, ...older } = now;
    writeFileSync(file, JSON.stringify(older));
    const again = loadOrCreateIdentities(file);
    expect(again.swarm).toEqual(now.swarm);
    expect(again.reviewer).toEqual(now.reviewer);
    expect(again.figureCritic.password).not.toBe(now.figureCritic.password);
    expect(loadOrCreateIdentities(file)).toEqual(again);
  });

  it("believes a review only from the reviewer that holds its job, and only under a reviewer's name", async () => {
    const forger = await as("reviewer", "forger");
    let started!: () => void;
    let finish!: () => void;
    const working = new Promise<void>((r) => (started = r));
    const finished = new Promise<void>((r) => (finish = r));
    // The honest reviewer holds its job until the forger has spoken.
    const honest = serveJobs(reviewer, "review", async () => {
      started();
      await finished;
      return { review: { ...review, Summary: "honest" }, reflections: 0 };
    }, { concurrency: 1, by: { agent: "reviewer", node: "honest" }, log });
    try {
      const jobId = "run-v.review.idea_v.0";
      await publishJob(swarm, "review", { jobId, runId: "run-v", ideaId: "idea_v", pdf: "p", reviewer: 0 });
      await working;
      // While the honest reviewer holds the job, another reviewer's credentials answer it: first.
      const forged = { jobId, runId: "run-v", ideaId: "idea_v", by: { agent: "reviewer", node: "honest" }, ok: true as const, result: { review: { ...review, Summary: "forged", Overall: 10, Decision: "Accept" as const }, reflections: 0 } };
      await publishOutcome(forger, "review", forged);
      // Nor may it speak under another identity's name.
      const asSwarm = { ...forger, identity: "swarm" };
      await expect(publishOutcome(asSwarm, "review", forged)).rejects.toThrow(violation(`sci.run-v.conv.review.swarm.${jobId}`));
      finish();
      const outcome = await awaitOutcome(swarm, "run-v", "review", jobId);
      expect(outcome.ok && outcome.result.review.Summary).toBe("honest");
      const info = await swarm.jsm.streams.info("SCI_CONV", { subjects_filter: subjects.outcome("run-v", "review", jobId) });
      // Both reached the stream; only the holder's was believed.
      expect(Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0)).toBe(2);
    } finally {
      finish();
      await honest.stop();
      await forger.close();
    }
  });

  it("hands a role its credentials in a file only its owner reads", () => {
    const file = join(dir, "handed", "reviewer.json");
    const creds: CredsFile = { kind: "scientist-swarm-creds", url: server.url, role: "reviewer", runId: "run-a", ...server.identities!.reviewer };
    writeCredsFile(file, creds);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readCredsFile(file)).toEqual(creds);
  });
});
