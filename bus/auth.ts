import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { UserError } from "./errors.js";
import type { JobKind } from "./schemas.js";
import { BUCKET_STREAMS, STREAMS, durableName, subjects } from "./subjects.js";

/**
 * Who may connect to a swarm's server beyond loopback: the swarm itself, and one identity per role that a
 * joined node serves. Each is a user with a random password, written into the server's configuration.
 */
export const IDENTITIES = ["swarm", "ideator", "critic", "coder", "writer", "areaChair", "reviewer", "figureCritic"] as const;
export type Identity = (typeof IDENTITIES)[number];
export type WorkerRole = Exclude<Identity, "swarm">;

/** What a role's work needs from the bus, as data: the permission table below is derived from it. */
interface RoleNeeds {
  /** Job kinds it takes from their work queues, and whose outcomes it publishes. */
  serves: JobKind[];
  /** Job kinds it puts on a queue, and whose outcomes it then reads. */
  asks: JobKind[];
  /** Other conversation subjects it publishes, beyond progress, state and model exchanges (all roles). */
  says: string[];
  /** Whether it uploads artifacts (code, figures, papers, reviews). */
  uploads: boolean;
  /** KV keys it writes beyond claims, done-markers, snapshots, spend and its node's advert (all roles). */
  kvWrites: string[];
}

export const ROLE_NEEDS: Record<WorkerRole, RoleNeeds> = {
  ideator: { serves: ["ideate"], asks: ["novelty"], says: ["sci.*.conv.accepted.*"], uploads: false, kvWrites: ["archive.*"] },
  critic: { serves: ["novelty"], asks: [], says: [], uploads: false, kvWrites: [] },
  coder: { serves: ["scaffold", "baseline", "gpuBaseline", "plan", "experiment", "gpuExperiment"], asks: ["figures"], says: [], uploads: true, kvWrites: [] },
  writer: { serves: ["write", "cite"], asks: ["figures"], says: [], uploads: true, kvWrites: [] },
  areaChair: { serves: ["chair"], asks: ["review"], says: [], uploads: true, kvWrites: [] },
  reviewer: { serves: ["review"], asks: [], says: [], uploads: true, kvWrites: [] },
  figureCritic: { serves: ["figures"], asks: [], says: [], uploads: false, kvWrites: [] },
};

export interface Permissions {
  publish: string[];
  subscribe: string[];
}

const KV = BUCKET_STREAMS.runs.subjects;
const KV_STREAM = BUCKET_STREAMS.runs.name;
const OBJ = BUCKET_STREAMS.artifacts.subjects;
const OBJ_STREAM = BUCKET_STREAMS.artifacts.name;
const API = "$JS.API";

/**
 * The subjects one role may publish to and subscribe to. Reading is broad (a node serves every run, and the
 * JetStream API cannot tell one run's reads from another's); writing is what the role's work produces.
 * Object names are base64 in their subjects, so uploads cannot be limited by name; KV keys are plain tokens,
 * so a role's writes are limited to the kinds of key it keeps (never a run's config or lease).
 */
