// DoRA (weight-decomposed low-rank adaptation; PEFT's use_dora, peft/tuners/lora/{dora,variants}.py): the adapted
// linear's weight is m ⊙ (W + s·BA) / ‖W + s·BA‖, the norm taken per output feature (each row of W [N, K]), m [N]
// a trained magnitude. As PEFT (and the DoRA paper, §4.3) the norm is a constant of the backward: it follows A and B
// in the forward but takes no gradient. PEFT's forward, which this follows term for term:
//   y = base(x) + (m/‖·‖ − 1) ⊙ base_result + (m/‖·‖) ⊙ s·B A x'
// where, without dropout (eval, or lora_dropout 0), x' = x and base_result = base(x) minus the bias (no second
// product); with dropout in training x' = dropout(x) and base_result = x' Wᵀ, a second product of the base.
import { QuantizedWeight, type Tensor, add, cast, div, keep, linear, matmul, mul, noGrad, sqrt, square, sub, sum, tidy } from '../engine/index.js';
import type { Linear, LowRankAdapter } from './common.js';

/**
 * ‖W + s·BA‖ per output feature (row of W), f32 [N], outside any graph (a constant to autograd). A quantized base
 * is dequantized for it (PEFT's dequantize_module_weight), a bf16/f16 one widened to f32 (PEFT's weight.to(x.dtype)).
 */
export function doraWeightNorm(w: Tensor | QuantizedWeight, a: Tensor, b: Tensor, scale: number): Tensor {
  return noGrad(() => tidy(() => {
    const wf = w instanceof QuantizedWeight ? w.dequantize() : cast(w, 'f32');
    const v = add(wf, mul(matmul(b, a), scale));
    return sqrt(sum(square(v), 1));
  }));
}

/** Whether the adapter's tensors are frozen (no gradient): its weight norm then cannot change and is computed once. */
const frozen = (ad: LowRankAdapter) => !ad.a.requiresGrad && !ad.b.requiresGrad && !ad.magnitude!.requiresGrad;

function weightNorm(w: Tensor | QuantizedWeight, ad: LowRankAdapter): Tensor {
  if (!frozen(ad)) {
    if (ad.normCache) { ad.normCache.dispose(); ad.normCache = null; }
    return doraWeightNorm(w, ad.a, ad.b, ad.scale);
  }
  // decode calls every adapted linear once per token: recomputing B·A (r·N·K) there would cost r times the base
  if (!ad.normCache || ad.normCache.isDisposed) ad.normCache = keep(doraWeightNorm(w, ad.a, ad.b, ad.scale));
  return ad.normCache;
}

/**
 * Adds a DoRA adapter's term to `y`, the layer's output so far (base product, bias, earlier adapters) for input x.
 * Gradients reach x, A, B and the magnitude; the base weight takes none (as with LoRA).
 */
export function applyDora(y: Tensor, x: Tensor, l: Linear<Tensor | QuantizedWeight>, ad: LowRankAdapter): Tensor {
  const m = ad.magnitude!;
  const xin = ad.input ? ad.input(x) : x;
  const scaleRows = div(m, weightNorm(l.w, ad));
  const low = linear(linear(xin, ad.a), ad.b);
  // PEFT's base_result: the output so far minus the bias, or with dropout a product of the dropped input
  const base = xin !== x ? linear(xin, l.w) : l.b ? sub(y, l.b) : y;
  // (m/‖·‖)·s folded on the [N] vector: one pass over the activations less than PEFT's (m/‖·‖ ⊙ low)·s
  const dora = add(mul(sub(scaleRows, 1), base), mul(low, ad.scale === 1 ? scaleRows : mul(scaleRows, ad.scale)));
  return add(y, dora);
}
