// `vlmkit train contrastive` (src/train/contrastive-run.ts) on the shared trainer:
//   - a short from-scratch run of a tiny CLIP on a few hundred generated one-object scenes lowers the loss and
//     classifies held-out scenes over all 48 colour x shape labels well above chance (measured through the
//     library's classify on the saved model folder, not by the trainer);
//   - LoRA on the tiny CLIP fixture saves a PEFT adapter (adapter_config.json + adapter_model.safetensors) that
//     loads back onto the model; full training saves a model folder that loadContrastive reads, its weights moved;
//   - bad input: a tokenizer that does not belong to the model, bad rows, an unknown loss: one-line errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/engine/backend/native/index.js';
import { loadContrastive } from '../../src/contrastive-api.js';
import { writeDataset } from '../../src/data/dataset.js';
import { objectLabels, objectsGenerator } from '../../src/data/objects.js';
import { VlmkitError } from '../../src/errors.js';
import { loadContrastiveModel } from '../../src/models/index.js';
import { runContrastive } from '../../src/train/contrastive-run.js';
import { loadAdapter } from '../../src/train/peft.js';
import { ROOT, vlmkit } from '../e2e/spawn-cli.js';

const FIX = join(ROOT, 'test', 'fixtures');
const OBJECTS = join(FIX, 'tiny-clip-objects');
const TINY_CLIP = join(FIX, 'reference', 'tiny-clip');
const IMAGES = join(FIX, 'reference', 'images');

