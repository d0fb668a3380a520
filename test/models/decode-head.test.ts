// A quantized model's decode copy of the lm_head (Idefics3Model, docs/quantization.md): a Q8_0 copy of the
// (tied) lm_head, read by inference over up to 8 rows (decode, the last prompt position); prompts, training and
// scoring read the 16/32-bit weight. Never written to a quantized folder; released with the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/engine/backend/native/index.js';
import * as vk from '../../src/engine/index.js';
import { loadModel } from '../../src/models/idefics3/model.js';
import { quantizeCheckpoint } from '../../src/models/index.js';

const TINY = join(import.meta.dirname, '../fixtures/reference/tiny-idefics3');

test('a quantized model holds a Q8_0 copy of the lm_head, read by few-row inference only', () => {
  const model = loadModel(TINY, { quant: 'q4_0' });
  try {
    const copy = model.text.decodeHead, head = model.text.w.lmHead;
    assert.ok(copy, 'a q4_0 model has a decode copy of the lm_head');
    assert.equal(copy.format, 'q8_0');
    assert.deepEqual(copy.shape, head.shape);
    assert.ok(head instanceof vk.Tensor, 'a q4_0 model keeps its 16/32-bit lm_head');
    const again = vk.quantize(head, 'q8_0');
    assert.ok(Buffer.from(copy.bytes).equals(Buffer.from(again.bytes)), 'the copy is the lm_head quantized to Q8_0');
    again.dispose();
    assert.ok(![...model.quantizedWeights().values()].includes(copy), 'the copy is not one of the checkpoint\'s weights');
    // which weight each product reads
    assert.equal(vk.noGrad(() => model.text.head(1)), copy);
    assert.equal(vk.noGrad(() => model.text.head(8)), copy);
    assert.equal(vk.noGrad(() => model.text.head(9)), head, 'more than 8 rows: the lm_head');
    assert.equal(model.text.head(1), head, 'a recorded graph (training): the lm_head');
    assert.equal(vk.noGrad(() => vk.withExactActivations(() => model.text.head(1))), head);
    // the last-position logits of inference are the copy's product, all 12 positions' the lm_head's
    vk.noGrad(() => vk.tidy(() => {
      const H = head.shape[1];
      const hidden = vk.mul(vk.randn([1, 12, H], { rng: new vk.Rng(2) }), 0.5);
      const last = model.text.logits(hidden, 'last').toFloat32Array();
      const want = vk.linear(vk.slice(hidden, 1, 11, 12), copy).toFloat32Array();
      assert.deepEqual([...last], [...want]);
      const all = model.text.logits(hidden, 'all').toFloat32Array();
      const wantAll = vk.linear(hidden, head).toFloat32Array();
      assert.deepEqual([...all], [...wantAll]);
    }));
  } finally {
    model.dispose();
  }
  assert.equal(model.text.decodeHead, null, 'dispose releases the copy');
});

test('a 16/32-bit model has no decode copy; a quantized folder makes it at load without storing it', () => {
  const plain = loadModel(TINY);
  try {
    assert.equal(plain.text.decodeHead, null);
  } finally {
    plain.dispose();
  }
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-head-'));
  try {
    quantizeCheckpoint(TINY, join(tmp, 'q'), 'q8_0');
    const m = loadModel(join(tmp, 'q'));
    try {
      assert.equal(m.text.decodeHead?.format, 'q8_0');
      assert.ok(![...m.quantizedWeights().keys()].some((k) => k.includes('lm_head')), 'no lm_head among the stored weights');
    } finally {
      m.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('the decode copy is made on the first few-row inference, never by training, prompts or scoring', () => {
  const model = loadModel(TINY, { quant: 'q4_0' });
  try {
    const before = vk.storageStats().bytes;
    assert.equal(model.text.head(1), model.text.w.lmHead, 'with grad on (training) the lm_head itself');
    assert.equal(vk.noGrad(() => model.text.head(9)), model.text.w.lmHead, 'a prompt: the lm_head itself');
    assert.equal(vk.storageStats().bytes, before, 'no copy made yet');
    const copy = vk.noGrad(() => model.text.head(1));
    assert.ok(copy instanceof vk.QuantizedWeight && copy.format === 'q8_0');
    assert.equal(vk.storageStats().bytes - before, copy.bytes.length, 'made once, on first use');
    assert.equal(vk.noGrad(() => model.text.head(1)), copy);
  } finally {
    model.dispose();
  }
  assert.equal(model.text.decodeHead, null);
});
