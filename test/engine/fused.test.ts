// Fused inference ops: the native fused kernels equal the unfused native ops bit for bit (so a decode step gives
// the same tokens either way) and the reference composition within f32 rounding; under autograd the ops fall back
// to the composition and record gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { assertClose, nat, ref } from './harness.js';

const rng = new vk.Rng(7);
function rand(shape: number[], b = nat, dtype: vk.DType = 'f32', scale = 1): Tensor {
  const n = shape.reduce((a, d) => a * d, 1);
  const v = Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  return vk.tensor(v, shape, { backend: b, dtype });
}
/** The same values on the reference backend. */
const onRef = (t: Tensor) => vk.tensor(t.toArray(), t.shape, { backend: ref, dtype: t.dtype });
const same = (name: string, got: Tensor, want: Tensor) => {
  assert.deepEqual(got.shape, want.shape, `${name}: shape`);
  const g = got.toFloat32Array(), w = want.toFloat32Array();
  for (let i = 0; i < w.length; i++) if (!Object.is(g[i], w[i])) assert.fail(`${name}: element ${i} is ${g[i]}, the unfused op gives ${w[i]}`);
};

test('linears: one pass over several weights equals separate linears (few and many rows, f32/bf16/f16)', () => {
  vk.noGrad(() => vk.tidy(() => {
    for (const dtype of ['bf16', 'f16', 'f32'] as const)
      for (const [M, K, ns] of [[1, 96, [200, 72, 72]], [3, 64, [40, 24]], [8, 512, [600, 200, 200]], [13, 48, [33, 17, 9]], [89, 517, [50, 24, 24]], [8, 1543, [40, 24]]] as const) {
        const x = rand([1, M, K]);
        const ws = ns.map((n) => rand([n, K], nat, dtype, 0.2));
        const got = vk.linears(x, ws);
        ws.forEach((w, i) => {
          same(`linears ${dtype} M=${M} #${i}`, got[i], vk.linear(x, w));
          assertClose(`linears ${dtype} M=${M} #${i} vs reference`, got[i].toArray(), vk.linear(onRef(x), onRef(w)).toArray(), 1e-5);
        });
      }
    // a strided x whose rows fold into one stride (the last position of a sequence)
    const seq = rand([2, 5, 64]);
    const last = vk.slice(seq, 1, 4, 5);
    const ws = [rand([48, 64], nat, 'bf16'), rand([16, 64], nat, 'bf16')];
    vk.linears(last, ws).forEach((y, i) => same(`linears strided #${i}`, y, vk.linear(vk.contiguous(last), ws[i])));
  }));
});

test('swiglu equals mul(silu(x·Wgᵀ), x·Wuᵀ)', () => {
  vk.noGrad(() => vk.tidy(() => {
    for (const dtype of ['bf16', 'f32'] as const)
      for (const [M, K, N] of [[1, 96, 160], [5, 64, 72], [8, 576, 1536], [12, 40, 24], [37, 300, 200]] as const) {
        const x = rand([M, K]), wg = rand([N, K], nat, dtype, 0.3), wu = rand([N, K], nat, dtype, 0.3);
        const want = vk.mul(vk.silu(vk.linear(x, wg)), vk.linear(x, wu));
        same(`swiglu ${dtype} M=${M}`, vk.swiglu(x, wg, wu), want);
        const r = vk.mul(vk.silu(vk.linear(onRef(x), onRef(wg))), vk.linear(onRef(x), onRef(wu)));
        assertClose(`swiglu ${dtype} M=${M} vs reference`, vk.swiglu(x, wg, wu).toArray(), r.toArray(), 1e-5);
      }
  }));
});

test('addRmsNorm equals add then rmsNorm', () => {
  vk.noGrad(() => vk.tidy(() => {
    for (const shape of [[1, 1, 576], [2, 7, 64], [3, 33]]) {
      const x = rand(shape), r = rand(shape), w = rand([shape[shape.length - 1]]);
      const { sum, y } = vk.addRmsNorm(x, r, w, 1e-5);
      const s2 = vk.add(x, r);
      same(`addRmsNorm sum ${shape}`, sum, s2);
      same(`addRmsNorm y ${shape}`, y, vk.rmsNorm(s2, w, 1e-5));
      const yr = vk.addRmsNorm(onRef(x), onRef(r), onRef(w), 1e-5).y;
      assertClose(`addRmsNorm vs reference ${shape}`, y.toArray(), yr.toArray(), 1e-5);
    }
  }));
});

