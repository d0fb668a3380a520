// The pre-norm transformer encoder layer that SigLIP's and CLIP's towers (vision and text) all use:
// x + attn(ln1(x)), then + fc2(act(fc1(ln2(x)))), with biases on every projection. The towers differ only in their
// activation, in the mask (CLIP's text tower is causal) and in what they do around the layers.
import { type Tensor, add, attention, gelu, geluTanh, layerNorm, mul, permute, reshape, sigmoid } from '../../engine/index.js';
import { applyLinear as lin, tidyGraph } from '../common.js';
import type { VisionLayerWeights } from './weights.js';

/** gelu_pytorch_tanh / gelu_new (the tanh approximation), gelu (erf), quick_gelu (CLIP: x·sigmoid(1.702x)). */
export type EncoderAct = 'gelu_pytorch_tanh' | 'gelu_new' | 'gelu' | 'quick_gelu';

export const ENCODER_ACTS: readonly EncoderAct[] = ['gelu_pytorch_tanh', 'gelu_new', 'gelu', 'quick_gelu'];

export function activate(x: Tensor, act: EncoderAct): Tensor {
  if (act === 'gelu') return gelu(x);
  if (act === 'quick_gelu') return mul(x, sigmoid(mul(x, 1.702)));
  return geluTanh(x);
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
  return tidyGraph([x], () => {
    const h = layerNorm(x, l.ln1.w, l.ln1.b, eps);
    const split = (t: Tensor) => permute(reshape(t, [N, P, nh, hd]), [0, 2, 1, 3]);
    const q = split(lin(h, l.q)), k = split(lin(h, l.k)), v = split(lin(h, l.v));
    const a = attention(q, k, v, { causal: o.causal ?? false, scale: hd ** -0.5, keyMask: o.keyMask, qOffset: 0 });
    const merged = reshape(permute(a, [0, 2, 1, 3]), [N, P, D]);
    const x1 = add(x, lin(merged, l.out));
    const h2 = layerNorm(x1, l.ln2.w, l.ln2.b, eps);
    return add(x1, lin(activate(lin(h2, l.fc1), o.act), l.fc2));
  });
}
