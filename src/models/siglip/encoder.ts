// The pre-norm transformer encoder layer that SigLIP's and CLIP's towers (vision and text) all use:
// x + attn(ln1(x)), then + fc2(act(fc1(ln2(x)))), with biases on every projection. The towers differ only in their
// activation, in the mask (CLIP's text tower is causal) and in what they do around the layers.
import { type MlpActivation, type Tensor, add, attention, gelu, geluTanh, layerNorm, mlp, mul, permute, reshape, sigmoid } from '../../engine/index.js';
import { type Linear, applyLinear as lin, tidyGraph } from '../common.js';
import type { VisionLayerWeights } from './weights.js';

/** gelu_pytorch_tanh / gelu_new (the tanh approximation), gelu (erf), quick_gelu (CLIP: x·sigmoid(1.702x)). */
export type EncoderAct = 'gelu_pytorch_tanh' | 'gelu_new' | 'gelu' | 'quick_gelu';

export const ENCODER_ACTS: readonly EncoderAct[] = ['gelu_pytorch_tanh', 'gelu_new', 'gelu', 'quick_gelu'];

export function activate(x: Tensor, act: EncoderAct): Tensor {
  if (act === 'gelu') return gelu(x);
  if (act === 'quick_gelu') return mul(x, sigmoid(mul(x, 1.702)));
  return geluTanh(x);
}

/** The activation as one elementwise op (the fused MLP's), or null for a composite one (quick_gelu). */
function activationOp(act: EncoderAct): MlpActivation | null {
  return act === 'gelu' ? 'gelu' : act === 'quick_gelu' ? null : 'gelu_tanh';
}

/** A frozen linear with no adapter in effect: the fused MLP may take it. */
const plainFrozen = (l: Linear) => !l.w.requiresGrad && !l.adapters?.some((a) => a.enabled !== false);

/**
 * fc2(act(fc1(h))): the fused MLP (engine/ops/mlp.ts: only fc1's output is held at full width, the rest a chunk of
 * rows at a time) when both linears are frozen without adapters (LoRA on attention, QLoRA, inference), else the
 * plain chain (trained or adapted MLP weights).
 */
function encoderMlp(h: Tensor, l: VisionLayerWeights, act: EncoderAct): Tensor {
  const op = activationOp(act);
  if (op && h.dtype === 'f32' && plainFrozen(l.fc1) && plainFrozen(l.fc2)) return mlp(h, l.fc1, op, l.fc2);
  return lin(activate(lin(h, l.fc1), act), l.fc2);
}

export interface EncoderLayerOptions {
  heads: number;
  headDim: number;
  eps: number;
  act: EncoderAct;
  /** [B, T] nonzero = a key to attend to; null: every key */
  keyMask: Tensor | null;
  /** each position attends to itself and earlier ones only (CLIP's text tower) */
  causal?: boolean;
}

/** One encoder layer over x [B, T, D]. */
export function encoderLayer(x: Tensor, l: VisionLayerWeights, o: EncoderLayerOptions): Tensor {
  const { heads: nh, headDim: hd, eps } = o;
  const [N, P, D] = x.shape;
  // Each half in its own scope: what no gradient rule saved (the merged heads and the output projection, the
  // second norm's output and the MLP's) is released when its half ends, not when the layer does, so the MLP
  // runs without the attention half's leftovers (a recomputed 1-tile layer: 9 MB less when its output is made).
  return tidyGraph([x], () => {
    const x1 = tidyGraph([x], () => {
      const h = layerNorm(x, l.ln1.w, l.ln1.b, eps);
      const split = (t: Tensor) => permute(reshape(t, [N, P, nh, hd]), [0, 2, 1, 3]);
      const q = split(lin(h, l.q)), k = split(lin(h, l.k)), v = split(lin(h, l.v));
      const a = attention(q, k, v, { causal: o.causal ?? false, scale: hd ** -0.5, keyMask: o.keyMask, qOffset: 0 });
      const merged = reshape(permute(a, [0, 2, 1, 3]), [N, P, D]);
      return add(x, lin(merged, l.out));
    });
    const m = tidyGraph([x1], () => encoderMlp(layerNorm(x1, l.ln2.w, l.ln2.b, eps), l, o.act));
    return add(x1, m);
  });
}
