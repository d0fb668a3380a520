// Normalisation over the last axis, with gradient rules. The backend saves mean/rstd for the backward; they are
// released at once when no gradient is recorded.
//   layerNorm(x, w, b, eps): torch.nn.functional.layer_norm (biased variance). SigLIP uses eps 1e-6.
//   rmsNorm(x, w, eps): transformers' LlamaRMSNorm in f32: w * x * rsqrt(mean(x²) + eps). Llama uses eps 1e-5.
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function checkNorm(op: string, x: Tensor, params: [string, Tensor | null | undefined][]): void {
  if (x.rank < 1) throw new ShapeError(`${op}: needs at least one axis, got a scalar`);
  if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new ShapeError(`${op}: x must be f32 or f64, got ${x.dtype} ${fmt(x.shape)}`);
  const D = x.shape[x.rank - 1];
  for (const [name, p] of params) {
    if (!p) continue;
    if (p.rank !== 1 || p.shape[0] !== D)
      throw new ShapeError(`${op}: ${name} ${fmt(p.shape)} must be [${D}] for x ${fmt(x.shape)}`);
    if (p.dtype !== x.dtype) throw new ShapeError(`${op}: ${name} is ${p.dtype} ${fmt(p.shape)}, x is ${x.dtype} ${fmt(x.shape)}; cast it first`);
    if (p.backend !== x.backend) throw new ShapeError(`${op}: ${name} lives on another backend than x`);
  }
}

export function layerNorm(x: Tensor, w: Tensor | null | undefined, b: Tensor | null | undefined, eps = 1e-5): Tensor {
  checkNorm('layerNorm', x, [['weight', w], ['bias', b]]);
  const wt = w ?? null, bt = b ?? null;
  const { y, mean, rstd } = x.backend.layerNorm(x, wt, bt, eps);
  const inputs = [x, ...(wt ? [wt] : []), ...(bt ? [bt] : [])];
  record(y, 'layerNorm', inputs, (g) => {
    const needWB = !!(wt?.requiresGrad || bt?.requiresGrad);
    const r = g.backend.layerNormBackward(x, wt, mean, rstd, g, needWB);
    const grads: (Tensor | null)[] = [r.gx];
    if (wt) grads.push(r.gw);
    else r.gw?.dispose();
    if (bt) grads.push(r.gb);
    else r.gb?.dispose();
    return grads;
  }, [x, wt, mean, rstd], [mean, rstd]);
  if (!y.requiresGrad) {
    mean.dispose();
    rstd.dispose();
  }
  return y;
}

export function rmsNorm(x: Tensor, w: Tensor | null | undefined, eps = 1e-5): Tensor {
  checkNorm('rmsNorm', x, [['weight', w]]);
  const wt = w ?? null;
  const { y, rstd } = x.backend.rmsNorm(x, wt, eps);
  record(y, 'rmsNorm', wt ? [x, wt] : [x], (g) => {
    const r = g.backend.rmsNormBackward(x, wt, rstd, g, !!wt?.requiresGrad);
    return wt ? [r.gx, r.gw] : [r.gx];
  }, [x, wt, rstd], [rstd]);
  if (!y.requiresGrad) rstd.dispose();
  return y;
}
