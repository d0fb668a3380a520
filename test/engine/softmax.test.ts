// Softmax, log-softmax and cross-entropy: native against reference (row widths around the vector width,
// masked rows, views, the lm_head width 49280), gradients against finite differences, torch's reduction and
// ignore-index semantics, and the errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { assertClose, checkForward, checkGrad, nat, ref, withoutSimd } from './harness.js';

// Softmax: exp is accurate to ~1 ulp and the row sum is f64, so each output is within a few ulp: 1e-6.
const TOL = 1e-6;
const LM_HEAD = 49280;

test('softmax and logSoftmax: native equals reference', () => {
  for (const d of [1, 5, 8, 9, 16, 17, 33, 100]) {
    checkForward(`softmax d=${d}`, (x) => vk.softmax(x), [{ shape: [7, d], range: [-6, 6] }], TOL);
    checkForward(`logSoftmax d=${d}`, (x) => vk.logSoftmax(x), [{ shape: [7, d], range: [-6, 6] }], TOL);
  }
  checkForward('softmax [2, 3, 50] view', (x) => vk.softmax(x), [{ shape: [2, 3, 50], strided: true }], TOL);
  checkForward('logSoftmax [2, 3, 50] view', (x) => vk.logSoftmax(x), [{ shape: [2, 3, 50], strided: true }], TOL);
  checkForward('softmax batch 1', (x) => vk.softmax(x), [{ shape: [1, 1, 64] }], TOL);
  checkForward('softmax many rows (threads)', (x) => vk.softmax(x), [{ shape: [300, 64], range: [-10, 10] }], TOL);
  checkForward('softmax axis 0', (x) => vk.softmax(x, 0), [{ shape: [6, 5] }], TOL);
  checkForward('logSoftmax middle axis', (x) => vk.logSoftmax(x, 1), [{ shape: [2, 6, 5] }], TOL);
  // large logits: stable (max-subtracted)
  checkForward('softmax large values', (x) => vk.softmax(x), [{ shape: [3, 40], range: [900, 1000] }], TOL);
  checkForward('logSoftmax large values', (x) => vk.logSoftmax(x), [{ shape: [3, 40], range: [-1000, -900] }], TOL);
  // the lm_head width
  checkForward('softmax lm_head row', (x) => vk.softmax(x), [{ shape: [2, LM_HEAD], range: [-20, 20] }], TOL);
  checkForward('logSoftmax lm_head row', (x) => vk.logSoftmax(x), [{ shape: [1, LM_HEAD], range: [-20, 20] }], TOL);
});

test('masked entries (-inf) give exactly 0 probability; NaN rows stay NaN', () => {
  const v = [0, -Infinity, 1, -Infinity, 2, 3, -Infinity, 0.5, 1, 2, -Infinity];
  for (const b of [nat, ref]) {
    const p = vk.softmax(vk.tensor(v, [1, 11], { backend: b })).toArray();
    v.forEach((x, i) => x === -Infinity && assert.equal(p[i], 0, `${b.name} softmax of -inf at ${i}`));
    const lp = vk.logSoftmax(vk.tensor(v, [1, 11], { backend: b })).toArray();
    v.forEach((x, i) => x === -Infinity && assert.equal(lp[i], -Infinity, `${b.name} logSoftmax of -inf at ${i}`));
  }
  checkForward('softmax with -inf', (x) => vk.softmax(x), [{ shape: [1, 11], values: v }], TOL);
  const nanRow = [1, 2, NaN, 3, 4, 5, 6, 7, 8, 9];
  assert.ok(vk.softmax(vk.tensor(nanRow, [1, 10], { backend: nat })).toArray().every(Number.isNaN));
});

test('softmax and logSoftmax gradients', () => {
  checkGrad('softmax', (x) => vk.softmax(x), [{ shape: [3, 9] }]);
  checkGrad('logSoftmax', (x) => vk.logSoftmax(x), [{ shape: [3, 9] }]);
  checkGrad('softmax view', (x) => vk.softmax(x), [{ shape: [2, 4, 5], strided: true }]);
  checkGrad('logSoftmax axis 0', (x) => vk.logSoftmax(x, 0), [{ shape: [5, 3] }]);
  // the backward kernels on their own, wide rows and views
  const spec = { shape: [4, 67], strided: true };
  checkForward('softmaxBackward', (y, g) => y.backend.softmaxBackward(y, g), [{ ...spec, range: [0, 0.1] as [number, number] }, spec], TOL);
  checkForward('logSoftmaxBackward', (y, g) => y.backend.logSoftmaxBackward(y, g), [{ ...spec, range: [-8, 0] as [number, number] }, spec], TOL);
});

