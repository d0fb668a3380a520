// matmul / linear: native against the reference on odd sizes, transposes, batch broadcast, strided views,
// bf16/f16 weights (both sides see the same rounded values), bias, the few-rows decode path; gradients.
// Tolerances: f32 accumulation over K <= 600 terms against the f64 reference: 1e-5 of max|ref| (observed ~1e-7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { type InputSpec, checkForward, checkGrad, nat, ref, withNtRows } from './harness.js';

const TOL = 1e-5;
const SIZES = [1, 3, 17, 64, 130];

const mm = (tA: boolean, tB: boolean) => (a: vk.Tensor, b: vk.Tensor) => vk.matmul(a, b, { transA: tA, transB: tB });
const sh = (rows: number, cols: number, t: boolean) => (t ? [cols, rows] : [rows, cols]);

test('matmul f32: odd sizes, every transpose', () => {
  // each size appears as M, N and K; the three rotate so that the combinations differ
  for (let i = 0; i < SIZES.length; i++)
    for (let j = 0; j < SIZES.length; j++) {
      const M = SIZES[i], N = SIZES[j], K = SIZES[(i + 2 * j + 1) % SIZES.length];
      const tA = (i + j) % 2 === 1, tB = Math.floor((i + j) / 2) % 2 === 1;
      checkForward(`matmul ${M}x${K}x${N} tA=${tA} tB=${tB}`, mm(tA, tB), [{ shape: sh(M, K, tA) }, { shape: sh(K, N, tB) }], TOL);
    }
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]])
    checkForward(`matmul 64x130x17 tA=${tA} tB=${tB}`, mm(tA, tB), [{ shape: sh(64, 130, tA) }, { shape: sh(130, 17, tB) }], TOL);
});

test('matmul: batch broadcast and strided operands', () => {
  const cases: [string, InputSpec[], boolean, boolean][] = [
    ['[2,3,M,K] x [K,N]', [{ shape: [2, 3, 17, 5] }, { shape: [5, 9] }], false, false],
    ['[M,K] x [2,K,N]', [{ shape: [7, 5] }, { shape: [2, 5, 9] }], false, false],
    ['[2,1,M,K] x [1,3,K,N]', [{ shape: [2, 1, 4, 6] }, { shape: [1, 3, 6, 5] }], false, false],
    ['[3,K,M]ᵀ x [3,N,K]ᵀ', [{ shape: [3, 6, 4] }, { shape: [3, 5, 6] }], true, true],
    ['[2,M,K] x [N,K]ᵀ', [{ shape: [2, 65, 33] }, { shape: [20, 33] }], false, true],
    ['strided a', [{ shape: [3, 17, 9], strided: true }, { shape: [9, 4] }], false, false],
    ['strided a and b, transposed', [{ shape: [2, 9, 17], strided: true }, { shape: [2, 5, 9], strided: true }], true, true],
    ['strided b broadcast', [{ shape: [4, 8, 3] }, { shape: [3, 130], strided: true }], false, false],
  ];
  for (const [name, specs, tA, tB] of cases) checkForward(`matmul ${name}`, mm(tA, tB), specs, TOL);
  // sliced rows (row stride > cols), a permuted batch, an expanded (stride 0) operand
  checkForward('matmul sliced', (a, b) => vk.matmul(vk.slice(a, 1, 2, 9), vk.slice(b, 1, 2, 8)), [{ shape: [2, 11, 7] }, { shape: [7, 10] }], TOL);
  checkForward('matmul sliced cols', (a, b) => vk.matmul(vk.slice(a, -1, 1, 6), b), [{ shape: [20, 9] }, { shape: [5, 3] }], TOL);
  checkForward('matmul permuted batch', (a, b) => vk.matmul(vk.permute(a, [1, 0, 2]), b), [{ shape: [5, 3, 8] }, { shape: [3, 8, 4] }], TOL);
  checkForward('matmul expanded', (a, b) => vk.matmul(vk.expand(a, [3, 6, 5]), b), [{ shape: [6, 5] }, { shape: [3, 5, 2] }], TOL);
  checkForward('matmul expanded rows', (a, b) => vk.matmul(vk.expand(a, [6, 5]), b), [{ shape: [1, 5] }, { shape: [5, 70] }], TOL);
});

