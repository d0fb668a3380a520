// AdamW: native against reference over several steps, against the closed form of the first step, torch's
// defaults, and the argument checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { assertClose, nat, ref, withoutSimd } from './harness.js';

function state(b: vk.Backend, n: number, seed: number) {
  return {
    p: vk.randn([n], { backend: b, seed }),
    m: vk.zeros([n], { backend: b }),
    v: vk.zeros([n], { backend: b }),
  };
}

test('adamwStep: native equals reference over several steps', () => {
  for (const n of [1, 7, 33, 100003]) {
    const N = state(nat, n, 1), R = state(ref, n, 1);
    for (let step = 1; step <= 5; step++) {
      const g = vk.randn([n], { seed: 100 + step, std: step === 3 ? 1e-4 : 1 });
      const gn = vk.toBackend(g, nat), gr = vk.toBackend(g, ref);
      const o = { lr: 1e-3 * step, step, weightDecay: 0.1, beta2: 0.95 };
      vk.adamwStep(N.p, gn, N.m, N.v, o);
      vk.adamwStep(R.p, gr, R.m, R.v, o);
    }
    // both store f32 after every operation (the reference computes each in f64): a few ulp apart
    assertClose(`param n=${n}`, N.p.toArray(), R.p.toArray(), 1e-6);
    assertClose(`m n=${n}`, N.m.toArray(), R.m.toArray(), 1e-6);
    assertClose(`v n=${n}`, N.v.toArray(), R.v.toArray(), 1e-6);
  }
});

test('adamwStep first step has the closed form p(1 - lr wd) - lr g / (|g| + eps)', () => {
  // step 1 from zero moments: m = (1-b1) g, v = (1-b2) g²; the bias corrections cancel them exactly
  const p0 = [0.5, -1, 2, 0, 3], g = [0.1, -2, 1e-3, 5, 0];
  const lr = 0.01, wd = 0.05, eps = 1e-8;
  for (const b of [nat, ref]) {
    const p = vk.tensor(p0, [5], { backend: b }), m = vk.zeros([5], { backend: b }), v = vk.zeros([5], { backend: b });
    vk.adamwStep(p, vk.tensor(g, [5], { backend: b }), m, v, { lr, step: 1, weightDecay: wd, eps });
    const want = p0.map((x, i) => x * (1 - lr * wd) - (lr * g[i]) / (Math.abs(g[i]) + eps));
    assertClose(`${b.name} closed form`, p.toArray(), want, 1e-6);
    assertClose(`${b.name} m`, m.toArray(), g.map((x) => 0.1 * x), 1e-6);
    assertClose(`${b.name} v`, v.toArray(), g.map((x) => 0.001 * x * x), 1e-6);
  }
});

test('adamwStep uses torch defaults (beta 0.9/0.999, eps 1e-8, weight decay 0.01) and accepts a grad view', () => {
  const a = { p: vk.tensor([1, 2, 3, 4], [2, 2], { backend: nat }), m: vk.zeros([2, 2], { backend: nat }), v: vk.zeros([2, 2], { backend: nat }) };
  const b = { p: vk.tensor([1, 2, 3, 4], [2, 2], { backend: nat }), m: vk.zeros([2, 2], { backend: nat }), v: vk.zeros([2, 2], { backend: nat }) };
  const g = vk.tensor([0.5, -0.25, 1, 2], [2, 2], { backend: nat });
  const gT = vk.contiguous(vk.transpose(g));
  for (let step = 1; step <= 3; step++) {
    vk.adamwStep(a.p, g, a.m, a.v, { lr: 0.1, step });
    vk.adamwStep(b.p, vk.transpose(gT), b.m, b.v, { lr: 0.1, step, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  }
  assert.deepEqual(a.p.toArray(), b.p.toArray());
});

test('adamwStep errors name the shapes', () => {
  const p = vk.zeros([3, 2], { backend: nat });
  assert.throws(() => vk.adamwStep(p, vk.zeros([2, 3], { backend: nat }), vk.zeros([3, 2], { backend: nat }), vk.zeros([3, 2], { backend: nat }), { lr: 1, step: 1 }),
    (e: Error) => e.name === 'ShapeError' && /adamwStep: param \[3, 2\], grad \[2, 3\], m \[3, 2\] and v \[3, 2\] must have one shape/.test(e.message));
  assert.throws(() => vk.adamwStep(p, p, vk.zeros([3, 2], { backend: nat }), vk.zeros([3, 2], { backend: nat }), { lr: 1, step: 0 }), /step must be an integer >= 1/);
  const big = vk.zeros([2, 3], { backend: nat });
  assert.throws(() => vk.adamwStep(vk.transpose(big), p, vk.zeros([3, 2], { backend: nat }), vk.zeros([3, 2], { backend: nat }), { lr: 1, step: 1 }), /param \[3, 2\] must be contiguous/);
});


test('scalar fallback (no AVX2): adamw equals the reference', () => {
  withoutSimd(() => {
    const N = state(nat, 1001, 3), R = state(ref, 1001, 3);
    for (let step = 1; step <= 3; step++) {
      const g = vk.randn([1001], { seed: 200 + step });
      vk.adamwStep(N.p, vk.toBackend(g, nat), N.m, N.v, { lr: 1e-2, step, weightDecay: 0.1 });
      vk.adamwStep(R.p, vk.toBackend(g, ref), R.m, R.v, { lr: 1e-2, step, weightDecay: 0.1 });
    }
    assertClose('param scalar path', N.p.toArray(), R.p.toArray(), 1e-6);
  });
});