test('ropeAppendKV rotates q and appends rotated k and v to the caches', () => {
  vk.noGrad(() => vk.tidy(() => {
    const [B, T, Hq, Hkv, D, L, at] = [2, 3, 4, 2, 16, 10, 5];
    const inv = vk.ropeInvFreq(D, 10000, { backend: nat });
    const proj = rand([B, T, (Hq + 2 * Hkv) * D]);
    const heads = (from: number, h: number) => vk.permute(vk.reshape(vk.slice(proj, 2, from * D, (from + h) * D), [B, T, h, D]), [0, 2, 1, 3]);
    const q = heads(0, Hq), k = heads(Hq, Hkv), v = heads(Hq + Hkv, Hkv);
    const pos = vk.tensor(Array.from({ length: B * T }, (_, i) => 7 + i), [B, T], { dtype: 'i32', backend: nat });
    const kc = rand([B, Hkv, L, D]), vc = rand([B, Hkv, L, D]);
    const kc2 = vk.contiguous(kc), vc2 = vk.contiguous(vc);
    const qr = vk.ropeAppendKV(q, k, v, pos, inv, kc, vc, at);
    same('ropeAppendKV q', qr, vk.rope(q, pos, inv));
    // the unfused composition on copies of the caches
    nat.copyInto(vk.slice(kc2, 2, at, at + T), vk.rope(k, pos, inv));
    nat.copyInto(vk.slice(vc2, 2, at, at + T), v);
    same('ropeAppendKV k cache', kc, kc2);
    same('ropeAppendKV v cache', vc, vc2);
    // the reference backend composes rope + copyInto
    const kr = onRef(kc2), vr = onRef(vc2);
    const kRef = rand([B, Hkv, L, D], ref), vRef = rand([B, Hkv, L, D], ref);
    const qRef = vk.ropeAppendKV(onRef(vk.contiguous(q)), onRef(vk.contiguous(k)), onRef(vk.contiguous(v)), onRef(pos), onRef(inv), kRef, vRef, at);
    assertClose('ropeAppendKV q vs reference', qr.toArray(), qRef.toArray(), 1e-6);
    assertClose('ropeAppendKV k vs reference', vk.slice(kc, 2, at, at + T).toArray(), vk.slice(kr, 2, at, at + T).toArray(), 1e-6);
    assertClose('ropeAppendKV v vs reference', vk.slice(vRef, 2, at, at + T).toArray(), vk.slice(vr, 2, at, at + T).toArray(), 0);
    assert.throws(() => vk.ropeAppendKV(q, k, v, pos, inv, kc, vc, L - 1), /do not fit/);
  }));
});

test('under autograd the fused ops record the composition and its gradients', () => {
  vk.tidy(() => {
    const x = rand([2, 8]), wg = rand([6, 8]), wu = rand([6, 8]), w = rand([8]);
    x.requiresGrad = true;
    const [a, b] = vk.linears(x, [wg, wu]);
    const s = vk.swiglu(x, wg, wu);
    const { y } = vk.addRmsNorm(x, x, w, 1e-5);
    assert.ok(a.requiresGrad && b.requiresGrad && s.requiresGrad && y.requiresGrad);
    vk.backward(vk.add(vk.add(vk.sum(s), vk.sum(a)), vk.sum(y)));
    assert.ok(x.grad, 'x got a gradient');
    // the same gradient through the plain ops
    const x2 = vk.tensor(x.toArray(), x.shape, { backend: nat });
    x2.requiresGrad = true;
    const s2 = vk.mul(vk.silu(vk.linear(x2, wg)), vk.linear(x2, wu));
    vk.backward(vk.add(vk.add(vk.sum(s2), vk.sum(vk.linear(x2, wg))), vk.sum(vk.rmsNorm(vk.add(x2, x2), w, 1e-5))));
    same('gradient through the fused ops', x.grad!, x2.grad!);
  });
});
