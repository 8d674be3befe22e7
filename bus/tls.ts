import { X509Certificate, createPrivateKey, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { writePrivate } from "./auth.js";
import { EnvironmentError, TlsError, UserError } from "./errors.js";
import type { Logger } from "./logger.js";

/** What nats-server needs to speak TLS: its certificate (with any intermediates) and its key, as PEM files. */
export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
}

/** How the swarm's servers speak TLS, and what a client needs to trust them. */
export interface SwarmTls extends ServerTlsFiles {
  /** The CA certificate (PEM) clients trust and nodes are handed: the swarm's own, or the lab's (--tls-ca); absent where the system's trust store suffices. */
  ca?: string;
  /** The name the swarm's own loopback connection checks the certificate against, where it covers neither 127.0.0.1 nor localhost. */
  servername?: string;
  /** Whether the swarm made the CA itself (--tls without a certificate of the lab's). */
  made: boolean;
}

/** What a client needs to trust a server that speaks TLS. */
export interface ClientTls {
  /** The CA certificate (PEM) to trust instead of the system's. */
  ca?: string;
  /** The name to check the server's certificate against, instead of the host in the URL. */
  servername?: string;
}

/** A name a certificate can cover, as a flag takes it: a host name or an IP address. */
export const TLS_NAME = /^[0-9A-Za-z.:-]+$/;

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * Every name and address a node may use to reach a server listening on `listen`: loopback, this machine's
 * host name, the listen address or (listening on every interface) every address of this machine, and the
 * extra names given (--tls-name), e.g. the name the lab's DNS gives this machine.
 */
