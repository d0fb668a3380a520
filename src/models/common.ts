// Small helpers shared by the model families: memory scopes that stay correct under autograd, and reading small
// integer tensors (ids, masks) on the host.
import { type Tensor, contiguous, isGradEnabled, tidy, tidyUnless } from '../engine/index.js';

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
