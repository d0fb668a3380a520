// Native reductions over one axis: the input (made contiguous, widened to f32 if bf16/f16) is viewed as
// [outer, n, inner]. sum/mean accumulate in f64; max/argmax follow torch (NaN wins, first index on ties).
import type { Backend, ReduceOp } from '../backend.js';
import { addon, empty, requireF32, withContiguous } from './util.js';
import { arr } from './elementwise.js';

const CODE: Record<ReduceOp, number> = { sum: 0, mean: 1, max: 2, argmax: 3 };

export const reduceKernels: Pick<Backend, 'reduce'> = {
  reduce(op, x0, axis, keepDims) {
    const x = x0.dtype === 'bf16' || x0.dtype === 'f16' ? x0.backend.cast(x0, 'f32') : x0;
    try {
      requireF32(op, x);
      const outer = x.shape.slice(0, axis).reduce((a, d) => a * d, 1);
      const n = x.shape[axis];
      const inner = x.shape.slice(axis + 1).reduce((a, d) => a * d, 1);
      const shape = keepDims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
      const out = empty(x, shape, op === 'argmax' ? 'i32' : 'f32');
      if (out.size) {
        if (n === 0) x.backend.fill(out, op === 'max' ? -Infinity : op === 'mean' ? NaN : 0);
        else withContiguous([x], (c) => addon.reduce(CODE[op], outer, n, inner, arr(c), arr(out)));
      }
      return out;
    } finally {
      if (x !== x0) x.dispose();
    }
  },
};
