// Generation on the tiny reference models against transformers' own tokens: greedy with the KV cache reproduces
// `generate` (min_new_tokens = max_new_tokens, as refgen.py ran it) and `greedy_nocache` for the single-image and
// left-padded batch cases; the library API end to end (our processor + generation) gives the same tokens;
// finished rows leave a real model's batch without changing the others.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { storageStats, tensor } from '../../src/engine/index.js';
import { generate } from '../../src/generate/generate.js';
import { noCacheLM } from '../../src/generate/no-cache.js';
import type { ModelInputs } from '../../src/generate/types.js';
import { loadModel, type Idefics3Model } from '../../src/models/idefics3/index.js';
import { ParityCase, caseSamples } from '../../src/parity/case.js';
import { loadVlm, type Vlm } from '../../src/api.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const CASES = join(REF, 'cases');
const IMAGES = join(REF, 'images');
const EOS = [3]; // generation_config.json of both tiny models

function caseInputs(c: ParityCase): ModelInputs {
  const ids = c.ints('input_ids');
  const mask = c.ints('attention_mask');
  const inputs: ModelInputs = {
    inputIds: tensor(ids.values, ids.shape, { dtype: 'i32' }),
    attentionMask: tensor(mask.values, mask.shape, { dtype: 'i32' }),
  };
  if (c.has('pixel_values')) {
    const pv = c.floats('pixel_values');
    inputs.pixelValues = tensor(pv.data, pv.shape);
    const pm = c.ints('pixel_attention_mask');
    inputs.pixelAttentionMask = tensor(pm.values, pm.shape, { dtype: 'u8' });
  }
  return inputs;
}

function dispose(i: ModelInputs): void {
  for (const t of [i.inputIds, i.attentionMask, i.pixelValues, i.pixelAttentionMask]) t?.dispose();
}

function rowsOf(v: { shape: number[]; values: number[] }): number[][] {
  const n = v.shape[1]!;
  return Array.from({ length: v.shape[0]! }, (_, b) => v.values.slice(b * n, (b + 1) * n));
}

for (const kind of ['idefics3', 'smolvlm'] as const) {
  describe(`greedy generation, tiny-${kind}`, () => {
    let model: Idefics3Model;
    before(() => {
      model = loadModel(join(REF, `tiny-${kind}`), { dtype: 'f32' });
    });
    after(() => model.dispose());

    for (const name of ['single_wide_90x150', 'single_big_300x410', 'batch_leftpad']) {
      it(`${name}: KV cache reproduces transformers' generate`, async () => {
        const c = ParityCase.open(join(CASES, `${kind}_${name}.safetensors`));
        const inputs = caseInputs(c);
        try {
          const ref = rowsOf(c.ints('generate'));
          const n = ref[0]!.length;
          const out = await generate(model, inputs, { maxNewTokens: n, minNewTokens: n, eosTokenIds: EOS });
          assert.deepEqual(out.rows.map((r) => r.tokenIds), ref);
          if (c.has('greedy_nocache')) {
            const nc = await generate(noCacheLM((x) => model.logits(x), { vocabSize: model.vocabSize, maxPositions: model.maxPositions, passPositions: false }), inputs, { maxNewTokens: n, eosTokenIds: [] });
            assert.deepEqual(nc.rows.map((r) => r.tokenIds), rowsOf(c.ints('greedy_nocache')));
          }
          assert.equal(out.timings.prefillTokens, c.ints('attention_mask').values.filter((x) => x).length);
          assert.equal(out.timings.decodeTokens, ref.length * (n - 1));
        } finally {
          dispose(inputs);
          c.close();
        }
      });
    }

    it('a row that ends early leaves the batch; the other row is unchanged', async () => {
      const c = ParityCase.open(join(CASES, `${kind}_batch_leftpad.safetensors`));
      const inputs = caseInputs(c);
      try {
        const ref = rowsOf(c.ints('generate'));
        // end row 0 at its second token, unless row 1 would also produce it
        const stop = ref[0]![1]!;
        const out = await generate(model, inputs, { maxNewTokens: 6, eosTokenIds: [stop] });
        for (let b = 0; b < 2; b++) {
          const at = ref[b]!.indexOf(stop);
          assert.deepEqual(out.rows[b]!.tokenIds, at >= 0 ? ref[b]!.slice(0, at + 1) : ref[b]!, `row ${b}`);
        }
      } finally {
        dispose(inputs);
        c.close();
      }
    });
  });
}

