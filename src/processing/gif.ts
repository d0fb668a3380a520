// GIF: the first frame, as Pillow 9.4's GifImagePlugin reads it. Our own decoder because omggif's LZW loop never
// ended on a 49-byte corrupt file (and it took a palette from offset 0 when a file had none, and refused files that
// carry another GIF after their first frame). Every loop here moves forward through the bytes or fills pixels of a
// frame whose size was checked first, so any input ends. What PIL does, and so do we:
//  - blocks are read up to the first image descriptor; bytes it does not know there are skipped one at a time;
//    nothing after the first frame's data is read;
//  - a first frame reaching past the logical screen grows the image to hold it;
//  - the canvas around the frame holds the transparency index, else index 0;
//  - colours come from the frame's palette (local, else global); an index past its end, or every index when the
//    file has no palette, shows as grey (i, i, i) (PIL's palette starts as that ramp; no palette is mode "L");
//  - LZW data that ends before the frame is full, or holds a code not yet defined, is refused (PIL: "image file
//    is truncated", "broken data stream").
import { u16le } from './bytes.js';

/** A reason a GIF cannot be decoded, worded to follow "cannot decode image NAME: ". */
export class GifError extends Error {}

/** The first frame's place and data, and the image size PIL reports. */
export interface GifLayout {
  width: number;
  height: number;
  frame: { x: number; y: number; width: number; height: number; interlaced: boolean };
  /** the palette's bytes (local, else global), empty when the file has none */
  palette: Uint8Array;
  transparent: number | null;
  /** offset of the LZW minimum code size byte (the data sub-blocks follow) */
  dataAt: number;
}

/** Offset after a run of data sub-blocks starting at p (a zero-length block ends them), or -1 when cut short. */
function skipSubBlocks(b: Uint8Array, p: number): number {
  while (p < b.length) {
    const n = b[p]!;
    if (n === 0) return p + 1;
    p += 1 + n;
  }
  return -1;
}

const bad = (why: string) => new GifError(`corrupt GIF (${why}); re-export it as PNG or JPEG`);

/** Reads the screen descriptor and the blocks before the first image; throws GifError when there is none. */
export function readGifLayout(b: Uint8Array): GifLayout {
  if (b.length < 13) throw bad('the header is cut short');
  let width = u16le(b, 6);
  let height = u16le(b, 8);
  const flags = b[10]!;
  let p = 13;
  let global: Uint8Array = new Uint8Array(0);
  if (flags & 0x80) {
    global = b.subarray(p, p + (3 << ((flags & 7) + 1)));
    p += 3 << ((flags & 7) + 1);
  }
  let transparent: number | null = null;
  while (p < b.length) {
    const tag = b[p++]!;
    if (tag === 0x3b) break; // trailer
    if (tag === 0x21) {
      if (p >= b.length) break;
      const label = b[p++]!;
      if (label === 0xf9 && p + 4 < b.length && b[p]! >= 4) transparent = b[p + 1]! & 1 ? b[p + 4]! : null; // graphic control
      p = skipSubBlocks(b, p);
      if (p < 0) break;
    } else if (tag === 0x2c) {
      if (p + 9 > b.length) break;
      const x = u16le(b, p), y = u16le(b, p + 2), w = u16le(b, p + 4), h = u16le(b, p + 6);
      const f = b[p + 8]!;
      p += 9;
      let palette = global;
      if (f & 0x80) {
        palette = b.subarray(p, p + (3 << ((f & 7) + 1)));
        p += 3 << ((f & 7) + 1);
      }
      if (p >= b.length) break;
      width = Math.max(width, x + w);
      height = Math.max(height, y + h);
      return { width, height, frame: { x, y, width: w, height: h, interlaced: (f & 0x40) !== 0 }, palette, transparent, dataAt: p };
    }
    // any other byte: skipped, as PIL does
  }
  throw bad('no image in the file');
}

/** The frame's rows in the order the data stores them (interlaced: every 8th from 0, 8th from 4, 4th from 2, 2nd from 1). */
function rowOrder(h: number, interlaced: boolean): Int32Array {
  const rows = new Int32Array(h);
  if (!interlaced) {
    for (let i = 0; i < h; i++) rows[i] = i;
    return rows;
  }
  let i = 0;
  for (const [start, step] of [[0, 8], [4, 8], [2, 4], [1, 2]] as const) for (let r = start; r < h; r += step) rows[i++] = r;
  return rows;
}

