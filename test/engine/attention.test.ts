// Fused attention: native (blockwise, online softmax) against the reference definition, on causal, padded, GQA,
// decode, odd and strided shapes; gradients against finite differences; and the fused kernel against a naive
// composition at T = 2048.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { nativeNaiveAttention } from '../../src/engine/backend/native/attention.js';
import { type InputSpec, assertClose, checkForward, checkGrad, make, nat, randomValues, ref } from './harness.js';

interface Case {
  name: string;
  B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; Dv?: number;
  causal?: boolean;
  qOffset?: number;
  /** per batch row, the number of left-padded (masked) keys */
  pad?: number[];
  scale?: number;
}

function specs(c: Case): InputSpec[] {
  const s: InputSpec[] = [
    { shape: [c.B, c.Hq, c.Tq, c.D], range: [-2, 2] },
    { shape: [c.B, c.Hkv, c.Tk, c.D], range: [-2, 2] },
    { shape: [c.B, c.Hkv, c.Tk, c.Dv ?? c.D] },
  ];
  if (c.pad) {
    const m: number[] = [];
    for (let b = 0; b < c.B; b++) for (let j = 0; j < c.Tk; j++) m.push(j < c.pad[b] ? 0 : 1);
    s.push({ shape: [c.B, c.Tk], dtype: 'i32', values: m, grad: false });
  }
  return s;
}

const run = (c: Case) => (q: vk.Tensor, k: vk.Tensor, v: vk.Tensor, mask?: vk.Tensor) =>
  vk.attention(q, k, v, { causal: c.causal, qOffset: c.qOffset, keyMask: mask ?? null, scale: c.scale });

/** fn applied to the inputs, returning [out, lse] straight from the backend (lse checked too). */
const runWithLse = (c: Case) => (q: vk.Tensor, k: vk.Tensor, v: vk.Tensor, mask?: vk.Tensor) => {
  const { out, lse } = q.backend.attention(q, k, v, {
    causal: c.causal ?? false, scale: c.scale ?? 1 / Math.sqrt(c.D), keyMask: mask ?? null, qOffset: c.qOffset ?? c.Tk - c.Tq,
  });
  return [out, lse];
};

const forwardCases: Case[] = [
  { name: 'non-causal', B: 2, Hq: 3, Hkv: 3, Tq: 33, Tk: 33, D: 16 },
  { name: 'causal', B: 1, Hq: 2, Hkv: 2, Tq: 130, Tk: 130, D: 24, causal: true },
  { name: 'causal T=5 D=64', B: 2, Hq: 2, Hkv: 1, Tq: 5, Tk: 5, D: 64, causal: true },
  { name: 'T=1', B: 1, Hq: 2, Hkv: 2, Tq: 1, Tk: 1, D: 16, causal: true },
  { name: 'GQA 6/2 causal', B: 1, Hq: 6, Hkv: 2, Tq: 70, Tk: 70, D: 16, causal: true },
  { name: 'GQA 9/3', B: 2, Hq: 9, Hkv: 3, Tq: 33, Tk: 33, D: 24 },
  { name: 'decode Tq=1 Tk=37', B: 2, Hq: 6, Hkv: 2, Tq: 1, Tk: 37, D: 16, causal: true, qOffset: 36 },
  { name: 'chunk against a cache (Tq=5, Tk=37)', B: 1, Hq: 4, Hkv: 2, Tq: 5, Tk: 37, D: 16, causal: true },
  { name: 'decode with a long cache (split keys)', B: 1, Hq: 9, Hkv: 3, Tq: 1, Tk: 600, D: 64, causal: true },
  { name: 'Dv != D', B: 1, Hq: 2, Hkv: 1, Tq: 20, Tk: 29, D: 16, Dv: 24, scale: 0.3 },
  // left-padded batch: row 1 has 40 of 130 keys masked; causal rows inside the padding see no key at all
  { name: 'left padding causal', B: 2, Hq: 2, Hkv: 1, Tq: 130, Tk: 130, D: 16, causal: true, pad: [0, 40] },
  { name: 'padding non-causal, a fully masked batch row', B: 3, Hq: 2, Hkv: 2, Tq: 9, Tk: 140, D: 16, pad: [3, 140, 130] },
  { name: 'padding GQA decode', B: 2, Hq: 6, Hkv: 3, Tq: 1, Tk: 300, D: 16, causal: true, pad: [0, 170] },
  { name: 'chunk of 100 rows against a cache of 230 (GQA)', B: 1, Hq: 4, Hkv: 2, Tq: 100, Tk: 230, D: 16, causal: true },
  { name: 'causal with an explicit qOffset', B: 2, Hq: 2, Hkv: 1, Tq: 90, Tk: 200, D: 16, causal: true, qOffset: 37, pad: [0, 50] },
  // head dims that are not multiples of 8 take the sgemm path instead of the AVX2 tiles
  { name: 'sgemm path: D=12 causal GQA padded', B: 2, Hq: 4, Hkv: 2, Tq: 150, Tk: 150, D: 12, causal: true, pad: [0, 20] },
];

