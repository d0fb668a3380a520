// bitsandbytes' NF4 (functional.py quantize_4bit / dequantize_4bit with quant_type "nf4"), in f32 arithmetic:
// the flattened weight in blocks of 64, absmax = max |x| per block, each value scaled by 1 / absmax and given the
// nearest of the 16 NF4 codes (a value on a midpoint takes the lower code, as the CUDA kernel's `x > midpoint`
// tree does), two codes per byte with the FIRST element of the pair in the HIGH nibble. Value = code * absmax.
//
// Double quantization (compress_statistics=True): offset = mean(absmax); absmax - offset is quantized blockwise
// (blocks of 256) with the signed dynamic 8-bit map (create_dynamic_map), each block keeping its fp32 absmax2;
// absmax is then read back as map[q] * absmax2 + offset. The 4-bit codes always come from the exact absmax.
//
// Our packed layout (the weight's storage and the `bytes` a file's tensors are assembled from), n = out * in:
//   codes       u8  [n / 2]
//   plain:      absmax  f32 [n / 64]
//   double:     qabsmax u8  [n / 64], zero padding to a multiple of 4 bytes, absmax2 f32 [ceil(n / 64 / 256)],
//               offset f32, map f32 [256]
// All little-endian. The offset is the mean in float64 rounded to f32 (torch sums f32 pairwise; the two agree to
// an ulp, and the offset is stored, so a file read back is exact either way).
export const NF4_VALUES = 64;
export const NF4_DQ_BLOCK = 256;

const f32 = Math.fround;

/** The 16 NF4 code values (bitsandbytes get_4bit_type("nf4")), as f32. */
export const NF4_CODE: Float32Array = new Float32Array([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

// the 15 decision points between neighbouring codes (the literals of bitsandbytes' dQuantizeNF4, as f32)
const NF4_MID = new Float32Array(15).map((_, i) => (NF4_CODE[i] + NF4_CODE[i + 1]) / 2);

/** The NF4 code of a value already scaled into [-1, 1]. */
export function nf4Code(v: number): number {
  let c = 0;
  while (c < 15 && v > NF4_MID[c]) c++;
  return c;
}

// torch.linspace in f32 as its CPU kernel computes it: the first half from start, the second half back from end.
function linspaceF32(start: number, end: number, steps: number): number[] {
  const s = f32(start), e = f32(end), step = f32(f32(e - s) / (steps - 1)), half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) => (i < half ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)))));
}

/**
 * bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponents i = 0..6,
 * 2^i fractions (midpoints of linspace(0.1, 1, 2^i + 1)) times ±10^(i - 6), then 0 and 1, sorted: 256 values.
 */
export function dynamicMap(): Float32Array {
  const data: number[] = [];
  for (let i = 0; i < 7; i++) {
    const b = linspaceF32(0.1, 1, 2 ** i + 1);
    const means = b.slice(0, -1).map((v, j) => f32(f32(v + b[j + 1]) / 2));
    const scale = f32(10 ** (i - 6));
    for (const m of means) data.push(f32(scale * m));
    for (const m of means) data.push(f32(-scale * m));
  }
  data.push(0, 1);
  return new Float32Array(data.sort((a, b) => a - b));
}

export const DYNAMIC_MAP: Float32Array = dynamicMap();
const DYN_MID = new Float32Array(255).map((_, i) => f32((DYNAMIC_MAP[i] + DYNAMIC_MAP[i + 1]) * 0.5));
const DYN_ZERO = DYNAMIC_MAP.indexOf(0);

