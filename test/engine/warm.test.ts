// Idle-time cache warming (warmCaches): a hint that never changes results; queued memory is forgotten before the
// addon frees it, so warming a tensor and then freeing it (disposed, cache emptied) is safe; tensors the addon
// did not allocate and tensors of the reference backend are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { nat, ref } from './harness.js';

test('warmCaches: results unchanged, freed memory forgotten, foreign buffers skipped', async () => {
  const x = vk.randn([8, 512], { backend: nat, seed: 1 }), w = vk.cast(vk.randn([1024, 512], { backend: nat, seed: 2 }), 'bf16');
  const plain = vk.linear(x, w).toFloat32Array();
  for (let i = 0; i < 20; i++) {
    const big = vk.randn([1 << 20], { backend: nat, seed: i }); // 4 MB: freed to the system by emptyCache
    vk.warmCaches([big, w, vk.tensor([1, 2, 3], [3], { backend: ref })]);
    big.dispose();
    vk.emptyCache();
    await new Promise((r) => setImmediate(r)); // let an idle worker run
  }
  const wrapped = vk.Tensor.wrap(nat, new Float32Array(1 << 18), [1 << 18], 'f32');
  vk.warmCaches([wrapped]);
  vk.warmCaches([]);
  assert.deepEqual(vk.linear(x, w).toFloat32Array(), plain);
  vk.setCacheWarming(false);
  try {
    vk.warmCaches([w]);
    assert.deepEqual(vk.linear(x, w).toFloat32Array(), plain);
  } finally {
    vk.setCacheWarming(true);
  }
  for (const t of [x, w, wrapped]) t.dispose();
});
