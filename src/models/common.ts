// Small helpers shared by the model families: memory scopes that stay correct under autograd, and reading small
// integer tensors (ids, masks) on the host.
import { type Tensor, contiguous, isGradEnabled, tidy } from '../engine/index.js';

/**
 * Runs fn in a tidy scope. Without a graph (inference) every intermediate is released when fn returns. When the
 * result requires grad, the tensors its graph reaches (back to, but not past, `inputs`) move to the enclosing
 * scope instead, so a later backward() still finds them; the caller's outer tidy releases them.
 */
export function tidyGraph<T extends Tensor | Tensor[]>(inputs: readonly Tensor[], fn: () => T): T {
  if (!isGradEnabled()) return tidy(fn);
  return tidy(() => {
    const r = fn();
    const outs = Array.isArray(r) ? r : [r];
    const graph: Tensor[] = [];
    if (outs.some((t) => t.requiresGrad)) {
      const stop = new Set<Tensor>(inputs);
      const seen = new Set<Tensor>();
      const stack = outs.filter((t) => t.requiresGrad);
      while (stack.length) {
        const t = stack.pop()!;
        if (seen.has(t) || stop.has(t)) continue;
        seen.add(t);
        graph.push(t);
        if (t.node) for (const i of t.node.inputs) if (!seen.has(i) && !stop.has(i)) {
          if (i.node) stack.push(i);
          else graph.push(i); // leaves (weights live outside scopes; tidy only moves what it owns)
        }
      }
    }
    return { r, graph };
  }).r;
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
