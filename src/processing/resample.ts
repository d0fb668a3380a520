// PIL-exact image resizing for 8-bit RGB images: our own implementation of the algorithm of Pillow's
// src/libImaging/Resample.c (LANCZOS, BICUBIC, BILINEAR, BOX, HAMMING) and of its nearest-neighbour path
// (Geometry.c, ImagingScaleAffine), so that resized pixels equal what transformers gets from
// `PIL.Image.fromarray(uint8).resize((w, h), resample)`.
//
// Why a port and not any lanczos: PIL's filters are separable, widen their support by the downscale factor
// (antialiasing), round the float coefficients to 22-bit fixed point, accumulate in int32 with a +0.5 bias,
// and clip each pass to uint8. The horizontal pass runs first, only over the rows the vertical pass reads,
// and each pass is skipped when its axis keeps its size. Every one of these steps changes the uint8 output.
import type { RgbImage } from './decode.js';

/** PIL's resample codes (PIL.Image.Resampling), as transformers stores them in `resample`. */
export const Resampling = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3, BOX: 4, HAMMING: 5 } as const;
export type ResampleCode = (typeof Resampling)[keyof typeof Resampling];

interface Filter {
  fn: (x: number) => number;
  support: number;
}

const boxFilter = (x: number): number => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0);

const bilinearFilter = (x: number): number => {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
};

// PIL writes 0.54f / 0.46f (float literals) inside a double expression: keep their float32 values.
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);
const hammingFilter = (x: number): number => {
  if (x < 0.0) x = -x;
  if (x === 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * Math.PI;
  return (Math.sin(x) / x) * (HAMMING_A + HAMMING_B * Math.cos(x));
};

// Keys' cubic convolution with a = -0.5, in the same operation order as PIL.
const bicubicFilter = (x: number): number => {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
};

const sinc = (x: number): number => {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
};

// Truncated sinc, 3 lobes; note the half-open interval [-3, 3) as in PIL.
const lanczosFilter = (x: number): number => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0);

const FILTERS: Record<number, Filter> = {
  [Resampling.BOX]: { fn: boxFilter, support: 0.5 },
  [Resampling.BILINEAR]: { fn: bilinearFilter, support: 1.0 },
  [Resampling.HAMMING]: { fn: hammingFilter, support: 1.0 },
  [Resampling.BICUBIC]: { fn: bicubicFilter, support: 2.0 },
  [Resampling.LANCZOS]: { fn: lanczosFilter, support: 3.0 },
};

/** 8 bits of result, 2 bits of headroom for overshooting filters: coefficients are 22-bit fixed point. */
const PRECISION_BITS = 32 - 8 - 2;
const FIXED_ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** C's `(int)` cast of a double: truncation toward zero. */
const cInt = (v: number): number => Math.trunc(v);

interface Coeffs {
  ksize: number;
  /** per output index: first source index and number of taps */
  bounds: Int32Array;
  /** outSize * ksize fixed-point coefficients */
  kk: Int32Array;
}

/**
 * precompute_coeffs + normalize_coeffs_8bpc: the filter weights of every output pixel along one axis, over the
 * source span [in0, in1) (float32, as PIL keeps the box in floats).
 */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  // (double)(in1 - in0) / outSize, the subtraction happening in float32
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = cInt(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = cInt(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? k[x]! / ww : k[x]!;
      // normalize_coeffs_8bpc: round half away from zero via (int)(v*2^22 +- 0.5)
      kk[xx * ksize + x] = v < 0 ? cInt(-0.5 + v * FIXED_ONE) : cInt(0.5 + v * FIXED_ONE);
    }
    // taps past xmax stay 0, as in PIL
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** clip8: the accumulator's integer part, clamped to 0..255 (PIL's lookup table does the clamping). */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS; // arithmetic shift, like the C int
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// Products use Math.imul: |255 * coefficient| stays below 2^31, so it is exact, and it keeps V8 on int32 math.

