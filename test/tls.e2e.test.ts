import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runScript, waitForLine } from "./helpers/cli.js";
import { plaintextPing } from "./helpers/plaintext.js";

const out = mkdtempSync(join(tmpdir(), "swarm-tls-e2e-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;

describe("a swarm that listens beyond loopback with --tls", () => {
  it("admits a reviewer node over TLS with the CA from its credentials file, and refuses clients in the clear or without the CA", async () => {
    const swarm = runScript("swarm", ["--out", out, "--listen", "0.0.0.0", "--tls", "--roles", "ideator,critic,coder,writer,areaChair", "--reviewers", "3"]);
    let said = "";
    swarm.all!.on("data", (chunk: Buffer) => void (said += chunk.toString()));
    await waitForLine(swarm, /^Add nodes with: npm run node -- --creds /);
    const runId = /^Run (\S+) on template/m.exec(said)![1]!;
    const natsUrl = /^NATS: (\S+)/m.exec(said)![1]!;
    expect(natsUrl).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
    expect(said).toMatch(/^TLS: required; the swarm's own CA is /m);
    const port = Number(new URL(natsUrl.replace("tls://", "http://")).port);

    // A client in the clear hears that TLS is required, and is hung up on.
    const clear = await plaintextPing(port);
    expect(clear.info).toMatch(/"tls_required":true/);
    expect(clear.hungUp).toBe(true);

    // The keys stay in the run's folder, private; the file handed out carries the CA and no key.
    const tlsDir = join(out, runId, "nats", "tls");
    expect(mode(join(tlsDir, "ca-key.pem"))).toBe(0o600);
    expect(mode(join(tlsDir, "server-key.pem"))).toBe(0o600);
    const file = join(out, "handed", "reviewer.json");
    const handed = await runScript("swarm", ["creds", "--role", "reviewer", "--results", out, "--run", runId, "--out", file]);
    expect(handed.exitCode, handed.all).toBe(0);
    expect(mode(file)).toBe(0o600);
    const creds = JSON.parse(readFileSync(file, "utf8"));
    expect(creds.url).toMatch(/^tls:\/\/[^/]+:\d+$/);
    expect(creds.ca).toBe(readFileSync(join(tlsDir, "ca.pem"), "utf8"));
    expect(readFileSync(file, "utf8")).not.toMatch(/PRIVATE KEY/);

    // The same credentials without the CA are refused at the handshake, and told where the CA is.
    const noCa = join(out, "handed", "reviewer-no-ca.json");
    writeFileSync(noCa, JSON.stringify({ ...creds, ca: undefined }), { mode: 0o600 });
    const untrusting = await runScript("node", ["--creds", noCa, "--roles", "reviewer"]);
    expect(untrusting.exitCode).not.toBe(0);
    expect(untrusting.all).toMatch(/requires TLS, and its certificate is not signed by any authority this machine trusts/);
    expect(untrusting.all).toMatch(/SWARM_NATS_CA/);

    // SWARM_NATS_CA gets a node without a file through the handshake, as far as the server's demand for credentials.
    const withCa = await runScript("node", ["--roles", "reviewer"], { env: { NATS_URL: natsUrl, SWARM_NATS_CA: join(tlsDir, "ca.pem") } });
    expect(withCa.exitCode).not.toBe(0);
    expect(withCa.all).toMatch(/requires credentials/);
    expect(withCa.all).not.toMatch(/requires TLS/);

    const node = runScript("node", ["--creds", file, "--roles", "reviewer=3", "--name", "tls-node"], { env: { LOG_LEVEL: "error" } });
    const res = await swarm;
    node.kill("SIGINT");
    const left = await node;
    expect(res.exitCode, res.all).toBe(0);
    expect(left.all).toMatch(/node tls-node joined tls:\/\//);
    expect(left.all).not.toMatch(/NATS refused|TlsError|not signed/);
    const runDir = join(out, runId);
    const ideas = JSON.parse(readFileSync(join(runDir, "ideas.json"), "utf8"));
    const reviewsDir = join(runDir, ideas.ideas[0].ideaId, "reviews");
    const nodes = readdirSync(reviewsDir).map((f) => JSON.parse(readFileSync(join(reviewsDir, f), "utf8")).node);
    expect(nodes).toEqual(["tls-node", "tls-node", "tls-node"]);
  }, 120_000);
});
