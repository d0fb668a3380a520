// The numeric comparisons every parity check uses. Our output holding NaN or ±Infinity anywhere is a failure:
// a running max written as `if (!(d <= max)) max = d` keeps a NaN only when it is the last element, so these
// test finiteness explicitly instead.

/**
 * max|ours - ref| / max|ref| over the elements where `keep` (per leading row of `rowSize`) is true; max|diff|
 * when the reference is all zeros. Infinity when either side is not finite where compared, or the lengths differ.
 */
export function relErr(ours: ArrayLike<number>, ref: ArrayLike<number>, rowSize = ref.length, keep?: (row: number) => boolean): number {
  if (ours.length !== ref.length) return Infinity;
  let md = 0;
  let mr = 0;
  for (let r = 0; r * rowSize < ref.length; r++) {
    if (keep && !keep(r)) continue;
    for (let i = r * rowSize, e = Math.min(i + rowSize, ref.length); i < e; i++) {
      const o = ours[i]!;
      const x = ref[i]!;
      if (!Number.isFinite(o) || !Number.isFinite(x)) return Infinity;
      const d = Math.abs(o - x);
      if (d > md) md = d;
      const a = Math.abs(x);
      if (a > mr) mr = a;
    }
  }
  return mr === 0 ? md : md / mr;
}

/** The larger of two errors, NaN counting as the worst. */
export function worse(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
  return a > b ? a : b;
}

/** True when `e` is a finite number within `tol` (null, undefined and NaN are not). */
export function within(e: number | null | undefined, tol: number): boolean {
  return typeof e === 'number' && Number.isFinite(e) && e <= tol;
}
