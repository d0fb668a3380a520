// Gradient checkpointing: run a block without keeping its intermediates, and recompute them in the backward pass.
// Peak activation memory of a deep stack drops from every layer's intermediates to one layer's plus the block
// inputs. Parameters used inside fn (weights, adapters) are leaves: the nested backward accumulates into their
// .grad directly, so they need not be listed. fn must be deterministic (seed any dropout from the step, not from a
// stream that advances per call).
import { backward, isGradEnabled, noGrad, withGrad } from './autograd.js';
import { withExactActivations } from './quant/activations.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  // exact quantized products: the output must be the one the backward's recomputation differentiates
  const out = noGrad(() => withExactActivations(() => tidy(() => fn(...inputs))));
  // Record against the inputs; the rule recomputes with grad on and backpropagates through the recomputation.
  // A block whose inputs need no grad may still hold trainable parameters, so the node is always attached.
  const rule = (g: Tensor) => {
    const detached = inputs.map((x) => {
      const d = x.view(x.shape, x.strides, x.offset);
      d.requiresGrad = x.requiresGrad;
      return d;
    });
    tidy(() => {
      const y = withGrad(() => fn(...detached));
      // the recomputed graph is private to this rule: free each tensor once its last reader has run
      if (y.requiresGrad) backward(y, g, { releaseSaved: true });
    });
    return detached.map((d) => {
      const gr = d.grad;
      d.grad = null;
      d.dispose();
      return gr;
    });
  };
  out.requiresGrad = true;
  // fn may read tensors of the enclosing scope besides its inputs (positions, masks): that scope keeps every
  // tensor it made (scope.ts releaseUnsaved). Tensors that carry a gradient reach fn through `inputs` only.
  out.node = { op: 'checkpoint', inputs, backward: rule, saved: inputs, readsScope: true };
  return out;
}
