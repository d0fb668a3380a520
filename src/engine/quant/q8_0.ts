// ggml's Q8_0, as quantize_row_q8_0_ref and dequantize_row_q8_0 define it (ggml-quants.c), in f32 arithmetic:
// per block of 32 values, amax = max |x|, d = amax / 127, id = d ? 1 / d : 0, stored d as fp16 (round to nearest
// even), q_j = roundf(x_j * id) (half away from zero) as int8. Value j of a block is fp16(d) * q_j, exact in f32.
import { f16ToF32, f32ToF16 } from '../dtype.js';

export const Q8_0_VALUES = 32;
export const Q8_0_BYTES = 34;

const f32 = Math.fround;
const roundf = (x: number) => (x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5));

/**
 * Quantizes x (length a multiple of 32) into `out` (x.length / 32 * 34 bytes). Returns the index of the first
 * value that cannot be stored (not finite, or a block whose scale overflows fp16), or -1 when all were.
 */
export function quantizeQ8_0(x: Float32Array, out: Uint8Array): number {
  const nb = x.length / Q8_0_VALUES;
  for (let b = 0; b < nb; b++) {
    const x0 = b * Q8_0_VALUES, o = b * Q8_0_BYTES;
    let amax = 0;
    for (let j = 0; j < Q8_0_VALUES; j++) {
      const v = x[x0 + j];
      if (!Number.isFinite(v)) return x0 + j;
      amax = Math.max(amax, Math.abs(v));
    }
    const d = f32(amax / 127);
    const id = d ? f32(1 / d) : 0;
    const h = f32ToF16(d);
    if ((h & 0x7c00) === 0x7c00) return x0;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < Q8_0_VALUES; j++) out[o + 2 + j] = roundf(f32(x[x0 + j] * id)) & 0xff;
  }
  return -1;
}

/** Decodes packed Q8_0 blocks into out (32 values per 34 bytes). */
export function dequantizeQ8_0(bytes: Uint8Array, out: Float32Array): void {
  const nb = out.length / Q8_0_VALUES;
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BYTES;
    const d = f16ToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < Q8_0_VALUES; j++) out[b * Q8_0_VALUES + j] = f32(d * ((bytes[o + 2 + j] << 24) >> 24));
  }
}
