import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lineOf, makeNet, netnsSupport, processesOf, swarmOnHost, type Host, type Net } from "./helpers/netns.js";
import { writeServerAuth } from "../bus/server.js";
import { waitForJetStream } from "../bus/cluster.js";
import { connectBus } from "../bus/connection.js";
import { STREAMS } from "../bus/subjects.js";

// A lab's own cluster: three nats-servers, each on a host of its own and configured as the README says, the swarm
// on a fourth host, and a laptop on a fifth that joins from outside through a leaf node of its own, with a reviewer
// node. One server's host is killed (kill -9 of all on it) mid-run.
const support = netnsSupport();
if (!support.ok) console.warn(`skipped: ${support.reason}`);

const out = mkdtempSync(join(tmpdir(), "swarm-netns-cluster-"));
const ROUTE_SECRET = "route-secret-for-the-netns-cluster-test";
let net: Net;

beforeAll(async () => {
  if (support.ok) net = await makeNet(5);
}, 30_000);
afterAll(async () => {
  await net?.cleanup();
  rmSync(out, { recursive: true, force: true });
});

/** The README's configuration of one server of a lab's cluster, for host `i` of the three. */
function labServerConfig(i: number, servers: Host[], storeDir: string): string {
  const routes = servers.filter((_, j) => j !== i).map((h) => `nats-route://route:${ROUTE_SECRET}@${h.ip}:6222`);
  return [
    `server_name: nats-${i}`,
    "listen: 0.0.0.0:4222",
    `jetstream { store_dir: ${JSON.stringify(storeDir)}, domain: lab }`,
    "leafnodes { listen: 0.0.0.0:7422 }",
    "cluster {",
    "  name: lab",
    "  listen: 0.0.0.0:6222",
    `  authorization { user: route, password: ${JSON.stringify(ROUTE_SECRET)} }`,
    `  routes: [${routes.map((r) => JSON.stringify(r)).join(", ")}]`,
    "}",
    "include auth.conf",
    "",
  ].join("\n");
}

/**
 * The README's leaf node for a laptop: no JetStream of its own, on loopback, joined to the servers as one role;
 * here to the first server given first, so that the test knows which one it is on.
 */
function laptopLeafConfig(servers: Host[], user: string, password: string): string {
  const urls = servers.map((h) => JSON.stringify(`nats-leaf://${user}:${password}@${h.ip}:7422`));
  return ["listen: 127.0.0.1:4222", `leafnodes { remotes: [ { urls: [${urls.join(", ")}], dont_randomize: true } ] }`, ""].join("\n");
}

