// Layer norm and RMS norm on the addon (AVX2 row kernels over the pool). Inputs are made contiguous; all f32.
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { addon, empty, requireF32, withContiguous } from './util.js';

const rowsOf = (x: Tensor): [number, number] => {
  const D = x.shape[x.rank - 1];
  return [D === 0 ? 0 : x.size / D, D];
};
const dataOrNull = (t: Tensor | null | undefined) => (t ? t.data : null);

export const normKernels: Pick<Backend, 'layerNorm' | 'layerNormBackward' | 'rmsNorm' | 'rmsNormBackward'> = {
  layerNorm(x, w, b, eps) {
    requireF32('layerNorm', x, w, b);
    const [R, D] = rowsOf(x);
    const y = empty(x, x.shape), mean = empty(x, x.shape.slice(0, -1)), rstd = empty(x, x.shape.slice(0, -1));
    withContiguous([x, w, b], (xc, wc, bc) =>
      addon.layerNorm(R, D, xc.data, dataOrNull(wc), dataOrNull(bc), eps, y.data, mean.data, rstd.data));
    return { y, mean, rstd };
  },
  layerNormBackward(x, w, mean, rstd, gy, needWB) {
    requireF32('layerNormBackward', x, w, mean, rstd, gy);
    const [R, D] = rowsOf(x);
    const gx = empty(x, x.shape);
    const gw = needWB && w ? empty(x, [D]) : null, gb = needWB ? empty(x, [D]) : null;
    withContiguous([x, w, mean, rstd, gy], (xc, wc, mc, rc, gc) =>
      addon.layerNormBackward(R, D, xc.data, dataOrNull(wc), mc.data, rc.data, gc.data, gx.data, dataOrNull(gw), dataOrNull(gb)));
    return { gx, gw, gb };
  },
  rmsNorm(x, w, eps) {
    requireF32('rmsNorm', x, w);
    const [R, D] = rowsOf(x);
    const y = empty(x, x.shape), rstd = empty(x, x.shape.slice(0, -1));
    withContiguous([x, w], (xc, wc) => addon.rmsNorm(R, D, xc.data, dataOrNull(wc), eps, y.data, rstd.data));
    return { y, rstd };
  },
  rmsNormBackward(x, w, rstd, gy, needW) {
    requireF32('rmsNormBackward', x, w, rstd, gy);
    const [R, D] = rowsOf(x);
    const gx = empty(x, x.shape);
    const gw = needW && w ? empty(x, [D]) : null;
    withContiguous([x, w, rstd, gy], (xc, wc, rc, gc) =>
      addon.rmsNormBackward(R, D, xc.data, dataOrNull(wc), rc.data, gc.data, gx.data, dataOrNull(gw)));
    return { gx, gw };
  },
};
