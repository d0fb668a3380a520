// Small helpers shared by the model families: memory scopes that stay correct under autograd, and reading small
// integer tensors (ids, masks) on the host.
import { type QuantizedWeight, type Tensor, add, contiguous, isGradEnabled, linear, loraLinear, mul, tidy, tidyUnless } from '../engine/index.js';
import { applyDora } from './dora.js';

/**
 * Runs fn in a tidy scope. Without a graph (inference, or no input requiring grad) every intermediate is released
 * when fn returns. When the result requires grad, everything made inside (the graph's intermediates and the side
 * tensors its rules saved) moves to the enclosing scope instead, so a later backward() finds them; the caller's
 * outer tidy releases them. `inputs` documents what fn reads (kept for call-site clarity).
 */
export function tidyGraph<T extends Tensor | Tensor[]>(_inputs: readonly Tensor[], fn: () => T): T {
  if (!isGradEnabled()) return tidy(fn);
  return tidyUnless(fn, (r) => (Array.isArray(r) ? r.some((t) => t.requiresGrad) : r.requiresGrad));
}

/**
 * Steps a residual stream: returns `next` and releases `prev` at once when no graph needs it (inference), so that
 * a deep stack holds one activation at a time. `prev` must be owned by the caller's scope (not a caller's input).
 */
export function advance(prev: Tensor, next: Tensor): Tensor {
  if (!next.requiresGrad && prev !== next) prev.dispose();
  return next;
}

/** The values of a small integer (or 0/1 mask) tensor as a plain Int32Array in logical order. */
export function hostInts(t: Tensor): Int32Array {
  const c = t.isContiguous() ? t : contiguous(t);
  try {
    const d = c.data;
    if (d instanceof Int32Array) return d.slice();
    if (d instanceof BigInt64Array) {
      const out = new Int32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
      return out;
    }
    if (d instanceof Uint8Array) return Int32Array.from(d);
    return Int32Array.from(c.toArray());
  } finally {
    if (c !== t) c.dispose();
  }
}

/** A low-rank adapter on a linear (LoRA): y += scale · (x Aᵀ) Bᵀ, A [r, K], B [N, r]. */
export interface LowRankAdapter {
  a: Tensor;
  b: Tensor;
  scale: number;
  /** false skips it (e.g. the reference model of DPO = the base with its adapter disabled); default true */
  enabled?: boolean;
  /** applied to x before A (LoRA dropout in training mode); default: x itself */
  input?: (x: Tensor) => Tensor;
  /**
   * DoRA (PEFT's use_dora): the magnitude m [N], f32; the layer's weight becomes m ⊙ (W + scale·BA) / ‖W + scale·BA‖
   * per output feature (models/dora.ts). Absent: plain LoRA.
   */
  magnitude?: Tensor;
  /** DoRA: ‖W + scale·BA‖ [N] of a frozen adapter (A, B and m take no gradient), computed once; owned by the adapter */
  normCache?: Tensor | null;
}

/**
 * A linear layer's parameters: w [N, K] (f32/bf16/f16; W = QuantizedWeight for a block-quantized, frozen base),
 * optional bias [N], optional adapters.
 */
export interface Linear<W extends Tensor | QuantizedWeight = Tensor | QuantizedWeight> {
  w: W;
  b: Tensor | null;
  adapters?: LowRankAdapter[];
}

/** A plain LoRA adapter (no DoRA magnitude, no dropout) on a frozen weight: the fused op serves it. */
function fusable(x: Tensor, l: Linear<Tensor | QuantizedWeight>, ad: LowRankAdapter | undefined): ad is LowRankAdapter {
  return !!ad && ad.enabled !== false && !ad.magnitude && !ad.input && !l.w.requiresGrad && (x.dtype === 'f32' || x.dtype === 'f64')
    && ad.a.dtype === x.dtype && ad.b.dtype === x.dtype && (!l.b || l.b.dtype === x.dtype);
}

/** x [..., K] -> [..., N]: x wᵀ + b, plus every enabled adapter's scale · (x Aᵀ) Bᵀ (DoRA's term for a DoRA one). */
export function applyLinear(x: Tensor, l: Linear<Tensor | QuantizedWeight>): Tensor {
  // the first adapter, when plain LoRA, fused with the base product: the same numbers, fewer live intermediates
  const first = l.adapters?.[0];
  const fused = fusable(x, l, first);
  let y = fused ? loraLinear(x, l.w, l.b, first.a, first.b, first.scale) : linear(x, l.w, l.b ?? undefined);
  if (l.adapters) for (const ad of l.adapters) {
    if (ad.enabled === false || (fused && ad === first)) continue;
    if (ad.magnitude) {
      y = applyDora(y, x, l, ad);
      continue;
    }
    const low = linear(linear(ad.input ? ad.input(x) : x, ad.a), ad.b);
    y = add(y, ad.scale === 1 ? low : mul(low, ad.scale));
  }
  return y;
}
