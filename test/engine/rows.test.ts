// Row ops: embedding (f32/bf16/f16 weights, i32/i64 ids of any shape) and its scatter-add gradient,
// indexSelect, scatterRows (image features into text embeddings), indexCopy, and the index errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { checkForward, checkGrad, nat, ref, withoutSimd } from './harness.js';

// Gathers and copies move values unchanged (bf16/f16 widen exactly): tolerance 0.
test('embedding: native equals reference for every weight and id dtype', () => {
  for (const wdt of ['f32', 'bf16', 'f16'] as const)
    for (const idt of ['i32', 'i64'] as const) {
      checkForward(`embedding ${wdt} ${idt} [2, 3]`, (w, i) => vk.embedding(w, i), [{ shape: [50, 19], dtype: wdt, range: [-3, 3] }, { shape: [2, 3], dtype: idt, int: 50 }], 0);
      checkForward(`embedding ${wdt} ${idt} scalar id`, (w, i) => vk.embedding(w, i), [{ shape: [7, 8], dtype: wdt }, { shape: [], dtype: idt, values: [6] }], 0);
    }
  checkForward('embedding many ids (threads)', (w, i) => vk.embedding(w, i), [{ shape: [300, 64] }, { shape: [4, 257], dtype: 'i32', int: 300 }], 0);
  checkForward('embedding of a weight view', (w, i) => vk.embedding(w, i), [{ shape: [12, 9], strided: true }, { shape: [5], dtype: 'i64', int: 12 }], 0);
  checkForward('embedding batch 1', (w, i) => vk.embedding(w, i), [{ shape: [12, 9], dtype: 'bf16' }, { shape: [1, 1], dtype: 'i64', int: 12 }], 0);
  const out = vk.embedding(vk.zeros([5, 3], { backend: nat, dtype: 'bf16' }), vk.tensor([1, 2], [2], { backend: nat, dtype: 'i32' }));
  assert.equal(out.dtype, 'f32');
  assert.deepEqual(out.shape, [2, 3]);
});

test('embedding gradient: deterministic scatter-add with repeated ids', () => {
  checkGrad('embedding', (w, i) => vk.embedding(w, i), [{ shape: [10, 7] }, { shape: [2, 4], dtype: 'i64', values: [1, 3, 1, 9, 0, 3, 3, 1] }]);
  // backward kernel alone: many repeats, a width that is not a multiple of 16, sizes that use both threads
  // (f32 sums in index order on both sides: identical up to the f64 -> f32 rounding of the reference)
  checkForward('embeddingBackward', (i, g) => i.backend.embeddingBackward(i, g, 40), [{ shape: [600], dtype: 'i32', int: 40 }, { shape: [600, 75] }], 1e-6);
  const ids = vk.tensor(Array.from({ length: 500 }, (_, k) => (k * 7) % 13), [500], { backend: nat, dtype: 'i32' });
  const g = vk.randn([500, 70], { backend: nat, seed: 2 });
  const a = nat.embeddingBackward(ids, g, 13).toArray(), b = nat.embeddingBackward(ids, g, 13).toArray();
  assert.deepEqual(a, b, 'same result run to run');
});

test('indexSelect forward and gradient', () => {
  checkForward('indexSelect', (x, i) => vk.indexSelect(x, i), [{ shape: [9, 4, 3] }, { shape: [5], dtype: 'i64', values: [8, 0, 0, 3, 8] }], 0);
  checkForward('indexSelect 1-D', (x, i) => vk.indexSelect(x, i), [{ shape: [9] }, { shape: [3], dtype: 'i32', values: [2, 2, 5] }], 0);
  checkGrad('indexSelect', (x, i) => vk.indexSelect(x, i), [{ shape: [6, 4] }, { shape: [5], dtype: 'i64', values: [4, 1, 1, 0, 5] }]);
  checkGrad('indexSelect view', (x, i) => vk.indexSelect(x, i), [{ shape: [5, 6], strided: true }, { shape: [3], dtype: 'i32', values: [4, 0, 2] }]);
});

