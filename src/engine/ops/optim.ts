// Optimizer updates (no autograd): in-place steps on parameter and state tensors.
import type { AdamWOptions } from '../backend/backend.js';
import type { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

export interface AdamWStepOptions extends Partial<Omit<AdamWOptions, 'lr' | 'step'>> {
  lr: number;
  /** 1-based count of steps taken, this one included (for bias correction) */
  step: number;
}

/**
 * One AdamW update in place, exactly as torch.optim.AdamW (defaults beta1 0.9, beta2 0.999, eps 1e-8, weight
 * decay 0.01): param *= 1 - lr*wd; m = lerp(m, g, 1-beta1); v = beta2 v + (1-beta2) g²;
 * param -= lr/(1-beta1^step) * m / (sqrt(v)/sqrt(1-beta2^step) + eps).
 * param, m and v must be contiguous tensors of one float dtype; grad is made contiguous / cast if needed.
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
  const all = [param, grad, m, v];
  if (all.some((t) => t.rank !== param.rank || t.shape.some((d, i) => d !== param.shape[i])))
    throw new ShapeError(`adamwStep: param ${fmt(param.shape)}, grad ${fmt(grad.shape)}, m ${fmt(m.shape)} and v ${fmt(v.shape)} must have one shape`);
  if (all.some((t) => t.backend !== param.backend)) throw new ShapeError('adamwStep: tensors live on different backends');
  if (!param.isFloat || !grad.isFloat || m.dtype !== param.dtype || v.dtype !== param.dtype)
    throw new ShapeError(`adamwStep: param, m and v must share one float dtype, got ${param.dtype}, ${m.dtype}, ${v.dtype} (grad ${grad.dtype})`);
  for (const [name, t] of [['param', param], ['m', m], ['v', v]] as const)
    if (!t.isContiguous()) throw new ShapeError(`adamwStep: ${name} ${fmt(t.shape)} must be contiguous (it is updated in place)`);
  if (!(Number.isInteger(o.step) && o.step >= 1)) throw new ShapeError(`adamwStep: step must be an integer >= 1, got ${o.step}`);
  const opts: AdamWOptions = {
    lr: o.lr, step: o.step, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0.01,
  };
  const B = param.backend;
  let g = grad;
  if (g.dtype !== param.dtype) g = B.cast(g, param.dtype);
  if (!g.isContiguous()) {
    const c = B.contiguous(g);
    if (g !== grad) g.dispose();
    g = c;
  }
  try {
    B.adamw(param, g, m, v, opts);
  } finally {
    if (g !== grad) g.dispose();
  }
}
