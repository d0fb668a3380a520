// NumPy .npy writing (format 1.0) of a little-endian f32 matrix in C order, as np.save writes it, so that
// `np.load("out.npy")` gives the array back: the magic "\x93NUMPY", version 1.0, a 2-byte little-endian header
// length, the header (a Python dict literal padded with spaces and ended by "\n" so the data starts 64-byte
// aligned), then the raw data. The file is written atomically (never half-written under its name).
import { writeSync } from 'node:fs';
import { VlmkitError } from '../errors.js';
import { writeFileAtomic } from './safetensors-write.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;

/** The .npy preamble (magic, version, header) of an f32 C-order array of `shape`. */
export function npyHeader(shape: readonly number[]): Uint8Array {
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new VlmkitError('E_ARGS', `npy: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
  // Python's tuple repr: a one-element tuple keeps its trailing comma
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${tuple}, }`;
  const fixed = MAGIC.length + 2 + 2; // magic, version, header length
  const total = Math.ceil((fixed + dict.length + 1) / ALIGN) * ALIGN;
  const hlen = total - fixed;
  // format 1.0 holds the header length in 2 bytes; a shape this long never comes near it
  if (hlen > 0xffff) throw new VlmkitError('E_ARGS', `npy: a header of ${hlen} bytes does not fit format 1.0`);
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = hlen & 0xff;
  out[9] = hlen >> 8;
  const text = dict.padEnd(hlen - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[fixed + i] = text.charCodeAt(i);
  return out;
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
}

/**
 * Writes the rows (each of the same length D) as an [N, D] '<f4' array to `path`, atomically. N = 0 writes an
 * empty [0, D] array only when `dim` is given.
 */
export function writeNpyRows(path: string, rows: readonly Float32Array[], dim?: number): void {
  const D = rows[0]?.length ?? dim;
  if (D === undefined) throw new VlmkitError('E_ARGS', `npy: no rows to write to ${path} and no width given`);
  rows.forEach((r, i) => {
    if (r.length !== D) throw new VlmkitError('E_SHAPE', `npy: row ${i} has ${r.length} values, row 0 has ${D}; every row of ${path} must have the same width`);
  });
  if (!littleEndian()) throw new VlmkitError('E_ARGS', 'npy: this writer needs a little-endian machine');
  const header = npyHeader([rows.length, D]);
  writeFileAtomic(path, (fd) => {
    writeAll(fd, header);
    for (const r of rows) writeAll(fd, new Uint8Array(r.buffer, r.byteOffset, r.byteLength));
  });
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.byteLength) {
    const n = writeSync(fd, b, done, b.byteLength - done);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}
