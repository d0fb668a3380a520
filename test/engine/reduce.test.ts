// Reductions over one axis: sum, mean, max, argmax on every axis (rows, columns, tiles with tails, long single
// rows split across threads), views, NaN and tie rules, and the sum/mean gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { checkForward, checkGrad, nat, ref, withoutSimd } from './harness.js';

// sum/mean accumulate in f64 on both sides; the only difference is the final rounding to f32: 1e-6.
const TOL = 1e-6;

test('sum, mean, max, argmax over every axis', () => {
  const shapes = [[3, 37, 29], [2, 70, 5], [1, 1, 9], [4, 1], [33], [5, 3, 2, 40]];
  for (const shape of shapes)
    for (let axis = 0; axis < shape.length; axis++)
      for (const keep of [false, true]) {
        const tag = `[${shape}] axis ${axis}${keep ? ' keepDims' : ''}`;
        checkForward(`sum ${tag}`, (x) => vk.sum(x, axis, keep), [{ shape }], TOL);
        checkForward(`mean ${tag}`, (x) => vk.mean(x, axis, keep), [{ shape }], TOL);
        checkForward(`max ${tag}`, (x) => vk.max(x, axis, keep), [{ shape }], 0);
        checkForward(`argmax ${tag}`, (x) => vk.argmax(x, axis, keep), [{ shape }], 0);
      }
});

test('reductions of views (transposed inputs)', () => {
  for (let axis = 0; axis < 3; axis++) {
    checkForward(`sum view axis ${axis}`, (x) => vk.sum(x, axis), [{ shape: [3, 17, 40], strided: true }], TOL);
    checkForward(`argmax view axis ${axis}`, (x) => vk.argmax(x, axis), [{ shape: [3, 17, 40], strided: true }], 0);
  }
});

test('long rows are split across threads with the same result', () => {
  // one row of 200k: the chunked path (fixed 32k chunks, combined in order)
  checkForward('sum all 200k', (x) => vk.sum(x), [{ shape: [200003] }], TOL);
  checkForward('mean 2x100k', (x) => vk.mean(x, 1), [{ shape: [1, 100003] }], TOL);
  checkForward('max 200k', (x) => vk.max(x, 0), [{ shape: [200003] }], 0);
  checkForward('argmax 200k', (x) => vk.argmax(x, 0), [{ shape: [200003] }], 0);
  // many columns, short reduced axis (sumTo of a bias gradient)
  checkForward('sum axis 0 of [64, 600]', (x) => vk.sum(x, 0), [{ shape: [64, 600] }], TOL);
  const x = vk.randn([300001], { backend: nat, seed: 3 });
  const before = vk.nativeThreads();
  vk.setNativeThreads(1);
  const a = vk.sum(x).item(), am = vk.argmax(x, 0).item();
  vk.setNativeThreads(Math.max(2, before));
  const b = vk.sum(x).item(), bm = vk.argmax(x, 0).item();
  vk.setNativeThreads(before);
  assert.equal(a, b);
  assert.equal(am, bm);
});

test('sums are accumulated in f64 (no drift over long rows)', () => {
  // 1 + 1e-8 * k summed over 2^20 terms: an f32 running sum would lose the small parts entirely
  const n = 1 << 20;
  const v = new Float32Array(n).fill(1);
  v[0] = 16777216; // 2^24: adding 1 to it in f32 does nothing
  const t = vk.tensor(v, [n], { backend: nat });
  assert.equal(vk.sum(t).item(), Math.fround(16777216 + n - 1)); // exact sum, rounded once to f32
});

test('max/argmax: NaN wins, first index among ties, -inf rows', () => {
  const rows = [
    [1, 3, 3, 2, 3, 0, 1, 2, 3, 3, 1],            // ties: first 3 at 1
    [1, 2, NaN, 5, NaN, 0, 9, 1, 1, 1, 1],        // NaN wins, the first NaN
    [-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],            // max in the scalar tail
    [0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9],            // tie across vector and tail
  ];
  const flat = rows.flat();
  for (const axisCase of ['rows', 'columns'] as const) {
    const mk = (b: vk.Backend) => {
      const t = vk.tensor(flat, [rows.length, 11], { backend: b });
      return axisCase === 'rows' ? t : vk.contiguous(vk.transpose(t));
    };
    const axis = axisCase === 'rows' ? 1 : 0;
    assert.deepEqual(vk.argmax(mk(nat), axis).toArray(), vk.argmax(mk(ref), axis).toArray(), `argmax ${axisCase}`);
    assert.deepEqual(vk.max(mk(nat), axis).toArray(), vk.max(mk(ref), axis).toArray(), `max ${axisCase}`);
  }
  assert.deepEqual(vk.argmax(vk.tensor(flat, [5, 11], { backend: nat }), 1).toArray(), [1, 2, 0, 10, 8]);
  // a 33-column tile (vector tile + scalar tail) along the reduced axis 0
  checkForward('argmax tiles with ties', (x) => vk.argmax(x, 0), [{ shape: [6, 67], int: 3 }], 0);
});

test('empty reduced axis', () => {
  const x = vk.zeros([3, 0, 2], { backend: nat });
  assert.deepEqual(vk.sum(x, 1).toArray(), [0, 0, 0, 0, 0, 0]);
  assert.ok(vk.mean(x, 1).toArray().every(Number.isNaN));
  assert.deepEqual(vk.max(x, 1).toArray(), new Array(6).fill(-Infinity));
});

test('sum and mean gradients', () => {
  checkGrad('sum axis 1', (x) => vk.sum(x, 1), [{ shape: [3, 4, 5] }]);
  checkGrad('mean axis 0 keepDims', (x) => vk.mean(x, 0, true), [{ shape: [3, 4] }]);
  checkGrad('sum all', (x) => vk.sum(x), [{ shape: [2, 3, 4] }]);
  checkGrad('mean of a view', (x) => vk.mean(x, -1), [{ shape: [3, 6], strided: true }]);
});

test('reduce errors name the op and the shape', () => {
  const x = vk.zeros([2, 3], { backend: nat });
  assert.throws(() => vk.sum(x, 2), (e: Error) => e.name === 'ShapeError' && /sum: axis 2 is out of range for shape \[2, 3\]/.test(e.message));
});


test('scalar fallback (no AVX2): reductions equal the reference', () => {
  withoutSimd(() => {
    for (const shape of [[3, 37, 29], [2, 70, 40]])
      for (let axis = 0; axis < 3; axis++) {
        checkForward(`sum scalar path [${shape}] ${axis}`, (x) => vk.sum(x, axis), [{ shape }], TOL);
        checkForward(`max scalar path [${shape}] ${axis}`, (x) => vk.max(x, axis), [{ shape }], 0);
        checkForward(`argmax scalar path [${shape}] ${axis}`, (x) => vk.argmax(x, axis), [{ shape, int: 4 }], 0);
      }
    checkForward('sum scalar path 200k', (x) => vk.sum(x), [{ shape: [200003] }], TOL);
  });
});