test('matmul with bf16/f16 b: panel path (many rows) and dot path (few rows)', () => {
  for (const dt of ['bf16', 'f16'] as const) {
    for (const [M, K, N] of [[130, 64, 17], [17, 130, 300], [1, 37, 13], [5, 577, 33], [9, 16, 8]])
      for (const tB of [false, true]) {
        checkForward(`matmul ${dt} ${M}x${K}x${N} tB=${tB}`, mm(false, tB), [{ shape: [M, K] }, { shape: sh(K, N, tB), dtype: dt }], TOL);
      }
    checkForward(`matmul ${dt} transA`, mm(true, true), [{ shape: [20, 3] }, { shape: [7, 20], dtype: dt }], TOL);
    checkForward(`matmul ${dt} batched`, mm(false, false), [{ shape: [3, 2, 40] }, { shape: [3, 40, 24], dtype: dt }], TOL);
  }
});

test('linear: bias, weight dtypes, leading axes, strided inputs', () => {
  const lin = (x: vk.Tensor, w: vk.Tensor, b?: vk.Tensor) => vk.linear(x, w, b);
  for (const dt of ['f32', 'bf16', 'f16'] as const) {
    for (let i = 0; i < SIZES.length; i++) {
      const M = SIZES[i], K = SIZES[(i + 3) % 5], N = SIZES[(i + 1) % 5];
      checkForward(`linear ${dt} ${M}x${K} -> ${N}`, lin, [{ shape: [M, K] }, { shape: [N, K], dtype: dt }, { shape: [N] }], TOL);
      checkForward(`linear ${dt} ${M}x${K} -> ${N} no bias`, lin, [{ shape: [M, K] }, { shape: [N, K], dtype: dt }], TOL);
    }
    checkForward(`linear ${dt} [2,3,K]`, lin, [{ shape: [2, 3, 40] }, { shape: [24, 40], dtype: dt }, { shape: [24] }], TOL);
    checkForward(`linear ${dt} rank-1 x`, lin, [{ shape: [33] }, { shape: [5, 33], dtype: dt }], TOL);
    checkForward(`linear ${dt} strided x`, lin, [{ shape: [12, 20], strided: true }, { shape: [7, 20], dtype: dt }, { shape: [7] }], TOL);
    checkForward(`linear ${dt} strided w`, lin, [{ shape: [12, 20] }, { shape: [7, 20], dtype: dt, strided: true }], TOL);
    checkForward(`linear ${dt} sliced x`, (x, w) => vk.linear(vk.slice(x, 1, 3, 4), w), [{ shape: [2, 6, 20] }, { shape: [9, 20], dtype: dt }], TOL);
  }
});

test('linear decode path: 1..9 rows, every tile shape and tail', () => {
  // N = 13 leaves a tail after the 4-row and 2-row tiles; K = 37 and 577 leave a tail after 16-element blocks;
  // K = 1543 is cut into column blocks (the packed x of 4+ rows would not stay in L1)
  for (const dt of ['f32', 'bf16', 'f16'] as const)
    for (let M = 1; M <= 9; M++)
      for (const K of [37, 577, 1543]) {
        const x: InputSpec = { shape: [M, K], strided: M === 3 };
        checkForward(`linear decode ${dt} M=${M} K=${K}`, (a, w, b) => vk.linear(a, w, b), [x, { shape: [13, K], dtype: dt }, { shape: [13] }], TOL);
      }
  // a wide head split across threads
  checkForward('linear decode bf16 wide', (a, w) => vk.linear(a, w), [{ shape: [1, 64] }, { shape: [2051, 64], dtype: 'bf16' }], TOL);
});