export function rolePermissions(role: WorkerRole): Permissions {
  const needs = ROLE_NEEDS[role];
  const conv = STREAMS.conversation.name;
  const jobs = STREAMS.jobs.name;
  const publish = [
    `${API}.INFO`,
    ...[jobs, conv, KV_STREAM, OBJ_STREAM].map((s) => `${API}.STREAM.INFO.${s}`),
    ...needs.serves.flatMap((k) => [
      `${API}.CONSUMER.INFO.${jobs}.${durableName(k)}`,
      `${API}.CONSUMER.MSG.NEXT.${jobs}.${durableName(k)}`,
      `$JS.ACK.${jobs}.${durableName(k)}.>`,
      // The claims and done-markers of its own kinds only: another role's job cannot be held up or marked done.
      `${KV}.*.claim.${k}.*`,
      `${KV}.*.done.${k}.*`,
      // Under its own name only: an outcome says who published it (subjects.outcome).
      `sci.*.conv.${k}.${role}.>`,
    ]),
    ...needs.asks.map((k) => `sci.*.jobs.${k}`),
    ...needs.says,
    // Progress and state events, as one pattern of one topic token (it also takes the end mark a reader publishes for
    // itself, which only that reader acts on). As a pattern it covers the conversation stream's own interest,
    // `sci.*.conv.>`, as a server checks it against the permissions of a leaf node that joins as this role (one
    // token each): without it, the server never tells the leaf node of the stream, which then drops all it is given.
    "sci.*.conv.*",
    "sci.*.conv.llm.>",
    // The conversation is read by sequence (bus/storedReads.ts): a model answer already paid for, an outcome awaited.
    `${API}.STREAM.MSG.GET.${conv}`,
    `${API}.DIRECT.GET.${KV_STREAM}.>`,
    `${API}.STREAM.MSG.GET.${KV_STREAM}`,
    // Its own agents' snapshots (actor ids begin with the role), never the pipeline's or another role's.
    ...[`*.snap.${role}`, `*.snap.${role}.>`, "*.spent", "nodes.*", ...needs.kvWrites].map((k) => `${KV}.${k}`),
    // Artifacts are read by every role (a replayed run's model answers are one), chunk by chunk by sequence.
    `${API}.STREAM.MSG.GET.${OBJ_STREAM}`,
    ...(needs.uploads ? [`${OBJ}.C.*`, `${OBJ}.M.*`, `${API}.STREAM.PURGE.${OBJ_STREAM}`] : []),
    // Asking another connection whether it still holds a claim (askHolder).
    "sci.live.*",
  ];
  // Through a leaf node, a JetStream request names the servers' domain, `$JS.<domain>.API.…`, and so does a KV
  // write, `$JS.<domain>.API.$KV.…` (ConnectOptions.domain): the same permissions in that form.
  publish.push(...publish.flatMap((s) => (s.startsWith(`${API}.`) ? [`$JS.*.API.${s.slice(API.length + 1)}`] : s.startsWith(`${KV}.`) ? [`$JS.*.API.${s}`] : [])));
  // The outcomes of the jobs it asks for: their messages wake its reader (bus/storedReads.ts), which reads them by sequence.
  return { publish, subscribe: ["_INBOX.>", "sci.live.*", ...needs.asks.map((k) => subjects.outcomes("*", k))] };
}

/** One identity's user name and password on one server. */
export const Credential = z.object({ user: z.string().min(1), password: z.string().min(16) });
export type Credential = z.infer<typeof Credential>;

export const Identities = z.object(Object.fromEntries(IDENTITIES.map((i) => [i, Credential])) as Record<Identity, typeof Credential>);
export type Identities = z.infer<typeof Identities>;

/** The identity of a connection made without credentials: possible only on a server that admits anyone on this machine (loopback). */
export const OPEN_IDENTITY = "local";

/** Who may publish a kind's outcomes: the roles that serve it, the swarm, and any process on an open (loopback) server. */
export function outcomePublishers(kind: JobKind): string[] {
  const serving = (Object.keys(ROLE_NEEDS) as WorkerRole[]).filter((r) => ROLE_NEEDS[r].serves.includes(kind));
  return [...serving, "swarm", OPEN_IDENTITY];
}

/** Fresh passwords for every identity: a new server configuration revokes every credential handed out before. */
export function newIdentities(): Identities {
  return Object.fromEntries(IDENTITIES.map((i) => [i, { user: i, password: randomBytes(24).toString("base64url") }])) as Identities;
}

