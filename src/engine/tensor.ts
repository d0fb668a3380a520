// Tensor: a shape, strides and offset (in elements) over a shared Storage, on one backend. Views share storage;
// every op returns a fresh tensor. Autograd state (requiresGrad, grad, node) lives here; the rules live in ops/.
import type { Backend } from './backend/backend.js';
import { type DType, type TypedArray, bf16ToF32, f16ToF32, isFloat, readElement } from './dtype.js';
import { track } from './scope.js';
import { Storage } from './storage.js';

/** How a tensor was computed: its inputs and the rule that maps the output gradient to theirs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** gradients for each input, aligned with inputs; null where an input needs none */
  backward: (g: Tensor) => (Tensor | null)[];
  /**
   * Every tensor whose data the rule reads (inputs, the output, side tensors such as a norm's rstd). A graph scope
   * releases the data of the intermediates no rule saved (scope.ts); undefined means unknown, and keeps them all.
   */
  saved?: readonly Tensor[];
  /** the rule may also read tensors of its enclosing scope that `saved` does not list (a closure): keep them all */
  readsScope?: boolean;
  /** side tensors the op made for this rule alone (a norm's rstd, attention's lse): free once the rule has run */
  owned?: readonly Tensor[];
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** numpy broadcasting of two shapes (aligned at the last axis), or null when they do not broadcast. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** element offset of [0,...,0] in storage */
  readonly offset: number;
  readonly dtype: DType;
  readonly storage: Storage;
  readonly backend: Backend;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  name?: string;
  private disposed = false;
  /** the storage was released but the tensor keeps its place in the graph (releaseData) */
  private released = false;

  constructor(backend: Backend, storage: Storage, shape: readonly number[], strides?: readonly number[], offset = 0) {
    this.backend = backend;
    this.storage = storage;
    this.dtype = storage.dtype;
    this.shape = Object.freeze(shape.slice());
    this.strides = Object.freeze(strides ? strides.slice() : contiguousStrides(shape));
    this.offset = offset;
    track(this);
  }

  /** A fresh, uninitialised (or zeroed) contiguous tensor. */
  static empty(backend: Backend, shape: readonly number[], dtype: DType, zero = false): Tensor {
    return new Tensor(backend, new Storage(dtype, numel(shape), backend.allocator, undefined, 0, zero), shape);
  }

  /** Wraps (no copy) a typed array as a contiguous tensor; the array's buffer is never freed by us. */
  static wrap(backend: Backend, data: TypedArray, shape: readonly number[], dtype: DType): Tensor {
    if (data.length !== numel(shape)) throw new Error(`vlmkit: data of length ${data.length} does not fit shape [${shape}]`);
    const st = new Storage(dtype, data.length, null, data.buffer as ArrayBuffer, data.byteOffset);
    return new Tensor(backend, st, shape);
  }

  /** A view sharing this tensor's storage. */
  view(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertLive();
    this.storage.retain();
    return new Tensor(this.backend, this.storage, shape, strides, offset);
  }

  get size(): number {
    return numel(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.disposed || this.released;
  }

  isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  assertLive(): void {
    if (this.released && !this.disposed)
      throw new Error(`vlmkit: tensor [${this.shape}] was used after its data was released (no gradient rule saved it)`);
    if (this.disposed || this.storage.disposed) throw new Error(`vlmkit: tensor [${this.shape}] was used after dispose()`);
  }

  /** The elements as a typed array view; the tensor must be contiguous (use contiguous() first). */
  get data(): TypedArray {
    this.assertLive();
    if (!this.isContiguous()) throw new Error('vlmkit: .data needs a contiguous tensor; call contiguous() first');
    return this.storage.data.subarray(this.offset, this.offset + this.size) as TypedArray;
  }

  /** Copies the elements out, in logical order, as plain numbers (f32/f64/bf16/f16 widened). */
  toArray(): number[] {
    this.assertLive();
    const out = new Array<number>(this.size);
    const idx = new Array<number>(this.rank).fill(0);
    const sd = this.storage.data;
    for (let i = 0; i < out.length; i++) {
      let p = this.offset;
      for (let d = 0; d < idx.length; d++) p += idx[d] * this.strides[d];
      out[i] = readElement(this.dtype, sd, p);
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < this.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  toFloat32Array(): Float32Array {
    if (this.dtype === 'f32' && this.isContiguous()) return (this.data as Float32Array).slice();
    if ((this.dtype === 'bf16' || this.dtype === 'f16') && this.isContiguous()) {
      // widened in place: going through toArray() would hold a JS number per element (8 bytes, twice the output)
      const src = this.data as Uint16Array, out = new Float32Array(src.length);
      const widen = this.dtype === 'bf16' ? bf16ToF32 : f16ToF32;
      for (let i = 0; i < src.length; i++) out[i] = widen(src[i]);
      return out;
    }
    return Float32Array.from(this.toArray());
  }

  item(): number {
    if (this.size !== 1) throw new Error(`vlmkit: item() needs a single element, tensor has shape [${this.shape}]`);
    return this.toArray()[0];
  }

  get isFloat(): boolean {
    return isFloat(this.dtype);
  }

  /** Marks this tensor as a leaf that collects gradients in .grad. */
  requireGrad(on = true): this {
    this.requiresGrad = on;
    return this;
  }

  /** Releases the storage now (when no other view holds it). Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    if (!this.released) this.storage.release();
    this.released = true;
  }

  /**
   * Releases the storage now but keeps the node, shape and requiresGrad: a graph intermediate whose data no
   * backward rule reads still routes gradients. Reading its data afterwards throws. dispose() still ends it.
   */
  releaseData(): void {
    if (this.disposed || this.released) return;
    this.released = true;
    this.storage.release();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape}], ${this.backend.name})`;
  }
}
