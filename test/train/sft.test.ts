// The SFT trainer against the reference fixture idefics3_lora_sft_step (loss, every LoRA gradient, every LoRA
// tensor after one AdamW step, the assistant-only loss after the step) and its own invariants: gradient
// accumulation equals the big batch, gradient checkpointing changes no gradient, the schedule's warmup, full and
// frozen-vision fine-tuning.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, tensor, tidy } from '../../src/engine/index.js';
import { loadModel } from '../../src/models/idefics3/model.js';
import { ParityCase } from '../../src/parity/case.js';
import { Processor } from '../../src/models/idefics3/processor.js';
import { SftDataset, loadExampleImages } from '../../src/train/data.js';
import { LoraModel, loraConfig, type LoraWeights } from '../../src/train/lora.js';
import { trainableParameters } from '../../src/train/params.js';
import { SftTrainer, microBatchLoss, type SftConfig } from '../../src/train/sft.js';
import { REF, TINY } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-sft-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ref = ParityCase.open(join(REF, 'cases', 'idefics3_lora_sft_step.safetensors'));
after(() => ref.close());
copyFileSync(join(REF, 'images', 'wide_90x150.png'), join(tmp, 'wide.png'));
copyFileSync(join(REF, 'images', 'square_64x64.png'), join(tmp, 'square.png'));
const conv = (q: string, a: string) => [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] }, { role: 'assistant', content: [{ type: 'text', text: a }] }];
const DATA = join(tmp, 'fixture.jsonl');
writeFileSync(DATA, [
  { messages: conv('What is in this image?', 'There are 3 red circles in the image.'), images: ['wide.png'] },
  { messages: conv('How many shapes?', '4.'), images: ['square.png'] },
].map((r) => JSON.stringify(r)).join('\n') + '\n');

const proc = Processor.fromDir(TINY);
const model = loadModel(TINY, { dtype: 'f32' });
after(() => model.dispose());
let ds: SftDataset;
before(async () => {
  ds = await SftDataset.load(DATA, proc);
});

const LORA = loraConfig({ r: 4, loraAlpha: 8, targetModules: ['down_proj', 'o_proj', 'k_proj', 'q_proj', 'gate_proj', 'up_proj', 'v_proj'] });

/** The fixture's adapter (before the step), trainable. */
function fixtureLora(): LoraModel {
  const w = new Map<string, LoraWeights>();
  for (const n of ref.names()) {
    const m = /^before\.base_model\.model\.(.*)\.lora_A\.default\.weight$/.exec(n);
    if (!m) continue;
    const a = ref.floats(n), b = ref.floats(n.replace('lora_A', 'lora_B'));
    w.set(m[1]!, { a: tensor(a.data, a.shape), b: tensor(b.data, b.shape) });
  }
  const lora = LoraModel.fromWeights(model, LORA, w, { trainable: true });
  trainableParameters(model, 'lora', lora);
  return lora;
}

function relDiff(got: Float32Array, want: Float32Array): number {
  let md = 0, mr = 0;
  for (let i = 0; i < want.length; i++) {
    md = Math.max(md, Math.abs(got[i]! - want[i]!));
    mr = Math.max(mr, Math.abs(want[i]!));
  }
  return md / (mr || 1);
}

const FIXTURE_STEP: Partial<SftConfig> = { lr: 1e-3, weightDecay: 0.01, clip: 0, schedule: 'constant', maxSteps: 1, batchSize: 2, seed: 0 };