/** Writes a file only its owner can read. */
export function writePrivate(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** Names the identities file (a server's `identities.json`) the swarm connects with to servers a lab runs (NATS_URL). */
export const NATS_IDENTITIES_ENV = "SWARM_NATS_IDENTITIES";

/** The identities of servers the swarm did not start: their file must be there, and whole. */
export function readIdentitiesFile(file: string): Identities {
  const hint = `give ${NATS_IDENTITIES_ENV} the identities.json written beside the auth.conf the lab's servers include`;
  return readUserFile(file, Identities, { what: "an identities file", missingHint: hint, hint });
}

/** A JSON file a person hands over, checked whole: missing, not JSON or not the schema is their fault, and says which. */
function readUserFile<S extends z.ZodType>(file: string, schema: S, words: { what: string; missingHint: string; hint: string }): z.infer<S> {
  if (!existsSync(file)) throw new UserError(`no ${words.what.replace(/^an? /, "")} at ${file}`, { hint: words.missingHint });
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    throw new UserError(`${file} is not ${words.what} (not JSON)`, { hint: words.hint });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`${file} is not ${words.what}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`).join("; ")}`, { hint: words.hint });
  }
  return parsed.data;
}

/** The identities kept beside a server's store, so that a restarted server (a resumed run) takes the same credentials. */
export function loadOrCreateIdentities(file: string): Identities {
  const fresh = newIdentities();
  if (existsSync(file)) {
    // A run's identities from before a role was added keep their passwords (credentials handed out stay good);
    // only the new role's are made.
    const kept = z.record(z.string(), Credential).safeParse(JSON.parse(readFileSync(file, "utf8")));
    if (kept.success && kept.data.swarm) {
      const merged = Identities.parse(Object.fromEntries(IDENTITIES.map((i) => [i, kept.data[i] ?? fresh[i]])));
      if (IDENTITIES.some((i) => !kept.data[i])) writePrivate(file, JSON.stringify(merged, null, 2));
      return merged;
    }
  }
  writePrivate(file, JSON.stringify(fresh, null, 2));
  return fresh;
}

/** JSON strings are valid strings in nats-server's configuration syntax, and keep every character inert. */
const q = (s: string) => JSON.stringify(s);
const list = (xs: string[]) => `[${xs.map(q).join(", ")}]`;

/** The `authorization` block of nats-server's configuration: the swarm may do anything, each role only its work. */
export function serverAuthConfig(ids: Identities): string {
  const users = IDENTITIES.map((i) => {
    const p: Permissions = i === "swarm" ? { publish: [">"], subscribe: [">"] } : rolePermissions(i);
    return [
      `    {`,
      `      user: ${q(ids[i].user)}`,
      `      password: ${q(ids[i].password)}`,
      `      permissions: {`,
      `        publish: { allow: ${list(p.publish)} }`,
      `        subscribe: { allow: ${list(p.subscribe)} }`,
      // Answers to askHolder go to the asker's inbox, and only as a reply to a question received.
      ...(i === "swarm" ? [] : [`        allow_responses: true`]),
      `      }`,
      `    }`,
    ].join("\n");
  });
  return `# Written by scientist-swarm for one run; a new run writes new passwords.\nauthorization {\n  users: [\n${users.join("\n")}\n  ]\n}\n`;
}

/** What is handed to another machine so that a node joins as one role. */
export const CredsFile = z.object({
  kind: z.literal("scientist-swarm-creds"),
  /** One server, or every server of a cluster, comma-separated; tls:// where the swarm's servers require TLS. */
  url: z.string().regex(/^(nats|tls):\/\/[^\s/,]+:\d+(,(nats|tls):\/\/[^\s/,]+:\d+)*$/, "nats://<host>:<port>[,nats://<host>:<port>…]"),
  role: z.enum(IDENTITIES.filter((i): i is WorkerRole => i !== "swarm") as [WorkerRole, ...WorkerRole[]]),
  user: z.string().min(1),
  password: z.string().min(16),
  runId: z.string(),
  /** The JetStream domain of the swarm's servers, when they have one: a node that joins through a leaf node of its own names it. */
  domain: z.string().regex(/^[A-Za-z0-9_-]+$/, "a JetStream domain: letters, digits, _ and -").optional(),
  /** The certificate (PEM) of the authority that signed the servers' certificates, when the swarm made one (--tls). */
  ca: z.string().includes("-----BEGIN CERTIFICATE-----").optional(),
});
export type CredsFile = z.infer<typeof CredsFile>;

export function writeCredsFile(file: string, creds: CredsFile): void {
  writePrivate(file, `${JSON.stringify(CredsFile.parse(creds), null, 2)}\n`);
}

export function readCredsFile(file: string): CredsFile {
  return readUserFile(file, CredsFile, {
    what: "a credentials file",
    missingHint: "get one with `npm run swarm -- creds --role <role> --out FILE` on the swarm's machine",
    hint: "use the file `npm run swarm -- creds` wrote, unchanged",
  });
}
