// Fused inference ops. Each is defined as a composition of plain ops (its autograd path and its meaning); when no
// gradient is needed and the backend has the fused kernel, one kernel call does the work instead, with the same
// result bit for bit (the fused kernels reuse the plain kernels' arithmetic). They save dispatches, temporaries
// and, for decode, short weight streams.
//   linears(x, [W0, W1, ...])            [x·W0ᵀ, x·W1ᵀ, ...]           (q/k/v projections of one input)
//   swiglu(x, Wg, Wu)                    silu(x·Wgᵀ) ⊙ (x·Wuᵀ)          (the Llama MLP before down_proj)
//   addRmsNorm(x, r, w, eps)             {sum: x + r, y: rmsNorm(x + r)} (residual add + the next norm)
//   ropeAppendKV(q, k, v, pos, f, K, V, at)  rope(q); K[:, :, at:] = rope(k); V[:, :, at:] = v   (no gradient)
import { isGradEnabled } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { add, mul, silu } from './elementwise.js';
import { linear } from './matmul.js';
import { rmsNorm } from './norm.js';
import { rope } from './rope.js';
import { slice } from './shape.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const isWeight = (w: Tensor) => w.dtype === 'f32' || w.dtype === 'bf16' || w.dtype === 'f16';
/** A gradient would be recorded through these inputs. */
const needsGrad = (...ts: (Tensor | null | undefined)[]) => isGradEnabled() && ts.some((t) => t?.requiresGrad);

function checkWeights(op: string, x: Tensor, ws: readonly Tensor[]): void {
  if (x.rank < 1) throw new ShapeError(`${op}: x must have at least one axis, got a scalar`);
  const K = x.shape[x.rank - 1];
  for (const w of ws) {
    if (w.rank !== 2 || w.shape[1] !== K)
      throw new ShapeError(`${op}: weight ${fmt(w.shape)} must be [N, ${K}] for x ${fmt(x.shape)}`);
    if (w.backend !== x.backend) throw new ShapeError(`${op}: a weight lives on another backend than x`);
  }
}

/** Whether the backend's fused kernel may serve: f32 x, weights of one f32/bf16/f16 dtype, no gradient. */
function fusable(x: Tensor, ws: readonly Tensor[]): boolean {
  return x.dtype === 'f32' && ws.every((w) => isWeight(w) && w.dtype === ws[0].dtype) && !needsGrad(x, ...ws);
}

/** [x·W_0ᵀ, x·W_1ᵀ, ...] for x [..., K] and weights [N_i, K] (no biases): one pass over all the weights. */
export function linears(x: Tensor, ws: readonly Tensor[]): Tensor[] {
  checkWeights('linears', x, ws);
  const B = x.backend;
  if (B.linears && ws.length > 0 && fusable(x, ws)) return B.linears(x, ws);
  return ws.map((w) => linear(x, w));
}

/** silu(x·Wgᵀ) ⊙ (x·Wuᵀ) for x [..., K], Wg and Wu [N, K]: the input of a Llama MLP's down projection. */
export function swiglu(x: Tensor, wGate: Tensor, wUp: Tensor): Tensor {
  checkWeights('swiglu', x, [wGate, wUp]);
  if (wGate.shape[0] !== wUp.shape[0]) throw new ShapeError(`swiglu: gate ${fmt(wGate.shape)} and up ${fmt(wUp.shape)} weights differ in width`);
  const B = x.backend;
  if (B.swiglu && fusable(x, [wGate, wUp])) return B.swiglu(x, wGate, wUp);
  const grad = needsGrad(x, wGate, wUp);
  const g = linear(x, wGate), u = linear(x, wUp), s = silu(g), out = mul(s, u);
  if (!grad) for (const t of [g, u, s]) t.dispose();
  return out;
}

