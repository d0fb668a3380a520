// PEFT adapter directories in and out, merged checkpoints, and the atomic safetensors writer: the fixture
// adapter loads; a saved adapter has PEFT's file layout and key names and reloads to the same logits; adapters
// that do not fit are errors naming the directory, the key and the fix; a merged checkpoint is a model directory
// that gives the logits of base + adapter; nothing half-written stays on disk.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, noGrad } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { type Idefics3Model, loadModel } from '../../src/models/idefics3/index.js';
import { readCaseTensors, tensorRelErr } from '../../src/parity/train.js';
import { LoraModel } from '../../src/train/lora.js';
import { loadAdapter, readAdapterConfig, saveAdapter, saveMergedCheckpoint } from '../../src/train/peft.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const BASE = join(REF, 'tiny-idefics3');
const LORA = join(REF, 'tiny-idefics3-lora');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-peft-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const caseData = readCaseTensors(join(REF, 'cases', 'idefics3_lora_logits.safetensors'));
after(() => { for (const t of caseData.values()) t.dispose(); });
function logitsOf(m: Idefics3Model): Tensor {
  return noGrad(() => m.forward({
    inputIds: caseData.get('input_ids')!, attentionMask: caseData.get('attention_mask'),
    pixelValues: caseData.get('pixel_values'), pixelAttentionMask: caseData.get('pixel_attention_mask'),
  }));
}

function headerOf(path: string): Record<string, unknown> {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  return JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
}

/** A copy of the fixture adapter with its config and/or tensors changed. */
function alteredAdapter(name: string, edit: { config?: (c: Record<string, unknown>) => void; rename?: (k: string) => string; drop?: (k: string) => boolean }): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(LORA, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  edit.config?.(cfg);
  writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(cfg));
  const f = SafetensorsFile.open(join(LORA, 'adapter_model.safetensors'));
  try {
    const entries: SafetensorsEntry[] = f.names().filter((k) => !edit.drop?.(k)).map((k) => {
      const t = f.read(k);
      return { name: edit.rename ? edit.rename(k) : k, dtype: 'F32', shape: t.shape, data: t.data };
    });
    writeSafetensors(join(d, 'adapter_model.safetensors'), entries, { format: 'pt' });
  } finally {
    f.close();
  }
  return d;
}

