// --vision-from: a from-scratch model's vision tower starts from a SigLIP (or Idefics3) checkpoint's, tensor by
// tensor, and everything else stays as the random initialisation made it; a tower of another shape, a checkpoint
// without a SigLIP tower, or the flag on a fine-tune is refused with one line naming the problem.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bf16ToF32 } from '../../src/engine/dtype.js';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { randomInitModel } from '../../src/models/index.js';
import { idefics3ConfigFromJson } from '../../src/models/idefics3/config.js';
import { trainOptions } from '../../src/cli/train.js';
import { runSft } from '../../src/train/sft.js';
import { loadVisionFrom } from '../../src/train/vision-from.js';
import { writeSftData } from './fixtures.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FIX = join(HERE, '..', 'fixtures', 'pretrain-tiny');
const REF = join(HERE, '..', 'fixtures', 'reference');
const SIGLIP = join(REF, 'tiny-siglip');
const CONFIG = JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')) as Record<string, unknown>;
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-vision-from-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The checkpoint's tensors as f32 by name. */
function tensors(file: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(file);
  try {
    const out = new Map<string, Float32Array>();
    for (const n of f.names()) {
      const r = f.read(n);
      if (r.dtype === 'F32') out.set(n, Float32Array.from(r.data as Float32Array));
      else if (r.dtype === 'BF16') out.set(n, Float32Array.from(r.data as Uint16Array, bf16ToF32));
    }
    return out;
  } finally {
    f.close();
  }
}

const sameValues = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => x === b[i]);

const fresh = (seed = 5) => randomInitModel('idefics3', idefics3ConfigFromJson(CONFIG, 'config.json'), { seed });