describe.skipIf(!support.ok)("a server host of the lab's 3-server cluster killed mid-run", () => {
  it("loses nothing: the run completes on the two servers left, with the reviews of a laptop joined through its leaf node", async () => {
    const servers = net.hosts.slice(0, 3);
    const [swarmHost, reviewerHost] = net.hosts.slice(3) as [Host, Host];
    // auth.conf and identities.json as the swarm writes them; the same block on all three servers.
    const natsDir = join(out, "nats");
    const { identities, conf } = writeServerAuth(natsDir);
    const said = servers.map(() => "");
    const ready = servers.map((host, i) => {
      const dir = join(natsDir, `nats-${i}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "auth.conf"), readFileSync(conf));
      writeFileSync(join(dir, "server.conf"), labServerConfig(i, servers, join(dir, "store")));
      const child = net.exec(host, "nats-server", ["-c", join(dir, "server.conf")]);
      child.all!.on("data", (chunk: Buffer) => void (said[i] += chunk.toString()));
      return lineOf(child, () => said[i]!, /Server is ready/, 30_000);
    });
    await Promise.all(ready);
    const urls = servers.map((h) => `nats://${h.ip}:4222`);
    await waitForJetStream(urls, 3, identities.swarm);

    const started = Date.now();
    const swarm = await swarmOnHost(net, swarmHost, join(out, "results"), ["--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "2", "--max-runs", "2", "--literature", "local"], {
      NATS_URL: urls.join(","),
      SWARM_NATS_IDENTITIES: join(natsDir, "identities.json"),
    });
    const credsFile = join(swarm.runDir, "creds", "reviewer.json");
    const creds = JSON.parse(readFileSync(credsFile, "utf8")) as { url: string; domain?: string; user: string; password: string };
    expect(creds.url).toBe(urls.join(","));
    expect(creds.domain, "the servers' JetStream domain, from their INFO").toBe("lab");
    // The server that leads the jobs stream is the one whose loss matters most to the run in flight: it is killed
    // below, and the laptop's leaf node is on it, so that the leaf node must move to another server too.
    const bus = await connectBus(urls.join(","), { credential: { ...identities.swarm, role: "swarm" } });
    const leader = (await bus.jsm.streams.info(STREAMS.jobs.name)).cluster!.leader!;
    const victim = servers[Number(/^nats-(\d)$/.exec(leader)![1])]!;
    // The laptop: its leaf node joins the lab's servers as the reviewer; its node connects to the leaf node only.
    const leafDir = join(out, "laptop");
    mkdirSync(leafDir, { recursive: true });
    writeFileSync(join(leafDir, "leaf.conf"), laptopLeafConfig([victim, ...servers.filter((h) => h !== victim)], creds.user, creds.password));
    let leafSaid = "";
    const leaf = net.exec(reviewerHost, "nats-server", ["-c", join(leafDir, "leaf.conf")]);
    leaf.all!.on("data", (chunk: Buffer) => void (leafSaid += chunk.toString()));
    await lineOf(leaf, () => leafSaid, /Leafnode connection created/, 30_000);
    const reviewer = net.runScript(reviewerHost, "node", ["--creds", credsFile, "--roles", "reviewer=2", "--name", "rev-x"], { env: { NATS_URL: "nats://127.0.0.1:4222" } });
    let reviewerSaid = "";
    reviewer.all!.on("data", (chunk: Buffer) => void (reviewerSaid += chunk.toString()));
    try {
      await lineOf(reviewer, () => reviewerSaid, /^node \S+ joined /, 60_000);
      await lineOf(swarm.child, swarm.said, /running run_1$/, 90_000);
      expect((await bus.jsm.streams.info(STREAMS.jobs.name)).cluster!.leader, "the jobs stream's leader is still the leaf node's server").toBe(leader);
      expect((await net.killHost(victim)).length).toBeGreaterThan(0);
      expect(await processesOf(victim.ns)).toEqual([]);
      const killedAt = Date.now();

      const res = await swarm.child;
      const output = res.all ?? "";
      expect(res.exitCode, output).toBe(0);
      expect(JSON.parse(readFileSync(join(swarm.runDir, "status.json"), "utf8")).status).toBe("completed");
      const idea = (JSON.parse(readFileSync(join(swarm.runDir, "ideas.json"), "utf8")).ideas as { ideaId: string; status: string }[]).find((i) => i.status === "accepted");
      expect(idea, "an idea went all the way").toBeDefined();
      const ideaDir = join(swarm.runDir, idea!.ideaId);
      for (const r of ["run_1", "run_2"]) expect(existsSync(join(ideaDir, r, "final_info.json")), r).toBe(true);
      expect(existsSync(join(ideaDir, "paper", `${idea!.ideaId}.pdf`))).toBe(true);
      const meta = JSON.parse(readFileSync(join(ideaDir, "meta_review.json"), "utf8")) as { decision: string; reviews: number; reviewers: { node: string }[] };
      expect(["Accept", "Reject"]).toContain(meta.decision);
      expect(meta.reviews).toBe(2);
      expect(meta.reviewers.map((r) => r.node)).toEqual(["rev-x", "rev-x"]);
      expect(output).toMatch(/decision: (Accept|Reject)/);
      expect(leafSaid.match(/Leafnode connection created/g)?.length, "the leaf node moved to a server left").toBeGreaterThanOrEqual(2);
      expect(reviewerSaid, "the laptop's node worked through the leaf node").not.toMatch(/refused|not enabled/);
      console.info(`lab cluster run: ${((Date.now() - started) / 1000).toFixed(0)} s in all, ${((Date.now() - killedAt) / 1000).toFixed(0)} s after the kill of ${leader}`);
    } finally {
      await bus.close().catch(() => undefined);
      reviewer.kill("SIGINT");
      await reviewer;
    }
  }, 180_000);
});