test('fused attention equals the reference: causal, padded, GQA, decode, odd sizes', () => {
  for (const c of forwardCases) checkForward(c.name, runWithLse(c), specs(c), 2e-5);
});

test('rows with no key to attend give zeros and lse = -Infinity', () => {
  const c: Case = { name: 'all masked', B: 2, Hq: 2, Hkv: 1, Tq: 4, Tk: 6, D: 16, causal: true, pad: [6, 2] };
  vk.tidy(() => {
    const sp = specs(c);
    const rng = new vk.Rng(3);
    const ins = sp.map((s) => make(nat, s, randomValues(s, rng)));
    const [out, lse] = runWithLse(c)(...(ins as [vk.Tensor, vk.Tensor, vk.Tensor, vk.Tensor]));
    const o = out.toArray(), l = lse.toArray();
    // batch 0: every key masked
    for (let i = 0; i < 2 * 4; i++) assert.equal(l[i], -Infinity);
    assert.ok(o.slice(0, 2 * 4 * 16).every((x) => x === 0));
    // batch 1, causal with qOffset 2: row i sees keys <= 2 + i, keys 0 and 1 padded -> every row sees key 2 onward
    for (let i = 8; i < 16; i++) assert.ok(Number.isFinite(l[i]));
    // causal + padding with qOffset 0: row 0 sees only key 0, which is padded
    const d = runWithLse({ ...c, qOffset: 0 })(...(ins as [vk.Tensor, vk.Tensor, vk.Tensor, vk.Tensor]))[1].toArray();
    assert.equal(d[8], -Infinity);
    assert.equal(d[12], -Infinity);
    assert.ok(Number.isFinite(d[10]));
  });
});

test('strided q, k, v views ([B, T, H, D] permuted, a sliced cache, transposed) are read in place', () => {
  const B = 2, T = 37, H = 4, Hkv = 2, D = 16, Tmax = 50;
  const rng = new vk.Rng(5);
  vk.tidy(() => {
    const mk = (b: vk.Backend, shape: number[], vals: number[]) => vk.tensor(vals, shape, { backend: b });
    const qv = randomValues({ shape: [B, T, H, D] }, rng);
    const kv = randomValues({ shape: [B, Hkv, Tmax, D] }, rng);
    const vv = randomValues({ shape: [B, T, Hkv, D] }, rng);
    const outs = [nat, ref].map((b) => {
      const q = vk.permute(mk(b, [B, T, H, D], qv), [0, 2, 1, 3]);
      const k = vk.slice(mk(b, [B, Hkv, Tmax, D], kv), 2, 0, T);
      const v = vk.permute(mk(b, [B, T, Hkv, D], vv), [0, 2, 1, 3]);
      assert.ok(!q.isContiguous() && !k.isContiguous() && !v.isContiguous());
      return vk.attention(q, k, v, { causal: true }).toArray();
    });
    assertClose('strided views', outs[0], outs[1], 2e-5);
  });
  // a transposed (D-strided) view takes the contiguous-copy path
  checkForward('transposed k', (q, k, v) => vk.attention(q, k, v, { causal: true }),
    [{ shape: [1, 2, 9, 8] }, { shape: [1, 2, 9, 8], strided: true }, { shape: [1, 2, 9, 8] }], 2e-5);
});

