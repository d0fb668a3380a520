// Non-finite weights are never written: a NaN or Inf in a trained tensor or an Adam moment would make every later
// forward pass NaN, and a saved file gives no sign of it until someone loads it.
import type { Tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';

/** The first value of `t` (a tensor or its values) that is NaN or +-Inf, or null when every value is finite. */
export function firstNonFinite(t: Tensor | Float32Array): number | null {
  const d = t instanceof Float32Array ? t : t.isContiguous() && t.dtype === 'f32' ? (t.data as Float32Array) : t.toFloat32Array();
  for (let i = 0; i < d.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN and +-Inf: one branch per value
    if (d[i]! - d[i]! !== 0) return d[i]!;
  }
  return null;
}

/** The name and value of the first tensor holding a non-finite value, or null. */
export function findNonFinite(tensors: Iterable<[string, Tensor]>): { name: string; value: number } | null {
  for (const [name, t] of tensors) {
    const v = firstNonFinite(t);
    if (v !== null) return { name, value: v };
  }
  return null;
}

/** Throws E_NONFINITE before `what` is written when a tensor holds NaN or Inf; nothing is written then. */
export function assertFiniteForSave(tensors: Iterable<[string, Tensor]>, what: string): void {
  const bad = findNonFinite(tensors);
  if (bad)
    throw new VlmkitError('E_NONFINITE', `not saving ${what}: ${bad.name} holds ${bad.value} (the training diverged); start again with a lower --lr, or check the data`);
}
