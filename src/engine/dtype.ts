// Element types. Compute happens in f32 (f64 on the reference backend, for finite differences); weights may be
// stored as bf16/f16 and are widened inside the kernels that read them; ids and masks are i32 or i64.
export type DType = 'f32' | 'f64' | 'bf16' | 'f16' | 'i32' | 'i64' | 'u8';

export type TypedArray = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

export const BYTES: Record<DType, number> = { f32: 4, f64: 8, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1 };

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'f64' || d === 'bf16' || d === 'f16';
}
export function isInt(d: DType): boolean {
  return d === 'i32' || d === 'i64' || d === 'u8';
}

export function viewOf(dtype: DType, buffer: ArrayBuffer, byteOffset: number, length: number): TypedArray {
  switch (dtype) {
    case 'f32': return new Float32Array(buffer, byteOffset, length);
    case 'f64': return new Float64Array(buffer, byteOffset, length);
    case 'bf16': case 'f16': return new Uint16Array(buffer, byteOffset, length);
    case 'i32': return new Int32Array(buffer, byteOffset, length);
    case 'i64': return new BigInt64Array(buffer, byteOffset, length);
    case 'u8': return new Uint8Array(buffer, byteOffset, length);
  }
}

// bf16 <-> f32: bf16 is the top 16 bits of an f32; rounding to nearest even on the way down, as torch does.
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
export function bf16ToF32(h: number): number {
  u32buf[0] = h << 16;
  return f32buf[0];
}
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

// IEEE half precision.
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** Reads element i of a typed array of the given dtype as a JS number. */
export function readElement(dtype: DType, data: TypedArray, i: number): number {
  switch (dtype) {
    case 'bf16': return bf16ToF32((data as Uint16Array)[i]);
    case 'f16': return f16ToF32((data as Uint16Array)[i]);
    case 'i64': return Number((data as BigInt64Array)[i]);
    default: return (data as Float32Array)[i];
  }
}
export function writeElement(dtype: DType, data: TypedArray, i: number, v: number): void {
  switch (dtype) {
    case 'bf16': (data as Uint16Array)[i] = f32ToBf16(v); break;
    case 'f16': (data as Uint16Array)[i] = f32ToF16(v); break;
    case 'i64': (data as BigInt64Array)[i] = BigInt(Math.trunc(v)); break;
    default: (data as Float32Array)[i] = v;
  }
}