describe('loadVisionFrom', () => {
  it('copies every vision tensor of a SigLIP checkpoint (vision_model.*) and leaves the rest as initialised', () => {
    const src = tensors(join(SIGLIP, 'model.safetensors'));
    const model = fresh(), untouched = fresh();
    try {
      const params = model.parameters(), before = untouched.parameters();
      const n = loadVisionFrom(SIGLIP, params);
      let vision = 0, rest = 0, changed = 0;
      for (const [name, p] of params) {
        const got = p.data as Float32Array;
        if (name.startsWith('model.vision_model.')) {
          const want = src.get('vision_model.' + name.slice('model.vision_model.'.length));
          assert.ok(want, `the SigLIP fixture has no tensor for ${name}`);
          assert.deepEqual(got, want, name);
          // norms and biases may start as the fixture holds them (ones, zeros); the weights may not
          if (!sameValues(got, before.get(name)!.data as Float32Array)) changed++;
          vision++;
        } else {
          assert.deepEqual(got, before.get(name)!.data, `${name} is outside the vision tower and must stay as initialised`);
          rest++;
        }
      }
      assert.equal(n, vision);
      // patch + position embeddings, 2 layers of 12 tensors, the post-layernorm
      assert.ok(vision >= 3 + 2 * 12 + 2 && rest > 10, `${vision} vision, ${rest} other tensors`);
      assert.ok(changed >= 2 * 6 + 2, `only ${changed} of ${vision} vision tensors differ from the random start: the test cannot tell a copy`);
    } finally {
      model.dispose();
      untouched.dispose();
    }
  });

  it('reads an Idefics3 checkpoint (model.vision_model.*) as well', () => {
    const ref = join(REF, 'tiny-idefics3');
    const src = tensors(join(ref, 'model.safetensors'));
    const model = fresh();
    try {
      const params = model.parameters();
      loadVisionFrom(ref, params);
      const name = 'model.vision_model.encoder.layers.1.mlp.fc2.weight';
      assert.deepEqual(params.get(name)!.data, src.get(name));
    } finally {
      model.dispose();
    }
  });

  it('refuses a tower of another shape, naming the tensor, and writes nothing', () => {
    const dir = join(tmp, 'wide-siglip');
    cpSync(SIGLIP, dir, { recursive: true });
    const model = randomInitModel('idefics3', idefics3ConfigFromJson({ ...CONFIG, vision_config: { ...(CONFIG.vision_config as object), intermediate_size: 48 } }, 'config.json'), { seed: 5 });
    try {
      const params = model.parameters();
      const before = new Map([...params].map(([n, p]) => [n, Float32Array.from(p.data as Float32Array)]));
      assert.throws(() => loadVisionFrom(dir, params), (e: unknown) => e instanceof VlmkitError && /mlp\.fc1\.weight is \[64,32\].*\[48,32\]/.test(e.message) && !e.message.includes('\n'));
      for (const [n, p] of params) assert.deepEqual(p.data, before.get(n), `${n} was written before the check failed`);
    } finally {
      model.dispose();
    }
  });

  it('refuses a checkpoint without a SigLIP vision tower and a folder without config.json', () => {
    const model = fresh();
    try {
      const params = model.parameters();
      assert.throws(() => loadVisionFrom(join(REF, 'tiny-clip'), params), /"clip" model; its vision tower must be SigLIP's/);
      assert.throws(() => loadVisionFrom(tmp, params), /has no config\.json/);
      const noWeights = join(tmp, 'no-weights');
      cpSync(SIGLIP, noWeights, { recursive: true });
      rmSync(join(noWeights, 'model.safetensors'));
      assert.throws(() => loadVisionFrom(noWeights, params), /has no model\.safetensors/);
    } finally {
      model.dispose();
    }
  });
});

describe('train with --vision-from', () => {
  it('starts a from-scratch run from the SigLIP tower (a near-zero lr keeps it there) and records it in the settings', async () => {
    const data = writeSftData(tmp, 4);
    const out = join(tmp, 'run');
    const r = await runSft({
      init: 'random', modelConfig: join(FIX, 'config.json'), tokenizer: FIX, visionFrom: SIGLIP, data: data.train, out,
      mode: 'full', maxSteps: 1, batchSize: 2, lr: 1e-9, seed: 7, saveDtype: 'f32',
    });
    assert.equal(r.steps, 1);
    const saved = tensors(join(out, 'model', 'model.safetensors')), src = tensors(join(SIGLIP, 'model.safetensors'));
    const name = 'model.vision_model.encoder.layers.0.self_attn.q_proj.weight';
    const got = saved.get(name)!, want = src.get('vision_model.encoder.layers.0.self_attn.q_proj.weight')!;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    // one AdamW step moves a weight by about lr (1e-9); a random start would differ by ~0.02
    assert.ok(Number.isFinite(worst) && worst <= 1e-6, `worst difference ${worst}`);
  });

  it('replaces the tower of a trained model in a full fine-tune and keeps the rest of it', async () => {
    const data = writeSftData(tmp, 4);
    // a model of the same shape whose own tower is random
    const first = join(tmp, 'first');
    await runSft({ init: 'random', modelConfig: join(FIX, 'config.json'), tokenizer: FIX, data: data.train, out: first, mode: 'full', maxSteps: 1, batchSize: 2, lr: 1e-9, seed: 3, saveDtype: 'f32' });
    const out = join(tmp, 'swapped');
    await runSft({ model: join(first, 'model'), visionFrom: SIGLIP, data: data.train, out, mode: 'full', maxSteps: 1, batchSize: 2, lr: 1e-9, seed: 7, saveDtype: 'f32' });
    const saved = tensors(join(out, 'model', 'model.safetensors')), src = tensors(join(SIGLIP, 'model.safetensors')), before = tensors(join(first, 'model', 'model.safetensors'));
    const diff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
    const q = 'vision_model.encoder.layers.0.self_attn.q_proj.weight';
    assert.ok(diff(saved.get(`model.${q}`)!, src.get(q)!) <= 1e-6, 'the tower is the SigLIP one');
    assert.ok(diff(before.get(`model.${q}`)!, src.get(q)!) > 1e-3, 'and differs from the one it replaced');
    const dec = 'model.text_model.layers.0.self_attn.q_proj.weight';
    assert.ok(diff(saved.get(dec)!, before.get(dec)!) <= 1e-6, 'the decoder is the trained model\'s');
  });

  it('a frozen replaced tower (not in the checkpoints) is the new one after a resume too', async () => {
    const data = writeSftData(tmp, 4);
    const first = join(tmp, 'first-frozen');
    await runSft({ init: 'random', modelConfig: join(FIX, 'config.json'), tokenizer: FIX, data: data.train, out: first, mode: 'full', maxSteps: 1, batchSize: 2, lr: 1e-9, seed: 3, saveDtype: 'f32' });
    const out = join(tmp, 'frozen-resumed');
    const o = { model: join(first, 'model'), visionFrom: SIGLIP, data: data.train, out, mode: 'frozen-vision' as const, maxSteps: 2, batchSize: 2, lr: 1e-3, seed: 7, saveEvery: 1, saveDtype: 'f32' as const };
    const stop = { requested: false };
    await runSft(o, { stop, onStep: (t) => { if (t.position.step === 1) stop.requested = true; } });
    const r = await runSft({ ...o, resume: true });
    assert.equal(r.steps, 2);
    const saved = tensors(join(out, 'model', 'model.safetensors')), src = tensors(join(SIGLIP, 'model.safetensors'));
    const q = 'vision_model.encoder.layers.0.self_attn.q_proj.weight';
    const got = saved.get(`model.${q}`)!, want = src.get(q)!;
    assert.ok(got.every((v, i) => v === want[i]), 'the frozen tower is the --vision-from one, bit for bit');
  });

  it('starts a new model with a frozen tower from elsewhere: the tower stays bit for bit, the rest trains', async () => {
    const data = writeSftData(tmp, 4);
    const out = join(tmp, 'scratch-frozen');
    await runSft({ init: 'random', modelConfig: join(FIX, 'config.json'), tokenizer: FIX, visionFrom: SIGLIP, data: data.train, out, mode: 'frozen-vision', maxSteps: 2, batchSize: 2, lr: 1e-2, seed: 7, saveDtype: 'f32' });
    const saved = tensors(join(out, 'model', 'model.safetensors')), src = tensors(join(SIGLIP, 'model.safetensors'));
    const q = 'vision_model.encoder.layers.0.self_attn.q_proj.weight';
    assert.ok(saved.get(`model.${q}`)!.every((v, i) => v === src.get(q)![i]), 'the tower is the --vision-from one, bit for bit');
    const err = (argv: string[]) => { try { trainOptions(argv, 'sft'); } catch (e) { return (e as Error).message; } return 'accepted'; };
    const base = ['--init', 'random', '--model-config', join(FIX, 'config.json'), '--tokenizer', FIX, '--data', 'x.jsonl', '--out', 'o', '--freeze-vision'];
    assert.match(err(base), /would keep a random vision tower; add --vision-from/);
    assert.equal(err([...base, '--vision-from', SIGLIP]), 'accepted');
  });

  it('is refused on a LoRA fine-tune and by train dpo / contrastive', () => {
    const err = ([method, ...argv]: string[]) => {
      try {
        trainOptions(argv, method as 'sft' | 'dpo' | 'contrastive');
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    assert.match(err(['sft', '--model', join(REF, 'tiny-idefics3'), '--data', 'x.jsonl', '--out', 'o', '--vision-from', SIGLIP]), /a LoRA adapter cannot carry; add --full/);
    assert.equal(err(['sft', '--model', join(REF, 'tiny-idefics3'), '--data', 'x.jsonl', '--out', 'o', '--full', '--vision-from', SIGLIP]), 'accepted');
    assert.match(err(['dpo', '--model', join(REF, 'tiny-idefics3'), '--data', 'x.jsonl', '--out', 'o', '--vision-from', SIGLIP]), /vision-from/);
    assert.match(err(['contrastive', '--model', SIGLIP, '--data', 'x.jsonl', '--out', 'o', '--vision-from', SIGLIP]), /vision-from/);
  });
});