test('attention gradients: finite differences, and native against reference', () => {
  const grad = (c: Case, o = {}) => checkGrad(c.name, run(c), specs(c), { tolFd: 1e-5, tolNative: 5e-5, maxProbe: 24, ...o });
  grad({ name: 'grad non-causal', B: 1, Hq: 2, Hkv: 2, Tq: 5, Tk: 7, D: 8 });
  grad({ name: 'grad causal GQA', B: 2, Hq: 4, Hkv: 2, Tq: 6, Tk: 6, D: 8, causal: true });
  grad({ name: 'grad causal padded', B: 2, Hq: 2, Hkv: 1, Tq: 7, Tk: 7, D: 8, causal: true, pad: [0, 3] });
  grad({ name: 'grad decode chunk, Dv != D', B: 1, Hq: 3, Hkv: 1, Tq: 3, Tk: 9, D: 8, Dv: 4, causal: true });
  // bigger shapes (several blocks of keys and rows) checked native vs reference only
  for (const c of [
    { name: 'grad blocks causal GQA', B: 1, Hq: 6, Hkv: 2, Tq: 150, Tk: 150, D: 16, causal: true },
    { name: 'grad blocks padded', B: 2, Hq: 2, Hkv: 2, Tq: 70, Tk: 130, D: 24, pad: [0, 77] },
    { name: 'grad blocks causal padded', B: 2, Hq: 3, Hkv: 3, Tq: 130, Tk: 130, D: 16, causal: true, pad: [5, 100] },
    { name: 'grad chunk against a cache', B: 1, Hq: 4, Hkv: 2, Tq: 100, Tk: 230, D: 16, causal: true },
    { name: 'grad explicit qOffset', B: 2, Hq: 2, Hkv: 1, Tq: 90, Tk: 200, D: 16, causal: true, qOffset: 37, pad: [0, 50] },
    { name: 'grad blocks sgemm path (D=12)', B: 1, Hq: 4, Hkv: 2, Tq: 140, Tk: 140, D: 12, causal: true, pad: [30] },
  ] as Case[]) {
    checkGradNativeOnly(c);
  }
});

/** Native autograd against reference autograd (no finite differences: too slow at these sizes). */
function checkGradNativeOnly(c: Case): void {
  vk.tidy(() => {
    const sp = specs(c);
    const rng = new vk.Rng(11);
    const vals = sp.map((s) => randomValues(s, rng));
    const gout = randomValues({ shape: [c.B, c.Hq, c.Tq, c.Dv ?? c.D] }, rng);
    const grads = [nat, ref].map((b) => {
      const ins = sp.map((s, i) => make(b, s, vals[i]));
      for (let i = 0; i < 3; i++) ins[i].requiresGrad = true;
      const out = run(c)(...(ins as [vk.Tensor, vk.Tensor, vk.Tensor, vk.Tensor]));
      vk.backward(out, vk.tensor(gout, out.shape, { backend: b }));
      return ins.slice(0, 3).map((t) => t.grad!.toArray());
    });
    for (let i = 0; i < 3; i++) assertClose(`${c.name} d/dinput${i}`, grads[0][i], grads[1][i], 5e-5);
  });
}

/** softmax(q kᵀ scale + bias) v from the matmul/softmax/elementwise ops, kv heads repeated for GQA. */
function naiveAttention(q: vk.Tensor, k: vk.Tensor, v: vk.Tensor, c: Case, pad?: number[]): vk.Tensor {
  const [B, Hq, Tq, D] = q.shape, [, Hkv, Tk] = k.shape, G = Hq / Hkv;
  const repeat = (x: vk.Tensor) =>
    G === 1 ? x : vk.reshape(vk.expand(vk.unsqueeze(x, 2), [B, Hkv, G, Tk, x.shape[3]]), [B, Hq, Tk, x.shape[3]]);
  const off = c.qOffset ?? Tk - Tq;
  const bias = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Tq; i++)
      for (let j = 0; j < Tk; j++)
        if ((c.causal && j > off + i) || (pad && j < pad[b])) bias[(b * Tq + i) * Tk + j] = -Infinity;
  const scores = vk.mul(vk.matmul(q, repeat(k), { transB: true }), 1 / Math.sqrt(D));
  const p = vk.softmax(vk.add(scores, vk.tensor(bias, [B, 1, Tq, Tk], { backend: q.backend })));
  return vk.matmul(p, repeat(v));
}