/** The nearest entry of the dynamic map to v in [-1, 1] (on a midpoint, the lower one). */
function dynamicCode(v: number): number {
  let lo = 0, hi = 255; // first midpoint index with v <= DYN_MID[i]
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v > DYN_MID[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Byte layout of an NF4 weight of n values. */
export interface Nf4Layout {
  blocks: number;
  doubleQuant: boolean;
  codes: number;
  /** byte offsets of the sections */
  absmax: number;
  qabsmax: number;
  absmax2: number;
  offset: number;
  map: number;
  blocks2: number;
  bytes: number;
}

export function nf4Layout(n: number, doubleQuant: boolean): Nf4Layout {
  const blocks = n / NF4_VALUES, codes = n / 2, blocks2 = Math.ceil(blocks / NF4_DQ_BLOCK);
  if (!doubleQuant) return { blocks, doubleQuant, codes, absmax: codes, qabsmax: -1, absmax2: -1, offset: -1, map: -1, blocks2: 0, bytes: codes + 4 * blocks };
  const absmax2 = codes + Math.ceil(blocks / 4) * 4;
  const offset = absmax2 + 4 * blocks2;
  return { blocks, doubleQuant, codes, absmax: -1, qabsmax: codes, absmax2, offset, map: offset + 4, blocks2, bytes: offset + 4 + 4 * 256 };
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * Quantizes x (length a multiple of 64) into `out` (nf4Layout(x.length, doubleQuant).bytes). Returns the index
 * of the first value that is not finite, or -1.
 */
export function quantizeNF4(x: Float32Array, out: Uint8Array, doubleQuant: boolean): number {
  const L = nf4Layout(x.length, doubleQuant);
  const absmax = new Float32Array(L.blocks);
  for (let b = 0; b < L.blocks; b++) {
    const x0 = b * NF4_VALUES;
    let amax = 0;
    for (let j = 0; j < NF4_VALUES; j++) {
      const v = x[x0 + j];
      if (!Number.isFinite(v)) return x0 + j;
      amax = Math.max(amax, Math.abs(v));
    }
    absmax[b] = amax;
    const inv = amax ? f32(1 / amax) : 0;
    for (let j = 0; j < NF4_VALUES; j += 2) {
      const hi = nf4Code(f32(x[x0 + j] * inv)), lo = nf4Code(f32(x[x0 + j + 1] * inv));
      out[(x0 + j) >> 1] = (hi << 4) | lo;
    }
  }
  const dv = view(out);
  if (!doubleQuant) {
    for (let b = 0; b < L.blocks; b++) dv.setFloat32(L.absmax + 4 * b, absmax[b], true);
    return -1;
  }
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f32(L.blocks ? sum / L.blocks : 0);
  for (let b2 = 0; b2 < L.blocks2; b2++) {
    const s = b2 * NF4_DQ_BLOCK, e = Math.min(L.blocks, s + NF4_DQ_BLOCK);
    let a2 = 0;
    for (let b = s; b < e; b++) a2 = Math.max(a2, Math.abs(f32(absmax[b] - offset)));
    dv.setFloat32(L.absmax2 + 4 * b2, a2, true);
    const inv = a2 ? f32(1 / a2) : 0;
    for (let b = s; b < e; b++) out[L.qabsmax + b] = a2 ? dynamicCode(f32(f32(absmax[b] - offset) * inv)) : DYN_ZERO;
  }
  out.fill(0, L.qabsmax + L.blocks, L.absmax2);
  dv.setFloat32(L.offset, offset, true);
  for (let i = 0; i < 256; i++) dv.setFloat32(L.map + 4 * i, DYNAMIC_MAP[i], true);
  return -1;
}

/** The per-block scales of packed NF4 data: stored, or read back from the double quantization. */
export function nf4Absmax(bytes: Uint8Array, n: number, doubleQuant: boolean): Float32Array {
  const L = nf4Layout(n, doubleQuant), dv = view(bytes);
  const out = new Float32Array(L.blocks);
  if (!doubleQuant) {
    for (let b = 0; b < L.blocks; b++) out[b] = dv.getFloat32(L.absmax + 4 * b, true);
    return out;
  }
  const offset = dv.getFloat32(L.offset, true);
  for (let b = 0; b < L.blocks; b++) {
    const m = dv.getFloat32(L.map + 4 * bytes[L.qabsmax + b], true);
    out[b] = f32(f32(m * dv.getFloat32(L.absmax2 + 4 * Math.floor(b / NF4_DQ_BLOCK), true)) + offset);
  }
  return out;
}

/** Decodes packed NF4 data into out (n = out.length values). */
export function dequantizeNF4(bytes: Uint8Array, out: Float32Array, doubleQuant: boolean): void {
  const absmax = nf4Absmax(bytes, out.length, doubleQuant);
  for (let i = 0; i < out.length; i += 2) {
    const q = bytes[i >> 1], a = absmax[Math.floor(i / NF4_VALUES)];
    out[i] = f32(NF4_CODE[q >> 4] * a);
    out[i + 1] = f32(NF4_CODE[q & 15] * a);
  }
}
