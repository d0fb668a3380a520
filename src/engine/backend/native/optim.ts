// Native AdamW: one fused in-place pass; the step's scalars are computed here in f64, as torch does in Python.
import type { Backend } from '../backend.js';
import { addon, requireF32 } from './util.js';
import { arr } from './elementwise.js';

export const optimKernels: Pick<Backend, 'adamw'> = {
  adamw(param, grad, m, v, o) {
    requireF32('adamw', param, grad, m, v);
    for (const t of [param, grad, m, v])
      if (!t.isContiguous()) throw new Error(`vlmkit: native adamw needs contiguous tensors, got a view [${t.shape}]`);
    if (!param.size) return;
    const bc1 = 1 - o.beta1 ** o.step, bc2 = 1 - o.beta2 ** o.step;
    addon.adamw(param.size, arr(param), arr(grad), arr(m), arr(v), 1 - o.lr * o.weightDecay, 1 - o.beta1, o.beta2,
      1 - o.beta2, Math.sqrt(bc2), o.eps, o.lr / bc1);
  },
};
