// The one-call decode step of a Llama text stack (native/kernels/decode.cc): every layer's kernels in one addon
// call, equal bit for bit to the layer-by-layer ops.
import type { Backend, LlamaDecodeLayer } from '../backend.js';
import type { TypedArray } from '../../dtype.js';
import { WEIGHT_FORMATS } from '../../quant/formats.js';
import { QuantizedWeight } from '../../quant/weight.js';
import type { Tensor } from '../../tensor.js';
import { warmable } from './index.js';
import { DT_CODE, addon, empty } from './util.js';

/** The storage array at the tensor's first element; it must be contiguous (the kernel reads it whole). */
function whole(t: Tensor, what: string): TypedArray {
  t.assertLive();
  if (!t.isContiguous()) throw new Error(`vlmkit: native llamaDecode needs a contiguous ${what}, got a view of shape [${t.shape}]`);
  return t.offset === 0 ? t.storage.data : (t.storage.data.subarray(t.offset) as TypedArray);
}

const WEIGHTS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/** A weight's dtype or block format, with NF4's double quantization told apart (the kernel takes one for all). */
function kindOf(w: Tensor | QuantizedWeight): string {
  return w instanceof QuantizedWeight ? `${w.format}${w.doubleQuant ? '+dq' : ''}` : w.dtype;
}

/** The data the kernel reads of a weight: a tensor's storage, or a quantized weight's packed bytes. */
function weightData(w: Tensor | QuantizedWeight, what: string): TypedArray {
  if (!(w instanceof QuantizedWeight)) return whole(w, what);
  w.assertLive();
  return w.bytes;
}

export const decodeKernels: Required<Pick<Backend, 'llamaDecode'>> = {
  llamaDecode(x, s) {
    const [B, , H] = x.shape;
    const first = s.layers[0];
    if (!first) throw new Error('vlmkit: native llamaDecode needs at least one layer');
    const wq = first.q;
    const wt = kindOf(wq);
    const quant = wq instanceof QuantizedWeight ? wq : null;
    const f32s = (l: LlamaDecodeLayer) => [l.inputNorm, l.postNorm, l.kCache, l.vCache];
    for (const l of s.layers) {
      if (WEIGHTS.some((n) => kindOf(l[n]) !== wt)) throw new Error('vlmkit: native llamaDecode needs the weights of every linear in one dtype or format');
      if (f32s(l).some((t) => t.dtype !== 'f32')) throw new Error('vlmkit: native llamaDecode needs f32 norms and caches');
    }
    if ([x, s.invFreq, s.finalNorm].some((t) => t.dtype !== 'f32')) throw new Error('vlmkit: native llamaDecode computes in f32');
    const L = first.kCache.shape[2];
    const I = first.gate.shape[0];
    const y = empty(x, [B, 1, H]);
    const layers = s.layers.map((l) => [
      whole(l.inputNorm, 'input norm'), ...WEIGHTS.slice(0, 4).map((n) => weightData(l[n], `${n} weight`)), whole(l.postNorm, 'post-attention norm'),
      ...WEIGHTS.slice(4).map((n) => weightData(l[n], `${n} weight`)), whole(l.kCache, 'key cache'), whole(l.vCache, 'value cache'),
    ]);
    const next = s.next ?? null;
    // cache warming covers tensors only (the kernel does not warm quantized weights)
    const warm = !quant && warmable(s.layers.flatMap((l) => WEIGHTS.map((n) => l[n] as Tensor)));
    addon.llamaDecode(
      [B, H, s.heads, s.kvHeads, s.headDim, I, s.past, L], quant ? WEIGHT_FORMATS[quant.format].code : DT_CODE[(wq as Tensor).dtype], layers,
      whole(s.positions, 'positions'), s.positions.dtype === 'i64', whole(s.invFreq, 'inverse frequency'),
      s.keyMask ? DT_CODE[s.keyMask.dtype] : 0, s.keyMask ? whole(s.keyMask, 'key mask') : null, s.eps, s.scale,
      whole(s.finalNorm, 'final norm'), whole(x, 'input'), y.storage.data,
      warm, warm && next && warmable([next]) ? whole(next, 'lm_head') : null, quant?.doubleQuant ?? false);
    return y;
  },
};
