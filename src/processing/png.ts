// PNG byte streams as PIL reads them, rewritten for pngjs, which is stricter. Pillow 9.4 reads the chunks before
// the image data (checking their CRCs), then inflates the first run of IDAT chunks until the image is complete:
// data after the end of the zlib stream, IDATs after other chunks, and anything after IEND are never looked at
// (and chunks after the image data are read without a CRC check). pngjs refuses all of these, so it gets the
// chunks before the image, one IDAT holding exactly the zlib stream, and IEND.
// Not matched: files PIL refuses that we decode (transformers' load_image would raise on them): APNG frame
// sequence-number errors or a truncated fcTL, an iCCP chunk naming an unknown compression method, and zTXt/iTXt
// text over PIL's 1 MB per chunk (or 64 MB in all).
import { inflateSync } from 'node:zlib';
import { crc32, pngChunks, u32be } from './bytes.js';

/** A reason a PNG cannot be decoded, worded to follow "cannot decode image NAME: ". */
export class PngError extends Error {}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Bytes of filtered scanlines the image needs (Adam7: the seven passes' rows), or null for a bad header. */
function rawSize(ihdr: Uint8Array): number | null {
  if (ihdr.length < 13) return null;
  const w = u32be(ihdr, 0), h = u32be(ihdr, 4), depth = ihdr[8]!, channels = CHANNELS[ihdr[9]!];
  if (!channels) return null;
  const row = (width: number) => (width === 0 ? 0 : 1 + Math.ceil((width * channels * depth) / 8));
  if (ihdr[12] !== 1) return h * row(w);
  let n = 0;
  for (const [x0, y0, dx, dy] of [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const) {
    n += Math.ceil(Math.max(0, h - y0) / dy) * row(Math.ceil(Math.max(0, w - x0) / dx));
  }
  return n;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(Buffer.from(type, 'latin1'), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** The stream pngjs can read with the pixels PIL reads from `b`. */
export function pngForDecoder(b: Uint8Array): Uint8Array {
  const chunks = pngChunks(b);
  const first = chunks.findIndex((c) => c.type === 'IDAT' || c.type === 'IEND');
  if (first < 0 || chunks[first]!.type !== 'IDAT') return b; // no image data: pngjs says what is wrong
  let end = first;
  while (end < chunks.length && chunks[end]!.type === 'IDAT') end++;
  const data = Buffer.concat(chunks.slice(first, end).map((c) => c.payload));
  const need = rawSize(chunks.find((c) => c.type === 'IHDR')?.payload ?? new Uint8Array(0));
  let zlibLength = data.length;
  if (need !== null) {
    try {
      // (inflateSync stops at the end of the stream and says how much input it took)
      const r = inflateSync(data, { info: true, maxOutputLength: Math.max(1, need) }) as unknown as { engine: { bytesWritten: number } };
      zlibLength = r.engine.bytesWritten;
    } catch {
      // a stream longer than the image, or a broken one: pngjs gets it whole (and says what is wrong)
    }
  }
  return Buffer.concat([b.subarray(0, 8), ...chunks.slice(0, first).map((c) => c.bytes), chunk('IDAT', data.subarray(0, zlibLength)), chunk('IEND', new Uint8Array(0))]);
}
