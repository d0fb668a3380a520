// The fused LoRA linear: forward against the reference backend, gradients against finite differences, and the
// same numbers, bit for bit, as the composition it replaces (linear + linear + linear + mul + add), on f32, bf16
// and block-quantized base weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { checkForward, checkGrad, nat } from './harness.js';

const lora = (scale: number) => (x: vk.Tensor, w: vk.Tensor, bias: vk.Tensor, a: vk.Tensor, b: vk.Tensor) =>
  vk.loraLinear(x, w, bias, a, b, scale);
const specs = (frozenBias: boolean) => [
  { shape: [2, 3, 16] }, { shape: [5, 16], grad: false }, { shape: [5], grad: !frozenBias }, { shape: [4, 16] }, { shape: [5, 4] },
];

test('loraLinear: forward equals the reference backend', () => {
  checkForward('loraLinear', lora(2), specs(false));
  checkForward('loraLinear scale 1', lora(1), specs(true));
});

test('loraLinear: gradients of x, A, B and the bias equal finite differences', () => {
  checkGrad('loraLinear', lora(2), specs(false));
  checkGrad('loraLinear scale 1, frozen bias', lora(1), specs(true));
});

/** The op and the unfused composition on the same inputs: output and every gradient. */
function both(w: vk.Tensor | vk.QuantizedWeight, withBias: boolean, scale: number) {
  const run = (fused: boolean) =>
    vk.tidy(() => {
      const x = vk.randn([3, 7, 64], { backend: nat, seed: 1, requiresGrad: true });
      const a = vk.randn([8, 64], { backend: nat, seed: 2, std: 0.1, requiresGrad: true });
      const b = vk.randn([32, 8], { backend: nat, seed: 3, std: 0.1, requiresGrad: true });
      const bias = withBias ? vk.randn([32], { backend: nat, seed: 4, requiresGrad: true }) : null;
      const y = fused
        ? vk.loraLinear(x, w, bias, a, b, scale)
        : vk.add(vk.linear(x, w, bias ?? undefined), scale === 1 ? vk.linear(vk.linear(x, a), b) : vk.mul(vk.linear(vk.linear(x, a), b), scale));
      vk.backward(vk.sum(vk.mul(y, vk.randn(y.shape, { backend: nat, seed: 5 }))));
      const leaves = [x, a, b, ...(bias ? [bias] : [])];
      return { y: y.toArray(), g: leaves.map((t) => t.grad!.toArray()) };
    });
  return { fused: run(true), plain: run(false) };
}

test('loraLinear gives the numbers of the unfused composition, bit for bit', () => {
  const w32 = vk.randn([32, 64], { backend: nat, seed: 9, std: 0.1 });
  const cases: [string, vk.Tensor | vk.QuantizedWeight][] = [
    ['f32', w32], ['bf16', vk.cast(w32, 'bf16')], ['nf4', vk.QuantizedWeight.quantize(w32, 'nf4')], ['q8_0', vk.QuantizedWeight.quantize(w32, 'q8_0')],
  ];
  for (const [name, w] of cases)
    for (const [withBias, scale] of [[true, 2], [false, 1]] as const) {
      const { fused, plain } = both(w, withBias, scale);
      assert.ok(fused.y.every(Number.isFinite));
      assert.deepEqual(fused.y, plain.y, `${name}: output`);
      fused.g.forEach((g, i) => assert.deepEqual(g, plain.g[i], `${name}, bias ${withBias}, scale ${scale}: gradient ${i}`));
    }
});

test('loraLinear refuses a trained base weight and shapes that do not fit', () => {
  const x = vk.randn([2, 8], { backend: nat, seed: 1 });
  const a = vk.randn([2, 8], { backend: nat, seed: 2 }), b = vk.randn([4, 2], { backend: nat, seed: 3 });
  const w = vk.randn([4, 8], { backend: nat, seed: 4, requiresGrad: true });
  assert.throws(() => vk.loraLinear(x, w, null, a, b, 1), /must be frozen/);
  assert.throws(() => vk.loraLinear(x, vk.randn([4, 8], { backend: nat }), null, a, vk.randn([4, 3], { backend: nat }), 1), /do not fit/);
});