// targets with ignored positions (-100)
const TGT = [3, -100, 0, 9, -100, 5];

test('crossEntropy: native equals reference, i32 and i64 targets, every reduction', () => {
  for (const dtype of ['i32', 'i64'] as const)
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      checkForward(`ce ${dtype} ${reduction}`, (x, t) => vk.crossEntropy(x, t, { reduction }),
        [{ shape: [6, 10], range: [-4, 4] }, { shape: [6], dtype, values: TGT }], TOL);
      checkForward(`ce [2, 3, V] ${dtype} ${reduction}`, (x, t) => vk.crossEntropy(x, t, { reduction }),
        [{ shape: [2, 3, 10], range: [-4, 4] }, { shape: [2, 3], dtype, values: TGT }], TOL);
    }
  checkForward('ce custom ignore index', (x, t) => vk.crossEntropy(x, t, { ignoreIndex: 2, reduction: 'none' }),
    [{ shape: [4, 5] }, { shape: [4], dtype: 'i32', values: [2, 1, 2, 4] }], TOL);
  checkForward('ce logits view', (x, t) => vk.crossEntropy(x, t), [{ shape: [5, 12], strided: true }, { shape: [5], dtype: 'i64', int: 12 }], TOL);
  // the lm_head: V = 49280, a few rows
  checkForward('ce lm_head', (x, t) => vk.crossEntropy(x, t, { reduction: 'none' }),
    [{ shape: [3, LM_HEAD], range: [-15, 15] }, { shape: [3], dtype: 'i64', values: [17, -100, 49279] }], TOL);
});

test('crossEntropy follows torch: mean over counted targets, ignored rows give 0, all ignored gives NaN', () => {
  const logits = vk.tensor([0, 0, 0, 0, Math.log(3), 0, 0, 0], [2, 4], { backend: nat });
  const t = vk.tensor([1, -100], [2], { backend: nat, dtype: 'i64' });
  // row 0: uniform over 4 -> log 4; row 1 ignored
  assert.ok(Math.abs(vk.crossEntropy(logits, t).item() - Math.log(4)) < 1e-6);
  assert.ok(Math.abs(vk.crossEntropy(logits, t, { reduction: 'sum' }).item() - Math.log(4)) < 1e-6);
  assertClose('none', vk.crossEntropy(logits, t, { reduction: 'none' }).toArray(), [Math.log(4), 0], 1e-6);
  // logits [0, log 3, 0, 0], target 0 -> p = 1/6
  const one = vk.tensor([0, Math.log(3), 0, 0], [1, 4], { backend: nat });
  assert.ok(Math.abs(vk.crossEntropy(one, vk.tensor([0], [1], { backend: nat, dtype: 'i32' })).item() - Math.log(6)) < 1e-6);
  for (const b of [nat, ref]) {
    const l = vk.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], { backend: b });
    const tt = vk.tensor([-100, -100], [2], { backend: b, dtype: 'i64' });
    assert.ok(Number.isNaN(vk.crossEntropy(l, tt).item()), `${b.name}: mean of no targets is NaN`);
    assert.equal(vk.crossEntropy(l, tt, { reduction: 'sum' }).item(), 0);
  }
});

test('crossEntropy gradients (with ignored rows)', () => {
  for (const reduction of ['mean', 'sum', 'none'] as const)
    checkGrad(`ce ${reduction}`, (x, t) => vk.crossEntropy(x, t, { reduction }),
      [{ shape: [6, 7] }, { shape: [6], dtype: 'i64', values: [3, -100, 0, 6, -100, 5] }]);
  checkGrad('ce [2, 2, V] view', (x, t) => vk.crossEntropy(x, t), [{ shape: [2, 2, 5], strided: true }, { shape: [2, 2], dtype: 'i32', values: [4, 0, -100, 2] }]);
  // the backward kernel at the lm_head width, native vs reference
  checkForward('crossEntropyBackward lm_head', (x, t, g) => {
    const { lse } = x.backend.crossEntropy(x, t, -100);
    return x.backend.crossEntropyBackward(x, t, lse, g, -100);
  }, [{ shape: [3, LM_HEAD], range: [-15, 15] }, { shape: [3], dtype: 'i64', values: [5, -100, 49279] }, { shape: [3] }], TOL);
});