describe('train contrastive', () => {
  let tmp = '';
  let data = '';
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'vlmkit-contrastive-'));
    data = join(tmp, 'objects');
    writeDataset(objectsGenerator, data, { n: 420, seed: 3, size: 32, questions: 1, split: [320 / 420, 0, 100 / 420] });
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('a short run from scratch lowers the loss and classifies held-out scenes above chance', async () => {
    const t0 = performance.now();
    const out = join(tmp, 'scratch');
    const r = await runContrastive({
      init: 'random', modelConfig: join(OBJECTS, 'config.json'), tokenizer: OBJECTS, data: join(data, 'train.jsonl'), out,
      batchSize: 32, maxSteps: 60, lr: 2e-3, warmupSteps: 5, schedule: 'constant', seed: 1,
    });
    assert.equal(r.steps, 60);
    assert.equal(r.output, join(out, 'model'));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(r.losses.slice(0, 5)), last = mean(r.losses.slice(-5));
    assert.ok(Number.isFinite(first) && Number.isFinite(last) && last < first - 0.5, `loss went from ${first} to ${last}`);
    // zero-shot on the test split, through the saved folder as a user loads it
    const rows = readFileSync(join(data, 'test.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; text: string });
    assert.equal(rows.length, 100);
    const clip = loadContrastive(r.output!);
    let right = 0;
    try {
      const res = await clip.classify(rows.map((x) => join(data, x.image)), objectLabels());
      res.forEach((x, i) => { if (x.scores[0]!.label === rows[i]!.text) right++; });
    } finally {
      clip.dispose();
    }
    const chance = 1 / objectLabels().length;
    assert.ok(right / rows.length >= 4 * chance, `held-out accuracy ${right}/${rows.length}, chance ${chance.toFixed(3)}`);
    const seconds = (performance.now() - t0) / 1e3;
    assert.ok(seconds < 60, `the short run took ${seconds.toFixed(1)} s`);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.type === 'train' && typeof l.batch_accuracy === 'number'), 'metrics.jsonl has the in-batch accuracy');
  });

  it('LoRA saves a PEFT adapter (every encoder linear of both towers) that loads back onto the model', async () => {
    const rows = join(tmp, 'fixture-rows.jsonl');
    writeFileSync(rows, ['square_64x64.png', 'wide_90x150.png', 'tall_200x70.png', 'square_64x64.png'].map((f, i) =>
      JSON.stringify({ image: join(IMAGES, f), text: ['red circle', 'blue square', 'three stars', 'a green hexagon'][i] })).join('\n') + '\n');
    const out = join(tmp, 'lora');
    const r = await runContrastive({ model: TINY_CLIP, data: rows, out, batchSize: 4, maxSteps: 3, lr: 1e-2, lora: { r: 4, loraAlpha: 8 } });
    assert.equal(r.output, out);
    assert.ok(r.losses.every(Number.isFinite));
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { target_modules: string[]; r: number };
    assert.equal(cfg.r, 4);
    assert.ok(cfg.target_modules.includes('q_proj') && cfg.target_modules.includes('fc2'), JSON.stringify(cfg.target_modules));
    assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
    const { model } = loadContrastiveModel(TINY_CLIP);
    try {
      const lora = loadAdapter(model, out);
      // every encoder layer's q/k/v/out/fc1/fc2 in both towers (2 + 2 layers)
      assert.equal(lora.targets.length, 24);
      assert.ok(lora.targets.some((t) => t.startsWith('vision_model.')) && lora.targets.some((t) => t.startsWith('text_model.')));
    } finally {
      model.dispose();
    }
  });

  it('full training (SigLIP loss on CLIP) saves a model folder that loadContrastive reads, weights moved', async () => {
    const rows = join(tmp, 'fixture-rows.jsonl');
    const out = join(tmp, 'full');
    const r = await runContrastive({ model: TINY_CLIP, data: rows, out, mode: 'full', loss: 'siglip', batchSize: 4, maxSteps: 2, lr: 1e-2 });
    assert.equal(r.output, join(out, 'model'));
    const a = loadContrastiveModel(TINY_CLIP), b = loadContrastiveModel(r.output!);
    try {
      const wa = a.model.parameters().get('visual_projection.weight')!.toFloat32Array();
      const wb = b.model.parameters().get('visual_projection.weight')!.toFloat32Array();
      assert.equal(wa.length, wb.length);
      assert.ok(wa.some((v, i) => v !== wb[i]), 'the saved weights moved');
      assert.ok(wb.every(Number.isFinite));
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
  });

  it('an interrupted full run resumes to the same weights as an uninterrupted one', async () => {
    const rows = join(tmp, 'fixture-rows.jsonl');
    const o = { model: TINY_CLIP, data: rows, mode: 'full' as const, batchSize: 2, maxSteps: 4, lr: 1e-2, seed: 5 };
    const whole = await runContrastive({ ...o, out: join(tmp, 'whole') });
    const stop = { requested: false };
    const part = await runContrastive({ ...o, out: join(tmp, 'parts') }, { stop, onStep: (t) => { if (t.position.step === 2) stop.requested = true; } });
    assert.equal(part.interrupted, true);
    assert.equal(part.steps, 2);
    const rest = await runContrastive({ ...o, out: join(tmp, 'parts'), resume: true });
    assert.equal(rest.steps, 4);
    assert.deepEqual(rest.losses, whole.losses.slice(2));
    const a = loadContrastiveModel(whole.output!), b = loadContrastiveModel(rest.output!);
    try {
      for (const [n, t] of a.model.parameters()) assert.deepEqual(b.model.parameters().get(n)!.toFloat32Array(), t.toFloat32Array(), n);
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
    // another loss is another run: the checkpoint refuses it
    await assert.rejects(runContrastive({ ...o, out: join(tmp, 'parts'), resume: true, loss: 'siglip' }), (e: unknown) => e instanceof VlmkitError && /resume/i.test(e.message));
  });

  it('a tokenizer that does not belong to the model is a one-line error (CLI exit 1)', async () => {
    // the tiny CLIP fixture's 440-id BPE with a 26-word model
    const r = await vlmkit(['train', 'contrastive', '--init', 'random', '--model-config', join(OBJECTS, 'config.json'), '--tokenizer', TINY_CLIP,
      '--data', join(data, 'train.jsonl'), '--out', join(tmp, 'mismatch')]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /tokenizer\.json has \d+ token ids but the clip model's text_config\.vocab_size is 26: the tokenizer does not belong to this model/);
  });

  it('bad rows and options are one-line errors naming the input', async () => {
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, JSON.stringify({ image: 'nowhere.png', text: 'a red circle' }) + '\n');
    await assert.rejects(runContrastive({ init: 'random', modelConfig: join(OBJECTS, 'config.json'), tokenizer: OBJECTS, data: bad, out: join(tmp, 'bad') }),
      (e: unknown) => e instanceof VlmkitError && /bad\.jsonl:1: image "nowhere\.png" does not exist/.test(e.message));
    writeFileSync(bad, JSON.stringify({ image: join(IMAGES, 'square_64x64.png') }) + '\n');
    await assert.rejects(runContrastive({ init: 'random', modelConfig: join(OBJECTS, 'config.json'), tokenizer: OBJECTS, data: bad, out: join(tmp, 'bad') }),
      (e: unknown) => e instanceof VlmkitError && /"text" must be a non-empty caption/.test(e.message));
    const r = await vlmkit(['train', 'contrastive', '--model', TINY_CLIP, '--data', bad, '--out', join(tmp, 'x'), '--loss', 'triplet']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--loss takes clip or siglip, got "triplet"/);
  });
});
