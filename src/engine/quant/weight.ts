// A block-quantized weight: a linear layer's W [out, in] stored as its origin format stores it (ggml's Q8_0 and
// Q4_0 rows of 34- and 18-byte blocks; bitsandbytes' NF4 codes followed by their absmax, plain or double-quantized,
// laid out as nf4.ts describes), with the format's per-block scales. Not a Tensor: a Tensor is one element per slot,
// and a quantized weight is read only by the ops that know its format (linear; LoRA's base). It is frozen: it
// never takes a gradient, while the gradient with respect to the input flows through it.
//
// Memory is engine storage (Storage, from the backend's allocator: counted by storageStats, freed at once by
// dispose()). It is not tracked by tidy() scopes: like a model parameter it lives until its owner disposes it.
import type { Backend } from '../backend/backend.js';
import { defaultBackend } from '../backend/registry.js';
import { Storage } from '../storage.js';
import { Tensor } from '../tensor.js';
import { ShapeError, VlmkitError } from '../../errors.js';
import { QUANT_FORMATS, type QuantFormat, WEIGHT_FORMATS } from './formats.js';
import { dequantizeQ8_0, quantizeQ8_0 } from './q8_0.js';
import { dequantizeQ4_0, quantizeQ4_0 } from './q4_0.js';
import { dequantizeNF4, nf4Layout, quantizeNF4 } from './nf4.js';

export interface QuantOptions {
  /** NF4 only: quantize the block absmax again (bitsandbytes' compress_statistics); default true */
  doubleQuant?: boolean;
}

export class QuantizedWeight {
  readonly format: QuantFormat;
  /** logical [out, in] */
  readonly shape: readonly [number, number];
  /** values per block */
  readonly blockSize: number;
  readonly backend: Backend;
  /** the packed blocks, row after row, bit for bit as the origin format stores them (Q8_0/Q4_0: scales inside) */
  readonly storage: Storage;
  /** NF4: whether the absmax is double-quantized (false for the other formats) */
  readonly doubleQuant: boolean;
  /** frozen: the linear op never computes a gradient for it */
  readonly requiresGrad = false;
  name?: string;
  private disposed = false;

  private constructor(backend: Backend, format: QuantFormat, shape: readonly [number, number], storage: Storage, doubleQuant: boolean) {
    this.backend = backend;
    this.doubleQuant = doubleQuant;
    this.format = format;
    this.shape = Object.freeze([shape[0], shape[1]]) as readonly [number, number];
    this.blockSize = WEIGHT_FORMATS[format].blockValues;
    this.storage = storage;
  }

  /** Bytes of packed data a [out, in] weight takes in this format (in a multiple of the block size). */
  static byteLength(format: QuantFormat, shape: readonly number[], o: QuantOptions = {}): number {
    if (format === 'nf4') return nf4Layout(shape[0] * shape[1], o.doubleQuant ?? true).bytes;
    const f = WEIGHT_FORMATS[format];
    return (shape[0] * shape[1]) / f.blockValues * f.blockBytes;
  }

  /**
   * A weight from packed bytes as the format stores them (a file's tensor data), copied into engine storage.
   * `what` names the source in errors (e.g. the tensor's name in a file).
   */
  static fromBytes(format: QuantFormat, shape: readonly number[], bytes: Uint8Array, o: { backend?: Backend; what?: string } & QuantOptions = {}): QuantizedWeight {
    const what = o.what ?? `${format} weight`;
    checkFormatShape(format, shape, what);
    const n = QuantizedWeight.byteLength(format, shape, o);
    if (bytes.length !== n)
      throw new VlmkitError('E_QUANT', `${what}: ${bytes.length} bytes of packed ${format} data, but [${shape.join(', ')}] needs ${n}`);
    const w = QuantizedWeight.alloc(o.backend ?? defaultBackend(), format, shape as [number, number], o);
    w.bytes.set(bytes);
    return w;
  }