test('fused equals naive attention for causal, padded, GQA, one-row decode and T=2048', () => {
  // The naive composition runs on the native backend in f32: matmul (scores), softmax, matmul.
  const T = 2048;
  const cases: Case[] = [
    { name: 'T=2048 causal', B: 1, Hq: 2, Hkv: 2, Tq: T, Tk: T, D: 64, causal: true },
    { name: 'T=2048 non-causal', B: 1, Hq: 2, Hkv: 2, Tq: T, Tk: T, D: 64 },
    { name: 'T=2048 GQA causal, left-padded batch', B: 2, Hq: 2, Hkv: 1, Tq: T, Tk: T, D: 64, causal: true, pad: [0, 700] },
    { name: 'T=2048 one-row decode GQA', B: 1, Hq: 6, Hkv: 2, Tq: 1, Tk: T, D: 64, causal: true },
  ];
  for (const c of cases) {
    vk.tidy(() => {
      const sp = specs(c);
      const rng = new vk.Rng(17);
      const [q, k, v, mask] = sp.map((s) => make(nat, s, randomValues(s, rng)));
      const fused = vk.attention(q, k, v, { causal: c.causal, keyMask: mask ?? null }).toArray();
      const naive = naiveAttention(q, k, v, c, c.pad).toArray();
      // rows with no key to attend: the naive softmax gives NaN (all -inf), the fused kernel zeros
      const f: number[] = [], n: number[] = [];
      let empty = 0;
      for (let i = 0; i < naive.length; i++) {
        if (Number.isNaN(naive[i])) {
          assert.equal(fused[i], 0, `${c.name}: a row with no key must be zero`);
          empty++;
        } else {
          f.push(fused[i]);
          n.push(naive[i]);
        }
      }
      if (c.pad) assert.equal(empty, 2 * 700 * 64, `${c.name}: padded rows`);
      assertClose(c.name, f, n, 1e-5);
      // and against the native naive kernel (full scores per head in one sgemm, std::exp softmax)
      const o = { causal: c.causal ?? false, scale: 1 / Math.sqrt(c.D), keyMask: mask ?? null, qOffset: c.Tk - c.Tq };
      assertClose(`${c.name} (naive kernel)`, fused, nativeNaiveAttention(q, k, v, o).toArray(), 1e-5);
    });
  }
});

test('attention forward and backward give the same bits on every run and at 1 or 2 threads', () => {
  const before = vk.nativeThreads();
  for (const c of [
    { name: 'causal GQA padded, several blocks', B: 2, Hq: 6, Hkv: 2, Tq: 300, Tk: 300, D: 64, causal: true, pad: [0, 90] },
    { name: 'one-row decode (split keys)', B: 1, Hq: 9, Hkv: 3, Tq: 1, Tk: 1500, D: 64, causal: true },
  ] as Case[]) {
    vk.tidy(() => {
      const sp = specs(c);
      const rng = new vk.Rng(23);
      const [q, k, v, mask] = sp.map((s) => make(nat, s, randomValues(s, rng)));
      const gout = make(nat, { shape: [c.B, c.Hq, c.Tq, c.D] }, randomValues({ shape: [c.B, c.Hq, c.Tq, c.D] }, rng));
      const o = { causal: true, scale: 0.125, keyMask: mask ?? null, qOffset: c.Tk - c.Tq };
      const run = (threads: number) => {
        vk.setNativeThreads(threads);
        const f = nat.attention(q, k, v, o);
        const g = nat.attentionBackward(q, k, v, f.out, f.lse, gout, o);
        return [f.out, f.lse, g.gq, g.gk, g.gv].map((t) => Array.from(t.toFloat32Array()));
      };
      try {
        const a = run(2), b = run(2), s = run(1);
        ['out', 'lse', 'gq', 'gk', 'gv'].forEach((n, i) => {
          assert.deepEqual(b[i], a[i], `${c.name}: ${n} differs between two runs`);
          assert.deepEqual(s[i], a[i], `${c.name}: ${n} differs between 1 and 2 threads`);
        });
      } finally {
        vk.setNativeThreads(before);
      }
    });
  }
});

test('attention shape errors name the op and the shapes', () => {
  const z = (s: number[]) => vk.zeros(s, { backend: ref });
  assert.throws(() => vk.attention(z([1, 3, 4, 8]), z([1, 2, 4, 8]), z([1, 2, 4, 8])), /attention: query heads \(3\) must be a multiple of kv heads \(2\)/);
  assert.throws(() => vk.attention(z([1, 2, 4, 8]), z([1, 2, 4, 4]), z([1, 2, 4, 8])), /attention: q and k head dims differ: q \[1, 2, 4, 8\], k \[1, 2, 4, 4\]/);
  assert.throws(() => vk.attention(z([1, 2, 4, 8]), z([1, 2, 4, 8]), z([1, 2, 4, 8]), { keyMask: z([1, 5]) }), /keyMask must be \[B, Tk\] = \[1, 4\]/);
});
