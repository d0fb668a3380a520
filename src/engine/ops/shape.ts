// Shape and layout ops. Views (reshape of a contiguous tensor, permute, transpose, expand, slice) share storage
// and cost nothing; the rest copy. Each records its gradient rule.
import { record } from '../autograd.js';
import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import { Tensor, contiguousStrides, numel } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function normAxis(op: string, x: Tensor, axis: number): number {
  const a = axis < 0 ? axis + x.rank : axis;
  if (a < 0 || a >= x.rank) throw new ShapeError(`${op}: axis ${axis} is out of range for shape ${fmt(x.shape)}`);
  return a;
}
export { normAxis };

/** Returns x itself when already contiguous, else a contiguous copy. */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  const out = x.backend.contiguous(x);
  return record(out, 'contiguous', [x], (g) => [g], []);
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const sh = shape.slice();
  const neg = sh.indexOf(-1);
  if (neg >= 0) {
    const rest = sh.reduce((a, d, i) => (i === neg ? a : a * d), 1);
    sh[neg] = rest === 0 ? 0 : x.size / rest;
  }
  if (numel(sh) !== x.size || !sh.every((d) => Number.isInteger(d) && d >= 0))
    throw new ShapeError(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  let out: Tensor;
  if (x.isContiguous()) out = x.view(sh, contiguousStrides(sh), x.offset);
  else {
    const c = x.backend.contiguous(x);
    out = c.view(sh, contiguousStrides(sh), 0);
    c.dispose();
  }
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)], []);
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  const s = start < 0 ? start + x.rank : start;
  const e = end < 0 ? end + x.rank : end;
  const mid = x.shape.slice(s, e + 1).reduce((a, d) => a * d, 1);
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  const sh = x.shape.slice();
  sh.splice(a, 0, 1);
  const st = x.strides.slice();
  st.splice(a, 0, a < x.rank ? x.strides[a] * x.shape[a] : 1);
  const out = x.view(sh, st, x.offset);
  return record(out, 'unsqueeze', [x], (g) => [reshape(g, x.shape)], []);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('squeeze', x, axis);
  if (x.shape[a] !== 1) throw new ShapeError(`squeeze: axis ${axis} of ${fmt(x.shape)} has size ${x.shape[a]}, not 1`);
  const sh = x.shape.filter((_, i) => i !== a);
  const st = x.strides.filter((_, i) => i !== a);
  const out = x.view(sh, st, x.offset);
  return record(out, 'squeeze', [x], (g) => [reshape(g, x.shape)], []);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.rank || new Set(dims.map((d) => (d < 0 ? d + x.rank : d))).size !== x.rank)
    throw new ShapeError(`permute: ${fmt(dims)} is not a permutation of the ${x.rank} axes of ${fmt(x.shape)}`);
  const p = dims.map((d) => (d < 0 ? d + x.rank : d));
  const out = x.view(p.map((d) => x.shape[d]), p.map((d) => x.strides[d]), x.offset);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => (inv[d] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inv)], []);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const i = normAxis('transpose', x, a), j = normAxis('transpose', x, b);
  const p = x.shape.map((_, k) => k);
  p[i] = j;
  p[j] = i;
  return permute(x, p);
}

/** Broadcast view to `shape` (numpy rules; new leading axes allowed). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const off = shape.length - x.rank;
  if (off < 0) throw new ShapeError(`expand: cannot expand ${fmt(x.shape)} to fewer dims ${fmt(shape)}`);
  const st = shape.map((d, i) => {
    if (i < off) return 0;
    const xd = x.shape[i - off];
    if (xd === d) return x.strides[i - off];
    if (xd === 1) return 0;
    throw new ShapeError(`expand: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  });
  const out = x.view(shape, st, x.offset);
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)], []);
}

/** Sums g over the axes that broadcasting added or stretched, giving a tensor of `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  let cur = g;
  const own = (t: Tensor) => {
    if (cur !== g) cur.dispose();
    cur = t;
  };
  while (cur.rank > shape.length) own(cur.backend.reduce('sum', cur, 0, false));
  for (let i = 0; i < shape.length; i++)
    if (shape[i] === 1 && cur.shape[i] !== 1) own(cur.backend.reduce('sum', cur, i, true));
  if (cur === g) return g.view(g.shape, g.strides, g.offset);
  return cur;
}

/** x[..., start:end, ...] along one axis (a view). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis('slice', x, axis);
  const n = x.shape[a];
  const s = start < 0 ? start + n : start;
  const e = end < 0 ? end + n : Math.min(end, n);
  if (s < 0 || s > e || e > n) throw new ShapeError(`slice: range [${start}, ${end}) is out of bounds for axis ${axis} of ${fmt(x.shape)}`);
  const sh = x.shape.slice();
  sh[a] = e - s;
  const out = x.view(sh, x.strides, x.offset + s * x.strides[a]);
  return record(out, 'slice', [x], (g) => {
    const gx = Tensor.empty(g.backend, x.shape, g.dtype, true);
    const dst = slice(gx, a, s, e);
    g.backend.copyInto(dst, g);
    dst.dispose();
    return [gx];
  }, []);
}

/** Joins tensors of equal shape except along `axis`. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (!xs.length) throw new ShapeError('concat: needs at least one tensor');
  const a = normAxis('concat', xs[0], axis);
  const ref = xs[0];
  for (const x of xs) {
    if (x.rank !== ref.rank || x.dtype !== ref.dtype || x.shape.some((d, i) => i !== a && d !== ref.shape[i]))
      throw new ShapeError(`concat: shapes ${xs.map((t) => `${fmt(t.shape)}:${t.dtype}`).join(', ')} do not match outside axis ${axis}`);
    if (x.backend !== ref.backend) throw new ShapeError('concat: tensors live on different backends');
  }
  const sh = ref.shape.slice();
  sh[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const out = Tensor.empty(ref.backend, sh, ref.dtype);
  let at = 0;
  const offsets: number[] = [];
  for (const x of xs) {
    offsets.push(at);
    const v = out.view(x.shape, out.strides, at * out.strides[a]);
    out.backend.copyInto(v, x);
    v.dispose();
    at += x.shape[a];
  }
  return record(out, 'concat', xs, (g) =>
    xs.map((x, i) => (x.requiresGrad ? g.view(x.shape, g.strides, g.offset + offsets[i] * g.strides[a]) : null)),
  []);
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = x.backend.cast(x, dtype);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return out;
  return record(out, 'cast', [x], (g) => [g.backend.cast(g, x.dtype)], []);
}

/**
 * Idefics3's pixel shuffle (space-to-depth): [B, S, D] with S = h*w a square -> [B, S/r², D*r²], in exactly the
 * element order of transformers' Idefics3Connector.pixel_shuffle.
 */
export function pixelShuffle(x: Tensor, r: number): Tensor {
  const [B, S, D] = x.shape;
  const h = Math.round(Math.sqrt(S));
  if (x.rank !== 3 || h * h !== S || h % r !== 0)
    throw new ShapeError(`pixelShuffle: input ${fmt(x.shape)} must be [B, h*h, D] with h divisible by ${r}`);
  const w = h;
  let t = reshape(x, [B, h, w / r, D * r]);
  t = permute(t, [0, 2, 1, 3]);
  t = reshape(t, [B, w / r, h / r, D * r * r]);
  t = permute(t, [0, 2, 1, 3]);
  return reshape(t, [B, S / (r * r), D * r * r]);
}
