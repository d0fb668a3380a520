// Reading image containers: fixed-width integers, four-character codes, PNG and RIFF (WebP) chunk lists, and
// the @jsquash wasm decoders. Shared by the decoders (decode.ts, jpeg.ts, webp.ts), the header reader (size.ts)
// and the EXIF reader (exif.ts).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** Bytes [p, p + n) as latin-1 text (four-character codes, PNG text chunks of any length). */
export function ascii(b: Uint8Array, p: number, n: number): string {
  const s = b.subarray(p, p + n);
  return Buffer.from(s.buffer, s.byteOffset, s.length).toString('latin1');
}
export const u16le = (b: Uint8Array, p: number): number => b[p]! | (b[p + 1]! << 8);
export const u24le = (b: Uint8Array, p: number): number => b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
export const u32le = (b: Uint8Array, p: number): number => (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
export const u32be = (b: Uint8Array, p: number): number => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

export interface Chunk {
  type: string;
  /** the whole chunk as stored: header, payload and (PNG) CRC or (RIFF) padding byte */
  bytes: Uint8Array;
  payload: Uint8Array;
}

/** The chunks of a PNG stream (length, type, data, CRC), after the signature; cut short where the bytes end. */
export function pngChunks(b: Uint8Array): Chunk[] {
  const out: Chunk[] = [];
  for (let p = 8; p + 12 <= b.length; ) {
    const len = u32be(b, p);
    out.push({ type: ascii(b, p + 4, 4), bytes: b.subarray(p, Math.min(b.length, p + 12 + len)), payload: b.subarray(p + 8, Math.min(b.length, p + 8 + len)) });
    p += 12 + len;
  }
  return out;
}

/** The RIFF chunks (fourcc, little-endian size, payload, padding to even) in b[from, to). */
export function riffChunks(b: Uint8Array, from: number, to = b.length): Chunk[] {
  const out: Chunk[] = [];
  for (let p = from; p + 8 <= to; ) {
    const size = u32le(b, p + 4);
    const end = Math.min(to, p + 8 + size + (size & 1));
    out.push({ type: ascii(b, p, 4), bytes: b.subarray(p, end), payload: b.subarray(p + 8, Math.min(to, p + 8 + size)) });
    p = end;
  }
  return out;
}

/**
 * An @jsquash codec's decode function, its module initialised once. @jsquash fetches its wasm by URL, which
 * Node's fetch cannot do for file: URLs: we hand emscripten the binary read from disk (`wasmBinary`), and
 * silence the codec's own printing (its errors come back as exceptions).
 */
export function jsquashDecoder<F>(modulePath: string, wasmPath: string): () => Promise<F> {
  let decoder: Promise<F> | null = null;
  return () => {
    decoder ??= (async () => {
      const mod = (await import(modulePath)) as { init(o: object): Promise<void>; default: F };
      const wasmBinary = readFileSync(createRequire(import.meta.url).resolve(wasmPath));
      await mod.init({ wasmBinary, print: () => {}, printErr: () => {} });
      return mod.default;
    })();
    return decoder;
  };
}

/** An exact-size copy's ArrayBuffer: a Buffer's .buffer may be a shared pool, and its .slice() does not copy. */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as PNG chunks carry it (zlib.crc32 needs Node 20.15). */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