describe('SFT trainer vs idefics3_lora_sft_step', () => {
  it('loss and every LoRA gradient', async () => {
    const lora = fixtureLora();
    try {
      const col = new (await import('../../src/train/collate.js')).SftCollator(proc);
      const b = col.collate(ds.examples, await loadExampleImages(proc, ds.examples));
      try {
        const loss = tidy(() => {
          const l = microBatchLoss(model, b, b.numTargets);
          const v = l.item();
          backward(l);
          return v;
        });
        const want = ref.floats('loss').data[0]!;
        assert.ok(Math.abs(loss - want) / Math.abs(want) <= 1e-4, `loss ${loss} vs ${want}`);
        for (const [n, p] of lora.parameters()) {
          assert.ok(p.grad, `${n} has no gradient`);
          const d = relDiff(p.grad!.toFloat32Array(), ref.floats(`grad.${n}`).data);
          assert.ok(d <= 1e-3, `grad ${n}: ${d}`);
        }
      } finally {
        b.dispose();
        for (const p of lora.parameters().values()) { p.grad?.dispose(); p.grad = null; }
      }
    } finally {
      lora.remove();
    }
  });

  it('one trainer step gives every after.* tensor; assistant-only loss after it matches', async () => {
    const lora = fixtureLora();
    try {
      const tr = new SftTrainer({ model, processor: proc, train: ds, params: lora.parameters(), lora, config: FIXTURE_STEP });
      const r = await tr.step();
      tr.dispose();
      assert.ok(Math.abs(r.loss - ref.floats('loss').data[0]!) <= 1e-4 * ref.floats('loss').data[0]!);
      assert.equal(r.lr, 1e-3);
      assert.equal(r.samples, 2);
      for (const [n, p] of lora.parameters()) {
        const d = relDiff(p.toFloat32Array(), ref.floats(`after.${n}`).data);
        assert.ok(d <= 1e-3, `after ${n}: ${d}`);
      }
      // evaluation in eval mode with assistant-only labels
      const ev = new SftTrainer({ model, processor: proc, train: ds, val: ds, params: lora.parameters(), lora, config: FIXTURE_STEP, assistantOnly: true });
      const e = await ev.evaluate();
      ev.dispose();
      const want = ref.floats('loss_completion_after_step').data[0]!;
      assert.ok(Math.abs(e.loss - want) / want <= 1e-4, `completion loss ${e.loss} vs ${want}`);
    } finally {
      lora.remove();
    }
  });
});

/** Trained LoRA tensors after `steps` steps of a fresh adapter with this config. */
async function trainedTensors(cfg: Partial<SftConfig>, steps = 1): Promise<{ t: Map<string, Float32Array>; losses: number[]; lrs: number[] }> {
  const lora = LoraModel.create(model, { ...LORA, initLoraWeights: 'gaussian' }, { seed: 5 });
  // non-zero B, so that every tensor gets a gradient from the first step
  for (const l of lora.layers().values()) (l.adapter.b.data as Float32Array).forEach((_, i, a) => (a[i] = 0.01 * Math.sin(i + 1)));
  const params = trainableParameters(model, 'lora', lora);
  const tr = new SftTrainer({ model, processor: proc, train: ds, params, lora, config: { seed: 1, lr: 1e-3, schedule: 'constant', maxSteps: steps, ...cfg } });
  const losses: number[] = [], lrs: number[] = [];
  try {
    while (!tr.done) {
      const r = await tr.step();
      losses.push(r.loss);
      lrs.push(r.lr);
    }
    return { t: new Map([...params].map(([n, p]) => [n, p.toFloat32Array()])), losses, lrs };
  } finally {
    tr.dispose();
    lora.remove();
  }
}