export function tlsNames(listen: string, extra: string[] = []): string[] {
  const names = ["localhost", "127.0.0.1", "::1", hostname()];
  if (WILDCARD.has(listen)) {
    for (const addrs of Object.values(networkInterfaces())) {
      // A link-local address needs its interface's zone to be reached: no node dials it.
      for (const a of addrs ?? []) if (!a.internal && !(a.family === "IPv6" && a.scopeid)) names.push(a.address);
    }
  } else {
    names.push(listen);
  }
  names.push(...extra);
  const seen = new Set<string>();
  return names.filter((n) => {
    const key = n.toLowerCase();
    if (!n || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Whether a certificate covers a host name or an IP address. */
export function covers(cert: X509Certificate, name: string): boolean {
  return isIP(name) ? cert.checkIP(name) !== undefined : cert.checkHost(name) !== undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The files of a swarm's own CA and server certificate, in the run's nats folder. */
export function swarmTlsPaths(dir: string) {
  return { dir, caFile: join(dir, "ca.pem"), caKeyFile: join(dir, "ca-key.pem"), certFile: join(dir, "server.pem"), keyFile: join(dir, "server-key.pem") };
}

/** Whether a run's folder holds a CA the swarm made (so that a resumed run speaks TLS as it did). */
export function hasSwarmCa(dir: string): boolean {
  const p = swarmTlsPaths(dir);
  return existsSync(p.caFile) && existsSync(p.caKeyFile);
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execa("openssl", args, { cwd, timeout: 30_000, stdin: "ignore" });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") {
      throw new EnvironmentError("openssl is not installed: the swarm needs it to make its TLS certificates", {
        hint: "apt-get install -y openssl, or give the lab's certificate with --tls-cert FILE --tls-key FILE",
        cause: err,
      });
    }
    throw new EnvironmentError(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().slice(-1000)}`, { cause: err });
  }
}

/** A serial number of 128 random bits, positive as X.509 wants it. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return `0x${b.toString("hex")}`;
}

function privateFile(file: string): void {
  chmodSync(file, 0o600);
}

function readCert(file: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(file));
  } catch {
    return undefined;
  }
}

/** Whether a kept server certificate still serves: signed by the CA, its key beside it, valid for another day, covering every name. */
function serverCertServes(paths: ReturnType<typeof swarmTlsPaths>, ca: X509Certificate, names: string[]): boolean {
  const cert = existsSync(paths.certFile) && existsSync(paths.keyFile) ? readCert(paths.certFile) : undefined;
  if (!cert) return false;
  try {
    if (!cert.verify(ca.publicKey) || !cert.checkPrivateKey(createPrivateKey(readFileSync(paths.keyFile)))) return false;
  } catch {
    return false;
  }
  return Date.parse(cert.validTo) - Date.now() > DAY_MS && names.every((n) => covers(cert, n));
}

/**
 * The swarm's own CA and a server certificate it signed for `names`, under `dir` (private: the folder is
 * the owner's only, the keys mode 600). Kept ones are reused, so that a resumed run's nodes go on trusting
 * the CA they were handed; a server certificate that no longer covers every name (a new address, another
 * --tls-name) or is about to expire is issued again by the same CA.
 */
export async function ensureSwarmCertificates(dir: string, names: string[], opts: { log?: Logger; runId?: string } = {}): Promise<SwarmTls> {
  const paths = swarmTlsPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  let ca = hasSwarmCa(dir) ? readCert(paths.caFile) : undefined;
  if (ca && (!ca.ca || Date.parse(ca.validTo) - Date.now() < 30 * DAY_MS)) ca = undefined;
  if (!ca) {
    // A new CA: every certificate and credentials file handed out before is worthless with it.
    await openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256", "-days", "3650",
      "-keyout", paths.caKeyFile, "-out", paths.caFile,
      "-subj", `/O=scientist-swarm/CN=scientist-swarm CA${opts.runId ? ` ${opts.runId}` : ""}`,
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ], dir);
    privateFile(paths.caKeyFile);
    ca = readCert(paths.caFile)!;
    rmSync(paths.certFile, { force: true });
    opts.log?.info({ dir }, "made the swarm's TLS certificate authority");
  }
  if (!serverCertServes(paths, ca, names)) {
    const csr = join(dir, "server.csr");
    const ext = join(dir, "server.ext");
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
    writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    try {
      await openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", paths.keyFile, "-out", csr, "-subj", "/O=scientist-swarm/CN=scientist-swarm nats"], dir);
      privateFile(paths.keyFile);
      await openssl(["x509", "-req", "-sha256", "-in", csr, "-CA", paths.caFile, "-CAkey", paths.caKeyFile, "-set_serial", serial(), "-days", "825", "-extfile", ext, "-out", paths.certFile], dir);
    } finally {
      rmSync(csr, { force: true });
      rmSync(ext, { force: true });
    }
    opts.log?.info({ names }, "issued the NATS server's TLS certificate");
  }
  return { certFile: paths.certFile, keyFile: paths.keyFile, ca: readFileSync(paths.caFile, "utf8"), made: true };
}

function readPem(file: string, flag: string): Buffer {
  if (!existsSync(file)) throw new UserError(`${flag}: no file at ${file}`, { hint: "give the path of a PEM file" });
  return readFileSync(file);
}

/** A CA certificate (PEM) from a file, checked to be one; what --tls-ca and SWARM_NATS_CA name. */
export function readCaFile(file: string, flag = "SWARM_NATS_CA"): string {
  const pem = readPem(file, flag);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new UserError(`${flag}: ${file} is not a PEM certificate`, { hint: "give the CA's certificate (-----BEGIN CERTIFICATE-----), never a key" });
  }
  if (!cert.ca) throw new UserError(`${flag}: ${file} is not a CA certificate`, { hint: "give the certificate of the authority that signed the server's, not the server's own" });
  return pem.toString("utf8");
}

/**
 * The lab's own certificate and key (--tls-cert, --tls-key), checked to belong together, and the CA that
 * signed it (--tls-ca), handed to nodes; without it nodes trust the certificate through their system's store.
 */
export function labCertificate(opts: { cert: string; key: string; ca?: string }): SwarmTls {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readPem(opts.cert, "--tls-cert"));
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`--tls-cert: ${opts.cert} is not a PEM certificate`, { hint: "give the server's certificate (-----BEGIN CERTIFICATE-----)" });
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(readPem(opts.key, "--tls-key")));
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`--tls-key: ${opts.key} is not a PEM private key`, { hint: "give the unencrypted key of the certificate (-----BEGIN PRIVATE KEY-----)" });
  }
  if (!matches) throw new UserError(`--tls-key: ${opts.key} is not the key of ${opts.cert}`, { hint: "give the key the certificate was issued for" });
  if (Date.parse(cert.validTo) < Date.now()) throw new UserError(`--tls-cert: ${opts.cert} expired on ${cert.validTo}`, { hint: "renew the certificate" });
  // Whether the CA signed it (perhaps through intermediates) is proven by the swarm's own first connection, which trusts that CA only.
  const ca = opts.ca ? readCaFile(opts.ca, "--tls-ca") : undefined;
  // The swarm's own connection goes over loopback: where the certificate does not name it, it checks a name the certificate does.
  const servername = covers(cert, "127.0.0.1") || covers(cert, "localhost") ? undefined : dnsNames(cert)[0];
  if (!covers(cert, "127.0.0.1") && !covers(cert, "localhost") && !servername) {
    throw new UserError(`--tls-cert: ${opts.cert} names no host (DNS name) and not 127.0.0.1`, { hint: "use a certificate whose subject alternative names include this machine's host name" });
  }
  return { certFile: resolve(opts.cert), keyFile: resolve(opts.key), ...(ca ? { ca } : {}), ...(servername ? { servername } : {}), made: false };
}

/** The DNS names of a certificate's subject alternative names, wildcards left out. */
function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "").split(/,\s*/).filter((s) => s.startsWith("DNS:") && !s.includes("*")).map((s) => s.slice(4));
}

/** JSON strings are valid strings in nats-server's configuration syntax. */
const q = (s: string) => JSON.stringify(s);

/**
 * The `tls` block of a nats-server configuration: with it the server takes TLS connections only. Any
 * server of the swarm (one, or each of a cluster) gets it; `timeoutS` bounds the handshake, long enough
 * for a node on a slow network.
 */
export function tlsConfigBlock(files: ServerTlsFiles, timeoutS = 5): string {
  return `tls {\n  cert_file: ${q(files.certFile)}\n  key_file: ${q(files.keyFile)}\n  timeout: ${timeoutS}\n}\n`;
}

/**
 * The configuration file of one server that speaks TLS, `dir/server.conf` (private): the authorization block
 * of `dir/auth.conf` where the server requires credentials, and the tls block. Returns its path.
 */
export function writeTlsServerConf(dir: string, files: ServerTlsFiles, opts: { auth: boolean }): string {
  const conf = join(dir, "server.conf");
  writePrivate(conf, `# Written by scientist-swarm for one run's server (--tls).\n${opts.auth ? 'include "auth.conf"\n' : ""}${tlsConfigBlock(files)}`);
  return conf;
}

/** Whether a server URL (or a comma-separated list of them) asks for TLS. */
export function wantsTls(url: string): boolean {
  return url.split(",").some((u) => u.trim().startsWith("tls://"));
}

/**
 * The `tls` option of nats.js for a connection: set where the URL says tls:// or a CA is given. (Against a
 * server that requires TLS nats.js upgrades a nats:// connection by itself, then trusting the system's CAs.)
 */
export function clientTlsOptions(url: string, tls?: ClientTls): { ca?: string; servername?: string } | undefined {
  if (!tls?.ca && !tls?.servername && !wantsTls(url)) return undefined;
  // `servername` is passed through to node:tls by the node transport, though nats.js's type does not name it.
  return { ...(tls?.ca ? { ca: tls.ca } : {}), ...(tls?.servername ? { servername: tls.servername } : {}) };
}

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT", "CERT_SIGNATURE_FAILURE", "CERT_UNTRUSTED",
]);

const HOW_TO_TRUST =
  "connect with the credentials file from `npm run swarm -- creds --role <role> --out FILE` (it carries the swarm's CA), or set SWARM_NATS_CA=<the CA's certificate> beside NATS_URL=tls://…";

/** The error a failed first connection stands for when TLS is what failed; undefined otherwise. */
export function tlsConnectError(err: unknown, url: string, tls?: ClientTls): TlsError | undefined {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof e?.code === "string" ? e.code : typeof e?.cause?.code === "string" ? e.cause.code : undefined;
  const message = typeof e?.message === "string" ? e.message : "";
  if (code && UNTRUSTED.has(code)) {
    return new TlsError(
      `NATS at ${url} requires TLS, and its certificate is not signed by ${tls?.ca ? "the CA this connection was given" : "any authority this machine trusts"} (${code})`,
      { hint: HOW_TO_TRUST, cause: err },
    );
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new TlsError(`the TLS certificate of NATS at ${url} does not name the host this connection dialled: ${message}`, {
      hint: "dial a name the certificate covers (the URL in the credentials file), or restart the swarm with --tls-name <that host> to add it",
      cause: err,
    });
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return new TlsError(`the TLS certificate of NATS at ${url} is not valid now (${code})`, {
      hint: "check this machine's clock; a swarm with its own CA issues a new server certificate when it is resumed",
      cause: err,
    });
  }
  if (/server does not support 'tls'/.test(message)) {
    return new TlsError(`NATS at ${url} does not speak TLS, and this connection asked for it (a tls:// URL or a CA)`, {
      hint: "use the nats:// URL the swarm printed, or start the swarm with --tls",
      cause: err,
    });
  }
  return undefined;
}

/** The TLS flags of `npm run swarm` (--tls, --tls-name, --tls-cert, --tls-key, --tls-ca). */
export interface TlsFlags {
  tls?: boolean | undefined;
  names?: string[] | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

/** Checks that the TLS flags go together; returns whether they ask for TLS (any of them does). */
export function checkTlsFlags(f: TlsFlags, opts: { natsUrl?: string | undefined } = {}): boolean {
  const asked = Boolean(f.tls || f.names?.length || f.cert || f.key || f.ca);
  if (!asked) return false;
  if (Boolean(f.cert) !== Boolean(f.key)) {
    throw new UserError(`--tls-cert and --tls-key go together: ${f.cert ? "--tls-key" : "--tls-cert"} is missing`, {
      hint: "give the lab's certificate and its key, --tls-cert FILE --tls-key FILE; or --tls alone, and the swarm makes its own",
    });
  }
  if (f.ca && !f.cert) {
    throw new UserError("--tls-ca names the CA that signed the lab's certificate (--tls-cert)", { hint: "with --tls alone the swarm makes its own CA and hands it to nodes" });
  }
  if (f.names?.length && f.cert) {
    throw new UserError("--tls-name adds names to the certificate the swarm makes; the lab's certificate (--tls-cert) has its own", { hint: "leave --tls-name out" });
  }
  if (opts.natsUrl) {
    throw new UserError("--tls configures the local nats-server, and NATS_URL names a server to join", {
      hint: "to join a server that speaks TLS, set NATS_URL=tls://<host>:<port> (and SWARM_NATS_CA=<its CA file> unless this machine trusts it) and leave the --tls flags out",
    });
  }
  return true;
}

/**
 * The TLS the swarm's local server speaks, if any: the lab's certificate (--tls-cert), or the swarm's own
 * CA and server certificate under `dir`, made for --tls and kept, so that a run resumed without the flags
 * speaks TLS as it did and its nodes go on trusting the CA they were handed.
 */
export async function swarmTls(f: TlsFlags, opts: { dir: string; listen: string; resumed: boolean; runId?: string; log?: Logger }): Promise<SwarmTls | undefined> {
  if (f.cert && f.key) return labCertificate({ cert: f.cert, key: f.key, ...(f.ca ? { ca: f.ca } : {}) });
  if (!f.tls && !f.names?.length && !(opts.resumed && hasSwarmCa(opts.dir))) return undefined;
  return ensureSwarmCertificates(opts.dir, tlsNames(opts.listen, f.names), { ...(opts.log ? { log: opts.log } : {}), ...(opts.runId ? { runId: opts.runId } : {}) });
}

/**
 * The host a node on another machine dials: `host`, unless the lab's certificate does not name it, then the
 * first name it does (the lab's DNS name for this machine, presumably).
 */
export function joinHost(tls: SwarmTls | undefined, host: string): string {
  if (!tls || tls.made) return host;
  const cert = readCert(tls.certFile);
  return !cert || covers(cert, host) ? host : (dnsNames(cert)[0] ?? host);
}
