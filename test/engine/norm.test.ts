// layerNorm / rmsNorm: native against the reference (odd widths, with and without weight/bias, strided input,
// shifted inputs where a one-pass variance would lose digits), gradients against finite differences, and gw/gb
// that do not depend on the thread count. Tolerances: f32 statistics over D <= 768: 1e-5 of max|ref| forward,
// 1e-4 for gradients (sums over up to 150 rows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { checkForward, checkGrad, nat } from './harness.js';

const TOL = 1e-5;

test('layerNorm forward: widths, weight/bias present or not, strided input', () => {
  for (const [R, D] of [[1, 1], [3, 7], [5, 64], [2, 130], [17, 768], [70, 33]]) {
    checkForward(`layerNorm ${R}x${D}`, (x, w, b) => vk.layerNorm(x, w, b, 1e-6), [{ shape: [R, D] }, { shape: [D] }, { shape: [D] }], TOL);
  }
  checkForward('layerNorm no weight, no bias', (x) => vk.layerNorm(x, null, null, 1e-5), [{ shape: [4, 20] }], TOL);
  checkForward('layerNorm weight only', (x, w) => vk.layerNorm(x, w, null), [{ shape: [4, 20] }, { shape: [20] }], TOL);
  checkForward('layerNorm [2,3,D]', (x, w, b) => vk.layerNorm(x, w, b, 1e-6), [{ shape: [2, 3, 40] }, { shape: [40] }, { shape: [40] }], TOL);
  checkForward('layerNorm strided', (x, w, b) => vk.layerNorm(x, w, b), [{ shape: [9, 24], strided: true }, { shape: [24] }, { shape: [24] }], TOL);
  // a large offset: mean(x²) - mean² in f32 would cancel; the centred second sum does not
  checkForward('layerNorm offset input', (x, w, b) => vk.layerNorm(x, w, b, 1e-6), [{ shape: [6, 100], range: [999, 1001] }, { shape: [100] }, { shape: [100] }], 1e-4);
  // mean / rstd saved for the backward, also compared
  checkForward('layerNorm stats', (x) => {
    const r = x.backend.layerNorm(x, null, null, 1e-6);
    return [r.y, r.mean, r.rstd];
  }, [{ shape: [5, 50], range: [-3, 5] }], TOL);
});

test('rmsNorm forward', () => {
  for (const [R, D] of [[1, 1], [3, 7], [5, 64], [2, 130], [17, 576], [70, 33]])
    checkForward(`rmsNorm ${R}x${D}`, (x, w) => vk.rmsNorm(x, w, 1e-5), [{ shape: [R, D] }, { shape: [D] }], TOL);
  checkForward('rmsNorm no weight', (x) => vk.rmsNorm(x, null), [{ shape: [4, 20] }], TOL);
  checkForward('rmsNorm strided', (x, w) => vk.rmsNorm(x, w), [{ shape: [9, 24], strided: true }, { shape: [24] }], TOL);
  checkForward('rmsNorm tiny values (eps matters)', (x, w) => vk.rmsNorm(x, w, 1e-5), [{ shape: [3, 16], range: [-1e-3, 1e-3] }, { shape: [16] }], TOL);
  checkForward('rmsNorm stats', (x) => {
    const r = x.backend.rmsNorm(x, null, 1e-5);
    return [r.y, r.rstd];
  }, [{ shape: [5, 50] }], TOL);
});

test('norm gradients', () => {
  checkGrad('layerNorm', (x, w, b) => vk.layerNorm(x, w, b, 1e-5), [{ shape: [3, 7] }, { shape: [7] }, { shape: [7] }]);
  checkGrad('layerNorm x only', (x, w, b) => vk.layerNorm(x, w, b), [{ shape: [2, 9] }, { shape: [9], grad: false }, { shape: [9], grad: false }]);
  checkGrad('layerNorm w only', (x, w, b) => vk.layerNorm(x, w, b), [{ shape: [2, 9], grad: false }, { shape: [9] }, { shape: [9], grad: false }]);
  checkGrad('layerNorm no params', (x) => vk.layerNorm(x, null, null), [{ shape: [4, 5] }]);
  checkGrad('layerNorm weight, no bias', (x, w) => vk.layerNorm(x, w, null), [{ shape: [4, 5] }, { shape: [5] }]);
  // 150 rows: three blocks of partial sums for gw/gb
  checkGrad('layerNorm many rows', (x, w, b) => vk.layerNorm(x, w, b), [{ shape: [150, 9] }, { shape: [9] }, { shape: [9] }], { maxProbe: 40 });
  checkGrad('rmsNorm', (x, w) => vk.rmsNorm(x, w, 1e-5), [{ shape: [3, 7] }, { shape: [7] }]);
  checkGrad('rmsNorm no weight', (x) => vk.rmsNorm(x, null), [{ shape: [4, 5] }]);
  checkGrad('rmsNorm many rows, wide', (x, w) => vk.rmsNorm(x, w), [{ shape: [150, 37] }, { shape: [37] }], { maxProbe: 40 });
  checkGrad('rmsNorm strided', (x, w) => vk.rmsNorm(x, w), [{ shape: [6, 10], strided: true }, { shape: [10] }]);
});

test('gw and gb do not depend on the thread count', () => {
  const run = () => vk.tidy(() => {
    const x = vk.randn([300, 96], { backend: nat, seed: 3 });
    const g = vk.randn([300, 96], { backend: nat, seed: 4 });
    const w = vk.randn([96], { backend: nat, seed: 5 }).requireGrad();
    const b = vk.randn([96], { backend: nat, seed: 6 }).requireGrad();
    const v = vk.randn([96], { backend: nat, seed: 7 }).requireGrad();
    vk.backward(vk.layerNorm(x, w, b), g);
    vk.backward(vk.rmsNorm(x, v), g);
    return [w.grad!.toArray(), b.grad!.toArray(), v.grad!.toArray()];
  });
  const n = vk.nativeThreads();
  try {
    vk.setNativeThreads(1);
    const one = run();
    vk.setNativeThreads(Math.max(2, n));
    assert.deepEqual(run(), one);
  } finally {
    vk.setNativeThreads(n);
  }
});

test('norm shape errors; stats released without grad', () => {
  const x = vk.zeros([2, 4], { backend: nat });
  assert.throws(() => vk.layerNorm(x, vk.zeros([3], { backend: nat }), null), /layerNorm: weight \[3\] must be \[4\] for x \[2, 4\]/);
  assert.throws(() => vk.layerNorm(x, null, vk.zeros([4, 1], { backend: nat })), /layerNorm: bias \[4, 1\] must be \[4\]/);
  assert.throws(() => vk.rmsNorm(x, vk.zeros([5], { backend: nat })), /rmsNorm: weight \[5\] must be \[4\] for x \[2, 4\]/);
  assert.throws(() => vk.rmsNorm(x, vk.zeros([4], { backend: nat, dtype: 'bf16' })), /rmsNorm: weight is bf16/);
  const before = vk.storageStats().count;
  const y = vk.rmsNorm(x, null);
  const z = vk.layerNorm(x, null, null);
  assert.equal(vk.storageStats().count, before + 2);
  y.dispose();
  z.dispose();
});