describe('library API (loadVlm) on tiny-idefics3', () => {
  let vlm: Vlm;
  before(async () => {
    vlm = await loadVlm(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
  });
  after(() => vlm.dispose());

  it('generate(question, [image]) gives transformers\' tokens (our processor + KV-cached greedy)', async () => {
    const c = ParityCase.open(join(CASES, 'idefics3_single_wide_90x150.safetensors'));
    try {
      const ref = c.ints('generate').values;
      const r = await vlm.generate('What is in this image?', [join(IMAGES, 'wide_90x150.png')], { maxNewTokens: 8, minNewTokens: 8 });
      assert.deepEqual(r.tokenIds, ref);
      assert.equal(r.promptTokens, c.ints('input_ids').shape[1]);
      assert.equal(r.finishReason, 'length');
      assert.equal(r.text, vlm.tokenizer.decode(r.tokenIds, { skipSpecialTokens: true }));
      assert.ok(r.timings.prefillTokensPerSec > 0 && r.timings.totalMs > 0);
    } finally {
      c.close();
    }
  });

  it('stream() pieces join to the result text', async () => {
    const s = vlm.stream('What is in this image?', [join(IMAGES, 'wide_90x150.png')], { maxNewTokens: 8, minNewTokens: 8 });
    let text = '';
    for await (const p of s) text += p;
    const r = await s.result;
    assert.equal(text, r.text);
    assert.equal(r.tokenIds.length, 8);
  });

  it('generateBatch on the batch case prompts gives both rows of transformers\' generate', async () => {
    const c = ParityCase.open(join(CASES, 'idefics3_batch_leftpad.safetensors'));
    try {
      const samples = caseSamples(c.meta)!;
      const rs = await vlm.generateBatch(
        samples.map((s) => ({ prompt: { text: s.prompt }, images: s.images.map((n) => join(IMAGES, n)) })),
        { maxNewTokens: 6, minNewTokens: 6 },
      );
      assert.deepEqual(rs.map((r) => r.tokenIds), rowsOf(c.ints('generate')));
    } finally {
      c.close();
    }
  });

  it('forward(encode(...)) gives the reference logits', async () => {
    const c = ParityCase.open(join(CASES, 'idefics3_single_tall_200x70.safetensors'));
    const enc = await vlm.encode('What is in this image?', [join(IMAGES, 'tall_200x70.png')]);
    try {
      const logits = vlm.forward(enc);
      const ref = c.floats('logits');
      assert.deepEqual([...logits.shape], ref.shape);
      const ours = logits.toFloat32Array();
      logits.dispose();
      let md = 0;
      let mr = 0;
      for (let i = 0; i < ref.data.length; i++) {
        md = Math.max(md, Math.abs(ours[i]! - ref.data[i]!));
        mr = Math.max(mr, Math.abs(ref.data[i]!));
      }
      assert.ok(md / mr <= 1e-4, `rel err ${md / mr}`);
    } finally {
      enc.dispose();
      c.close();
    }
  });

  it('releases every tensor it makes, also when a stream is abandoned', async () => {
    const before = storageStats();
    await vlm.generate('What is in this image?', [join(IMAGES, 'wide_90x150.png')], { maxNewTokens: 5 });
    await vlm.generateBatch([{ prompt: 'Hi' }, { prompt: 'Describe it.', images: [join(IMAGES, 'tall_200x70.png')] }], { maxNewTokens: 4, temperature: 0.9, seed: 1 });
    const s = vlm.stream('Describe it.', [join(IMAGES, 'tall_200x70.png')], { maxNewTokens: 50, minNewTokens: 50 });
    let n = 0;
    for await (const _ of s) if (++n === 2) break;
    await assert.rejects(s.result, /closed before/);
    assert.deepEqual(storageStats(), before);
  });

  it('a prompt longer than the context is a clear error', async () => {
    const long = 'word '.repeat(5000);
    await assert.rejects(vlm.generate(long, [], { maxNewTokens: 1 }), (e: Error) => (e as { code?: string }).code === 'E_CONTEXT' && /context/.test(e.message));
  });
});