test('crossEntropyBackward on a large lm_head batch (streaming stores) equals the small-batch path', () => {
  vk.tidy(() => {
    const n = 90, V = LM_HEAD; // 17.7 MB of gradient: above the 16 MB streaming threshold
    const v = new Float32Array(n * V);
    let s = 7;
    for (let i = 0; i < v.length; i++) v[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 20;
    const logits = vk.tensor(v, [n, V], { backend: nat });
    const tv = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? -100 : (i * 104729) % V));
    const targets = vk.tensor(tv, [n], { backend: nat, dtype: 'i64' });
    const { lse } = nat.crossEntropy(logits, targets, -100);
    const gRow = vk.full([n], 0.5, { backend: nat });
    const big = nat.crossEntropyBackward(logits, targets, lse, gRow, -100).data as Float32Array;
    for (const r of [1, 5, 89]) {
      const one = (t: vk.Tensor, w: number) => t.view(w === 1 ? [1] : [1, w], w === 1 ? [1] : [w, 1], t.offset + r * w);
      const small = nat.crossEntropyBackward(one(logits, V), one(targets, 1), one(lse, 1), one(gRow, 1), -100);
      assert.deepEqual(Array.from(small.data as Float32Array), Array.from(big.subarray(r * V, (r + 1) * V)), `row ${r}`);
    }
  });
});

test('crossEntropy errors: out-of-range targets and shape mismatches', () => {
  const x = vk.zeros([3, 10], { backend: nat });
  assert.throws(() => vk.crossEntropy(x, vk.tensor([1, 10, 2], [3], { backend: nat, dtype: 'i64' })),
    /crossEntropy: target 10 at position 1 is out of range for 10 classes/);
  assert.throws(() => vk.crossEntropy(x, vk.tensor([1, -1, 2], [3], { backend: nat, dtype: 'i32' })), /target -1 at position 1/);
  assert.throws(() => vk.crossEntropy(x, vk.tensor([1, 2], [2], { backend: nat, dtype: 'i32' })),
    (e: Error) => e.name === 'ShapeError' && /crossEntropy: logits \[3, 10\] and targets \[2\] do not match/.test(e.message));
  assert.throws(() => vk.crossEntropy(x, vk.zeros([3], { backend: nat })), /targets must be integer class indices/);
  assert.throws(() => vk.softmax(vk.zeros([2], { backend: nat, dtype: 'i32' })), /softmax: needs a float tensor/);
  // the kernels refuse bad targets too (defence when called directly)
  for (const b of [nat, ref])
    assert.throws(() => b.crossEntropy(vk.zeros([2, 4], { backend: b }), vk.tensor([0, 7], [2], { backend: b, dtype: 'i32' }), -100), /target 7 at row 1 is out of range for 4 classes/);
});


test('scalar fallback (no AVX2): softmax family equals the reference', () => {
  withoutSimd(() => {
    for (const d of [5, 17, 100]) {
      checkForward(`softmax scalar path d=${d}`, (x) => vk.softmax(x), [{ shape: [7, d], range: [-6, 6] }], TOL);
      checkForward(`logSoftmax scalar path d=${d}`, (x) => vk.logSoftmax(x), [{ shape: [7, d], range: [-6, 6] }], TOL);
    }
    const spec = { shape: [4, 67] };
    checkForward('softmaxBackward scalar path', (y, g) => y.backend.softmaxBackward(y, g), [{ ...spec, range: [0, 0.1] as [number, number] }, spec], TOL);
    checkForward('logSoftmaxBackward scalar path', (y, g) => y.backend.logSoftmaxBackward(y, g), [{ ...spec, range: [-8, 0] as [number, number] }, spec], TOL);
    checkForward('ce scalar path', (x, t) => vk.crossEntropy(x, t, { reduction: 'none' }), [{ shape: [6, 10], range: [-4, 4] }, { shape: [6], dtype: 'i64', values: TGT }], TOL);
    checkGrad('ce scalar path', (x, t) => vk.crossEntropy(x, t), [{ shape: [6, 7] }, { shape: [6], dtype: 'i32', values: [3, -100, 0, 6, -100, 5] }]);
  });
});

