// Helpers for the reference kernels: read any tensor (strided, any dtype) as plain numbers in logical order,
// and make outputs. Everything here favours obviousness over speed.
import { type DType, writeElement } from '../../dtype.js';
import { Tensor } from '../../tensor.js';

export function read(x: Tensor): number[] {
  return x.toArray();
}

/** The compute dtype of a result: f64 stays f64, everything else computes into f32. */
export function outDType(...xs: Tensor[]): DType {
  return xs.some((x) => x.dtype === 'f64') ? 'f64' : 'f32';
}

export function make(like: Tensor, shape: readonly number[], values: ArrayLike<number>, dtype: DType = outDType(like)): Tensor {
  const out = Tensor.empty(like.backend, shape, dtype);
  const d = out.data;
  if (dtype === 'f32' || dtype === 'f64' || dtype === 'i32' || dtype === 'u8') {
    for (let i = 0; i < values.length; i++) (d as Float64Array)[i] = values[i];
  } else for (let i = 0; i < values.length; i++) writeElement(dtype, d, i, values[i]);
  return out;
}
