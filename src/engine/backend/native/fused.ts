// Native fused inference kernels (native/kernels/fused.cc): several linears of one input in one pool pass, the
// SwiGLU MLP input, residual add + RMS norm, RoPE + KV-cache append. Equal, bit for bit, to the unfused kernels.
import type { Backend } from '../backend.js';
import type { TypedArray } from '../../dtype.js';
import type { Tensor } from '../../tensor.js';
import { foldedStride } from './matmul.js';
import { DT_CODE, addon, empty, requireF32, withContiguous } from './util.js';

/** The storage array positioned at the view's first element (no new typed array for a view at element 0). */
function arr(x: Tensor): TypedArray {
  x.assertLive();
  return x.offset === 0 ? x.storage.data : (x.storage.data.subarray(x.offset) as TypedArray);
}

/** Runs fn with x as it is when ok(x), else with a contiguous copy (disposed afterwards). */
function using<T>(x: Tensor, ok: (t: Tensor) => boolean, fn: (t: Tensor) => T): T {
  return withContiguous([x], fn, ok);
}

/** Row stride of x read as [M, K] rows (unit stride on K, leading axes folding into one stride), or null. */
function rowStride(x: Tensor): number | null {
  const K = x.shape[x.rank - 1];
  if (K > 1 && x.strides[x.rank - 1] !== 1) return null;
  if (x.rank === 1) return K;
  const s = foldedStride(x, x.rank - 2, K);
  return s !== null && s >= K ? s : null;
}

const rowsOf = (x: Tensor) => {
  const K = x.shape[x.rank - 1];
  return K === 0 ? x.shape.slice(0, -1).reduce((p, d) => p * d, 1) : x.size / K;
};

/** A [B, H, T, D] view the kernels read in place: unit stride on D, non-negative strides. */
const view4Ok = (t: Tensor) => (t.shape[3] <= 1 || t.strides[3] === 1) && t.strides.every((s) => s >= 0);
const strides3 = (t: Tensor) => [t.strides[0], t.strides[1], t.strides[2]];

export const fusedKernels: Required<Pick<Backend, 'linears' | 'swiglu' | 'addRmsNorm' | 'ropeAppendKV'>> = {
  linears(x, ws) {
    requireF32('linears', x);
    const K = x.shape[x.rank - 1], M = rowsOf(x);
    const outs = ws.map((w) => empty(x, [...x.shape.slice(0, -1), w.shape[0]]));
    if (M === 0 || ws.length === 0) return outs;
    const wcs = ws.map((w) => (w.isContiguous() ? w : w.backend.contiguous(w)));
    try {
      using(x, (t) => rowStride(t) !== null, (xc) =>
        addon.fusedLinears(M, K, arr(xc), rowStride(xc)!, DT_CODE[ws[0].dtype], wcs.map(arr), ws.map((w) => w.shape[0]), outs.map(arr)));
    } finally {
      wcs.forEach((c, i) => c !== ws[i] && c.dispose());
    }
    return outs;
  },

  swiglu(x, wg, wu) {
    requireF32('swiglu', x);
    const K = x.shape[x.rank - 1], M = rowsOf(x), N = wg.shape[0];
    const out = empty(x, [...x.shape.slice(0, -1), N]);
    if (out.size === 0) return out;
    using(wg, (t) => t.isContiguous(), (gc) =>
      using(wu, (t) => t.isContiguous(), (uc) =>
        using(x, (t) => rowStride(t) !== null, (xc) =>
          addon.fusedSwiglu(M, K, arr(xc), rowStride(xc)!, DT_CODE[wg.dtype], arr(gc), arr(uc), N, arr(out)))));
    return out;
  },

  addRmsNorm(x, r, w, eps) {
    requireF32('addRmsNorm', x, r, w);
    const D = x.shape[x.rank - 1], R = D === 0 ? 0 : x.size / D;
    const sum = empty(x, x.shape), y = empty(x, x.shape);
    if (!sum.size) return { sum, y };
    using(x, (t) => t.isContiguous(), (xc) =>
      using(r, (t) => t.isContiguous(), (rc) =>
        using(w ?? x, (t) => !w || t.isContiguous(), (wc) =>
          addon.fusedAddRmsNorm(R, D, arr(xc), arr(rc), w ? arr(wc) : null, eps, arr(sum), arr(y)))));
    return { sum, y };
  },

  ropeAppendKV(q, k, v, positions, invFreq, kCache, vCache, at) {
    requireF32('ropeAppendKV', q, k, v, invFreq, kCache, vCache);
    const [B, Hq, T, D] = q.shape, Hkv = k.shape[1];
    const out = empty(q, q.shape);
    if (!out.size) return out;
    if (!view4Ok(kCache) || !view4Ok(vCache)) throw new Error('vlmkit: ropeAppendKV needs KV caches with unit stride on their last axis');
    using(q, view4Ok, (qc) =>
      using(k, view4Ok, (kc) =>
        using(v, view4Ok, (vc) =>
          using(positions, (t) => t.isContiguous(), (pc) =>
            using(invFreq, (t) => t.isContiguous(), (fc) =>
              addon.fusedRopeAppendKV([B, T, Hq, Hkv, D], arr(qc), strides3(qc), arr(kc), strides3(kc), arr(vc), strides3(vc),
                arr(pc), pc.dtype === 'i64', arr(fc), arr(out), arr(kCache), strides3(kCache), arr(vCache), strides3(vCache), at))))));
    return out;
  },
};
