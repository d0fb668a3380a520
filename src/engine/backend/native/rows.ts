// Native row kernels: embedding lookup (f32/bf16/f16 weights, i32/i64 ids), its deterministic scatter-add
// backward, indexCopy. The kernels check every index before touching memory.
import type { Backend } from '../backend.js';
import { BYTES } from '../../dtype.js';
import { DT_CODE, addon, empty, withContiguous } from './util.js';
import { withF32, withIndex } from './softmax.js';
import { arr } from './elementwise.js';

export const rowKernels: Pick<Backend, 'embedding' | 'embeddingBackward' | 'indexCopy'> = {
  embedding(weight0, ids0) {
    const [V, D] = weight0.shape;
    if (weight0.dtype !== 'f32' && weight0.dtype !== 'bf16' && weight0.dtype !== 'f16')
      throw new Error(`vlmkit: native embedding reads f32, bf16 or f16 weights, got ${weight0.dtype}`);
    return withContiguous([weight0], (weight) =>
      withIndex(ids0, (ids, is64) => {
        const out = empty(weight, [...ids0.shape, D]);
        if (out.size) addon.embedding(DT_CODE[weight.dtype], V, D, arr(weight), ids.size, arr(ids), is64, arr(out));
        return out;
      }),
    );
  },
  embeddingBackward(ids0, gy0, vocab) {
    const D = gy0.shape[gy0.rank - 1];
    return withF32('embeddingBackward', [gy0], (gy) =>
      withIndex(ids0, (ids, is64) => {
        const out = empty(gy, [vocab, D]);
        if (out.size) addon.embeddingBackward(ids.size, arr(ids), is64, D, arr(gy), vocab, arr(out));
        return out;
      }),
    );
  },
  indexCopy(dst, idx0, src0) {
    if (!dst.isContiguous()) throw new Error('vlmkit: native indexCopy needs a contiguous destination');
    const N = dst.shape[0], D = dst.size / Math.max(N, 1);
    const src1 = src0.dtype === dst.dtype ? src0 : src0.backend.cast(src0, dst.dtype);
    try {
      withContiguous([src1], (src) =>
        withIndex(idx0, (idx, is64) => {
          if (idx.size && D) addon.indexCopy(BYTES[dst.dtype], N, D, arr(dst), idx.size, arr(idx), is64, arr(src));
        }),
      );
    } finally {
      if (src1 !== src0) src1.dispose();
    }
  },
};
