// Native softmax family over the last axis (f32; bf16/f16 inputs are widened, views made contiguous).
import type { Backend } from '../backend.js';
import { Tensor } from '../../tensor.js';
import { addon, empty, requireF32, withContiguous } from './util.js';
import { arr } from './elementwise.js';

/** Runs fn on f32 contiguous versions of xs (temporaries disposed afterwards). */
export function withF32<T>(op: string, xs: Tensor[], fn: (...c: Tensor[]) => T): T {
  const tmp: Tensor[] = [];
  const fs = xs.map((x) => {
    if (x.dtype === 'bf16' || x.dtype === 'f16') {
      const c = x.backend.cast(x, 'f32');
      tmp.push(c);
      return c;
    }
    requireF32(op, x);
    return x;
  });
  try {
    return withContiguous(fs, fn);
  } finally {
    for (const t of tmp) t.dispose();
  }
}

/** Integer targets/ids as i32 or i64 contiguous (other int dtypes cast to i32). */
export function withIndex<T>(x: Tensor, fn: (c: Tensor, is64: boolean) => T): T {
  if (x.dtype === 'i32' || x.dtype === 'i64') return withContiguous([x], (c) => fn(c, x.dtype === 'i64'));
  if (x.isFloat) throw new Error(`vlmkit: native kernels need integer indices, got a ${x.dtype} tensor [${x.shape}]`);
  const c = x.backend.cast(x, 'i32');
  try {
    return fn(c, false);
  } finally {
    c.dispose();
  }
}

const lastDim = (x: Tensor) => (x.rank ? x.shape[x.rank - 1] : 1);

function softmaxLike(x0: Tensor, log: boolean): Tensor {
  return withF32(log ? 'logSoftmax' : 'softmax', [x0], (x) => {
    const out = empty(x, x.shape);
    const d = lastDim(x);
    if (x.size) addon.softmax(x.size / d, d, arr(x), arr(out), log);
    return out;
  });
}

function backwardLike(y0: Tensor, gy0: Tensor, log: boolean): Tensor {
  return withF32(log ? 'logSoftmaxBackward' : 'softmaxBackward', [y0, gy0], (y, gy) => {
    const out = empty(y, y.shape);
    const d = lastDim(y);
    if (y.size) addon.softmaxBackward(y.size / d, d, arr(y), arr(gy), arr(out), log);
    return out;
  });
}

export const softmaxKernels: Pick<Backend, 'softmax' | 'logSoftmax' | 'softmaxBackward' | 'logSoftmaxBackward' | 'crossEntropy' | 'crossEntropyBackward'> = {
  softmax: (x) => softmaxLike(x, false),
  logSoftmax: (x) => softmaxLike(x, true),
  softmaxBackward: (y, gy) => backwardLike(y, gy, false),
  logSoftmaxBackward: (y, gy) => backwardLike(y, gy, true),
  crossEntropy(logits0, targets0, ignoreIndex) {
    const [n, v] = logits0.shape;
    return withF32('crossEntropy', [logits0], (logits) =>
      withIndex(targets0, (t, is64) => {
        const losses = empty(logits, [n]), lse = empty(logits, [n]);
        if (n) addon.crossEntropy(n, v, arr(logits), arr(t), is64, ignoreIndex, arr(losses), arr(lse));
        return { losses, lse };
      }),
    );
  },
  crossEntropyBackward(logits0, targets0, lse0, gRow0, ignoreIndex) {
    const [n, v] = logits0.shape;
    return withF32('crossEntropyBackward', [logits0, lse0, gRow0], (logits, lse, gRow) =>
      withIndex(targets0, (t, is64) => {
        const gx = empty(logits, [n, v]);
        if (n) addon.crossEntropyBackward(n, v, arr(logits), arr(t), is64, ignoreIndex, arr(lse), arr(gRow), arr(gx));
        return gx;
      }),
    );
  },
};
