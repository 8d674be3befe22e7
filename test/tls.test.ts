import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { execa } from "execa";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalNats, type LocalNats } from "../bus/server.js";
import { plaintextPing } from "./helpers/plaintext.js";
import { connectBus } from "../bus/connection.js";
import { TlsError, UserError } from "../bus/errors.js";
import { checkTlsFlags, ensureSwarmCertificates, labCertificate, swarmTls, swarmTlsPaths, tlsNames, writeTlsServerConf, type SwarmTls } from "../bus/tls.js";

const log = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "swarm-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const text = async (file: string) => (await execa("openssl", ["x509", "-noout", "-text", "-in", file])).stdout;
const mode = (file: string) => statSync(file).mode & 0o777;

describe("the swarm's own CA", () => {
  const certs = join(dir, "run", "nats", "tls");
  const paths = swarmTlsPaths(certs);
  const names = tlsNames("0.0.0.0", ["host.lab", "10.9.8.7"]);
  let made: SwarmTls;

  beforeAll(async () => {
    made = await ensureSwarmCertificates(certs, names, { log });
  });

  it("signs a server certificate for every name a node may dial, and keeps the keys private", async () => {
    const server = await text(paths.certFile);
    const san = /Subject Alternative Name:\s*\n\s*(.*)/.exec(server)![1]!;
    for (const want of ["DNS:localhost", "IP Address:127.0.0.1", `DNS:${hostname()}`, "DNS:host.lab", "IP Address:10.9.8.7"]) expect(san).toContain(want);
    expect(server).toMatch(/CA:FALSE/);
    expect(server).toMatch(/TLS Web Server Authentication/);
    expect(await text(paths.caFile)).toMatch(/CA:TRUE/);
    const ca = new X509Certificate(readFileSync(paths.caFile));
    const cert = new X509Certificate(readFileSync(paths.certFile));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(made.ca).toBe(readFileSync(paths.caFile, "utf8"));
    expect(made.ca).not.toMatch(/PRIVATE KEY/);
    expect(mode(paths.caKeyFile)).toBe(0o600);
    expect(mode(paths.keyFile)).toBe(0o600);
    expect(mode(certs)).toBe(0o700);
  });

  it("reuses what it made, and issues the server certificate again from the same CA for a new name", async () => {
    const before = { ca: readFileSync(paths.caFile, "utf8"), cert: readFileSync(paths.certFile, "utf8") };
    await ensureSwarmCertificates(certs, names, { log });
    expect(readFileSync(paths.caFile, "utf8")).toBe(before.ca);
    expect(readFileSync(paths.certFile, "utf8")).toBe(before.cert);

    await ensureSwarmCertificates(certs, [...names, "other.lab"], { log });
    expect(readFileSync(paths.caFile, "utf8")).toBe(before.ca);
    expect(readFileSync(paths.certFile, "utf8")).not.toBe(before.cert);
    expect(await text(paths.certFile)).toContain("DNS:other.lab");
    expect(mode(paths.keyFile)).toBe(0o600);
  });

  describe("a server that requires TLS", () => {
    let server: LocalNats;
    let plain: LocalNats;
    beforeAll(async () => {
      server = await startLocalNats({ storeDir: join(dir, "tls-server"), log, tls: made });
      plain = await startLocalNats({ storeDir: join(dir, "plain-server"), log });
    });
    afterAll(async () => {
      await server?.stop();
      await plain?.stop();
    });

    it("takes a client that trusts the swarm's CA", async () => {
      expect(server.url).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
      const bus = await connectBus(server.url, { log, tls: { ca: made.ca! } });
      await bus.kv.put("tls.probe", "ok");
      expect((await bus.kv.get("tls.probe"))?.string()).toBe("ok");
      await bus.close();
    });

    it("refuses a client that does not trust the CA, and says how to get it", async () => {
      const err = await connectBus(server.url, { log }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsError);
      expect((err as TlsError).message).toMatch(/requires TLS, and its certificate is not signed/);
      expect((err as TlsError).hint).toMatch(/npm run swarm -- creds/);
      expect((err as TlsError).retryable).toBe(false);
      // Another CA is no better than none.
      const other = await ensureSwarmCertificates(join(dir, "other"), ["127.0.0.1"], { log });
      await expect(connectBus(server.url.replace("tls://", "nats://"), { log, tls: { ca: other.ca! } })).rejects.toBeInstanceOf(TlsError);
    });

    it("refuses a client in the clear", async () => {
      const heard = await plaintextPing(server.port);
      expect(heard.said).toMatch(/^INFO .*"tls_required":true/);
      expect(heard.hungUp).toBe(true);
      expect(heard.said).not.toMatch(/PONG|\+OK/);
      // The same client is answered by a server without TLS: what refused it was TLS.
      const answered = await plaintextPing(plain.port);
      expect(answered.said).toMatch(/PONG/);
      expect(answered.hungUp).toBe(false);
    });

    it("tells a client that asked for TLS that the server does not speak it", async () => {
      const err = await connectBus(plain.url.replace("nats://", "tls://"), { log }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsError);
      expect((err as TlsError).message).toMatch(/does not speak TLS/);
    });

    it("refuses a certificate that does not name the host dialled", async () => {
      const err = await connectBus(server.url, { log, tls: { ca: made.ca!, servername: "elsewhere.lab" } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsError);
      expect((err as TlsError).message).toMatch(/does not name the host/);
      expect((err as TlsError).hint).toMatch(/--tls-name/);
    });
  });
});

describe("a lab's own certificate", () => {
  it("is checked against its key, and one that names only the lab's host is dialled by that name over loopback", async () => {
    // A CA of the swarm's making stands in for the lab's: a certificate for host.lab only.
    const lab = await ensureSwarmCertificates(join(dir, "lab"), ["host.lab"], { log });
    const p = swarmTlsPaths(join(dir, "lab"));
    const used = labCertificate({ cert: p.certFile, key: p.keyFile, ca: p.caFile });
    expect(used).toMatchObject({ made: false, servername: "host.lab", ca: lab.ca });
    expect(() => labCertificate({ cert: p.certFile, key: p.caKeyFile })).toThrow(/is not the key of/);
    expect(() => labCertificate({ cert: p.keyFile, key: p.keyFile })).toThrow(/is not a PEM certificate/);
    expect(() => labCertificate({ cert: p.certFile, key: p.keyFile, ca: p.certFile })).toThrow(/is not a CA certificate/);

    const server = await startLocalNats({ storeDir: join(dir, "lab-server"), log, tls: used });
    try {
      const bus = await connectBus(server.url, { log, tls: { ca: used.ca!, servername: used.servername! } });
      await bus.close();
      // Without the name the certificate covers, loopback is refused.
      await expect(connectBus(server.url, { log, tls: { ca: used.ca! } })).rejects.toThrow(/does not name the host/);
    } finally {
      await server.stop();
    }
  });
});

describe("the TLS flags and configuration", () => {
  it("refuses flags that do not go together", () => {
    expect(checkTlsFlags({})).toBe(false);
    expect(checkTlsFlags({ tls: true })).toBe(true);
    expect(checkTlsFlags({ names: ["host.lab"] })).toBe(true);
    expect(() => checkTlsFlags({ cert: "c.pem" })).toThrow(UserError);
    expect(() => checkTlsFlags({ cert: "c.pem" })).toThrow(/--tls-key is missing/);
    expect(() => checkTlsFlags({ key: "k.pem" })).toThrow(/--tls-cert is missing/);
    expect(() => checkTlsFlags({ tls: true, ca: "ca.pem" })).toThrow(/--tls-ca names the CA/);
    expect(() => checkTlsFlags({ cert: "c", key: "k", names: ["x"] })).toThrow(/--tls-name/);
    expect(() => checkTlsFlags({ tls: true }, { natsUrl: "tls://h:4222" })).toThrow(/NATS_URL/);
  });

  it("speaks TLS in a resumed run whose swarm made a CA, with the flags given again or not", async () => {
    const kept = join(dir, "resumed", "nats", "tls");
    const opts = { dir: kept, listen: "127.0.0.1", resumed: true, log };
    expect(await swarmTls({}, opts)).toBeUndefined();
    const first = await swarmTls({ tls: true }, { ...opts, resumed: false });
    expect(first?.made).toBe(true);
    const again = await swarmTls({}, opts);
    expect(again?.ca).toBe(first?.ca);
    expect(await swarmTls({}, { ...opts, resumed: false })).toBeUndefined();
  });

  it("writes the tls block, with the authorization included where the server requires credentials", () => {
    const files = { certFile: "/x/server.pem", keyFile: "/x/server-key.pem" };
    const withAuth = readFileSync(writeTlsServerConf(join(dir, "conf-a"), files, { auth: true }), "utf8");
    expect(withAuth).toMatch(/include "auth.conf"/);
    expect(withAuth).toMatch(/tls \{\n {2}cert_file: "\/x\/server.pem"\n {2}key_file: "\/x\/server-key.pem"\n {2}timeout: \d+\n\}/);
    const open = readFileSync(writeTlsServerConf(join(dir, "conf-b"), files, { auth: false }), "utf8");
    expect(open).not.toMatch(/include/);
    expect(mode(join(dir, "conf-b", "server.conf"))).toBe(0o600);
  });
});
