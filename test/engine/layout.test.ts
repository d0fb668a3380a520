// Layout ops: views, copies, casts, concat/slice and their gradients; the dispose/scope discipline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { checkForward, checkGrad, nat, ref } from './harness.js';

test('contiguous copy of permuted and sliced views', () => {
  checkForward('permute+contiguous', (x) => vk.contiguous(vk.permute(x, [2, 0, 1])), [{ shape: [3, 5, 7] }], 0);
  checkForward('slice+contiguous', (x) => vk.contiguous(vk.slice(x, 1, 1, 4)), [{ shape: [3, 5, 7] }], 0);
  checkForward('transposed input', (x) => vk.contiguous(x), [{ shape: [4, 6], strided: true }], 0);
  checkForward('expand', (x) => vk.contiguous(vk.expand(x, [4, 3, 5])), [{ shape: [3, 1] }], 0);
});

test('casts round-trip through bf16 and f16', () => {
  for (const dt of ['bf16', 'f16'] as const) {
    checkForward(`cast ${dt}`, (x) => vk.cast(vk.cast(x, dt), 'f32'), [{ shape: [33, 17], range: [-100, 100] }], 0);
  }
  checkForward('cast i32', (x) => vk.cast(x, 'i32'), [{ shape: [40], range: [-50, 50] }], 0);
  const x = vk.tensor([1.5, -2.25, 3.015625], [3], { backend: nat });
  assert.deepEqual(vk.cast(x, 'bf16').toArray(), [1.5, -2.25, 3.015625]);
});

test('concat, slice, reshape, permute, expand gradients', () => {
  checkGrad('concat', (a, b) => vk.concat([a, b], 1), [{ shape: [2, 3, 4] }, { shape: [2, 2, 4] }], { native: false });
  checkGrad('slice', (a) => vk.slice(a, -1, 1, 3), [{ shape: [3, 5] }], { native: false });
  checkGrad('permute', (a) => vk.permute(vk.reshape(a, [2, 3, 4]), [1, 2, 0]), [{ shape: [6, 4] }], { native: false });
  checkGrad('expand', (a) => vk.expand(a, [3, 2, 4]), [{ shape: [2, 1] }], { native: false });
});

test('pixel shuffle matches the Idefics3 element order', () => {
  // [1, 16, 2] with r=2 -> [1, 4, 8]; element (b, s, d) of the output computed by hand from the torch recipe.
  const x = vk.tensor(Array.from({ length: 32 }, (_, i) => i), [1, 16, 2], { backend: ref });
  const y = vk.pixelShuffle(x, 2);
  assert.deepEqual(y.shape, [1, 4, 8]);
  // first output token gathers the 2x2 block at rows 0-1, cols 0-1: tokens 0,1,4,5
  assert.deepEqual(y.toArray().slice(0, 8), [0, 1, 2, 3, 8, 9, 10, 11]);
});

test('shape errors name the op and both shapes', () => {
  const a = vk.zeros([2, 3], { backend: ref }), b = vk.zeros([4, 3], { backend: ref });
  assert.throws(() => vk.add(a, b), /add: shapes \[2, 3\] and \[4, 3\] do not broadcast/);
  assert.throws(() => vk.reshape(a, [4, 2]), /reshape: cannot reshape \[2, 3\]/);
  assert.throws(() => vk.concat([a, vk.zeros([2, 3, 1], { backend: ref })], 0), /concat/);
});

test('tidy disposes intermediates and keeps results', () => {
  const before = vk.storageStats().count;
  const kept = vk.tidy(() => {
    const a = vk.ones([100], { backend: nat });
    const b = vk.reshape(a, [10, 10]);
    vk.contiguous(vk.transpose(b));
    return vk.cast(a, 'bf16');
  });
  assert.equal(vk.storageStats().count, before + 1);
  kept.dispose();
  assert.equal(vk.storageStats().count, before);
  assert.throws(() => kept.toArray(), /after dispose/);
});
