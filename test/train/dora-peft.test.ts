// DoRA adapters on tiny-idefics3: a new one is the base model exactly; saved as PEFT writes it (use_dora true,
// base_model.model.<module>.lora_magnitude_vector [out] next to lora_A/lora_B) and reloaded to the same logits, by
// loadAdapter and by the parity tool's loader; the merge (in memory and as a checkpoint) gives the unmerged logits
// within f32 rounding; bad files are one-line errors naming the tensor; a DoRA run resumes bit for bit and a LoRA
// run does not resume as a DoRA one.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Tensor, Rng, noGrad } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { type Idefics3Model, loadModel } from '../../src/models/idefics3/index.js';
import { attachPeftAdapter } from '../../src/parity/adapter.js';
import { readCaseTensors } from '../../src/parity/train.js';
import { LoraModel } from '../../src/train/lora.js';
import { loadAdapter, readAdapterConfig, saveAdapter, saveMergedCheckpoint } from '../../src/train/peft.js';
import { runSft, type SftRunOptions } from '../../src/train/sft.js';
import { REF, TINY, writeSftData } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-dora-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const caseData = readCaseTensors(join(REF, 'cases', 'idefics3_lora_logits.safetensors'));
after(() => { for (const t of caseData.values()) t.dispose(); });
function logitsOf(m: Idefics3Model): Float32Array {
  return noGrad(() => {
    const t: Tensor = m.forward({
      inputIds: caseData.get('input_ids')!, attentionMask: caseData.get('attention_mask'),
      pixelValues: caseData.get('pixel_values'), pixelAttentionMask: caseData.get('pixel_attention_mask'),
    });
    const f = t.toFloat32Array();
    t.dispose();
    return f;
  });
}

function maxRel(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / m;
}

const CONFIG = { targetModules: 'all-linear', r: 4, loraAlpha: 8, useDora: true } as const;
const DORA_DIR = join(tmp, 'dora');

/** A DoRA adapter on `m` with random A, B and magnitude (a trained one, far from the base). */
function trainedDora(m: Idefics3Model): LoraModel {
  const lora = LoraModel.create(m, CONFIG, { seed: 2 });
  const rng = new Rng(9);
  for (const l of lora.layers().values()) {
    const b = l.adapter.b.data as Float32Array, mag = l.adapter.magnitude!.data as Float32Array;
    for (let i = 0; i < b.length; i++) b[i] = (rng.next() - 0.5) * 0.2;
    for (let i = 0; i < mag.length; i++) mag[i] = mag[i]! * (0.7 + 0.6 * rng.next());
  }
  return lora;
}

