// Matrix products: the definitions, as plain loops in float64 arithmetic. bf16/f16 operands are read as their
// exact widened values (the same numbers the native kernels see).
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { make, outDType, read } from './util.js';

/** Batch dims of a [..., R, C] tensor broadcast against another's: the output batch shape. */
function batchShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Flat index of the matrix of `shape` (a batch shape) that output batch index `idx` reads after broadcasting. */
function batchIndex(idx: number[], shape: readonly number[]): number {
  const off = idx.length - shape.length;
  let p = 0;
  for (let d = 0; d < shape.length; d++) p = p * shape[d] + (shape[d] === 1 ? 0 : idx[off + d]);
  return p;
}

export function refMatmul(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const ra = a.rank, rb = b.rank;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  const ab = a.shape.slice(0, ra - 2), bb = b.shape.slice(0, rb - 2);
  const batch = batchShape(ab, bb);
  const nb = batch.reduce((p, d) => p * d, 1);
  const av = read(a), bv = read(b);
  const out = new Float64Array(nb * M * N);
  const idx = new Array<number>(batch.length).fill(0);
  for (let q = 0; q < nb; q++) {
    const pa = batchIndex(idx, ab) * M * K, pb = batchIndex(idx, bb) * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const x = transA ? av[pa + k * M + i] : av[pa + i * K + k];
          const y = transB ? bv[pb + j * K + k] : bv[pb + k * N + j];
          s += x * y;
        }
        out[q * M * N + i * N + j] = s;
      }
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return make(a, [...batch, M, N], out, outDType(a, b));
}

/** x [M, K] times the transpose of w [N, K], plus bias [N]: the definition of a linear, summed in float64. */
export function linearValues(xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number> | null, M: number, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = bv ? bv[j]! : 0;
      for (let k = 0; k < K; k++) s += xv[i * K + k]! * wv[j * K + k]!;
      out[i * N + j] = s;
    }
  return out;
}

export const matmulKernels: Pick<Backend, 'matmul' | 'linear'> = {
  matmul: refMatmul,
  linear(x, w, bias) {
    const K = x.shape[x.rank - 1], N = w.shape[0];
    const M = x.size / K;
    const out = linearValues(read(x), read(w), bias ? read(bias) : null, M, N, K);
    return make(x, [...x.shape.slice(0, -1), N], out, bias ? outDType(x, w, bias) : outDType(x, w));
  },
};
