// Native fused attention (native/kernels/attention.cc). q, k, v may be strided views: any [B, H, T, D] layout whose
// last axis has unit stride (a [B, T, H, D] projection permuted to [B, H, T, D], a slice of a KV cache) goes to
// the kernel as it is, with its strides; anything else is made contiguous first.
import type { AttentionOptions, Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { DT_CODE, addon, base, empty, requireF32, withContiguous } from './util.js';

/** True when the kernel can read x [B, H, T, D] in place: unit stride on D, sgemm-compatible row stride. */
function kernelReadable(x: Tensor): boolean {
  const [, , T, D] = x.shape;
  const s = x.strides;
  if (D > 1 && s[3] !== 1) return false;
  if (s[0] < 0 || s[1] < 0 || s[2] < 0) return false;
  return T <= 1 || s[2] >= D;
}

/** Runs fn with views the kernel reads in place (contiguous copies of the others, disposed afterwards). */
function withReadable<T>(xs: Tensor[], fn: (...c: Tensor[]) => T): T {
  return withContiguous(xs, fn, kernelReadable);
}

const strides3 = (x: Tensor) => [x.strides[0], x.strides[1], x.strides[2]];

function common(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions, mask: Tensor | null): unknown[] {
  const [B, Hq, Tq, D] = q.shape;
  const [, Hkv, Tk] = k.shape;
  const Dv = v.shape[3];
  return [
    [B, Hq, Hkv, Tq, Tk, D, Dv],
    base(q), strides3(q), base(k), strides3(k), base(v), strides3(v),
    o.scale, o.causal, o.qOffset ?? Tk - Tq,
    mask ? DT_CODE[mask.dtype] : 0, mask ? mask.data : null,
  ];
}

export const attentionKernels: Pick<Backend, 'attention' | 'attentionBackward'> = {
  attention(q, k, v, o) {
    requireF32('attention', q, k, v);
    const [B, Hq, Tq] = q.shape;
    const out = empty(q, [B, Hq, Tq, v.shape[3]]);
    const lse = empty(q, [B, Hq, Tq]);
    withReadable([q, k, v], (qc, kc, vc) =>
      withContiguous([o.keyMask], (mask) => addon.attentionForward(...common(qc, kc, vc, o, mask ?? null), out.data, lse.data)),
    );
    return { out, lse };
  },

  attentionBackward(q, k, v, out, lse, gout, o) {
    requireF32('attentionBackward', q, k, v, out, lse, gout);
    const gq = empty(q, q.shape), gk = empty(q, k.shape), gv = empty(q, v.shape);
    withReadable([q, k, v, out, gout], (qc, kc, vc, oc, gc) =>
      withContiguous([o.keyMask, lse], (mask, lc) =>
        addon.attentionBackward(
          ...common(qc, kc, vc, o, mask ?? null),
          base(oc), strides3(oc), lc.data, base(gc), strides3(gc),
          gq.data, gk.data, gv.data,
        ),
      ),
    );
    return { gq, gk, gv };
  },
};

/** The naive composition (full score matrix, sgemm + softmax + sgemm) on the native side, for tests. */
export function nativeNaiveAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  requireF32('attentionNaive', q, k, v);
  const [B, Hq, Tq] = q.shape;
  const out = empty(q, [B, Hq, Tq, v.shape[3]]);
  withReadable([q, k, v], (qc, kc, vc) =>
    withContiguous([o.keyMask], (mask) => addon.attentionNaive(...common(qc, kc, vc, o, mask ?? null), out.data)),
  );
  return out;
}