describe('loading PEFT adapters', () => {
  it('the fixture adapter: config and 20 adapted modules with scaling alpha / r = 2', () => {
    const cfg = readAdapterConfig(LORA);
    assert.equal(cfg.r, 4);
    assert.equal(cfg.loraAlpha, 8);
    assert.equal(cfg.loraDropout, 0);
    assert.equal(cfg.initLoraWeights, 'gaussian');
    assert.deepEqual([...cfg.targetModules].sort(), ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const m = loadModel(BASE, { dtype: 'f32' });
    try {
      const lora = loadAdapter(m, LORA);
      assert.equal(lora.layers().size, 20);
      for (const l of lora.layers().values()) assert.equal(l.scale, 2);
      assert.ok([...lora.parameters().values()].every((t) => !t.requiresGrad), 'loaded for inference by default');
      assert.ok(lora.parameters().has('base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.default.weight'));
      lora.remove();
    } finally {
      m.dispose();
    }
  });

  it('an adapter whose modules the model lacks names the directory, the first unmatched key and the fix', () => {
    const d = alteredAdapter('other-model', {
      config: (c) => { c.base_model_name_or_path = 'HuggingFaceTB/SmolLM2-135M'; },
      rename: (k) => k.replace('model.text_model.layers.1.', 'model.layers.1.'),
    });
    const m = loadModel(BASE, { dtype: 'f32' });
    try {
      assert.throws(() => loadAdapter(m, d), (e: Error) => {
        assert.ok(e instanceof VlmkitError);
        assert.match(e.message, new RegExp(d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        assert.match(e.message, /base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_A\.weight/);
        assert.match(e.message, /HuggingFaceTB\/SmolLM2-135M/);
        assert.match(e.message, /load the adapter on/);
        return true;
      });
      assert.ok([...m.linears().values()].every((l) => !l.adapters?.length), 'nothing stays attached after the error');
    } finally {
      m.dispose();
    }
  });

  it('wrong shapes, missing halves, unsupported features and non-adapter directories are clear errors', () => {
    const m = loadModel(BASE, { dtype: 'f32' });
    try {
      const rank = alteredAdapter('rank', { config: (c) => { c.r = 8; } });
      assert.throws(() => loadAdapter(m, rank), /rank 4 but the config gives r = 8/);
      const half = alteredAdapter('half', { drop: (k) => k.includes('layers.0.mlp.up_proj.lora_B') });
      assert.throws(() => loadAdapter(m, half), /has lora_A but no lora_B/);
      assert.throws(() => loadAdapter(m, alteredAdapter('dora', { config: (c) => { c.use_dora = true; } })), /use_dora.*has no base_model\.model\.model\.[a-z_.0-9]+\.lora_magnitude_vector/);
      assert.throws(() => loadAdapter(m, alteredAdapter('ia3', { config: (c) => { c.peft_type = 'IA3'; } })), /LoRA adapters only/);
      assert.throws(() => loadAdapter(m, alteredAdapter('mts', { config: (c) => { c.modules_to_save = ['lm_head']; } })), /modules_to_save/);
      const head = alteredAdapter('lm-head', { rename: (k) => k.replace('model.text_model.layers.1.mlp.down_proj', 'lm_head') });
      assert.throws(() => loadAdapter(m, head), /adapts lm_head, which is not a linear layer vlmkit can adapt/);
      assert.throws(() => loadAdapter(m, BASE), /not a PEFT adapter directory/);
      assert.throws(() => loadAdapter(m, join(tmp, 'absent')), /does not exist/);
      const bin = join(tmp, 'bin-only');
      mkdirSync(bin);
      copyFileSync(join(LORA, 'adapter_config.json'), join(bin, 'adapter_config.json'));
      writeFileSync(join(bin, 'adapter_model.bin'), 'not read');
      assert.throws(() => loadAdapter(m, bin), /adapter_model\.bin.*safe_serialization/);
      assert.ok([...m.linears().values()].every((l) => !l.adapters?.length));
    } finally {
      m.dispose();
    }
  });
});

describe('saving adapters', () => {
  it('PEFT layout: the same keys as PEFT wrote, {"format": "pt"}, and a config PEFT reads; reloads to the same logits', () => {
    const m = loadModel(BASE, { dtype: 'f32' });
    try {
      const lora = loadAdapter(m, LORA);
      const ref = logitsOf(m);
      const out = join(tmp, 'saved');
      saveAdapter(lora, out, { baseModelNameOrPath: 'tiny-idefics3' });
      assert.deepEqual(readdirSync(out).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
      const ours = headerOf(join(out, 'adapter_model.safetensors'));
      const theirs = headerOf(join(LORA, 'adapter_model.safetensors'));
      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
      assert.deepEqual(ours.__metadata__, { format: 'pt' });
      const f1 = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
      const f2 = SafetensorsFile.open(join(LORA, 'adapter_model.safetensors'));
      for (const k of f2.names()) assert.deepEqual(f1.read(k).data, f2.read(k).data, `${k} saved bit for bit`);
      f1.close();
      f2.close();
      const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries({ peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, use_rslora: false, fan_in_fan_out: false, bias: 'none', base_model_name_or_path: 'tiny-idefics3', task_type: null, use_dora: false, inference_mode: true, modules_to_save: null }))
        assert.deepEqual(cfg[k], v, k);
      assert.deepEqual([...(cfg.target_modules as string[])].sort(), ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
      lora.remove();
      const again = loadAdapter(m, out);
      const back = logitsOf(m);
      assert.equal(tensorRelErr(back, ref), 0, 'the saved adapter reproduces the logits exactly');
      again.remove();
      ref.dispose();
      back.dispose();
    } finally {
      m.dispose();
    }
  });

  it('a new all-linear adapter saves the resolved module list (as PEFT does) and reloads; saving into an existing dir replaces its files', () => {
    const m = loadModel(BASE, { dtype: 'f32' });
    try {
      const lora = LoraModel.create(m, { targetModules: 'all-linear', r: 2, loraAlpha: 4, initLoraWeights: false, useRslora: true, taskType: 'CAUSAL_LM' }, { seed: 11 });
      const ref = logitsOf(m);
      const out = join(tmp, 'all-linear');
      mkdirSync(out);
      writeFileSync(join(out, 'trainer_state.json'), '{}');
      saveAdapter(lora, out);
      assert.ok(existsSync(join(out, 'trainer_state.json')), 'other files of the directory stay');
      const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.ok(Array.isArray(cfg.target_modules));
      assert.equal((cfg.target_modules as string[]).length, 27);
      assert.ok((cfg.target_modules as string[]).includes('model.connector.modality_projection.proj'));
      assert.equal(cfg.use_rslora, true);
      assert.equal(cfg.task_type, 'CAUSAL_LM');
      lora.remove();
      const again = loadAdapter(m, out);
      assert.equal(again.layers().size, 27);
      for (const l of again.layers().values()) assert.equal(l.scale, 4 / Math.sqrt(2));
      const back = logitsOf(m);
      assert.equal(tensorRelErr(back, ref), 0);
      again.remove();
      ref.dispose();
      back.dispose();
    } finally {
      m.dispose();
    }
  });
});

describe('merged checkpoints', () => {
  it('a full model directory whose logits are those of base + adapter; the model in memory is unchanged', () => {
    const m = loadModel(BASE, { dtype: 'f32' });
    const out = join(tmp, 'merged');
    try {
      const w = (m.linears().get('model.text_model.layers.0.self_attn.q_proj')!.w as Tensor).toFloat32Array();
      const lora = loadAdapter(m, LORA);
      const ref = logitsOf(m);
      saveMergedCheckpoint(m, lora, { sourceDir: BASE, outDir: out });
      assert.deepEqual((m.linears().get('model.text_model.layers.0.self_attn.q_proj')!.w as Tensor).toFloat32Array(), w, 'not merged in memory');
      assert.equal(lora.merged, false);
      for (const f of ['config.json', 'tokenizer.json', 'chat_template.jinja', 'processor_config.json', 'generation_config.json'])
        assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(BASE, f)), `${f} copied`);
      assert.deepEqual(Object.keys(headerOf(join(out, 'model.safetensors'))).filter((k) => k !== '__metadata__').sort(),
        Object.keys(headerOf(join(BASE, 'model.safetensors'))).filter((k) => k !== '__metadata__').sort(), 'the model\'s own tensor names');
      const merged = loadModel(out, { dtype: 'f32' });
      const got = logitsOf(merged);
      const e = tensorRelErr(got, ref);
      console.log(`  merged checkpoint vs base + adapter: logits max|diff|/max|ref| = ${e.toExponential(2)}`);
      assert.ok(e <= 1e-5, `merged checkpoint logits differ by ${e}`);
      merged.dispose();
      // the same from an adapter merged in memory first
      lora.merge();
      const out2 = join(tmp, 'merged2');
      saveMergedCheckpoint(m, lora, { sourceDir: BASE, outDir: out2 });
      assert.deepEqual(readFileSync(join(out2, 'model.safetensors')), readFileSync(join(out, 'model.safetensors')));
      lora.remove();
      for (const t of [ref, got]) t.dispose();
      assert.throws(() => saveMergedCheckpoint(m, null, { sourceDir: BASE, outDir: out }), /already exists/);
      saveMergedCheckpoint(m, null, { sourceDir: BASE, outDir: out, overwrite: true, dtype: 'BF16' });
      assert.equal((headerOf(join(out, 'model.safetensors'))['lm_head.weight'] as { dtype: string }).dtype, 'BF16');
      assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('.')), [], 'no temporary directory left behind');
    } finally {
      m.dispose();
    }
  });
});

