// WebP decoding with libwebp (@jsquash/webp, wasm), as PIL decodes through libwebp too: still images directly;
// for an animated file, the first frame on its canvas, as PIL's WebPAnimDecoder renders it (libwebp's decoder
// alone refuses animations). The canvas starts transparent black (libwebp zero-fills it at a key frame, whatever
// the file's background colour), and the first frame lands on it unblended.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** A reason a WebP cannot be decoded, worded to follow "cannot decode image NAME: ". */
export class WebpError extends Error {}

interface WebpModule {
  init(opts: { wasmBinary: Uint8Array }): Promise<void>;
  default(b: ArrayBuffer): Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
}
let webpDecoder: Promise<WebpModule['default']> | null = null;
// @jsquash/webp fetches its wasm by URL, which Node's fetch cannot do for file: URLs: we hand it the binary read
// from disk (emscripten's `wasmBinary`).
function getWebpDecoder(): Promise<WebpModule['default']> {
  webpDecoder ??= (async () => {
    const mod = (await import('@jsquash/webp/decode.js')) as unknown as WebpModule;
    const require = createRequire(import.meta.url);
    await mod.init({ wasmBinary: readFileSync(require.resolve('@jsquash/webp/codec/dec/webp_dec.wasm')) });
    return mod.default;
  })();
  return webpDecoder;
}

const ascii = (b: Uint8Array, p: number, n: number) => String.fromCharCode(...b.subarray(p, p + n));
const u24 = (b: Uint8Array, p: number) => b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
const u32 = (b: Uint8Array, p: number) => (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;

interface Chunk {
  fourcc: string;
  /** the whole chunk: header, payload and padding byte */
  bytes: Uint8Array;
  payload: Uint8Array;
}

/** The RIFF chunks in b[from, to). */
function chunks(b: Uint8Array, from: number, to: number): Chunk[] {
  const out: Chunk[] = [];
  for (let p = from; p + 8 <= to; ) {
    const size = u32(b, p + 4);
    const end = Math.min(to, p + 8 + size + (size & 1));
    out.push({ fourcc: ascii(b, p, 4), bytes: b.subarray(p, end), payload: b.subarray(p + 8, Math.min(to, p + 8 + size)) });
    p = end;
  }
  return out;
}

function riff(parts: Uint8Array[]): Uint8Array {
  const size = 4 + parts.reduce((s, x) => s + x.length, 0);
  const out = new Uint8Array(8 + size);
  out.set([0x52, 0x49, 0x46, 0x46, size & 255, (size >> 8) & 255, (size >> 16) & 255, size >>> 24, 0x57, 0x45, 0x42, 0x50]);
  let p = 12;
  for (const x of parts) {
    out.set(x, p);
    p += x.length;
  }
  return out;
}

async function decodeStill(bytes: Uint8Array): Promise<{ width: number; height: number; data: Uint8ClampedArray }> {
  const decode = await getWebpDecoder();
  // an exact-size copy: a Buffer's .buffer may be a shared pool, and its .slice() does not copy
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  try {
    return await decode(copy.buffer);
  } catch (e) {
    throw new WebpError(`corrupt or unsupported WebP (${(e as Error).message}); re-export it as PNG or JPEG`);
  }
}

/** Decodes WebP bytes to RGBA (EXIF orientation not applied); throws WebpError with the reason. */
export async function decodeWebpRgba(bytes: Uint8Array): Promise<{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }> {
  const top = chunks(bytes, 12, bytes.length);
  const vp8x = top[0]?.fourcc === 'VP8X' ? top[0].payload : null;
  if (!vp8x || vp8x.length < 10 || !(vp8x[0]! & 0x02)) return decodeStill(bytes); // not animated
  const anmf = top.find((c) => c.fourcc === 'ANMF');
  if (!anmf || anmf.payload.length < 16) throw new WebpError('corrupt animated WebP (no frame); re-export it as PNG or JPEG');
  const f = anmf.payload;
  const x = 2 * u24(f, 0), y = 2 * u24(f, 3);
  // the frame as a still image of its own: its ALPH (behind a VP8X that announces it) and VP8 / VP8L chunks
  const parts = chunks(f, 16, f.length).filter((c) => c.fourcc === 'ALPH' || c.fourcc === 'VP8 ' || c.fourcc === 'VP8L');
  const alph = parts.find((c) => c.fourcc === 'ALPH');
  const w1 = u24(f, 6), h1 = u24(f, 9);
  const header = alph ? [new Uint8Array([0x56, 0x50, 0x38, 0x58, 10, 0, 0, 0, 0x10, 0, 0, 0, w1 & 255, (w1 >> 8) & 255, w1 >> 16, h1 & 255, (h1 >> 8) & 255, h1 >> 16])] : [];
  const frame = await decodeStill(riff([...header, ...parts.map((c) => c.bytes)]));
  const W = u24(vp8x, 4) + 1, H = u24(vp8x, 7) + 1;
  const canvas = new Uint8Array(W * H * 4);
  for (let r = 0; r < frame.height && y + r < H; r++) {
    const n = Math.max(0, Math.min(frame.width, W - x));
    canvas.set(frame.data.subarray(r * frame.width * 4, (r * frame.width + n) * 4), ((y + r) * W + x) * 4);
  }
  return { width: W, height: H, data: canvas };
}
