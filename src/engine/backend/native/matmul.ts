// Matrix products on the addon: one gemm entry point for matmul and linear. Strided operands whose last two
// axes are a row-major matrix or a transposed one are passed as they are (a transposed view just flips the
// BLAS transpose flag); anything else is made contiguous first. Batch axes of any stride (0 = broadcast) are
// passed as per-matrix element offsets; when b has no batch and a's batch axes fold into its rows, the whole
// batch is one product.
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { DT_CODE, addon, base, empty, requireF32, withContiguous } from './util.js';

/** How a [rows, cols] matrix with these strides is stored: row-major (trans false) or column-major. */
interface Operand {
  /** the stored matrix is the transpose of the logical one */
  trans: boolean;
  ld: number;
}

export function matrixOperand(rows: number, cols: number, sr: number, sc: number): Operand | null {
  if ((cols === 1 || sc === 1) && (rows === 1 || sr >= cols)) return { trans: false, ld: Math.max(1, rows === 1 ? cols : sr) };
  if ((rows === 1 || sr === 1) && (cols === 1 || sc >= rows)) return { trans: true, ld: Math.max(1, cols === 1 ? rows : sc) };
  return null;
}

function weightCode(op: string, t: Tensor): number {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16')
    throw new Error(`vlmkit: native ${op} reads f32, bf16 or f16 weights, got a ${t.dtype} tensor [${t.shape}]`);
  return DT_CODE[t.dtype];
}

/** Runs fn with x itself when `ok(x)`, else with a contiguous copy (disposed afterwards). */
function withLayout<T>(x: Tensor, ok: (t: Tensor) => boolean, fn: (t: Tensor) => T): T {
  return withContiguous([x], fn, ok);
}

const lastTwo = (t: Tensor): Operand | null =>
  matrixOperand(t.shape[t.rank - 2], t.shape[t.rank - 1], t.strides[t.rank - 2], t.strides[t.rank - 1]);

/**
 * The one stride that walks the rows folded from axes [0, upTo] of t (in row-major order), or null when they do not
 * fold. Size-1 axes are ignored; with no axis longer than 1 any stride serves (`fallback`).
 */
export function foldedStride(t: Tensor, upTo: number, fallback: number): number | null {
  let stride: number | null = null, expect = 0;
  for (let i = upTo; i >= 0; i--) {
    if (t.shape[i] === 1) continue;
    if (stride === null) stride = t.strides[i];
    else if (t.strides[i] !== expect) return null;
    expect = t.strides[i] * t.shape[i];
  }
  return stride ?? fallback;
}

function batchOffsets(t: Tensor, batch: readonly number[], nb: number): Float64Array | null {
  const r = t.rank - 2, off = batch.length - r;
  let any = false;
  for (let d = 0; d < r; d++) if (t.shape[d] !== 1 && t.strides[d] !== 0) any = true;
  if (!any) return null;
  const out = new Float64Array(nb);
  const idx = new Array<number>(batch.length).fill(0);
  for (let q = 0; q < nb; q++) {
    let p = 0;
    for (let d = 0; d < r; d++) if (t.shape[d] !== 1) p += idx[off + d] * t.strides[d];
    out[q] = p;
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

function matmul(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  requireF32('matmul', a);
  const bt = weightCode('matmul', b);
  const ra = a.rank, rb = b.rank;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  const ab = a.shape.slice(0, ra - 2), bb = b.shape.slice(0, rb - 2);
  const nd = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < nd; i++) {
    const da = ab[ab.length - nd + i] ?? 1, db = bb[bb.length - nd + i] ?? 1;
    batch.push(da === 1 ? db : da);
  }
  const nb = batch.reduce((p, d) => p * d, 1);
  const out = empty(a, [...batch, M, N]);
  if (out.size === 0) return out;
  return withLayout(a, (t) => lastTwo(t) !== null, (ac) =>
    withLayout(b, (t) => lastTwo(t) !== null, (bc) => {
      const oa = lastTwo(ac)!, ob = lastTwo(bc)!;
      const tA = transA !== oa.trans, tB = transB !== ob.trans;
      // b shared by every matrix of a, whose batch folds into its rows (one row stride throughout): one product
      const fs = bb.every((d) => d === 1) && !transA && !oa.trans ? foldedStride(ac, ra - 2, oa.ld) : null;
      const foldLd = fs !== null && (M === 1 ? fs >= Math.max(1, K) : fs === oa.ld) ? fs : null;
      if (nb === 1 || foldLd !== null) {
        addon.gemm(1, tA, tB, nb * M, N, K, base(ac), null, foldLd ?? oa.ld, base(bc), bt, null, ob.ld, null, out.data);
      } else {
        addon.gemm(nb, tA, tB, M, N, K, base(ac), batchOffsets(ac, batch, nb), oa.ld, base(bc), bt,
          batchOffsets(bc, batch, nb), ob.ld, null, out.data);
      }
      return out;
    }),
  );
}

function linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
  requireF32('linear', x, bias);
  const bt = weightCode('linear', w);
  const K = x.shape[x.rank - 1], N = w.shape[0];
  const M = K === 0 ? x.shape.slice(0, -1).reduce((p, d) => p * d, 1) : x.size / K;
  const out = empty(x, [...x.shape.slice(0, -1), N]);
  if (out.size === 0) return out;
  // x as an [M, K] operand: its leading axes must fold into rows of one stride.
  const xOperand = (t: Tensor): Operand | null => {
    const sk = t.strides[t.rank - 1];
    const sr = t.rank === 1 ? K * sk : foldedStride(t, t.rank - 2, K * sk);
    return sr === null ? null : matrixOperand(M, K, sr, sk);
  };
  return withLayout(x, (t) => xOperand(t) !== null, (xc) =>
    withLayout(w, (t) => lastTwo(t) !== null, (wc) =>
      withLayout(bias ?? x, (t) => bias === null || t.isContiguous(), (bc) => {
        const ox = xOperand(xc)!, ow = lastTwo(wc)!;
        // w is [N, K]: stored row-major means the kernel's "B stored [N, K]" (transB)
        addon.gemm(1, ox.trans, !ow.trans, M, N, K, base(xc), null, ox.ld, base(wc), bt, null, ow.ld,
          bias ? bc.data : null, out.data);
        return out;
      }),
    ),
  );
}

export const matmulKernels: Pick<Backend, 'matmul' | 'linear'> = { matmul, linear };
