// Gradient checkpointing gives the same gradients as the plain graph, for block inputs and for parameters used
// inside the block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { assertClose, nat } from './harness.js';

test('checkpointed blocks give the same gradients as the plain graph', () => {
  const w1 = vk.randn([48, 32], { backend: nat, seed: 1, std: 0.2, requiresGrad: true });
  const w2 = vk.randn([32, 48], { backend: nat, seed: 2, std: 0.2, requiresGrad: true });
  const x0 = vk.randn([5, 32], { backend: nat, seed: 3, requiresGrad: true });
  const block = (x: vk.Tensor) => vk.add(x, vk.linear(vk.silu(vk.linear(x, w1)), w2));
  const run = (ckpt: boolean) =>
    vk.tidy(() => {
      let h = x0;
      for (let i = 0; i < 3; i++) h = ckpt ? vk.checkpoint(block, [h]) : block(h);
      const loss = vk.mean(vk.square(h));
      vk.backward(loss);
      const g = [x0, w1, w2].map((t) => t.grad!.toArray());
      for (const t of [x0, w1, w2]) { t.grad!.dispose(); t.grad = null; }
      return { loss: loss.item(), g };
    });
  const plain = run(false), ck = run(true);
  assert.ok(Math.abs(plain.loss - ck.loss) <= 1e-6 * Math.abs(plain.loss));
  plain.g.forEach((g, i) => assertClose(`grad ${i}`, ck.g[i], g, 1e-6));
});
