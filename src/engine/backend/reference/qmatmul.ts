// Products with a block-quantized weight: the definitions, on the exact dequantized values (every block format's
// value is an exact f32), summed in float64 like the other reference products.
import type { Backend } from '../backend.js';
import type { QuantizedWeight } from '../../quant/weight.js';
import type { Tensor } from '../../tensor.js';
import { linearValues } from './matmul.js';
import { make, outDType, read } from './util.js';

function values(w: QuantizedWeight): Float32Array {
  const t = w.dequantize();
  try {
    return (t.data as Float32Array).slice();
  } finally {
    t.dispose();
  }
}

export const qmatmulKernels: Pick<Backend, 'quantLinear' | 'quantLinearGradInput'> = {
  quantLinear(x, w, bias) {
    const [N, K] = w.shape;
    const M = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const out = linearValues(read(x), values(w), bias ? read(bias) : null, M, N, K);
    return make(x, [...x.shape.slice(0, -1), N], out, bias ? outDType(x, bias) : outDType(x));
  },
  quantLinearGradInput(g: Tensor, w) {
    const [N, K] = w.shape;
    const M = g.shape[0];
    const gv = read(g), wv = values(w);
    const out = new Float64Array(M * K);
    for (let i = 0; i < M; i++)
      for (let n = 0; n < N; n++) {
        const gi = gv[i * N + n];
        for (let k = 0; k < K; k++) out[i * K + k] += gi * wv[n * K + k];
      }
    return make(g, [M, K], out, outDType(g));
  },
};
