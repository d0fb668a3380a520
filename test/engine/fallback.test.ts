// The scalar paths of the matmul, norm, attention and rope families (CPUs without AVX2/FMA/F16C), exercised on this machine by
// turning SIMD off: they must equal the reference like the vector paths do.
import { test } from 'node:test';
import * as vk from '../../src/engine/index.js';
import { checkForward, withoutSimd } from './harness.js';

test('scalar fallback: linear (f32, bf16, f16 weights; decode rows), matmul and norms equal the reference', () => {
  withoutSimd(() => {
    for (const M of [1, 3, 17, 89]) {
      checkForward(`linear f32 M=${M}`, (x, w, b) => vk.linear(x, w, b), [{ shape: [M, 40] }, { shape: [24, 40] }, { shape: [24] }], 1e-5);
      for (const dt of ['bf16', 'f16'] as const)
        checkForward(`linear ${dt} M=${M}`, (x, w) => vk.linear(x, vk.cast(w, dt)), [{ shape: [M, 40] }, { shape: [24, 40] }], 1e-5);
    }
    checkForward('matmul transB', (a, b) => vk.matmul(a, b, { transB: true }), [{ shape: [2, 5, 9] }, { shape: [7, 9] }], 1e-5);
    checkForward('rmsNorm', (x, w) => vk.rmsNorm(x, w, 1e-5), [{ shape: [5, 37] }, { shape: [37] }], 1e-5);
    checkForward('layerNorm', (x, w, b) => vk.layerNorm(x, w, b, 1e-6), [{ shape: [5, 37] }, { shape: [37] }, { shape: [37] }], 1e-5);
    // attention: scalar row primitives and sgemm block products; rope: scalar tables and rotation
    checkForward('attention causal GQA', (q, k, v) => vk.attention(q, k, v, { causal: true, scale: 0.25 }), [{ shape: [2, 4, 19, 16] }, { shape: [2, 2, 19, 16] }, { shape: [2, 2, 19, 16] }], 1e-5);
    checkForward('rope', (x) => vk.rope(x, vk.tensor(Array.from({ length: 7 }, (_, i) => 3 * i), [1, 7], { dtype: 'i32', backend: x.backend }), vk.ropeInvFreq(16, 10000, { backend: x.backend })), [{ shape: [1, 3, 7, 16] }], 1e-5);
  });
});
