import { inflateSync } from "node:zlib";

/** A decoded image: 8-bit RGBA, row by row. */
/** 40 megapixels: far more than any figure, far less than a node's memory. */
const MAX_PIXELS = 40_000_000;

export interface Pixels {
  width: number;
  height: number;
  /** width × height × 4 bytes: red, green, blue, alpha. */
  rgba: Uint8Array;
}

/** A file the figure check cannot read: not a PNG, or a kind of PNG it does not decode. */
export class PngError extends Error {
  override readonly name = "PngError";
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Samples per pixel of each colour type: grey, RGB, palette, grey + alpha, RGBA. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decodes a PNG of bit depth 8, not interlaced, in any of the five colour types: what matplotlib and most
 * plotting libraries write. Others are refused with a PngError that says what the file is.
 */
export function decodePng(bytes: Uint8Array): Pixels {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || SIGNATURE.some((b, i) => buf[i] !== b)) throw new PngError("not a PNG file (its first bytes are not the PNG signature)");
  let width = 0;
  let height = 0;
  let colourType = -1;
  let palette: Buffer | undefined;
  let transparency: Buffer | undefined;
  const data: Buffer[] = [];
  for (let at = 8; at + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString("latin1", at + 4, at + 8);
    const body = buf.subarray(at + 8, at + 8 + length);
    if (body.length < length) throw new PngError(`the PNG is cut short in its ${type} chunk`);
    at += 12 + length;
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const depth = body[8]!;
      colourType = body[9]!;
      if (depth !== 8) throw new PngError(`a PNG of bit depth ${depth} (only 8 is read)`);
      if (CHANNELS[colourType] === undefined) throw new PngError(`a PNG of colour type ${colourType}`);
      if (body[12] !== 0) throw new PngError("an interlaced PNG (only non-interlaced ones are read)");
    } else if (type === "PLTE") palette = body;
    else if (type === "tRNS") transparency = body;
    else if (type === "IDAT") data.push(body);
    else if (type === "IEND") break;
  }
  if (!width || !height || colourType < 0) throw new PngError("the PNG has no IHDR chunk");
  if (colourType === 3 && !palette) throw new PngError("a palette PNG without its PLTE chunk");
  // plot.py is generated code: a figure too large to be one, or a compression bomb, is refused before it is unpacked.
  if (width * height > MAX_PIXELS) throw new PngError(`a PNG of ${width}×${height} pixels, more than a figure has (at most ${MAX_PIXELS})`);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(data), { maxOutputLength: height * (width * CHANNELS[colourType]! + 1) });
  } catch (err) {
    throw new PngError(`the PNG's image data does not inflate: ${(err as Error).message}`);
  }
  const channels = CHANNELS[colourType]!;
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new PngError(`the PNG's image data is short: ${raw.length} bytes for ${width}×${height}`);
  const rgba = new Uint8Array(width * height * 4);
  let prev = new Uint8Array(stride);
  let line = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1);
    const filter = raw[start]!;
    for (let i = 0; i < stride; i++) {
      const x = raw[start + 1 + i]!;
      const a = i >= channels ? line[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      switch (filter) {
        case 0: line[i] = x; break;
        case 1: line[i] = (x + a) & 0xff; break;
        case 2: line[i] = (x + b) & 0xff; break;
        case 3: line[i] = (x + ((a + b) >> 1)) & 0xff; break;
        case 4: line[i] = (x + paeth(a, b, c)) & 0xff; break;
        default: throw new PngError(`row ${y} of the PNG has an unknown filter type ${filter}`);
      }
    }
    for (let px = 0; px < width; px++) {
      const o = (y * width + px) * 4;
      const s = px * channels;
      switch (colourType) {
        case 0: rgba.set([line[s]!, line[s]!, line[s]!, 255], o); break;
        case 2: rgba.set([line[s]!, line[s + 1]!, line[s + 2]!, 255], o); break;
        case 3: {
          const k = line[s]!;
          rgba.set([palette![k * 3] ?? 0, palette![k * 3 + 1] ?? 0, palette![k * 3 + 2] ?? 0, transparency?.[k] ?? 255], o);
          break;
        }
        case 4: rgba.set([line[s]!, line[s]!, line[s]!, line[s + 1]!], o); break;
        default: rgba.set([line[s]!, line[s + 1]!, line[s + 2]!, line[s + 3]!], o);
      }
    }
    [prev, line] = [line, prev];
  }
  return { width, height, rgba };
}
