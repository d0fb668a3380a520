// Row gathers and scatters in plain loops: embedding lookup, its scatter-add backward, indexCopy.
import type { Backend } from '../backend.js';
import { writeElement } from '../../dtype.js';
import { make, outDType, read } from './util.js';

function checkIndex(op: string, i: number, pos: number, limit: number): void {
  if (!(Number.isInteger(i) && i >= 0 && i < limit))
    throw new Error(`vlmkit reference ${op}: index ${i} at position ${pos} is out of range for ${limit} rows`);
}

export const rowKernels: Pick<Backend, 'embedding' | 'embeddingBackward' | 'indexCopy'> = {
  embedding(weight, ids) {
    const [V, D] = weight.shape;
    const w = read(weight), id = read(ids);
    const out = new Array<number>(id.length * D);
    id.forEach((r, i) => {
      checkIndex('embedding', r, i, V);
      for (let j = 0; j < D; j++) out[i * D + j] = w[r * D + j];
    });
    return make(weight, [...ids.shape, D], out, outDType(weight));
  },
  embeddingBackward(ids, gy, vocab) {
    const D = gy.shape[gy.rank - 1];
    const id = read(ids), g = read(gy);
    const out = new Array<number>(vocab * D).fill(0);
    id.forEach((r, i) => {
      checkIndex('embeddingBackward', r, i, vocab);
      for (let j = 0; j < D; j++) out[r * D + j] += g[i * D + j];
    });
    return make(gy, [vocab, D], out, outDType(gy));
  },
  indexCopy(dst, idx, src) {
    const N = dst.shape[0], D = dst.size / Math.max(N, 1);
    const id = read(idx), s = read(src), d = dst.data;
    id.forEach((r, i) => {
      checkIndex('indexCopy', r, i, N);
      for (let j = 0; j < D; j++) writeElement(dst.dtype, d, r * D + j, s[i * D + j]);
    });
  },
};
