// The fused MLP (fc2(act(fc1(x))) with frozen weights, the activation and fc2 a chunk of rows at a time) against the
// unfused chain linear -> activation -> linear: the output and the gradients of x and the biases, on f32, bf16 and
// block-quantized weights, one chunk and several; what it holds between the forward and the backward; its errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { storagePeak } from '../../src/engine/storage.js';
import { assertClose, nat, ref } from './harness.js';

const D = 64, I = 256, D2 = 48;
const acts: Record<vk.MlpActivation, (x: vk.Tensor) => vk.Tensor> = { gelu_tanh: vk.geluTanh, gelu: vk.gelu, silu: vk.silu, relu: vk.relu };

function run(b: vk.Backend, fused: boolean, w1: vk.Tensor | vk.QuantizedWeight, w2: vk.Tensor | vk.QuantizedWeight, act: vk.MlpActivation,
  o: { chunkBytes?: number; strided?: boolean; trainBias?: boolean } = {}) {
  return vk.tidy(() => {
    const x0 = vk.randn(o.strided ? [5, 2, 7, D] : [2, 35, D], { backend: b, seed: 1, requiresGrad: true });
    const x = o.strided ? vk.reshape(vk.permute(x0, [1, 0, 2, 3]), [2, 35, D]) : x0; // a copy made from a view
    const b1 = vk.randn([I], { backend: b, seed: 2, std: 0.1, requiresGrad: !!o.trainBias });
    const b2 = vk.randn([D2], { backend: b, seed: 3, std: 0.1, requiresGrad: !!o.trainBias });
    const y = fused ? vk.mlp(x, { w: w1, b: b1 }, act, { w: w2, b: b2 }, { chunkBytes: o.chunkBytes }) : vk.linear(acts[act](vk.linear(x, w1, b1)), w2, b2);
    vk.backward(vk.sum(vk.mul(y, vk.randn(y.shape, { backend: b, seed: 4 }))));
    const g = [x0.grad!.toArray(), ...(o.trainBias ? [b1.grad!.toArray(), b2.grad!.toArray()] : [])];
    for (const t of [x0, b1, b2]) if (t.grad) t.grad.dispose();
    return { y: y.toArray(), g };
  });
}

test('mlp equals linear -> activation -> linear: output and gradients, every weight format, chunked or not', () => {
  for (const b of [nat, ref]) {
    const w1f = vk.randn([I, D], { backend: b, seed: 7, std: 0.1 }), w2f = vk.randn([D2, I], { backend: b, seed: 8, std: 0.05 });
    const cases: [string, vk.Tensor | vk.QuantizedWeight, vk.Tensor | vk.QuantizedWeight][] = [
      ['f32', w1f, w2f], ['bf16', vk.cast(w1f, 'bf16'), vk.cast(w2f, 'bf16')],
      ...(b === nat ? [['nf4', vk.QuantizedWeight.quantize(w1f, 'nf4'), vk.QuantizedWeight.quantize(w2f, 'nf4')], ['q8_0', vk.QuantizedWeight.quantize(w1f, 'q8_0'), vk.QuantizedWeight.quantize(w2f, 'q8_0')]] as [string, vk.QuantizedWeight, vk.QuantizedWeight][] : []),
    ];
    for (const [name, w1, w2] of cases)
      for (const act of Object.keys(acts) as vk.MlpActivation[]) {
        const want = run(b, false, w1, w2, act, { trainBias: true });
        // 70 rows; chunks of 1, 9 (not a divisor) and 70 (one chunk) rows
        for (const rows of [1, 9, 70]) {
          const got = run(b, true, w1, w2, act, { chunkBytes: rows * I * 4, trainBias: true });
          const what = `${b.name} ${name} ${act}, chunks of ${rows} rows`;
          assertClose(`${what}: output`, got.y, want.y, 1e-5);
          got.g.forEach((g, i) => assertClose(`${what}: gradient ${i}`, g, want.g[i], 1e-5));
        }
        const strided = run(b, true, w1, w2, act, { chunkBytes: 9 * I * 4, strided: true });
        const plain = run(b, false, w1, w2, act, { strided: true });
        assertClose(`${b.name} ${name} ${act}: a strided x`, strided.g[0], plain.g[0], 1e-5);
      }
  }
});

test('mlp holds fc1\'s output and one chunk, not the activation and the two [rows, I] gradients', () => {
  const M = 512, Iw = 1024;
  const w1 = vk.randn([Iw, D], { backend: nat, seed: 1, std: 0.1 }), w2 = vk.randn([D, Iw], { backend: nat, seed: 2, std: 0.05 });
  const full = M * Iw * 4;
  const peakOf = (fused: boolean) => vk.tidy(() => {
    const x = vk.randn([M, D], { backend: nat, seed: 3, requiresGrad: true });
    const base = vk.storageStats().bytes;
    storagePeak(true);
    const y = fused ? vk.mlp(x, { w: w1, b: null }, 'gelu_tanh', { w: w2, b: null }, { chunkBytes: full / 8 }) : vk.linear(vk.geluTanh(vk.linear(x, w1)), w2);
    vk.backward(vk.sum(y));
    x.grad!.dispose();
    return storagePeak() - base;
  });
  const fused = peakOf(true), plain = peakOf(false);
  assert.ok(plain >= 3 * full, `the unfused chain peaks at ${plain} bytes (>= 3 x ${full})`);
  assert.ok(fused <= full + full / 2, `the fused MLP peaks at ${fused} bytes (fc1's output is ${full})`);
});

test('mlp refuses trained weights and shapes that do not fit', () => {
  const x = vk.randn([4, D], { backend: nat, seed: 1 });
  const w1 = vk.randn([I, D], { backend: nat, seed: 2 }), w2 = vk.randn([D2, I], { backend: nat, seed: 3 });
  const wt = vk.randn([I, D], { backend: nat, seed: 2, requiresGrad: true });
  assert.throws(() => vk.mlp(x, { w: wt, b: null }, 'gelu', { w: w2, b: null }), /requires grad/);
  assert.throws(() => vk.mlp(x, { w: w2, b: null }, 'gelu', { w: w2, b: null }), /fc1 weight/);
  assert.throws(() => vk.mlp(x, { w: w1, b: null }, 'gelu', { w: w1, b: null }), /fc2 weight/);
  assert.throws(() => vk.mlp(x, { w: w1, b: vk.zeros([3], { backend: nat }) }, 'gelu', { w: w2, b: null }), /bias/);
});