test('linear prompt path (gemm_nt): row panels, column strips and k-blocks with tails, against OpenBLAS too', () => {
  // M = 13 and 89 leave a partial 6-row panel, N = 13 and 50 a partial 16-column strip, K = 300 and 517 two and
  // three k-blocks with a tail after 8-element blocks; 257 rows go to OpenBLAS for f32 weights and stay on the
  // kernel for bf16/f16, 4100 rows go to OpenBLAS for every type
  const lin = (x: vk.Tensor, w: vk.Tensor, b?: vk.Tensor) => vk.linear(x, w, b);
  for (const dt of ['f32', 'bf16', 'f16'] as const)
    for (const [M, K, N] of [[9, 37, 13], [13, 300, 50], [89, 517, 33], [257, 64, 20], [4100, 16, 17]]) {
      checkForward(`linear nt ${dt} ${M}x${K} -> ${N}`, lin, [{ shape: [M, K] }, { shape: [N, K], dtype: dt }, { shape: [N] }], TOL);
      checkForward(`linear nt ${dt} ${M}x${K} -> ${N} strided x`, lin, [{ shape: [M, K], strided: true }, { shape: [N, K], dtype: dt }], TOL);
      withNtRows(0, () => checkForward(`linear OpenBLAS ${dt} ${M}x${K} -> ${N}`, lin, [{ shape: [M, K] }, { shape: [N, K], dtype: dt }, { shape: [N] }], TOL));
    }
});

test('linear prompt path: the same bits on 1 and 2 threads', () => {
  // each output element is summed in an order that depends only on K, not on how columns are shared out
  vk.tidy(() => {
    const x = vk.randn([89, 517], { backend: nat, seed: 3 }), w = vk.cast(vk.randn([300, 517], { backend: nat, seed: 4 }), 'bf16');
    const threads = vk.nativeThreads();
    const two = vk.linear(x, w).toFloat32Array();
    vk.setNativeThreads(1);
    let one: Float32Array;
    try {
      one = vk.linear(x, w).toFloat32Array();
    } finally {
      vk.setNativeThreads(threads);
    }
    for (let i = 0; i < two.length; i++) if (!Object.is(one[i], two[i])) assert.fail(`element ${i}: ${one[i]} on 1 thread, ${two[i]} on ${threads}`);
  });
});

test('bf16 weights: extreme values and exact products', () => {
  // bf16 values with few mantissa bits multiply exactly, so native must equal the reference to the last bit
  const vals = [1, -2, 0.5, 1.5, -0.75, 3, 256, -1 / 1024, 0, 2.5, 6, -4, 0.125, 1.25, 7, -8, 9];
  const x = vk.tensor(vals.map((_, i) => (i % 3) - 1), [1, 17], { backend: nat });
  const w = vk.tensor([...vals, ...vals.map((v) => -v)], [2, 17], { dtype: 'bf16', backend: nat });
  const xr = vk.tensor(x.toArray(), [1, 17], { backend: ref }), wr = vk.tensor(w.toArray(), [2, 17], { dtype: 'bf16', backend: ref });
  assert.deepEqual(vk.linear(x, w).toArray(), vk.linear(xr, wr).toArray());
});

test('matmul and linear gradients', () => {
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]])
    checkGrad(`matmul tA=${tA} tB=${tB}`, mm(tA, tB), [{ shape: sh(3, 4, tA) }, { shape: sh(4, 5, tB) }]);
  checkGrad('matmul batch-broadcast b', mm(false, false), [{ shape: [2, 3, 4] }, { shape: [4, 5] }]);
  checkGrad('matmul batch-broadcast b transposed', mm(false, true), [{ shape: [2, 3, 4] }, { shape: [5, 4] }]);
  checkGrad('matmul batch-broadcast a', mm(true, false), [{ shape: [4, 3] }, { shape: [2, 4, 5] }]);
  checkGrad('matmul batch both', mm(false, false), [{ shape: [2, 1, 3, 4] }, { shape: [1, 2, 4, 2] }]);
  checkGrad('matmul bf16 b', mm(false, true), [{ shape: [2, 3, 8] }, { shape: [5, 8], dtype: 'bf16' }]);
  checkGrad('matmul bf16 b, transA', mm(true, false), [{ shape: [8, 3] }, { shape: [8, 5], dtype: 'bf16' }]);
  checkGrad('linear with bias', (x, w, b) => vk.linear(x, w, b), [{ shape: [2, 3, 6] }, { shape: [4, 6] }, { shape: [4] }]);
  checkGrad('linear no bias, rank-1 x', (x, w) => vk.linear(x, w), [{ shape: [6] }, { shape: [4, 6] }]);
  checkGrad('linear strided x', (x, w) => vk.linear(x, w), [{ shape: [5, 6], strided: true }, { shape: [4, 6] }]);
  for (const dt of ['bf16', 'f16'] as const)
    checkGrad(`linear frozen ${dt} w`, (x, w, b) => vk.linear(x, w, b), [{ shape: [3, 8] }, { shape: [5, 8], dtype: dt }, { shape: [5] }]);
});

