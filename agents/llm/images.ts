import { createHash } from "node:crypto";
import type { Bus } from "../../bus/connection.js";
import { getArtifact, hasArtifact } from "../../bus/artifacts.js";
import type { Logger } from "../../bus/logger.js";
import type { ChatMessage, ImagePart } from "./types.js";

/** The most images one request carries: each costs about a thousand input tokens, and a paper's few figures are what matters. */
export const MAX_IMAGES = 8;
/** Anthropic refuses an image over 5 MB; a figure that large is shown to no model. */
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

const MEDIA_TYPES: Record<string, ImagePart["mediaType"]> = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg" };

const digests = new WeakMap<ImagePart, { bytes: number; sha256: string }>();

/** The image's size in bytes and the sha256 of those bytes (not of their base64). */
export function imageDigest(image: ImagePart): { bytes: number; sha256: string } {
  let d = digests.get(image);
  if (!d) {
    const bytes = Buffer.from(image.base64, "base64");
    d = { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
    digests.set(image, d);
  }
  return d;
}

/** How an image appears in the log of exchanges: its name, size and digest, never its bytes. */
export function imageLine(image: ImagePart): string {
  const { bytes, sha256 } = imageDigest(image);
  return `[image ${image.name}, ${bytes} bytes, sha256 ${sha256.slice(0, 12)}]`;
}

/** A message's content as the log records it: its text, then one line per image it carried. */
export function loggedContent(m: ChatMessage): string {
  return m.images?.length ? [m.content, ...m.images.map(imageLine)].join("\n") : m.content;
}

/** Recorded content without the image lines: what a model that sees no images was asked. */
export const withoutImageLines = (content: string) => content.replace(/\n\[image [^\n]*, \d+ bytes, sha256 [0-9a-f]{12}\]/g, "");

/**
 * The messages as a model that takes no images is sent them: without their images. `dropped` is told how many
 * were left out (once per caller is enough: the caller keeps that count).
 */
export function dropImages(messages: ChatMessage[], dropped: (count: number) => void): ChatMessage[] {
  const count = messages.reduce((n, m) => n + (m.images?.length ?? 0), 0);
  if (!count) return messages;
  dropped(count);
  return messages.map(({ images: _images, ...m }) => m);
}

/** A warning, once per provider or client, that a model without `vision` was given images, which were not sent. */
export function dropWarner(log: Logger, who: string): (count: number) => void {
  let warned = false;
  return (count) => {
    if (warned) return;
    warned = true;
    log.warn({ model: who, images: count }, `${who} does not take images (config/models.json gives it no "vision": true): ${count} image(s) dropped from the request, not sent`);
  };
}

/**
 * A task's messages with images shown: they go with the first user turn, the task's material, which a provider
 * caches with them as one prefix across calls that share it (a review and its reflections).
 */
export function withImages(messages: ChatMessage[], images: ImagePart[]): ChatMessage[] {
  if (!images.length) return messages;
  const first = messages.findIndex((m) => m.role === "user");
  if (first < 0) return messages;
  return messages.map((m, i) => (i === first ? { ...m, images: [...(m.images ?? []), ...images] } : m));
}

/**
 * An idea's figures (files under `<runId>/<ideaId>/`) as images, at most `max` (MAX_IMAGES): a figure whose
 * artifact is missing, whose format no model takes, or that is too large is left out with a warning.
 */
export async function figureImages(
  bus: Bus,
  where: { runId: string; ideaId: string },
  figures: string[],
  opts: { log: Logger; signal?: AbortSignal; max?: number },
): Promise<ImagePart[]> {
  const max = opts.max ?? MAX_IMAGES;
  const signal = opts.signal ? { signal: opts.signal } : {};
  const out: ImagePart[] = [];
  for (const figure of figures) {
    if (out.length >= max) {
      opts.log.warn({ ideaId: where.ideaId, shown: out.map((i) => i.name), left: figures.slice(figures.indexOf(figure)) }, `only ${max} figures are shown to the model; the rest are left out`);
      break;
    }
    const mediaType = MEDIA_TYPES[figure.split(".").pop()?.toLowerCase() ?? ""];
    const name = `${where.runId}/${where.ideaId}/${figure}`;
    if (!mediaType) {
      opts.log.warn({ ideaId: where.ideaId, figure }, `figure ${figure} is not PNG or JPEG; it is not shown to the model`);
      continue;
    }
    if (!(await hasArtifact(bus, name, signal))) {
      opts.log.warn({ ideaId: where.ideaId, figure }, `figure ${figure} is not in the object store (${name}); it is not shown to the model`);
      continue;
    }
    const bytes = await getArtifact(bus, name, signal);
    if (bytes.length > MAX_IMAGE_BYTES) {
      opts.log.warn({ ideaId: where.ideaId, figure, bytes: bytes.length }, `figure ${figure} has ${bytes.length} bytes, over the ${MAX_IMAGE_BYTES} a model takes; it is not shown`);
      continue;
    }
    out.push({ name: figure, mediaType, base64: Buffer.from(bytes).toString("base64") });
  }
  return out;
}