/** Horizontal pass over rows [rowOffset, rowOffset + outH) of `src` (width srcW), 3 channels. */
function resampleHorizontal(src: Uint8Array, srcW: number, rowOffset: number, outW: number, outH: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outW * outH * 3);
  const { ksize, bounds, kk } = c;
  for (let yy = 0; yy < outH; yy++) {
    const rowBase = (yy + rowOffset) * srcW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2]!;
      const xmax = bounds[xx * 2 + 1]!;
      const kBase = xx * ksize;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let x = 0; x < xmax; x++) {
        const kv = kk[kBase + x]!;
        const p = rowBase + (x + xmin) * 3;
        s0 = (s0 + Math.imul(src[p]!, kv)) | 0;
        s1 = (s1 + Math.imul(src[p + 1]!, kv)) | 0;
        s2 = (s2 + Math.imul(src[p + 2]!, kv)) | 0;
      }
      const o = (yy * outW + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/**
 * Vertical pass: `src` has width w; output has outH rows. Accumulates whole rows (sequential memory access)
 * in an Int32Array, whose stores wrap like the C int accumulator.
 */
function resampleVertical(src: Uint8Array, w: number, outH: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(w * outH * 3);
  const { ksize, bounds, kk } = c;
  const stride = w * 3;
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]!;
    const ymax = bounds[yy * 2 + 1]!;
    const kBase = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const kv = kk[kBase + y]!;
      const row = (y + ymin) * stride;
      for (let i = 0; i < stride; i++) acc[i] += Math.imul(src[row + i]!, kv);
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/** ImagingResampleInner for 8-bit RGB: horizontal pass (only over the rows the vertical pass needs), then vertical. */
function resampleFiltered(img: RgbImage, outW: number, outH: number, filter: Filter, box: [number, number, number, number]): RgbImage {
  // PIL compares the box's far edge with the *output* size here; we keep that quirk.
  const needHorizontal = outW !== img.width || box[0] !== 0 || box[2] !== outW;
  const needVertical = outH !== img.height || box[1] !== 0 || box[3] !== outH;
  const vert = precomputeCoeffs(img.height, box[1], box[3], outH, filter);
  const yboxFirst = vert.bounds[0]!;
  const yboxLast = vert.bounds[outH * 2 - 2]! + vert.bounds[outH * 2 - 1]!;
  let data = img.data;
  let w = img.width;
  let h = img.height;
  if (needHorizontal) {
    const horiz = precomputeCoeffs(img.width, box[0], box[2], outW, filter);
    // the temporary image holds only rows ybox_first..ybox_last; shift the vertical bounds accordingly
    for (let i = 0; i < outH; i++) vert.bounds[i * 2] = vert.bounds[i * 2]! - yboxFirst;
    data = resampleHorizontal(data, img.width, yboxFirst, outW, yboxLast - yboxFirst, horiz);
    w = outW;
    h = yboxLast - yboxFirst;
  }
  if (needVertical) {
    data = resampleVertical(data, w, outH, vert);
    h = outH;
  }
  if (data === img.data) data = data.slice();
  return { width: w, height: h, data };
}

/** PIL's nearest path (ImagingScaleAffine): source coordinate accumulated in doubles, truncated. */
function resampleNearest(img: RgbImage, outW: number, outH: number, box: [number, number, number, number]): RgbImage {
  const a0 = Math.fround(box[2] - box[0]) / outW;
  const a4 = Math.fround(box[3] - box[1]) / outH;
  const coord = (v: number): number => (v < 0.0 ? -1 : Math.trunc(v));
  const xin = new Int32Array(outW);
  let xo = box[0] + a0 * 0.5;
  for (let x = 0; x < outW; x++) {
    xin[x] = coord(xo);
    xo += a0;
  }
  const out = new Uint8Array(outW * outH * 3); // fill=1: pixels mapping outside the source stay 0
  let yo = box[1] + a4 * 0.5;
  for (let y = 0; y < outH; y++) {
    const yi = coord(yo);
    yo += a4;
    if (yi < 0 || yi >= img.height) continue;
    for (let x = 0; x < outW; x++) {
      const xi = xin[x]!;
      if (xi < 0 || xi >= img.width) continue;
      const s = (yi * img.width + xi) * 3;
      const o = (y * outW + x) * 3;
      out[o] = img.data[s]!;
      out[o + 1] = img.data[s + 1]!;
      out[o + 2] = img.data[s + 2]!;
    }
  }
  return { width: outW, height: outH, data: out };
}

/**
 * `PIL.Image.resize((width, height), resample, box)` on an RGB uint8 image, reducing_gap=None (as transformers
 * calls it). `box` is the source region (left, top, right, bottom), default the whole image.
 */
export function resizePil(img: RgbImage, width: number, height: number, resample: number, box?: [number, number, number, number]): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize: output size ${width}x${height} must be positive integers`);
  }
  const full: [number, number, number, number] = [0, 0, img.width, img.height];
  const b = (box ?? full).map((v) => Math.fround(v)) as [number, number, number, number];
  const isFull = b[0] === 0 && b[1] === 0 && b[2] === img.width && b[3] === img.height;
  // Image.resize returns a copy when nothing changes
  if (isFull && width === img.width && height === img.height) return { width, height, data: img.data.slice() };
  // _resize: an integer box of exactly the output size is a plain crop
  if (Number.isInteger(b[0]) && Number.isInteger(b[1]) && b[2] - b[0] === width && b[3] - b[1] === height) {
    return cropRgb(img, b[0], b[1], width, height);
  }
  if (resample === Resampling.NEAREST) return resampleNearest(img, width, height, b);
  const filter = FILTERS[resample];
  if (!filter) throw new RangeError(`resize: unknown resample filter ${resample} (use 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)`);
  return resampleFiltered(img, width, height, filter, b);
}

/** Copy of the region [x0, x0+w) x [y0, y0+h); the region must lie inside the image. */
export function cropRgb(img: RgbImage, x0: number, y0: number, w: number, h: number): RgbImage {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const s = ((y0 + y) * img.width + x0) * 3;
    out.set(img.data.subarray(s, s + w * 3), y * w * 3);
  }
  return { width: w, height: h, data: out };
}
