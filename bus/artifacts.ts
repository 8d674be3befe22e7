import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { createHash } from "node:crypto";
import type { ObjectInfo } from "@nats-io/obj";
import type { Bus } from "./connection.js";
import { BusError } from "./errors.js";
import { inert } from "./inert.js";
import { retryBus } from "./retryBus.js";
import { nextStored, storedSubjects } from "./storedReads.js";
import { BUCKET_STREAMS } from "./subjects.js";

/** Stops the waiting for a bus that is away (a stopping worker passes its signal). */
export interface ArtifactOptions {
  signal?: AbortSignal;
}

/**
 * Where an idea's artifacts of one review round live: the paper as first written under `<runId>/<ideaId>/`, each
 * revision under `<runId>/<ideaId>/revision_<n>/`, so that every version and all its reviews are kept.
 */
export function roundPrefix(runId: string, ideaId: string, round = 0): string {
  return round === 0 ? `${runId}/${ideaId}` : `${runId}/${ideaId}/revision_${round}`;
}

/** Object names are `<runId>/<ideaId>/<path>`; the launching machine mirrors them into results/. */
// Each operation waits out an outage of the bus: an upload by name is safe to repeat, and a run's outputs
// must not be lost because the server restarted while they were on their way.
export async function putArtifact(bus: Bus, name: string, data: Uint8Array | string, opts: ArtifactOptions = {}): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await retryBus(`upload of ${name}`, () => bus.obj.putBlob({ name }, bytes), { log: bus.log, ...opts });
}

/**
 * One artifact, read chunk by chunk from the stream's leader (bus/storedReads.ts) and checked against its digest.
 * An artifact replaced while it was being read (its old chunks purged) is read again as it is now.
 */
export async function getArtifact(bus: Bus, name: string, opts: ArtifactOptions = {}): Promise<Uint8Array> {
  const data = await readArtifact(bus, name, opts);
  if (!data) throw new BusError(`artifact ${name} is not in the object store`);
  return data;
}

/** getArtifact, with undefined for an object that is not there (or was deleted). */
async function readArtifact(bus: Bus, name: string, opts: ArtifactOptions): Promise<Uint8Array | undefined> {
  for (let attempt = 1; ; attempt++) {
    const info = await retryBus(`lookup of ${name}`, () => bus.obj.info(name), { log: bus.log, ...opts });
    if (!info || info.deleted) return undefined;
    const data = await readChunks(bus, info, opts);
    if (typeof data !== "string") return data;
    const now = await retryBus(`lookup of ${name}`, () => bus.obj.info(name), { log: bus.log, ...opts });
    if (attempt >= 3 || !now || now.revision === info.revision) throw new BusError(`artifact ${name} is damaged in the object store: ${data}`);
  }
}

/** The object's bytes, or why they are not whole. */
async function readChunks(bus: Bus, info: ObjectInfo, opts: ArtifactOptions): Promise<Uint8Array | string> {
  const subject = `${BUCKET_STREAMS.artifacts.subjects}.C.${info.nuid}`;
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let seq = 1; parts.length < info.chunks; ) {
    const m = await nextStored(bus, BUCKET_STREAMS.artifacts.name, subject, seq, opts);
    if (!m) return `chunk ${parts.length + 1} of ${info.chunks} is missing`;
    parts.push(m.data);
    size += m.data.length;
    seq = m.seq + 1;
  }
  if (size !== info.size) return `it has ${size} bytes, not ${info.size}`;
  const data = Buffer.concat(parts);
  const want = Buffer.from(info.digest.replace(/^SHA-256=/, ""), "base64");
  if (!want.equals(createHash("sha256").update(data).digest())) return "its digest does not match";
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

export async function hasArtifact(bus: Bus, name: string, opts: ArtifactOptions = {}): Promise<boolean> {
  const info = await retryBus(`lookup of ${name}`, () => bus.obj.info(name), { log: bus.log, ...opts });
  return info !== null && !info.deleted;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** Uploads every file under `dir` as `<prefix>/<relative path>`; returns the object names. */
export async function putDirectory(
  bus: Bus,
  dir: string,
  prefix: string,
  filter: (rel: string) => boolean = () => true,
  opts: ArtifactOptions = {},
): Promise<string[]> {
  const names: string[] = [];
  for (const file of await walk(dir)) {
    const rel = relative(dir, file).split(sep).join("/");
    if (!filter(rel)) continue;
    const name = `${prefix}/${rel}`;
    await putArtifact(bus, name, await readFile(file), opts);
    names.push(name);
  }
  return names;
}

/** Longest path below the prefix, and longest single name in it (in bytes, as file systems count). */
const MAX_PATH_CHARS = 512;
const MAX_PART_BYTES = 255;

/**
 * Why an object's name (below its prefix) may not become a file: anyone who can write to the object store
 * names these files, so a name may not climb out of the folder, be absolute, or carry control characters.
 */
function unsafeFileName(rel: string): string | undefined {
  if (rel.length > MAX_PATH_CHARS) return `is over ${MAX_PATH_CHARS} characters long`;
  if (inert(rel, MAX_PATH_CHARS) !== rel || rel.includes("\\")) return "has control, invisible or backslash characters";
  const parts = rel.split("/");
  if (parts.some((part) => part === ".." || part === "." || part === "")) return "is absolute, or has an empty, . or .. part";
  if (parts.some((part) => Buffer.byteLength(part) > MAX_PART_BYTES)) return `has a part over ${MAX_PART_BYTES} bytes`;
  return undefined;
}

/**
 * Downloads every object whose name starts with `prefix/` into `dir`, keeping the rest of the path; an object
 * whose name is not a safe file name there is skipped, with a warning.
 */
export async function getDirectory(bus: Bus, prefix: string, dir: string, opts: ArtifactOptions = {}): Promise<string[]> {
  const written: string[] = [];
  const metas = `${BUCKET_STREAMS.artifacts.subjects}.M.`;
  // An object's name is in its meta subject (base64): only the objects under the prefix are looked up.
  for (const subject of await storedSubjects(bus, BUCKET_STREAMS.artifacts.name, `${metas}>`, opts)) {
    const name = Buffer.from(subject.slice(metas.length), "base64url").toString("utf8");
    if (!name.startsWith(`${prefix}/`)) continue;
    const rel = name.slice(prefix.length + 1);
    const why = unsafeFileName(rel);
    if (why) {
      bus.log.warn({ name: inert(name, 300) }, `not mirroring artifact ${inert(name, 120)}: its name ${why}`);
      continue;
    }
    const data = await readArtifact(bus, name, opts);
    if (!data) continue;
    const target = join(dir, rel);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, data);
    written.push(target);
  }
  return written;
}