  private static alloc(backend: Backend, format: QuantFormat, shape: readonly [number, number], o: QuantOptions): QuantizedWeight {
    const st = new Storage('u8', QuantizedWeight.byteLength(format, shape, o), backend.allocator);
    return new QuantizedWeight(backend, format, shape, st, format === 'nf4' && (o.doubleQuant ?? true));
  }

  /** Quantizes t (with `format`'s definition) into a new weight on t's backend. */
  static quantize(t: Tensor, format: QuantFormat, what = `${format} quantization`, o: QuantOptions = {}): QuantizedWeight {
    t.assertLive();
    checkFormatShape(format, t.shape, what);
    if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16')
      throw new ShapeError(`${what}: the weight must be f32, bf16 or f16, got ${t.dtype} [${t.shape.join(', ')}]`);
    const w = QuantizedWeight.alloc(t.backend, format, t.shape as [number, number], o);
    const { bad, near } = quantizeInto(t, format, w);
    if (bad >= 0) {
      w.dispose();
      const K = t.shape[1], at = `[${Math.floor(bad / K)}, ${bad % K}]`;
      throw new VlmkitError('E_QUANT', Number.isFinite(near[0])
        ? `${what}: the block at ${at} of [${t.shape.join(', ')}] has values too large for ${format}'s fp16 scale (|x| up to ${Math.max(...near.map(Math.abs))}); keep this layer in f32/bf16`
        : `${what}: the weight [${t.shape.join(', ')}] holds ${near[0]} at ${at}; only finite weights can be quantized`);
    }
    return w;
  }

  get rank(): 2 {
    return 2;
  }
  get isDisposed(): boolean {
    return this.disposed || this.storage.disposed;
  }
  /** The packed blocks as stored. */
  get bytes(): Uint8Array {
    this.assertLive();
    return this.storage.data as Uint8Array;
  }

  /** The values as an f32 tensor [out, in] on this weight's backend (for tests and merges; exact). */
  dequantize(): Tensor {
    this.assertLive();
    const out = new Float32Array(this.shape[0] * this.shape[1]);
    if (this.format === 'q8_0') dequantizeQ8_0(this.bytes, out);
    else if (this.format === 'q4_0') dequantizeQ4_0(this.bytes, out);
    else dequantizeNF4(this.bytes, out, this.doubleQuant);
    return wrapF32(this.backend, out, this.shape);
  }

  /**
   * Rows `rows` of the values, dequantized into out (rows.length x in, in order): an embedding lookup in a quantized
   * table reads only the blocks of the rows it looks up. Q8_0 and Q4_0 (each row is whole blocks with their scales
   * inside); NF4's statistics are stored apart from its codes and are not read row by row.
   */
  dequantizeRows(rows: ArrayLike<number>, out: Float32Array): void {
    this.assertLive();
    if (this.format === 'nf4') throw new VlmkitError('E_QUANT', `${this.name ?? 'an nf4 weight'}: rows are read from Q8_0 or Q4_0 weights only, not nf4`);
    const [V, K] = this.shape;
    const f = WEIGHT_FORMATS[this.format], rowBytes = (K / f.blockValues) * f.blockBytes;
    if (out.length !== rows.length * K) throw new ShapeError(`dequantizeRows: out holds ${out.length} values, ${rows.length} rows of ${K} need ${rows.length * K}`);
    const bytes = this.bytes, deq = this.format === 'q8_0' ? dequantizeQ8_0 : dequantizeQ4_0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(Number.isInteger(r) && r >= 0 && r < V)) throw new ShapeError(`dequantizeRows: row ${r} is out of range for [${V}, ${K}]`);
      deq(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), out.subarray(i * K, (i + 1) * K));
    }
  }

  assertLive(): void {
    if (this.isDisposed) throw new Error(`vlmkit: ${this.format} weight [${this.shape}] was used after dispose()`);
  }

  /** Releases the packed data now. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }

  toString(): string {
    return `QuantizedWeight(${this.format}, [${this.shape}], ${this.backend.name})`;
  }
}

function checkFormatShape(format: string, shape: readonly number[], what: string): void {
  if (!(QUANT_FORMATS as readonly string[]).includes(format))
    throw new VlmkitError('E_QUANT', `${what}: unknown or not yet supported weight format "${format}" (supported: ${QUANT_FORMATS.join(', ')})`);
  const bs = WEIGHT_FORMATS[format as QuantFormat].blockValues;
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new ShapeError(`${what}: a ${format} weight is a matrix [out, in], got [${shape.join(', ')}]`);
  if (shape[1] % bs !== 0)
    throw new ShapeError(`${what}: ${format} stores rows in blocks of ${bs}, but [${shape.join(', ')}] has ${shape[1]} columns; keep this layer in f32/bf16`);
}

// A Tensor from a fresh f32 array, on `backend` (copied into its storage so that native kernels may read it).
function wrapF32(backend: Backend, data: Float32Array, shape: readonly number[]): Tensor {
  const t = Tensor.empty(backend, shape, 'f32');
  (t.data as Float32Array).set(data);
  return t;
}

/**
 * Quantizes an f32/bf16/f16 matrix [out, in] into a block format (Q8_0/Q4_0: ggml's quantize_row_*_ref; NF4:
 * bitsandbytes' quantize_4bit, double-quantized unless doubleQuant is false).
 */
