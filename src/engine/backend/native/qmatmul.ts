// Products with a block-quantized weight on the addon (native/kernels/qmatmul.cc): the packed blocks are passed
// as they are stored, with the format's code from the shared table (and NF4's double-quantization flag).
import type { Backend } from '../backend.js';
import { WEIGHT_FORMATS } from '../../quant/formats.js';
import { addon, empty, requireF32, withContiguous } from './util.js';

export const qmatmulKernels: Pick<Backend, 'quantLinear' | 'quantLinearGradInput'> = {
  quantLinear(x, w, bias, int8Acts = false) {
    requireF32('linear', x, bias);
    const [N, K] = w.shape;
    const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const out = empty(x, [...x.shape.slice(0, -1), N]);
    if (out.size === 0) return out;
    return withContiguous([x, bias], (xc, bc) => {
      addon.qlinear(WEIGHT_FORMATS[w.format].code, M, N, K, xc.data, K, w.bytes, bc ? bc.data : null, out.data, w.doubleQuant, int8Acts);
      return out;
    });
  },
  quantLinearGradInput(g, w) {
    requireF32('linear backward', g);
    const [N, K] = w.shape;
    const M = g.shape[0];
    const out = empty(g, [M, K]);
    if (out.size === 0) return out;
    return withContiguous([g], (gc) => {
      addon.qlinearGradInput(WEIGHT_FORMATS[w.format].code, M, N, K, gc.data, N, w.bytes, out.data, w.doubleQuant);
      return out;
    });
  },
};
