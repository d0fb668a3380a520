// CLIP and SigLIP (transformers' CLIPModel / SiglipModel) against the reference fixtures: image_embeds,
// text_embeds and logits_per_image of clip_logits / siglip_logits from the cases' own input tensors, the pieces that
// make them (CLIP's EOS pooling, SigLIP's padding), the image processors, and the loaders' errors.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, fromRaw, noGrad, tensor } from '../../src/engine/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { VlmkitError } from '../../src/errors.js';
import { loadImage } from '../../src/processing/decode.js';
import { loadContrastiveModel, readModelConfig } from '../../src/models/index.js';
import { eosPositions } from '../../src/models/clip/model.js';
import { centerCrop, contrastivePixelValues, shortestEdgeSize } from '../../src/models/contrastive.js';
import { clipImageDefaults } from '../../src/models/clip/model.js';
import { siglipImageDefaults } from '../../src/models/siglip/contrastive.js';
import { relErr } from '../../src/parity/compare.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const CASES = join(REF, 'cases');
const TOL = 1e-4;

function readCase(name: string): Record<string, Tensor> {
  const f = SafetensorsFile.open(join(CASES, name + '.safetensors'));
  try {
    const out: Record<string, Tensor> = {};
    for (const n of f.names()) out[n] = fromRaw(f.read(n), { dtype: f.info(n).dtype === 'I64' ? 'i32' : 'f32' });
    return out;
  } finally {
    f.close();
  }
}

/** relErr that must be a finite number within tol. */
function assertClose(ours: Tensor, ref: Tensor, what: string): number {
  assert.deepEqual(ours.shape, ref.shape, `${what} shape`);
  const e = relErr(ours.toFloat32Array(), ref.toFloat32Array());
  assert.ok(Number.isFinite(e) && e <= TOL, `${what}: relative error ${e} > ${TOL}`);
  return e;
}

for (const [name, dir] of [['clip_logits', 'tiny-clip'], ['siglip_logits', 'tiny-siglip']] as const) {
  describe(`${name}: the model on the case's own tensors`, () => {
    const c = readCase(name);
    const { model, processor } = loadContrastiveModel(join(REF, dir), { dtype: 'f32' });
    after(() => {
      model.dispose();
      for (const t of Object.values(c)) t.dispose();
    });

    it('image_embeds, text_embeds and logits_per_image match the reference', () => {
      noGrad(() => {
        const img = model.imageEmbeds(c.pixel_values!);
        const txt = model.textEmbeds(c.input_ids!, c.attention_mask!);
        const logits = model.logitsPerImage(img, txt);
        assertClose(img, c.image_embeds!, 'image_embeds');
        assertClose(txt, c.text_embeds!, 'text_embeds');
        assertClose(logits, c.logits_per_image!, 'logits_per_image');
        for (const t of [img, txt, logits]) t.dispose();
      });
    });

    it('the processor tokenizes the case texts to its input_ids (CLIP: padded to the longest)', () => {
      const texts = JSON.parse(readFileSync(join(CASES, name + '.json'), 'utf8')).texts as string[];
      const enc = processor.encodeTexts(texts);
      const T = model.family === 'clip' ? 5 : processor.text.maxLength;
      const refIds = Array.from(c.input_ids!.toArray()), refMask = Array.from(c.attention_mask!.toArray());
      // the reference padded to the longest text; SigLIP pads to max_length: the first 5 columns are the case's
      assert.equal(enc.ids[0]!.length, T);
      assert.deepEqual(enc.ids.flatMap((r) => r.slice(0, 5)), refIds);
      assert.deepEqual(enc.mask.flatMap((r) => r.slice(0, 5)), refMask);
    });
  });
}

describe('CLIP pooling', () => {
  it('pools at the first eos_token_id, at position 0 when a text has none (torch argmax of zeros)', () => {
    assert.deepEqual(eosPositions([5, 3, 3, 0, 7, 8, 9, 3], 2, 4, 3), [1, 3]);
    assert.deepEqual(eosPositions([5, 6, 7, 8], 1, 4, 3), [0]);
  });
  it('the legacy rule (eos_token_id 2) pools at the largest id, its first occurrence', () => {
    assert.deepEqual(eosPositions([5, 9, 9, 1, 4, 2, 2, 2], 2, 4, 2), [1, 0]);
  });
  it('an EOS at the end of a padded text changes the pooled embedding (the golden case pools at position 0)', () => {
    const { model } = loadContrastiveModel(join(REF, 'tiny-clip'), { dtype: 'f32' });
    try {
      noGrad(() => {
        const a = model.textEmbeds(tensor([108, 408, 422, 3], [1, 4], { dtype: 'i32' }));
        const b = model.textEmbeds(tensor([108, 400, 401, 3], [1, 4], { dtype: 'i32' }));
        const c = model.textEmbeds(tensor([108, 408, 422, 2], [1, 4], { dtype: 'i32' }));
        const d = model.textEmbeds(tensor([108, 400, 401, 2], [1, 4], { dtype: 'i32' }));
        // pooled at the EOS (position 3, causal: sees everything): different texts differ
        assert.ok(relErr(a.toFloat32Array(), b.toFloat32Array()) > 1e-3);
        // without an EOS both pool position 0, the same token "a": equal
        assert.ok(relErr(c.toFloat32Array(), d.toFloat32Array()) < 1e-6);
        for (const t of [a, b, c, d]) t.dispose();
      });
    } finally {
      model.dispose();
    }
  });
});