/** LZW-decodes exactly n palette indices from the data sub-blocks at `at` (after the minimum code size byte). */
function lzwDecode(b: Uint8Array, minCodeSize: number, at: number, n: number): Uint8Array {
  if (minCodeSize > 11) throw bad(`LZW code size ${minCodeSize}, over 11`);
  const out = new Uint8Array(n);
  const clear = 1 << minCodeSize;
  const eoi = clear + 1;
  const prefix = new Int16Array(4096);
  const suffix = new Uint8Array(4096);
  const length = new Uint16Array(4096);
  for (let i = 0; i < clear; i++) {
    suffix[i] = i;
    length[i] = 1;
  }
  let size = minCodeSize + 1;
  let next = eoi + 1;
  let prev = -1;
  let o = 0;
  // the bit reader walks the sub-blocks forward: each code takes `size` >= 1 bits, so the loop ends with the data
  let block = 0; // bytes left in the current sub-block
  let p = at;
  let acc = 0;
  let bits = 0;
  while (o < n) {
    while (bits < size) {
      if (block === 0) {
        if (p >= b.length || b[p] === 0) throw new GifError('truncated GIF (its data ends before the image does); download or export it again');
        block = b[p++]!;
      }
      if (p >= b.length) throw new GifError('truncated GIF (its data ends before the image does); download or export it again');
      acc |= b[p++]! << bits;
      bits += 8;
      block--;
    }
    const code = acc & ((1 << size) - 1);
    acc >>>= size;
    bits -= size;
    if (code === clear) {
      size = minCodeSize + 1;
      next = eoi + 1;
      prev = -1;
      continue;
    }
    if (code === eoi) throw new GifError('truncated GIF (its data ends before the image does); download or export it again');
    if (code > next || (code === next && prev < 0)) throw bad('an LZW code that is not defined yet');
    // the string of `code`, or for code === next (not in the table yet) prev's string plus its own first byte;
    // written back to front, clipped to the frame (prefix codes are always smaller, so the walk ends)
    const known = code < next;
    const c = known ? code : prev;
    const len = length[c]!;
    for (let q = o + len - 1, cc = c; q >= o; q--, cc = prefix[cc]!) if (q < n) out[q] = suffix[cc]!;
    const first = out[o]!;
    if (!known && o + len < n) out[o + len] = first;
    if (prev >= 0 && next < 4096) {
      prefix[next] = prev;
      suffix[next] = first;
      length[next] = length[prev]! + 1;
      next++;
      if (next === 1 << size && size < 12) size++;
    }
    prev = code;
    o = Math.min(n, o + len + (known ? 0 : 1));
  }
  return out;
}

/** Decodes the first frame to RGBA on its canvas (alpha 0 where the transparency index shows). */
export function decodeGifRgba(b: Uint8Array): { width: number; height: number; data: Uint8Array } {
  const g = readGifLayout(b);
  const { width: W, height: H, frame: f, palette } = g;
  if (W === 0 || H === 0) throw bad('the image has no pixels');
  const indices = new Uint8Array(W * H).fill(g.transparent ?? 0);
  if (f.width > 0 && f.height > 0) {
    const data = lzwDecode(b, b[g.dataAt]!, g.dataAt + 1, f.width * f.height);
    const rows = rowOrder(f.height, f.interlaced);
    for (let i = 0; i < f.height; i++) indices.set(data.subarray(i * f.width, (i + 1) * f.width), (f.y + rows[i]!) * W + f.x);
  }
  const colours = palette.length / 3;
  const rgba = new Uint8Array(W * H * 4);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    const o = i * 4;
    if (k < colours) rgba.set(palette.subarray(k * 3, k * 3 + 3), o);
    else rgba[o] = rgba[o + 1] = rgba[o + 2] = k;
    rgba[o + 3] = k === g.transparent ? 0 : 255;
  }
  return { width: W, height: H, data: rgba };
}