test('scatterRows puts src rows into a copy of x, with gradients to both', () => {
  const x = vk.tensor([1, 1, 2, 2, 3, 3, 4, 4], [4, 2], { backend: nat });
  const y = vk.scatterRows(x, vk.tensor([3, 1], [2], { backend: nat, dtype: 'i64' }), vk.tensor([9, 9, 8, 8], [2, 2], { backend: nat }));
  assert.deepEqual(y.toArray(), [1, 1, 8, 8, 3, 3, 9, 9]);
  assert.deepEqual(x.toArray(), [1, 1, 2, 2, 3, 3, 4, 4], 'x is not modified');
  checkForward('scatterRows', (a, i, s) => vk.scatterRows(a, i, s), [{ shape: [7, 5] }, { shape: [3], dtype: 'i32', values: [6, 0, 2] }, { shape: [3, 5] }], 0);
  checkForward('scatterRows [N, h, w]', (a, i, s) => vk.scatterRows(a, i, s), [{ shape: [6, 2, 3], strided: true }, { shape: [2], dtype: 'i64', values: [5, 1] }, { shape: [2, 2, 3] }], 0);
  checkGrad('scatterRows', (a, i, s) => vk.scatterRows(a, i, s), [{ shape: [6, 4] }, { shape: [2], dtype: 'i64', values: [4, 1] }, { shape: [2, 4] }]);
  checkGrad('scatterRows src only', (a, i, s) => vk.scatterRows(a, i, s), [{ shape: [5, 3], grad: false }, { shape: [2], dtype: 'i32', values: [0, 4] }, { shape: [2, 3], strided: true }]);
  // no rows replaced
  checkForward('scatterRows empty idx', (a, i, s) => vk.scatterRows(a, i, s), [{ shape: [3, 4] }, { shape: [0], dtype: 'i32' }, { shape: [0, 4] }], 0);
});

test('indexCopy (the kernel) on every backend: in place, last duplicate wins, any element size', () => {
  for (const dtype of ['f32', 'bf16', 'i64'] as const) {
    const run = (b: vk.Backend) => {
      const dst = vk.tensor(Array.from({ length: 40 }, (_, k) => k), [8, 5], { backend: b, dtype });
      const src = vk.tensor(Array.from({ length: 20 }, (_, k) => 100 + k), [4, 5], { backend: b, dtype });
      b.indexCopy(dst, vk.tensor([7, 2, 7, 0], [4], { backend: b, dtype: 'i32' }), src);
      return dst.toArray();
    };
    const n = run(nat);
    assert.deepEqual(n, run(ref), dtype);
    assert.deepEqual(n.slice(35, 40), [110, 111, 112, 113, 114], `${dtype}: the later duplicate wins`);
  }
});

test('index errors name the bad index and the table size', () => {
  const w = vk.zeros([49280, 4], { backend: nat, dtype: 'bf16' });
  assert.throws(() => vk.embedding(w, vk.tensor([3, 49280, 1], [3], { backend: nat, dtype: 'i64' })),
    (e: Error & { code?: string }) => e.code === 'E_INDEX' && /embedding: id 49280 at position 1 is out of range for a vocabulary of 49280/.test(e.message));
  assert.throws(() => vk.embedding(w, vk.tensor([-1], [1], { backend: nat, dtype: 'i32' })), /id -1 at position 0/);
  assert.throws(() => vk.embedding(w, vk.zeros([2], { backend: nat })), (e: Error) => e.name === 'ShapeError' && /ids must be an integer tensor/.test(e.message));
  assert.throws(() => vk.embedding(vk.zeros([4], { backend: nat }), vk.zeros([2], { backend: nat, dtype: 'i32' })), /embedding: weight must be a float \[vocab, dim\] matrix, got f32 \[4\]/);
  const x = vk.zeros([4, 3], { backend: nat });
  assert.throws(() => vk.indexSelect(x, vk.tensor([4], [1], { backend: nat, dtype: 'i32' })), /indexSelect: index 4 at position 0 is out of range/);
  assert.throws(() => vk.scatterRows(x, vk.tensor([1, 1], [2], { backend: nat, dtype: 'i32' }), vk.zeros([2, 3], { backend: nat })), /index 1 appears twice/);
  assert.throws(() => vk.scatterRows(x, vk.tensor([1], [1], { backend: nat, dtype: 'i32' }), vk.zeros([1, 4], { backend: nat })),
    (e: Error) => e.name === 'ShapeError' && /scatterRows: x \[4, 3\], idx \[1\] and src \[1, 4\] do not fit/.test(e.message));
  // the kernels check too (defence when called directly)
  for (const b of [nat, ref])
    assert.throws(() => b.embedding(vk.zeros([3, 2], { backend: b }), vk.tensor([0, 3], [2], { backend: b, dtype: 'i32' })), /3 at position 1 is out of range for 3 rows/);
});


test('scalar fallback (no AVX2): row kernels equal the reference', () => {
  withoutSimd(() => {
    for (const wdt of ['f32', 'bf16', 'f16'] as const)
      checkForward(`embedding ${wdt} scalar path`, (w, i) => vk.embedding(w, i), [{ shape: [50, 19], dtype: wdt, range: [-3, 3] }, { shape: [2, 3], dtype: 'i64', int: 50 }], 0);
    checkForward('embeddingBackward scalar path', (i, g) => i.backend.embeddingBackward(i, g, 40), [{ shape: [300], dtype: 'i32', int: 40 }, { shape: [300, 75] }], 1e-6);
  });
});
