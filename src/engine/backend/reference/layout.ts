import type { Backend } from '../backend.js';
import { type DType, writeElement } from '../../dtype.js';
import { Tensor } from '../../tensor.js';
import { make, read } from './util.js';

export const layoutKernels: Pick<Backend, 'contiguous' | 'cast' | 'copyInto' | 'fill'> = {
  contiguous(x) {
    return make(x, x.shape, read(x), x.dtype);
  },
  cast(x, dtype: DType) {
    const v = read(x);
    if (dtype === 'i32' || dtype === 'i64' || dtype === 'u8') for (let i = 0; i < v.length; i++) v[i] = Math.trunc(v[i]);
    return make(x, x.shape, v, dtype);
  },
  copyInto(dst: Tensor, src: Tensor) {
    const v = read(src);
    const idx = new Array<number>(dst.rank).fill(0);
    const sd = dst.storage.data;
    for (let i = 0; i < v.length; i++) {
      let p = dst.offset;
      for (let d = 0; d < idx.length; d++) p += idx[d] * dst.strides[d];
      writeElement(dst.dtype, sd, p, v[i]);
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < dst.shape[d]) break;
        idx[d] = 0;
      }
    }
  },
  fill(x, value) {
    const d = x.data;
    for (let i = 0; i < d.length; i++) writeElement(x.dtype, d, i, value);
  },
};
