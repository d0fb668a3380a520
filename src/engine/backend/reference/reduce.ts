import type { Backend } from '../backend.js';
import { make, outDType, read } from './util.js';

export const reduceKernels: Pick<Backend, 'reduce'> = {
  reduce(op, x, axis, keepDims) {
    const v = read(x);
    const outer = x.shape.slice(0, axis).reduce((a, d) => a * d, 1);
    const n = x.shape[axis];
    const inner = x.shape.slice(axis + 1).reduce((a, d) => a * d, 1);
    const out = new Array<number>(outer * inner);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        let acc = op === 'max' || op === 'argmax' ? -Infinity : 0;
        let arg = 0;
        for (let k = 0; k < n; k++) {
          const e = v[(o * n + k) * inner + i];
          if (op === 'max' || op === 'argmax') {
            if (e > acc || (Number.isNaN(e) && !Number.isNaN(acc))) { acc = e; arg = k; }
          } else acc += e;
        }
        out[o * inner + i] = op === 'argmax' ? arg : op === 'mean' ? acc / n : acc;
      }
    const shape = keepDims ? x.shape.map((d, i) => (i === axis ? 1 : d)) : x.shape.filter((_, i) => i !== axis);
    return make(x, shape, out, op === 'argmax' ? 'i32' : outDType(x));
  },
};
