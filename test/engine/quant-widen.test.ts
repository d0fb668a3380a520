// Quantizing a 16-bit weight widens it a few rows at a time (Q8_0, Q4_0) or at once without a JS number per element
// (NF4): the bytes are those of quantizing its exact f32 widening, and a bad value is still named by position.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { nat } from './harness.js';

test('a bf16 or f16 weight quantizes to the bytes of its f32 widening, across row chunks', () => {
  const w32 = vk.randn([600, 64], { backend: nat, seed: 3, std: 0.05 }); // more rows than one chunk (256)
  for (const dt of ['bf16', 'f16'] as const) {
    const half = vk.cast(w32, dt);
    const wide = vk.cast(half, 'f32');
    assert.deepEqual(Array.from(half.toFloat32Array()), wide.toArray(), `${dt} widening`);
    for (const f of ['q8_0', 'q4_0', 'nf4'] as const) {
      const got = vk.QuantizedWeight.quantize(half, f), want = vk.QuantizedWeight.quantize(wide, f);
      assert.ok(got.bytes.length > 0 && Buffer.from(got.bytes).equals(Buffer.from(want.bytes)), `${dt} -> ${f}`);
      got.dispose();
      want.dispose();
    }
  }
});

test('a non-finite value in a later row chunk is named by its position', () => {
  const v = new Float32Array(600 * 64).fill(0.01);
  v[300 * 64 + 5] = NaN;
  const half = vk.cast(vk.tensor(v, [600, 64], { backend: nat }), 'bf16');
  assert.throws(() => vk.QuantizedWeight.quantize(half, 'q8_0', 'w'), /holds NaN at \[300, 5\]/);
});
