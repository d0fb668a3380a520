// Helpers shared by the native kernel families: dtype codes as the addon numbers them, contiguous inputs,
// output allocation.
import type { DType, TypedArray } from '../../dtype.js';
import { Tensor } from '../../tensor.js';
import { loadAddon } from './addon.js';

export const DT_CODE: Record<DType, number> = { f32: 0, f64: 1, bf16: 2, f16: 3, i32: 4, i64: 5, u8: 6 };

// Loaded on first use, so that importing the engine never fails on a machine without the built addon.
export const addon = new Proxy({} as ReturnType<typeof loadAddon>, {
  get: (_t, name: string) => loadAddon()[name],
});

/** The element at the view's offset onward (for strided kernels). */
export function base(x: Tensor): TypedArray {
  x.assertLive();
  return x.storage.data.subarray(x.offset) as TypedArray;
}

/**
 * Runs fn with each input as it is when the kernel can read it (`ok`, by default: contiguous), else with a
 * contiguous copy; copies made here are disposed afterwards.
 */
export function withContiguous<T>(
  xs: (Tensor | null | undefined)[],
  fn: (...c: Tensor[]) => T,
  ok: (t: Tensor) => boolean = (t) => t.isContiguous(),
): T {
  const tmp: Tensor[] = [];
  const cs = xs.map((x) => {
    if (!x) return x as unknown as Tensor;
    if (ok(x)) return x;
    const c = x.backend.contiguous(x);
    tmp.push(c);
    return c;
  });
  try {
    return fn(...cs);
  } finally {
    for (const t of tmp) t.dispose();
  }
}

export function empty(like: Tensor, shape: readonly number[], dtype: DType = 'f32', zero = false): Tensor {
  return Tensor.empty(like.backend, shape, dtype, zero);
}

export function requireF32(op: string, ...xs: (Tensor | null | undefined)[]): void {
  for (const x of xs)
    if (x && x.dtype !== 'f32')
      throw new Error(`vlmkit: native ${op} computes in f32, got a ${x.dtype} tensor [${x.shape}]; cast it first`);
}