export function quantize(t: Tensor, format: QuantFormat, o: QuantOptions = {}): QuantizedWeight {
  return QuantizedWeight.quantize(t, format, undefined, o);
}

/** The exact f32 values of a quantized weight, as a tensor [out, in]. */
export function dequantize(w: QuantizedWeight): Tensor {
  return w.dequantize();
}

/** Rows widened to f32 at a time when a 16-bit weight is quantized into a row-blocked format (Q8_0, Q4_0). */
const QUANT_CHUNK_ROWS = 256;

/**
 * Quantizes t into w's bytes. Q8_0 and Q4_0 blocks never cross a row, so a 16-bit t is widened a few rows at a
 * time (a 49280 x 576 lm_head would otherwise take a 113 MB f32 copy at load); NF4's double quantization spans
 * the whole matrix and takes one. Returns the first bad element's index (-1: none) and the values from it on
 * (one block), for the error message.
 */
function quantizeInto(t: Tensor, format: QuantFormat, w: QuantizedWeight): { bad: number; near: Float32Array } {
  const run = (x: Float32Array, out: Uint8Array) =>
    format === 'q8_0' ? quantizeQ8_0(x, out) : format === 'q4_0' ? quantizeQ4_0(x, out) : quantizeNF4(x, out, w.doubleQuant);
  const whole = (x: Float32Array) => {
    const bad = run(x, w.bytes);
    return { bad, near: bad >= 0 ? x.subarray(bad, bad + w.blockSize) : x.subarray(0, 0) };
  };
  if (t.dtype === 'f32' && t.isContiguous()) return whole(t.data as Float32Array);
  if (format === 'nf4') return whole(t.toFloat32Array());
  const [N, K] = t.shape;
  const rowBytes = K / w.blockSize * WEIGHT_FORMATS[format].blockBytes;
  for (let r0 = 0; r0 < N; r0 += QUANT_CHUNK_ROWS) {
    const r1 = Math.min(N, r0 + QUANT_CHUNK_ROWS);
    const rows = t.view([r1 - r0, K], t.strides, t.offset + r0 * t.strides[0]);
    const x = rows.toFloat32Array();
    rows.dispose();
    const bad = run(x, w.bytes.subarray(r0 * rowBytes, r1 * rowBytes));
    if (bad >= 0) return { bad: r0 * K + bad, near: x.subarray(bad, bad + w.blockSize) };
  }
  return { bad: -1, near: new Float32Array(0) };
}