// linearCrossEntropy: the head and the cross-entropy as one op, never holding [N, V]. Against the pair
// crossEntropy(linear(x, w), targets): one chunk gives its bits; several chunks the same kernels on fewer rows.
test('linearCrossEntropy equals crossEntropy(linear(x, w)): losses and the gradient of x, chunked or not', () => {
  for (const b of [nat, ref]) {
    for (const wDtype of ['f32', 'bf16'] as const) {
      const N = 37, K = 64, V = 1000;
      const w = vk.tidy(() => vk.cast(vk.mul(vk.randn([V, K], { backend: b, seed: 5 }), 0.2), wDtype));
      const xv = vk.randn([N, K], { backend: b, seed: 6 }).toArray();
      const tv = Array.from({ length: N }, (_, i) => (i % 7 === 3 ? -100 : (i * 131) % V));
      const run = (fused: boolean, o: { reduction?: 'sum' | 'mean' | 'none'; chunkBytes?: number }) => vk.tidy(() => {
        const x = vk.tensor(xv, [N, K], { backend: b, requiresGrad: true });
        const t = vk.tensor(tv, [N], { backend: b, dtype: 'i32' });
        const l = fused ? vk.linearCrossEntropy(x, w, t, o) : vk.crossEntropy(vk.linear(x, w), t, o);
        const loss = o.reduction === 'none' ? vk.sum(vk.mul(l, vk.tensor(Array.from({ length: N }, (_, i) => 1 + i / N), [N], { backend: b }))) : l;
        vk.backward(loss);
        const r = { loss: l.toArray(), gx: x.grad!.toArray() };
        x.grad!.dispose();
        return r;
      });
      for (const reduction of ['sum', 'mean', 'none'] as const) {
        const want = run(false, { reduction });
        const one = run(true, { reduction }); // N · V · 4 = 148 KB: one chunk
        assert.deepEqual(one.loss, want.loss, `${b.name} ${wDtype} ${reduction}: one chunk gives the same losses`);
        assert.deepEqual(one.gx, want.gx, `${b.name} ${wDtype} ${reduction}: one chunk gives the same gradient`);
        for (const rows of [1, 5, 16]) {
          const got = run(true, { reduction, chunkBytes: rows * V * 4 });
          assertClose(`${b.name} ${wDtype} ${reduction} chunks of ${rows} rows: losses`, got.loss, want.loss, 1e-6);
          assertClose(`${b.name} ${wDtype} ${reduction} chunks of ${rows} rows: gradient`, got.gx, want.gx, 1e-5);
        }
      }
      w.dispose();
    }
  }
});

test('linearCrossEntropy holds no [N, V] tensor between the forward and the backward, and refuses a trained head', () => {
  const N = 64, K = 32, V = 4096;
  const w = vk.randn([V, K], { backend: nat, seed: 1 });
  const x = vk.randn([N, K], { backend: nat, seed: 2, requiresGrad: true });
  const t = vk.tensor(Array.from({ length: N }, (_, i) => (i * 17) % V), [N], { backend: nat, dtype: 'i32' });
  const before = vk.storageStats().bytes;
  vk.tidy(() => {
    const l = vk.linearCrossEntropy(x, w, t, { reduction: 'sum', chunkBytes: 8 * V * 4 });
    const held = vk.storageStats().bytes - before;
    assert.ok(held < N * V * 4 / 4, `the forward holds ${held} bytes (the logits are ${N * V * 4})`);
    vk.backward(l);
  });
  assert.ok(x.grad && x.grad.shape.join() === `${N},${K}`);
  x.grad!.dispose();
  const wt = vk.randn([V, K], { backend: nat, seed: 1, requiresGrad: true });
  assert.throws(() => vk.linearCrossEntropy(x, wt, t), /frozen head/);
  assert.throws(() => vk.linearCrossEntropy(x, w, vk.tensor([V], [1], { backend: nat, dtype: 'i32' })), /targets must be/);
  assert.throws(() => vk.linearCrossEntropy(x, w, vk.tensor(Array(N).fill(V), [N], { backend: nat, dtype: 'i32' })), /out of range/);
  for (const a of [w, x, t, wt]) a.dispose();
});

