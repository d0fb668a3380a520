// ggml's Q4_0, as quantize_row_q4_0_ref and dequantize_row_q4_0 define it (ggml-quants.c), in f32 arithmetic:
// per block of 32 values, `max` is the value of largest magnitude (the first one on a tie), d = max / -8,
// id = d ? 1 / d : 0, stored d as fp16 (round to nearest even); q_j = min(15, trunc(x_j * id + 8.5)) in 0..15.
// Byte j of the 16 holds q_j in its low nibble and q_{j+16} in its high nibble. Value j is fp16(d) * (q_j - 8),
// exact in f32. The scale's sign makes the largest-magnitude value land on -8 exactly (it uses the full range).
import { f16ToF32, f32ToF16 } from '../dtype.js';

export const Q4_0_VALUES = 32;
export const Q4_0_BYTES = 18;

const f32 = Math.fround;

/**
 * Quantizes x (length a multiple of 32) into `out` (x.length / 32 * 18 bytes). Returns the index of the first
 * value that cannot be stored (not finite, or a block whose scale overflows fp16), or -1 when all were.
 */
export function quantizeQ4_0(x: Float32Array, out: Uint8Array): number {
  const nb = x.length / Q4_0_VALUES;
  for (let b = 0; b < nb; b++) {
    const x0 = b * Q4_0_VALUES, o = b * Q4_0_BYTES;
    let amax = 0, max = 0;
    for (let j = 0; j < Q4_0_VALUES; j++) {
      const v = x[x0 + j];
      if (!Number.isFinite(v)) return x0 + j;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f32(max / -8);
    const id = d ? f32(1 / d) : 0;
    const h = f32ToF16(d);
    if ((h & 0x7c00) === 0x7c00) return x0;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      // (int8_t)(v + 8.5f): truncation toward zero of a value in [0.5, 16.5]
      const lo = Math.min(15, Math.trunc(f32(f32(x[x0 + j] * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(f32(f32(x[x0 + 16 + j] * id) + 8.5)));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return -1;
}

/** Decodes packed Q4_0 blocks into out (32 values per 18 bytes). */
export function dequantizeQ4_0(bytes: Uint8Array, out: Float32Array): void {
  const nb = out.length / Q4_0_VALUES;
  for (let b = 0; b < nb; b++) {
    const o = b * Q4_0_BYTES, y = b * Q4_0_VALUES;
    const d = f16ToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 2 + j];
      out[y + j] = f32(d * ((q & 15) - 8));
      out[y + 16 + j] = f32(d * ((q >> 4) - 8));
    }
  }
}
