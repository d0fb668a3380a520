// Native elementwise kernels: unary ops, their derivatives, broadcasting binary ops (f32; bf16/f16 inputs are
// widened first). Views are passed with their strides (no copy); contiguous and scalar cases take a flat path
// that skips the shape arrays.
import type { Backend, BinaryOp, UnaryOp } from '../backend.js';
import type { TypedArray } from '../../dtype.js';
import { Tensor, broadcastShape } from '../../tensor.js';
import { addon, empty, requireF32 } from './util.js';

/**
 * The storage array positioned at the view's first element, for the addon. Unlike x.data it makes no new typed
 * array when the view starts at element 0 (fresh tensors), which is a measurable part of a small op's cost.
 */
export function arr(x: Tensor): TypedArray {
  x.assertLive();
  return x.offset === 0 ? x.storage.data : (x.storage.data.subarray(x.offset) as TypedArray);
}

// Codes as in native/kernels/elementwise.h.
const UNARY: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, tanh: 5, sigmoid: 6, silu: 7, gelu: 8, gelu_tanh: 9, logsigmoid: 10,
  relu: 11, abs: 12, square: 13,
};
const BINARY: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6 };

/** f32 version of x (bf16/f16 widened; f64 is refused: native computes in f32) and whether it is a temporary. */
function f32Of(op: string, x: Tensor): Tensor {
  if (x.dtype === 'bf16' || x.dtype === 'f16') return x.backend.cast(x, 'f32');
  requireF32(op, x);
  return x;
}

/** x's strides aligned to `shape` (x broadcasts to it): 0 on new leading dims and on stretched size-1 dims. */
export function broadcastStrides(x: Tensor, shape: readonly number[]): number[] {
  const off = shape.length - x.rank;
  return shape.map((d, i) => (i < off || x.shape[i - off] !== d ? 0 : x.strides[i - off]));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Whether `row` (leading 1s aside) is a suffix of `full`: full broadcasts row along its leading dims. */
function isRowOf(row: readonly number[], full: readonly number[]): boolean {
  let k = 0;
  while (k < row.length && row[k] === 1) k++;
  const r = row.length - k;
  if (r === 0 || r > full.length) return false;
  for (let i = 0; i < r; i++) if (row[k + i] !== full[full.length - r + i]) return false;
  return true;
}

export const elementwiseKernels: Pick<Backend, 'unary' | 'unaryBackward' | 'binary'> = {
  unary(op, x0) {
    const x = f32Of(op, x0);
    const out = empty(x, x.shape);
    if (x.size) {
      if (x.isContiguous()) addon.unaryFlat(UNARY[op], x.size, arr(x), arr(out));
      else addon.unaryStrided(UNARY[op], x.shape, arr(x), x.strides, arr(out));
    }
    if (x !== x0) x.dispose();
    return out;
  },

  unaryBackward(op, x0, gy0) {
    const x = f32Of(op, x0), gy = f32Of(op, gy0);
    const out = empty(x, x.shape);
    if (x.size) addon.unaryBackward(UNARY[op], x.shape, arr(x), x.strides, arr(gy), gy.strides, arr(out));
    if (x !== x0) x.dispose();
    if (gy !== gy0) gy.dispose();
    return out;
  },

  binary(op, a0, b0) {
    const a = f32Of(op, a0), b = f32Of(op, b0);
    const shape = broadcastShape(a.shape, b.shape)!; // checked by the op
    const out = empty(a, shape);
    const n = out.size;
    if (n) {
      const code = BINARY[op];
      const ac = a.isContiguous(), bc = b.isContiguous();
      if (ac && bc && sameShape(a.shape, b.shape)) addon.binaryFlat(code, n, arr(a), 1, arr(b), 1, arr(out));
      else if (ac && b.size === 1 && sameShape(a.shape, shape)) addon.binaryFlat(code, n, arr(a), 1, arr(b), 0, arr(out));
      else if (bc && a.size === 1 && sameShape(b.shape, shape)) addon.binaryFlat(code, n, arr(a), 0, arr(b), 1, arr(out));
      else if (ac && bc && sameShape(a.shape, shape) && isRowOf(b.shape, shape)) addon.binaryRows(code, n / b.size, b.size, arr(a), arr(b), arr(out), true);
      else if (ac && bc && sameShape(b.shape, shape) && isRowOf(a.shape, shape)) addon.binaryRows(code, n / a.size, a.size, arr(a), arr(b), arr(out), false);
      else addon.binaryStrided(code, shape, arr(a), broadcastStrides(a, shape), arr(b), broadcastStrides(b, shape), arr(out));
    }
    if (a !== a0) a.dispose();
    if (b !== b0) b.dispose();
    return out;
  },
};