describe('image processors', () => {
  it('SigLIP: a bicubic resize to the tower side and 0.5 mean/std give the cases\' pixel_values (refgen: PIL resize((32, 32)), x / 127.5 - 1)', async () => {
    const c = readCase('siglip_logits');
    const images = [await loadImage(join(REF, 'images', 'square_64x64.png')), await loadImage(join(REF, 'images', 'wide_90x150.png'))];
    const pv = contrastivePixelValues(images, siglipImageDefaults(32), 32);
    const ref = c.pixel_values!.toFloat32Array();
    assert.deepEqual(pv.shape, c.pixel_values!.shape);
    let max = 0;
    for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(pv.data[i]! - ref[i]!));
    assert.ok(Number.isFinite(max) && max <= 1e-5, `max |diff| ${max}`);
    for (const t of Object.values(c)) t.dispose();
  });

  it('CLIP: on a square image the shortest-edge resize and crop are that same resize; OpenAI mean/std on top', async () => {
    const c = readCase('clip_logits');
    const img = await loadImage(join(REF, 'images', 'square_64x64.png'));
    const cfg = clipImageDefaults(32);
    const pv = contrastivePixelValues([img], cfg, 32);
    const ref = c.pixel_values!.toFloat32Array().subarray(0, 3 * 32 * 32);
    let max = 0;
    for (let ch = 0; ch < 3; ch++)
      for (let p = 0; p < 1024; p++) {
        const u8 = Math.round((ref[ch * 1024 + p]! + 1) * 127.5);
        const want = Math.fround(Math.fround(Math.fround(u8 / 255) - Math.fround(cfg.imageMean[ch]!)) / Math.fround(cfg.imageStd[ch]!));
        max = Math.max(max, Math.abs(pv.data[ch * 1024 + p]! - want));
      }
    assert.ok(Number.isFinite(max) && max <= 1e-5, `max |diff| ${max}`);
    for (const t of Object.values(c)) t.dispose();
  });

  it('CLIP: shortest edge keeps the aspect (int of the long side), the center crop starts at floor((size - crop) / 2)', () => {
    assert.deepEqual(shortestEdgeSize(90, 150, 32), [32, 53]);
    assert.deepEqual(shortestEdgeSize(200, 70, 32), [91, 32]);
    const img = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => i) };
    const c = centerCrop(img, 3, 2);
    // left = floor((5 - 2) / 2) = 1
    assert.deepEqual(Array.from(c.data.subarray(0, 6)), [3, 4, 5, 6, 7, 8]);
    // a crop larger than the image pads with zeros around it
    const big = centerCrop(img, 5, 5);
    assert.equal(big.data[0], 0);
    assert.deepEqual(Array.from(big.data.subarray(15, 18)), [0, 1, 2]);
  });
});

describe('loader errors', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-contrastive-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('a tokenizer bigger than the text vocabulary is refused, naming the file', () => {
    const d = join(tmp, 'small-vocab');
    cpSync(join(REF, 'tiny-clip'), d, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    cfg.text_config.vocab_size = 64;
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadContrastiveModel(d), (e: unknown) => e instanceof VlmkitError && /tokenizer\.json has \d+ token ids .*vocab_size is 64.*does not belong/.test(e.message));
  });

  it('a CLIP eos_token_id the tokenizer does not have is refused', () => {
    const d = join(tmp, 'eos');
    cpSync(join(REF, 'tiny-clip'), d, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    cfg.text_config.eos_token_id = 447;
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadContrastiveModel(d), /eos_token_id 447 is not a token of .*tokenizer\.json/);
  });

  it('a VLM directory is not a contrastive model and a contrastive one is not a VLM', () => {
    assert.throws(() => loadContrastiveModel(join(REF, 'tiny-idefics3')), /not a contrastive image-text model/);
    assert.throws(() => readModelConfig(join(REF, 'tiny-clip')), /contrastive image-text model.*vlmkit classify/);
  });

  it('a tokenizer whose model_input_names leave out attention_mask gives an all-ones mask (padding attended, as transformers)', () => {
    const d = join(tmp, 'no-mask');
    cpSync(join(REF, 'tiny-siglip'), d, { recursive: true });
    const tc = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'));
    tc.model_input_names = ['input_ids'];
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(tc));
    const { model, processor } = loadContrastiveModel(d);
    model.dispose();
    const enc = processor.encodeTexts(['a red circle']);
    assert.ok(enc.mask[0]!.every((v) => v === 1));
    const { model: m2, processor: p2 } = loadContrastiveModel(join(REF, 'tiny-siglip'));
    m2.dispose();
    assert.equal(p2.encodeTexts(['a red circle']).mask[0]!.filter((v) => v === 1).length, 3);
  });

  it('an empty text list and an over-long text are clear errors', () => {
    const { model, processor } = loadContrastiveModel(join(REF, 'tiny-siglip'));
    model.dispose();
    assert.throws(() => processor.encodeTexts([]), /at least one text/);
    assert.throws(() => processor.encodeTexts(['a '.repeat(200)]), /text 1 .* tokens; the siglip text tower takes at most 64/);
  });
});