/** sum = x + r and y = rmsNorm(sum, w, eps) (x, r the same shape; w [D] or null). */
export function addRmsNorm(x: Tensor, r: Tensor, w: Tensor | null, eps: number): { sum: Tensor; y: Tensor } {
  if (x.rank < 1 || x.shape.length !== r.shape.length || x.shape.some((d, i) => d !== r.shape[i]))
    throw new ShapeError(`addRmsNorm: x ${fmt(x.shape)} and r ${fmt(r.shape)} must have the same shape`);
  const D = x.shape[x.rank - 1];
  if (w && (w.rank !== 1 || w.shape[0] !== D)) throw new ShapeError(`addRmsNorm: weight ${fmt(w.shape)} must be [${D}] for x ${fmt(x.shape)}`);
  if (r.backend !== x.backend || (w && w.backend !== x.backend)) throw new ShapeError('addRmsNorm: tensors live on different backends');
  const B = x.backend;
  if (B.addRmsNorm && x.dtype === 'f32' && r.dtype === 'f32' && (!w || w.dtype === 'f32') && !needsGrad(x, r, w))
    return B.addRmsNorm(x, r, w, eps);
  const sum = add(x, r);
  return { sum, y: rmsNorm(sum, w, eps) };
}

/**
 * Rotary embedding of this step's queries and keys, and the KV-cache append: returns rope(q) [B, Hq, T, D] and
 * writes rope(k) and v ([B, Hkv, T, D], views allowed) into kCache/vCache [B, Hkv, L, D] at positions at..at+T-1
 * of their third axis. positions [B, T] (i32/i64), invFreq [D/2]. Inference only: the caches take no gradient.
 */
export function ropeAppendKV(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, invFreq: Tensor, kCache: Tensor, vCache: Tensor, at: number): Tensor {
  const shapes = `q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}, caches ${fmt(kCache.shape)} ${fmt(vCache.shape)}`;
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4 || kCache.rank !== 4 || vCache.rank !== 4)
    throw new ShapeError(`ropeAppendKV: q, k, v and the caches must be [B, H, T, D]; got ${shapes}`);
  const [B, , T, D] = q.shape;
  const [Bk, Hkv, Tk, Dk] = k.shape;
  if (Bk !== B || Tk !== T || Dk !== D || v.shape.some((d, i) => d !== k.shape[i]))
    throw new ShapeError(`ropeAppendKV: k and v must be [${B}, Hkv, ${T}, ${D}] like q; got ${shapes}`);
  for (const c of [kCache, vCache])
    if (c.shape[0] !== B || c.shape[1] !== Hkv || c.shape[3] !== D)
      throw new ShapeError(`ropeAppendKV: caches must be [${B}, ${Hkv}, L, ${D}]; got ${shapes}`);
  if (vCache.shape[2] !== kCache.shape[2]) throw new ShapeError(`ropeAppendKV: the caches differ in length: ${shapes}`);
  if (!Number.isInteger(at) || at < 0 || at + T > kCache.shape[2])
    throw new ShapeError(`ropeAppendKV: positions ${at}..${at + T - 1} do not fit caches of length ${kCache.shape[2]}`);
  if (needsGrad(k, v, kCache, vCache))
    throw new ShapeError('ropeAppendKV: the KV cache is for inference; run it under noGrad() (gradients do not flow through it)');
  const Bk_ = q.backend;
  if (Bk_.ropeAppendKV && [q, k, v, kCache, vCache, invFreq].every((t) => t.dtype === 'f32') && !needsGrad(q))
    return Bk_.ropeAppendKV(q, k, v, positions, invFreq, kCache, vCache, at);
  const qr = rope(q, positions, invFreq);
  const kr = rope(k, positions, invFreq);
  for (const [cache, src] of [[kCache, kr], [vCache, v]] as const) {
    const dst = slice(cache, 2, at, at + T);
    dst.backend.copyInto(dst, src);
    dst.dispose();
  }
  kr.dispose();
  return qr;
}
