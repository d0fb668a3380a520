// AdamW as torch.optim.AdamW defines it (decoupled weight decay, bias correction), in float64 arithmetic on
// the stored values.
import type { Backend } from '../backend.js';

export const optimKernels: Pick<Backend, 'adamw'> = {
  adamw(param, grad, m, v, o) {
    const p = param.data as Float64Array, g = grad.toArray(), M = m.data as Float64Array, V = v.data as Float64Array;
    const bc1 = 1 - o.beta1 ** o.step, bc2 = 1 - o.beta2 ** o.step;
    const stepSize = o.lr / bc1, bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - o.lr * o.weightDecay;
      M[i] = M[i] + (1 - o.beta1) * (g[i] - M[i]);
      V[i] = V[i] * o.beta2 + (1 - o.beta2) * g[i] * g[i];
      const denom = Math.sqrt(V[i]) / bc2Sqrt + o.eps;
      p[i] -= stepSize * (M[i] / denom);
    }
  },
};