describe('atomic safetensors writer', () => {
  it('round-trips F32, BF16, F16, I64, I32, U8 with metadata; the header is 8-byte aligned', () => {
    const p = join(tmp, 'all.safetensors');
    writeSafetensors(p, [
      { name: 'f32', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, 7]) },
      { name: 'bf16', dtype: 'BF16', shape: [3], data: new Uint16Array([0x3f80, 0xc000, 0]) },
      { name: 'f16', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      { name: 'i64', dtype: 'I64', shape: [2], data: new BigInt64Array([-100n, 1n << 40n]) },
      { name: 'i32', dtype: 'I32', shape: [2, 1], data: () => new Int32Array([5, -6]) },
      { name: 'u8', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 255]) },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    ], { format: 'pt', note: 'vlmkit' });
    const b = readFileSync(p);
    assert.equal(Number(b.readBigUInt64LE(0)) % 8, 0);
    const f = SafetensorsFile.open(p);
    try {
      assert.deepEqual(f.metadata, { format: 'pt', note: 'vlmkit' });
      assert.deepEqual(Array.from(f.read('f32').data as Float32Array), Array.from(new Float32Array([1, -2, 3.5, 0, 1e-8, 7])));
      assert.deepEqual(Array.from(f.read('bf16').data as Uint16Array), [0x3f80, 0xc000, 0]);
      assert.deepEqual(Array.from(f.read('i64').data as BigInt64Array), [-100n, 1n << 40n]);
      assert.deepEqual(f.read('i32').shape, [2, 1]);
      assert.deepEqual(Array.from(f.read('u8').data as Uint8Array), [1, 2, 255]);
      assert.deepEqual(f.read('empty').shape, [0, 4]);
      for (const n of f.names()) {
        const i = f.info(n);
        assert.equal((i.start - 8 - Number(b.readBigUInt64LE(0))) % ({ F32: 4, BF16: 2, F16: 2, I64: 8, I32: 4, U8: 1 } as Record<string, number>)[i.dtype]!, 0, `${n} aligned`);
      }
    } finally {
      f.close();
    }
  });

  it('a failure while writing leaves the old file as it was and no temporary file', () => {
    const p = join(tmp, 'keep.safetensors');
    writeSafetensors(p, [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
    const before = readFileSync(p);
    assert.throws(() => writeSafetensors(p, [
      { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
      { name: 'b', dtype: 'F32', shape: [4], data: () => { throw new Error('disk on fire'); } },
    ]), /disk on fire/);
    assert.deepEqual(readFileSync(p), before);
    assert.throws(() => writeSafetensors(p, [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(3) }]), /needs 8 bytes, its data has 12/);
    assert.throws(() => writeSafetensors(p, [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }]), /appears twice/);
    assert.throws(() => writeSafetensors(join(tmp, 'no-such-dir', 'x.safetensors'), []), (e: Error) => e instanceof VlmkitError && /cannot write/.test(e.message));
    assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('.tmp-')), []);
    assert.deepEqual(readFileSync(p), before);
  });
});