test('shape errors name the op and both shapes', () => {
  const z = (s: number[], dtype: vk.DType = 'f32') => vk.zeros(s, { backend: ref, dtype });
  assert.throws(() => vk.matmul(z([2, 3]), z([4, 5])), /matmul: inner dimensions differ \(3 vs 4\) in \[2, 3\] x \[4, 5\]/);
  assert.throws(() => vk.matmul(z([2, 3]), z([5, 3]), { transB: true, transA: true }), /matmul: inner dimensions differ \(2 vs 3\) in \[2, 3\]ᵀ x \[5, 3\]ᵀ/);
  assert.throws(() => vk.matmul(z([2, 2, 3]), z([3, 3, 5])), /matmul: batch axes do not broadcast in \[2, 2, 3\] x \[3, 3, 5\]/);
  assert.throws(() => vk.matmul(z([3]), z([3, 5])), /matmul: .*\[3\] x \[3, 5\]/);
  assert.throws(() => vk.matmul(z([2, 3], 'bf16'), z([3, 5])), /matmul: a must be f32 or f64, got bf16 \[2, 3\]/);
  assert.throws(() => vk.linear(z([2, 3]), z([4, 5])), /linear: w \[4, 5\] has 5 inputs, x \[2, 3\] has 3/);
  assert.throws(() => vk.linear(z([2, 3]), z([4, 3]), z([5])), /linear: bias must be \[4\] for \[2, 3\] x \[4, 3\]ᵀ \+ \[5\]/);
  assert.throws(() => vk.linear(z([2, 3]), z([4, 3], 'f64')), /linear: w must be f32, bf16 or f16 .* got f64 \[4, 3\]/);
  assert.throws(() => vk.linear(z([2, 3]), z([4, 3])) && vk.linear(z([2, 3]), z([3])), /linear: needs x \[\.\.\., K\] and w \[N, K\], got \[2, 3\] x \[3\]/);
  for (const e of [() => vk.matmul(z([2, 3]), z([4, 5])), () => vk.linear(z([2, 3]), z([4, 5]))])
    assert.throws(e, (err: Error) => err.name === 'ShapeError');
});

test('no graph is recorded for frozen operands and intermediates are released', () => {
  const before = vk.storageStats().count;
  vk.tidy(() => {
    const x = vk.randn([4, 8], { backend: nat });
    const w = vk.randn([3, 8], { backend: nat, dtype: 'bf16' });
    const y = vk.linear(x, w);
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
  });
  assert.equal(vk.storageStats().count, before);
});

test('folded rows: sliced and size-1 leading axes keep their strides', () => {
  // [B, 1, K] slices of [B, T, K] (the last position, as the lm_head reads it), and size-1 axes in between
  checkForward('linear last position', (x, w) => vk.linear(vk.slice(x, 1, 4, 5), w), [{ shape: [3, 5, 24] }, { shape: [7, 24], dtype: 'bf16' }], TOL);
  checkForward('matmul last position', (a, b) => vk.matmul(vk.slice(a, 1, 4, 5), b), [{ shape: [3, 5, 24] }, { shape: [24, 7] }], TOL);
  checkForward('linear [2,1,3,K] sliced', (x, w) => vk.linear(vk.slice(x, 2, 1, 4), w), [{ shape: [2, 1, 6, 16] }, { shape: [5, 16] }, ], TOL);
  checkForward('linear strided rank-1 x', (x, w) => vk.linear(vk.slice(vk.transpose(x), 0, 1, 2).view([9], [4], 1), w), [{ shape: [9, 4] }, { shape: [5, 9] }], TOL);
  checkForward('matmul expanded batch (stride 0)', (a, b) => vk.matmul(vk.expand(a, [4, 1, 6]), b), [{ shape: [1, 1, 6] }, { shape: [6, 3] }], TOL);
});