describe('DoRA adapter files (PEFT layout)', () => {
  const m = loadModel(TINY, { dtype: 'f32' });
  after(() => m.dispose());
  const base = logitsOf(m);
  let adapted: Float32Array;

  it('a new DoRA adapter on every linear gives the base model\'s logits exactly', () => {
    const lora = LoraModel.create(m, CONFIG, { seed: 1 });
    try {
      assert.equal(lora.targets.length, 27);
      assert.deepEqual(logitsOf(m), base);
    } finally {
      lora.remove();
    }
  });

  it('saves use_dora and lora_magnitude_vector [out] under PEFT\'s names and reloads to the same logits', () => {
    const lora = trainedDora(m);
    try {
      adapted = logitsOf(m);
      assert.ok(maxRel(adapted, base) > 1e-3, 'the adapter changes the logits');
      const names = [...lora.parameters().keys()];
      assert.ok(names.includes('base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_magnitude_vector.default.weight'));
      assert.equal(names.length, 27 * 3);
      saveAdapter(lora, DORA_DIR);
    } finally {
      lora.remove();
    }
    const cfg = JSON.parse(readFileSync(join(DORA_DIR, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.use_dora, true);
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(readAdapterConfig(DORA_DIR).useDora, true);
    const f = SafetensorsFile.open(join(DORA_DIR, 'adapter_model.safetensors'));
    try {
      const mags = f.names().filter((k) => k.includes('magnitude'));
      assert.equal(mags.length, 27);
      for (const k of mags) assert.match(k, /^base_model\.model\.model\.[a-z_.0-9]+\.lora_magnitude_vector$/);
      const q = f.info('base_model.model.model.text_model.layers.0.mlp.down_proj.lora_magnitude_vector');
      assert.deepEqual([q.dtype, [...q.shape]], ['F32', [m.linears().get('model.text_model.layers.0.mlp.down_proj')!.w.shape[0]]]);
    } finally {
      f.close();
    }
    const again = loadAdapter(m, DORA_DIR);
    try {
      assert.ok([...again.parameters().values()].every((t) => !t.requiresGrad));
      assert.deepEqual(logitsOf(m), adapted);
      // a frozen adapter computes its norms once: a second forward reuses them and gives the same logits
      assert.deepEqual(logitsOf(m), adapted);
    } finally {
      again.remove();
    }
    const detach = attachPeftAdapter(m, DORA_DIR);
    try {
      assert.deepEqual(logitsOf(m), adapted, 'the parity tool\'s loader reads the magnitudes too');
    } finally {
      detach();
    }
    assert.deepEqual(logitsOf(m), base, 'detached: the base again');
  });

  it('merge (in memory and as a checkpoint) gives the unmerged logits within f32 rounding; unmerge the base', () => {
    const lora = loadAdapter(m, DORA_DIR);
    try {
      lora.merge();
      const merged = logitsOf(m);
      const err = maxRel(merged, adapted);
      assert.ok(Number.isFinite(err) && err <= 1e-5, `merged vs unmerged: ${err}`);
      lora.unmerge();
      const back = maxRel(logitsOf(m), adapted);
      assert.ok(Number.isFinite(back) && back <= 1e-5, `unmerged again: ${back}`);
      const out = join(tmp, 'merged');
      saveMergedCheckpoint(m, lora, { sourceDir: TINY, outDir: out, dtype: 'F32' });
      const mm = loadModel(out, { dtype: 'f32' });
      try {
        const e2 = maxRel(logitsOf(mm), adapted);
        assert.ok(Number.isFinite(e2) && e2 <= 1e-5, `merged checkpoint: ${e2}`);
      } finally {
        mm.dispose();
      }
    } finally {
      lora.remove();
    }
    const b = maxRel(logitsOf(m), base);
    assert.ok(b <= 1e-5, `after remove: ${b}`);
  });

  /** A copy of the DoRA adapter with tensors changed / dropped and the config edited. */
  function altered(name: string, edit: { tensor?: (k: string, v: Float32Array, shape: number[]) => [Float32Array, number[]] | null; config?: (c: Record<string, unknown>) => void }): string {
    const d = join(tmp, name);
    mkdirSync(d, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(DORA_DIR, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    edit.config?.(cfg);
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(cfg));
    const f = SafetensorsFile.open(join(DORA_DIR, 'adapter_model.safetensors'));
    try {
      const entries: SafetensorsEntry[] = [];
      for (const k of f.names()) {
        const t = f.read(k);
        const r = edit.tensor ? edit.tensor(k, new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4), [...t.shape]) : [new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4), [...t.shape]] as [Float32Array, number[]];
        if (r) entries.push({ name: k, dtype: 'F32', shape: r[1], data: r[0] });
      }
      writeSafetensors(join(d, 'adapter_model.safetensors'), entries, { format: 'pt' });
    } finally {
      f.close();
    }
    return d;
  }

  it('a magnitude of the wrong length, a missing one, or one without use_dora: one-line errors naming the tensor', () => {
    const key = 'base_model.model.model.text_model.layers.1.self_attn.v_proj.lora_magnitude_vector';
    const short = altered('short', { tensor: (k, v, s) => (k === key ? [v.subarray(0, v.length - 1), [s[0]! - 1]] : [v, s]) });
    const oneLine = (re: RegExp) => (e: Error) => e instanceof VlmkitError && re.test(e.message) && !e.message.includes('\n');
    assert.throws(() => loadAdapter(m, short), oneLine(new RegExp(`"${key.replace(/\./g, '\\.')}" in adapter_model\\.safetensors has shape \\[\\d+\\] but .* output features`)));
    assert.throws(() => attachPeftAdapter(m, short), oneLine(/lora_magnitude_vector has shape/));
    const missing = altered('missing', { tensor: (k, v, s) => (k === key ? null : [v, s]) });
    assert.throws(() => loadAdapter(m, missing), oneLine(/"use_dora": true but adapter_model\.safetensors has no base_model\.model\.model\.text_model\.layers\.1\.self_attn\.v_proj\.lora_magnitude_vector/));
    const noFlag = altered('no-flag', { config: (c) => { c.use_dora = false; } });
    assert.throws(() => loadAdapter(m, noFlag), oneLine(/is a DoRA magnitude but adapter_config\.json does not say "use_dora": true/));
    assert.ok([...m.linears().values()].every((l) => !l.adapters?.length), 'nothing stays attached after the errors');
  });
});

describe('DoRA training runs', () => {
  const data = writeSftData(tmp, 5);
  const run = (out: string, dora = true): SftRunOptions => ({
    model: TINY, data: data.train, out, maxSteps: 4, batchSize: 2, lr: 1e-2, seed: 3, weightDecay: 0.01,
    lora: { r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'], useDora: dora },
  });

  it('4 steps straight == 2 steps + resume + 2 steps, bit for bit; a LoRA checkpoint does not resume as DoRA', async () => {
    const a = join(tmp, 'run-a'), b = join(tmp, 'run-b'), c = join(tmp, 'run-c');
    const ra = await runSft(run(a));
    assert.equal(ra.steps, 4);
    const stop = { requested: false };
    await runSft(run(b), { stop, onStep: (t) => { if (t.position.step === 2) stop.requested = true; } });
    const rb = await runSft({ ...run(b), resume: true });
    assert.equal(rb.steps, 4);
    assert.deepEqual(rb.losses, ra.losses.slice(2));
    assert.ok(readFileSync(join(a, 'adapter_model.safetensors')).equals(readFileSync(join(b, 'adapter_model.safetensors'))), 'adapters differ');
    assert.equal(JSON.parse(readFileSync(join(a, 'adapter_config.json'), 'utf8')).use_dora, true);
    const stop2 = { requested: false };
    await runSft(run(c, false), { stop: stop2, onStep: (t) => { if (t.position.step === 2) stop2.requested = true; } });
    await assert.rejects(runSft({ ...run(c, true), resume: true }), (e: Error) => e instanceof VlmkitError && /belongs to another run/.test(e.message) && /dora/.test(e.message));
  });
});