// A block-quantized head (an NF4 model's Q8_0 tied embeddings): the chunks' products read its blocks, as linear
// with that weight does, so one chunk gives the pair's bits; both equal the dequantized f32 head to f32 rounding.
test('linearCrossEntropy with a block-quantized head equals crossEntropy(linear(x, w)) on the same weight', () => {
  const N = 37, K = 64, V = 1000;
  const w32 = vk.tidy(() => vk.mul(vk.randn([V, K], { backend: nat, seed: 5 }), 0.2));
  const xv = vk.randn([N, K], { backend: nat, seed: 6 }).toArray();
  const tv = Array.from({ length: N }, (_, i) => (i % 7 === 3 ? -100 : (i * 131) % V));
  for (const fmt of ['q8_0', 'q4_0', 'nf4'] as const) {
    const wq = vk.quantize(w32, fmt);
    const deq = wq.dequantize();
    const run = (head: vk.Tensor | vk.QuantizedWeight, fused: boolean, rows: number, chunkBytes?: number) => vk.tidy(() => {
      const x = vk.tensor(xv.slice(0, rows * K), [rows, K], { backend: nat, requiresGrad: true });
      const t = vk.tensor(tv.slice(0, rows), [rows], { backend: nat, dtype: 'i32' });
      const l = fused ? vk.linearCrossEntropy(x, head, t, { reduction: 'sum', chunkBytes }) : vk.crossEntropy(vk.linear(x, head), t, { reduction: 'sum' });
      vk.backward(l);
      const r = { loss: l.toArray(), gx: x.grad!.toArray() };
      x.grad!.dispose();
      return r;
    });
    const want = run(wq, false, N);
    const one = run(wq, true, N);
    assert.deepEqual(one.loss, want.loss, `${fmt}: one chunk gives the pair's loss`);
    assert.deepEqual(one.gx, want.gx, `${fmt}: one chunk gives the pair's gradient`);
    const chunked = run(wq, true, N, 5 * V * 4);
    assertClose(`${fmt} chunks of 5 rows: loss`, chunked.loss, want.loss, 1e-6);
    assertClose(`${fmt} chunks of 5 rows: gradient`, chunked.gx, want.gx, 1e-5);
    const f32 = run(deq, true, N);
    assertClose(`${fmt} against the dequantized f32 head: loss`, one.loss, f32.loss, 1e-5);
    assertClose(`${fmt} against the dequantized f32 head: gradient`, one.gx, f32.gx, 1e-4);
    // without a graph (inference over a few rows) the products take the 8-bit-activation kernels, in both
    const ng = (fused: boolean) => vk.noGrad(() => vk.tidy(() => {
      const x = vk.tensor(xv.slice(0, 4 * K), [4, K], { backend: nat });
      const t = vk.tensor(tv.slice(0, 4), [4], { backend: nat, dtype: 'i32' });
      return (fused ? vk.linearCrossEntropy(x, wq, t, { reduction: 'none' }) : vk.crossEntropy(vk.linear(x, wq), t, { reduction: 'none' })).toArray();
    }));
    assert.deepEqual(ng(true), ng(false), `${fmt}: without a graph, the fused op equals the pair`);
    deq.dispose();
    wq.dispose();
  }
  w32.dispose();
});

test('embedding in a Q8_0 or Q4_0 table gives the dequantized table\'s rows bit for bit; NF4 is refused', () => {
  const V = 300, D = 64;
  const w32 = vk.tidy(() => vk.mul(vk.randn([V, D], { backend: nat, seed: 9 }), 0.3));
  const ids = vk.tensor([0, 299, 17, 17, 5, 150], [2, 3], { backend: nat, dtype: 'i32' });
  for (const fmt of ['q8_0', 'q4_0'] as const) {
    const wq = vk.quantize(w32, fmt);
    const deq = wq.dequantize();
    const got = vk.embedding(wq, ids), want = vk.embedding(deq, ids);
    assert.deepEqual(got.shape, [2, 3, D]);
    assert.equal(got.dtype, 'f32');
    assert.deepEqual(got.toArray(), want.toArray(), fmt);
    assert.throws(() => vk.embedding(wq, vk.tensor([V], [1], { backend: nat, dtype: 'i32' })), /out of range/);
    for (const t of [got, want, deq]) t.dispose();
    wq.dispose();
  }
  const n = vk.quantize(w32, 'nf4');
  assert.throws(() => vk.embedding(n, ids), /Q8_0 or Q4_0 weights only/);
  n.dispose();
  ids.dispose();
  w32.dispose();
});
