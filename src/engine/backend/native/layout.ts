import type { Backend } from '../backend.js';
import { BYTES, type DType } from '../../dtype.js';
import { Tensor } from '../../tensor.js';
import { DT_CODE, addon, base, empty } from './util.js';

function copy(dst: Tensor, src: Tensor): void {
  addon.copyStrided(BYTES[src.dtype], src.shape, base(src), src.strides, base(dst), dst.strides);
}

export const layoutKernels: Pick<Backend, 'contiguous' | 'cast' | 'copyInto' | 'fill'> = {
  contiguous(x) {
    const out = empty(x, x.shape, x.dtype);
    if (x.size) copy(out, x);
    return out;
  },
  cast(x, dtype: DType) {
    const src = x.isContiguous() ? x : layoutKernels.contiguous(x);
    const out = empty(x, x.shape, dtype);
    if (x.size) addon.convert(DT_CODE[x.dtype], DT_CODE[dtype], x.size, src.data, out.data);
    if (src !== x) src.dispose();
    return out;
  },
  copyInto(dst, src) {
    if (!src.size) return;
    if (dst.dtype === src.dtype) return copy(dst, src);
    const c = layoutKernels.cast(src, dst.dtype);
    copy(dst, c);
    c.dispose();
  },
  fill(x, value) {
    if (x.size) addon.fill(DT_CODE[x.dtype], x.size, x.data, value);
  },
};
