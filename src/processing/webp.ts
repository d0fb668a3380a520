// WebP decoding with libwebp (@jsquash/webp, wasm), as PIL decodes through libwebp too: still images directly;
// for an animated file, the first frame on its canvas, as PIL's WebPAnimDecoder renders it (libwebp's decoder
// alone refuses animations). The canvas starts transparent black (libwebp zero-fills it at a key frame, whatever
// the file's background colour), and the first frame lands on it unblended.
import { jsquashDecoder, ownBuffer, riffChunks, u24le } from './bytes.js';

/** A reason a WebP cannot be decoded, worded to follow "cannot decode image NAME: ". */
export class WebpError extends Error {}

type WebpDecode = (b: ArrayBuffer) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
const getWebpDecoder = jsquashDecoder<WebpDecode>('@jsquash/webp/decode.js', '@jsquash/webp/codec/dec/webp_dec.wasm');

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
  try {
    return await decode(ownBuffer(bytes));
  } catch (e) {
    throw new WebpError(`corrupt or unsupported WebP (${(e as Error).message}); re-export it as PNG or JPEG`);
  }
}

/** Decodes WebP bytes to RGBA (EXIF orientation not applied); throws WebpError with the reason. */
export async function decodeWebpRgba(bytes: Uint8Array): Promise<{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }> {
  const top = riffChunks(bytes, 12);
  const vp8x = top[0]?.type === 'VP8X' ? top[0].payload : null;
  if (!vp8x || vp8x.length < 10 || !(vp8x[0]! & 0x02)) return decodeStill(bytes); // not animated
  const anmf = top.find((c) => c.type === 'ANMF');
  if (!anmf || anmf.payload.length < 16) throw new WebpError('corrupt animated WebP (no frame); re-export it as PNG or JPEG');
  const f = anmf.payload;
  const x = 2 * u24le(f, 0), y = 2 * u24le(f, 3);
  // the frame as a still image of its own: its ALPH (behind a VP8X that announces it) and VP8 / VP8L chunks
  const parts = riffChunks(f, 16).filter((c) => c.type === 'ALPH' || c.type === 'VP8 ' || c.type === 'VP8L');
  const alph = parts.find((c) => c.type === 'ALPH');
  const w1 = u24le(f, 6), h1 = u24le(f, 9);
  const header = alph ? [new Uint8Array([0x56, 0x50, 0x38, 0x58, 10, 0, 0, 0, 0x10, 0, 0, 0, w1 & 255, (w1 >> 8) & 255, w1 >> 16, h1 & 255, (h1 >> 8) & 255, h1 >> 16])] : [];
  const frame = await decodeStill(riff([...header, ...parts.map((c) => c.bytes)]));
  const W = u24le(vp8x, 4) + 1, H = u24le(vp8x, 7) + 1;
  const canvas = new Uint8Array(W * H * 4);
  for (let r = 0; r < frame.height && y + r < H; r++) {
    const n = Math.max(0, Math.min(frame.width, W - x));
    canvas.set(frame.data.subarray(r * frame.width * 4, (r * frame.width + n) * 4), ((y + r) * W + x) * 4);
  }
  return { width: W, height: H, data: canvas };
}
