// Training must be bit-for-bit reproducible (resume, seeds): every kernel's result, gradients included, must not
// depend on scheduling. (A different thread count may change the last bits: GEMMs are split by thread.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { forEachIsa, nat } from './harness.js';

function grads(): number[][] {
  return vk.tidy(() => {
    const o = { backend: nat, std: 0.3 };
    const emb = vk.randn([50, 48], { ...o, seed: 1, requiresGrad: true });
    const wq = vk.randn([48, 48], { ...o, seed: 2, requiresGrad: true });
    const wkv = vk.randn([32, 48], { ...o, seed: 3, requiresGrad: true });
    const norm = vk.randn([48], { ...o, seed: 4, requiresGrad: true });
    const ids = vk.tensor(Array.from({ length: 2 * 131 }, (_, i) => (i * 7) % 50), [2, 131], { dtype: 'i32', backend: nat });
    const x = vk.rmsNorm(vk.embedding(emb, ids), norm, 1e-5);
    const heads = (t: vk.Tensor, h: number) => vk.permute(vk.reshape(t, [2, 131, h, 16]), [0, 2, 1, 3]);
    const q = heads(vk.linear(x, wq), 3);
    const kv = vk.linear(x, wkv);
    const k = heads(vk.slice(kv, 2, 0, 16), 1), v = heads(vk.slice(kv, 2, 16, 32), 1);
    const a = vk.attention(q, k, v, { causal: true });
    const logits = vk.linear(vk.reshape(vk.permute(a, [0, 2, 1, 3]), [2 * 131, 48]), emb);
    const loss = vk.crossEntropy(logits, vk.reshape(ids, [2 * 131]));
    vk.backward(loss);
    const out = [emb, wq, wkv, norm].map((t) => t.grad!.toArray());
    return out;
  });
}

test('gradients are bit-identical across runs, on every instruction set the CPU has', () => {
  forEachIsa((isa) => {
    const a = grads(), b = grads();
    for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `[${isa}] gradient ${i} differs between two runs`);
  });
});
