// Making tensors: from values, filled, random (seeded), from safetensors bytes.
import { defaultBackend } from '../backend/registry.js';
import type { Backend } from '../backend/backend.js';
import { type DType, type TypedArray, writeElement } from '../dtype.js';
import { Tensor, numel } from '../tensor.js';
import type { RawTensor } from '../../io/safetensors.js';
import { ShapeError } from '../../errors.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad = true;
  return t;
}

/** A new tensor holding a copy of `values` (shape defaults to [values.length]). */
export function tensor(values: ArrayLike<number> | TypedArray, shape?: readonly number[], o: CreateOptions = {}): Tensor {
  const dtype = o.dtype ?? 'f32';
  const sh = shape ?? [values.length];
  if (numel(sh) !== values.length) throw new ShapeError(`tensor: ${values.length} values do not fill shape [${sh}]`);
  const t = Tensor.empty(o.backend ?? defaultBackend(), sh, dtype);
  const d = t.data;
  if (dtype === 'i64') for (let i = 0; i < values.length; i++) (d as BigInt64Array)[i] = BigInt(Number(values[i]));
  else if (dtype === 'bf16' || dtype === 'f16') for (let i = 0; i < values.length; i++) writeElement(dtype, d, i, Number(values[i]));
  else (d as Float32Array).set(values as ArrayLike<number>);
  return finish(t, o);
}

export function scalar(v: number, o: CreateOptions = {}): Tensor {
  return tensor([v], [], o);
}

export function empty(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(Tensor.empty(o.backend ?? defaultBackend(), shape, o.dtype ?? 'f32'), o);
}

export function zeros(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(Tensor.empty(o.backend ?? defaultBackend(), shape, o.dtype ?? 'f32', true), o);
}

export function full(shape: readonly number[], value: number, o: CreateOptions = {}): Tensor {
  const t = Tensor.empty(o.backend ?? defaultBackend(), shape, o.dtype ?? 'f32');
  t.backend.fill(t, value);
  return finish(t, o);
}

export function ones(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return full(shape, 1, o);
}

export function arange(n: number, o: CreateOptions = {}): Tensor {
  const v = new Array<number>(n);
  for (let i = 0; i < n; i++) v[i] = i;
  return tensor(v, [n], { dtype: 'i32', ...o });
}

export function zerosLike(x: Tensor, dtype: DType = x.dtype): Tensor {
  return Tensor.empty(x.backend, x.shape, dtype, true);
}

/** Seeded pseudo-random numbers (mulberry32): the same seed gives the same stream on every machine. */
export class Rng {
  private s: number;
  private spare: number | null = null;
  constructor(seed = 0) {
    this.s = seed >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** standard normal (Box-Muller) */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

export function randn(shape: readonly number[], o: CreateOptions & { seed?: number; rng?: Rng; std?: number } = {}): Tensor {
  const rng = o.rng ?? new Rng(o.seed ?? 0);
  const std = o.std ?? 1;
  const n = numel(shape);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
  return finish(tensor(v, shape, { dtype: o.dtype ?? 'f32', backend: o.backend }), o);
}

export function rand(shape: readonly number[], o: CreateOptions & { seed?: number; rng?: Rng; low?: number; high?: number } = {}): Tensor {
  const rng = o.rng ?? new Rng(o.seed ?? 0);
  const lo = o.low ?? 0, hi = o.high ?? 1;
  const n = numel(shape);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = lo + (hi - lo) * rng.next();
  return finish(tensor(v, shape, { dtype: o.dtype ?? 'f32', backend: o.backend }), o);
}

const RAW_DTYPE: Record<string, DType | undefined> = {
  F32: 'f32', F64: 'f64', BF16: 'bf16', F16: 'f16', I32: 'i32', I64: 'i64', U8: 'u8', BOOL: 'u8',
};

/** A tensor over a safetensors tensor's bytes (copied into backend memory). */
export function fromRaw(raw: RawTensor, o: CreateOptions = {}): Tensor {
  const dtype = RAW_DTYPE[raw.dtype];
  if (!dtype) throw new ShapeError(`fromRaw: safetensors dtype ${raw.dtype} is not supported (use F32, BF16, F16, I32, I64 or U8)`);
  const t = Tensor.empty(o.backend ?? defaultBackend(), raw.shape, dtype);
  new Uint8Array(t.storage.buffer, t.storage.data.byteOffset, raw.data.byteLength).set(
    new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength),
  );
  const out = o.dtype && o.dtype !== dtype ? t.backend.cast(t, o.dtype) : t;
  if (out !== t) t.dispose();
  return finish(out, o);
}

/** Moves (copies) a tensor to another backend, e.g. native -> reference for checking. */
export function toBackend(x: Tensor, b: Backend, dtype: DType = x.dtype): Tensor {
  const c = x.isContiguous() ? x : x.backend.contiguous(x);
  const t = Tensor.empty(b, x.shape, x.dtype);
  (t.data as Uint8Array).set(c.data as Uint8Array);
  if (c !== x) c.dispose();
  if (dtype === x.dtype) return t;
  const out = b.cast(t, dtype);
  t.dispose();
  return out;
}