describe('SFT trainer invariants', () => {
  it('gradient accumulation over 2 micro-batches of 1 == one batch of 2', async () => {
    const big = await trainedTensors({ batchSize: 2, gradAccum: 1, clip: 1 });
    const acc = await trainedTensors({ batchSize: 1, gradAccum: 2, clip: 1 });
    assert.ok(Math.abs(big.losses[0]! - acc.losses[0]!) <= 1e-5 * big.losses[0]!);
    for (const [n, t] of big.t) assert.ok(relDiff(acc.t.get(n)!, t) <= 1e-5, n);
  });

  it('gradient checkpointing changes nothing', async () => {
    const plain = await trainedTensors({ batchSize: 2 }, 2);
    const gc = await trainedTensors({ batchSize: 2, gradientCheckpointing: true }, 2);
    // (not bit for bit: the native attention backward's dQ sum depends on thread scheduling)
    gc.losses.forEach((l, i) => assert.ok(Math.abs(l - plain.losses[i]!) <= 1e-6 * l, `loss ${i}: ${l} vs ${plain.losses[i]}`));
    for (const [n, t] of plain.t) assert.ok(relDiff(gc.t.get(n)!, t) <= 1e-6, n);
    assert.equal(model.text.gradientCheckpointing, false, 'dispose() turns it off again');
  });

  it('warmup and linear decay per optimizer step; several steps lower the loss', async () => {
    const r = await trainedTensors({ batchSize: 2, lr: 1e-2, warmupSteps: 2, schedule: 'linear' }, 6);
    assert.deepEqual(r.lrs.map((x) => Number(x.toPrecision(6))), [0, 0.005, 0.01, 0.0075, 0.005, 0.0025]);
    assert.ok(r.losses[5]! < r.losses[1]!, `losses ${r.losses}`);
  });

  it('full and frozen-vision fine-tuning train the chosen weights only', async () => {
    for (const mode of ['full', 'frozen-vision'] as const) {
      const m = loadModel(TINY, { dtype: 'f32' });
      try {
        const params = trainableParameters(m, mode);
        const before = new Map([...m.parameters()].map(([n, p]) => [n, p.toFloat32Array()]));
        const tr = new SftTrainer({ model: m, processor: proc, train: ds, params, config: { batchSize: 2, maxSteps: 1, lr: 1e-3 } });
        await tr.step();
        tr.dispose();
        for (const [n, p] of m.parameters()) {
          const changed = relDiff(p.toFloat32Array(), before.get(n)!) > 0;
          const vision = n.includes('vision_model.');
          if (mode === 'frozen-vision' && vision) assert.ok(!changed, `${n} must stay frozen`);
          if (!vision && /q_proj|lm_head|embed_tokens/.test(n)) assert.ok(changed, `${mode}: ${n} must train`);
        }
        assert.equal(tr.visionTrains, mode === 'full');
      } finally {
        m.dispose();
      }
    }
  });
});


describe('metrics', () => {
  it('progress bar with ETA on a TTY, nothing elsewhere; JSON lines to a file and a stream', async () => {
    const { ProgressBar, MetricsLogger, formatSeconds } = await import('../../src/train/metrics.js');
    let tty = '';
    const bar = new ProgressBar({ isTTY: true, write: (s: string) => (tty += s) }, 4, { width: 8 });
    await new Promise((r) => setTimeout(r, 20));
    bar.update(1, { loss: 1.23456, lr: 2e-5, tokensPerS: 123.4 });
    bar.clear();
    assert.match(tty, /^\r\[##\.{6}\] {2}1\/4 {2}loss 1\.235 {2}lr 2\.00e-5 {2}123\.4 tok\/s {2}ETA \d+s\x1b\[K\n$/);
    let plain = '';
    const quiet = new ProgressBar({ write: (s: string) => (plain += s) }, 4);
    quiet.update(1, { loss: 1 });
    quiet.clear();
    assert.equal(plain, '');
    assert.equal(formatSeconds(3725), '1h02m');
    assert.equal(formatSeconds(65), '1m05s');
    let out = '';
    const file = join(tmp, 'm.jsonl');
    const log = new MetricsLogger({ file, stdout: { write: (s: string) => (out += s) } });
    log.log({ type: 'eval', step: 1, eval_loss: NaN, eval_tokens: 0, eval_samples: 0, eval_s: 0 });
    log.close();
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(file, 'utf8'), out);
    assert.deepEqual(JSON.parse(out), { type: 'eval', step: 1, eval_loss: 'NaN', eval_tokens: 0, eval_samples: 0, eval_s: 0 });
  });
});
