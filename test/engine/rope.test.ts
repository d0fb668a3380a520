// Rotary embedding: native against the reference, strided inputs, i32/i64 positions, the inverse, gradients, and
// the float32 rounding of transformers' inverse frequencies and cos/sin tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { ropeCosSin } from '../../src/engine/backend/reference/rope.js';
import { assertClose, checkForward, checkGrad, nat, ref } from './harness.js';

function invFreqValues(D: number, theta: number): number[] {
  return vk.ropeInvFreq(D, theta, { backend: ref }).toArray();
}

test('rope: native equals the reference (odd sizes, i32 and i64 positions, large positions, inverse)', () => {
  for (const [B, H, T, D, dt, maxPos] of [
    [1, 1, 1, 2, 'i32', 10], [2, 3, 5, 16, 'i32', 100], [1, 9, 33, 64, 'i64', 8192], [2, 2, 130, 24, 'i64', 70000],
  ] as [number, number, number, number, 'i32' | 'i64', number][]) {
    const specs = [
      { shape: [B, H, T, D] },
      { shape: [B, T], dtype: dt, int: maxPos },
      { shape: [D / 2], values: invFreqValues(D, 100000) },
    ];
    checkForward(`rope [${B},${H},${T},${D}] ${dt}`, (x, p, f) => vk.rope(x, p, f), specs, 1e-6);
    checkForward(`rope inverse [${B},${H},${T},${D}]`, (x, p, f) => x.backend.rope(x, p, f, true), specs, 1e-6);
  }
});

test('rope of a permuted [B, T, H, D] projection is read in place; inverse undoes it', () => {
  const B = 2, T = 7, H = 3, D = 8;
  const vals = Array.from({ length: B * T * H * D }, (_, i) => Math.sin(i * 0.37));
  vk.tidy(() => {
    const outs = [nat, ref].map((b) => {
      const x = vk.permute(vk.tensor(vals, [B, T, H, D], { backend: b }), [0, 2, 1, 3]);
      const pos = vk.tensor([3, 4, 5, 6, 7, 8, 9, 0, 0, 1, 2, 3, 4, 5], [B, T], { dtype: 'i32', backend: b });
      const f = vk.ropeInvFreq(D, 10000, { backend: b });
      const y = vk.rope(x, pos, f);
      const back = b.rope(y, pos, f, true);
      assertClose(`round trip on ${b.name}`, back.toArray(), vk.contiguous(x).toArray(), 1e-6);
      return y.toArray();
    });
    assertClose('permuted x', outs[0], outs[1], 1e-6);
  });
});

test('rope cos/sin tables equal float32(cos(float32 angle)) computed in double, for every position and frequency', () => {
  // x = [1 ... 1, 0 ... 0] makes the output exactly [cos ..., sin ...]
  for (const [theta, D] of [[10000, 64], [100000, 64], [1e6, 128], [10000, 24]]) {
    const half = D / 2, T = 4096 + 7;
    const positions = Array.from({ length: T }, (_, t) => (t < 4096 ? t : [16383, 65535, 131071, 999999, 2 ** 24, 3e7, -5][t - 4096]));
    const x = vk.tensor(Array.from({ length: T * D }, (_, k) => (k % D < half ? 1 : 0)), [1, 1, T, D], { backend: nat });
    const f = vk.ropeInvFreq(D, theta, { backend: nat });
    const y = vk.rope(x, vk.tensor(positions, [1, T], { dtype: 'i64', backend: nat }), f).toArray();
    const fv = f.toArray();
    let bad = 0;
    for (let t = 0; t < T; t++)
      for (let i = 0; i < half; i++) {
        const [c, s] = ropeCosSin(positions[t], fv[i]);
        if (y[t * D + i] !== c || y[t * D + half + i] !== s) bad++;
      }
    assert.equal(bad, 0, `theta ${theta}, D ${D}: ${bad} of ${T * half} cos/sin pairs differ`);
  }
});

test('rope matches the rotate-half formula by hand', () => {
  // x = [1, 2, 3, 4] at position 1 with invFreq [1, 0.5]: angles 1 and 0.5
  const x = vk.tensor([1, 2, 3, 4], [1, 1, 1, 4], { backend: nat });
  const y = vk.rope(x, vk.tensor([1], [1, 1], { dtype: 'i32', backend: nat }), vk.tensor([1, 0.5], [2], { backend: nat })).toArray();
  const [c1, s1] = [Math.cos(1), Math.sin(1)], [c2, s2] = [Math.cos(0.5), Math.sin(0.5)];
  assertClose('by hand', y, [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2], 1e-6);
});

test('rope gradient is the inverse rotation', () => {
  const D = 8;
  checkGrad('rope', (x, p, f) => vk.rope(x, p, f), [
    { shape: [2, 2, 3, D] },
    { shape: [2, 3], dtype: 'i32', int: 50 },
    { shape: [D / 2], values: invFreqValues(D, 10000), grad: false },
  ]);
});

test('ropeInvFreq and the cos/sin tables round like transformers in float32', () => {
  // torch: 1.0 / (10000 ** (torch.arange(0, 8, 2, dtype=torch.int64).float() / 8))
  //   -> tensor([1.0000e+00, 1.0000e-01, 1.0000e-02, 1.0000e-03]) as float32
  const f = vk.ropeInvFreq(8, 10000, { backend: ref }).toArray();
  assert.deepEqual(f, [1, 0.1, 0.01, 0.001].map(Math.fround));
  const g = vk.ropeInvFreq(64, 100000, { backend: nat });
  assert.equal(g.dtype, 'f32');
  assert.equal(g.shape[0], 32);
  // every value is a float32 and the sequence falls from 1 to ~1e-5 * theta^(1/32)
  const gv = g.toArray();
  assert.equal(gv[0], 1);
  for (let i = 1; i < 32; i++) assert.ok(gv[i] < gv[i - 1] && Math.fround(gv[i]) === gv[i]);
  assertClose('theta^(-2i/d)', gv, gv.map((_, i) => Math.pow(100000, -(2 * i) / 64)), 1e-6);
  // the angle is the float32 product, as transformers' f32 matmul of inv_freq and position_ids gives
  const [c, s] = ropeCosSin(8191, gv[5]);
  const angle = Math.fround(gv[5] * 8191);
  assert.equal(c, Math.fround(Math.cos(angle)));
  assert.equal(s, Math.fround(Math.sin(angle)));
  assert.throws(() => vk.ropeInvFreq(7, 10000), /even/);
});

test('rope shape errors', () => {
  const x = vk.zeros([1, 2, 3, 8], { backend: ref });
  const p = vk.zeros([1, 3], { dtype: 'i32', backend: ref });
  assert.throws(() => vk.rope(x, vk.zeros([1, 4], { dtype: 'i32', backend: ref }), vk.zeros([4], { backend: ref })), /rope: positions must be \[B, T\] = \[1, 3\]/);
  assert.throws(() => vk.rope(x, p, vk.zeros([8], { backend: ref })), /rope: invFreq must be \[D\/2\] = \[4\]/);
  assert.throws(() => vk.rope(x, vk.zeros([1, 3], { backend: ref }), vk.zeros([4], { backend: ref })), /i32 or i64/);
});
