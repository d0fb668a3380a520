// Quantized models from the command line: `vlmkit quantize` writes a folder that `ask --model` loads without flags
// and that answers exactly as `ask --quant` (the same quantization at load); a quantized folder whose config
// describes another shape fails naming the tensor; unknown formats list the formats. `train sft --quant nf4`
// (QLoRA) saves a PEFT adapter that loads onto the f32 base: its logits there differ from the NF4 base's by the
// quantization error only, and the adapter's own effect on the logits is the same on either base.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { QuantizedWeight, Rng, type Tensor, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { type Linear, applyLinear } from '../../src/models/common.js';
import type { LoraModel } from '../../src/train/lora.js';
import { type Idefics3Model, loadModel } from '../../src/models/idefics3/model.js';
import { Processor } from '../../src/models/idefics3/processor.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { QUANT_METADATA_KEY } from '../../src/models/quantized-file.js';
import { loadAdapter } from '../../src/train/peft.js';
import { TINY, writeSftData } from '../train/fixtures.js';
import { type Run, vlmkit } from './spawn-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-quant-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 8);
const IMAGE = join(tmp, 'wide_90x150.png');

function assertUserError(r: Run, what: RegExp): void {
  assert.equal(r.code, 1, `exit code, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0]!, /^vlmkit: /);
  assert.match(lines[0]!, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

const askJson = async (args: string[]) => {
  const r = await vlmkit(['ask', ...args, '--image', IMAGE, '--max-new-tokens', '6', '--json', 'What is in this image?']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { token_ids: number[] };
};

describe('vlmkit quantize', () => {
  const out = join(tmp, 'tiny-q4_0');

  it('writes the documented layout, whole, that ask loads without flags and answers as --quant does', async () => {
    const r = await vlmkit(['quantize', TINY, '--to', 'q4_0', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
    assert.match(r.stderr, /quantizing: \d+\/\d+ weights/);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'processor_config.json', 'chat_template.jinja', 'generation_config.json', 'model.safetensors'])
      assert.ok(existsSync(join(out, f)), f);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('.')), [], 'no temporary folder left');
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vlmkit_quantization, { format: 'q4_0', double_quant: false });
    const sf = SafetensorsFile.open(join(out, 'model.safetensors'));
    try {
      const meta = JSON.parse(sf.metadata[QUANT_METADATA_KEY]!) as { format: string; tensors: Record<string, number[]> };
      assert.equal(meta.format, 'q4_0');
      const names = Object.keys(meta.tensors);
      assert.ok(names.includes('model.text_model.layers.0.self_attn.q_proj.weight'), names.join(', '));
      for (const n of names) assert.equal(sf.info(n).dtype, 'U8', n);
      // kept as stored: the embeddings and the norms
      assert.equal(sf.info('model.text_model.embed_tokens.weight').dtype, SafetensorsFile.open(join(TINY, 'model.safetensors')).info('model.text_model.embed_tokens.weight').dtype);
    } finally {
      sf.close();
    }
    const fromFile = await askJson(['--model', out]);
    const atLoad = await askJson(['--model', TINY, '--quant', 'q4_0']);
    assert.equal(fromFile.token_ids.length, 6);
    assert.deepEqual(fromFile.token_ids, atLoad.token_ids);
  });

  it('refuses an existing --out, an already quantized source, and a format it does not know (listing them)', async () => {
    assertUserError(await vlmkit(['quantize', TINY, '--to', 'q4_0', '--out', out]), /--out .* already exists/);
    assertUserError(await vlmkit(['quantize', out, '--to', 'q8_0', '--out', join(tmp, 'again')]), /already quantized \(q4_0\)/);
    assert.ok(!existsSync(join(tmp, 'again')));
    assertUserError(await vlmkit(['quantize', TINY, '--to', 'q5_k', '--out', join(tmp, 'x')]), /--to takes one of q8_0, q4_0, nf4, got "q5_k"/);
    assertUserError(await vlmkit(['ask', '--model', TINY, '--quant', 'int4', 'hi']), /--quant takes one of q8_0, q4_0, nf4, got "int4"/);
  });

  it('a quantized folder whose config.json describes another shape fails naming the tensor', async () => {
    const bad = join(tmp, 'bad-shape');
    mkdirSync(bad);
    for (const f of readdirSync(out)) writeFileSync(join(bad, f), readFileSync(join(out, f)));
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    cfg.text_config.intermediate_size *= 2;
    writeFileSync(join(bad, 'config.json'), JSON.stringify(cfg));
    const r = await vlmkit(['ask', '--model', bad, 'hi']);
    assertUserError(r, /tensor "model\.text_model\.layers\.0\.mlp\.gate_proj\.weight" .* q4_0 weights of shape .* quantized from a model of another shape/);
  });
});

function logits(model: Idefics3Model, proc: Processor): Promise<Float32Array> {
  return (async () => {
    const enc = await proc.encode({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }], images: [IMAGE] });
    try {
      return noGrad(() => tidy(() => (model.forward({ inputIds: enc.inputIds, attentionMask: enc.attentionMask, pixelValues: enc.pixelValues, pixelAttentionMask: enc.pixelAttentionMask }) as Tensor).toFloat32Array()));
    } finally {
      enc.dispose();
    }
  })();
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const minus = (a: Float32Array, b: Float32Array) => a.map((x, i) => x - b[i]!);

describe('vlmkit train sft --quant nf4 (QLoRA)', () => {
  it('saves a PEFT adapter that loads onto the f32 base: logits within the quantization error, the same adapter effect', async () => {
    const run = join(tmp, 'qlora');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--quant', 'nf4', '--data', data.train, '--out', run, '--max-steps', '4',
      '--batch-size', '4', '--lr', '2e-2', '--lora', 'r=4,alpha=8,targets=all-linear', '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.base_model_name_or_path, resolve(TINY), 'the adapter names the 16/32-bit base');

    const proc = Processor.fromDir(TINY);
    const f32 = loadModel(TINY, { dtype: 'f32' });
    const nf4 = loadModel(TINY, { dtype: 'f32', quant: 'nf4' });
    try {
      assert.ok(nf4.quantizedWeights().size > 0);
      const baseF = await logits(f32, proc), baseQ = await logits(nf4, proc);
      const loraF = loadAdapter(f32, run), loraQ = loadAdapter(nf4, run);
      const tunedF = await logits(f32, proc), tunedQ = await logits(nf4, proc);
      const quantErr = maxAbsDiff(baseQ, baseF);
      const effect = maxAbsDiff(tunedF, baseF);
      const d = maxAbsDiff(tunedQ, tunedF);
      const effectGap = maxAbsDiff(minus(tunedQ, baseQ), minus(tunedF, baseF));
      assert.ok(Number.isFinite(quantErr) && quantErr > 0, `NF4 changes the base logits (${quantErr})`);
      assert.ok(Number.isFinite(effect) && effect > 1e-2, `the adapter changes the logits (${effect})`);
      // NF4 + adapter vs f32 + adapter: no further apart than the two bases are (the tiny random model's NF4 error
      // is large, ~25% of its logits' range, and the adapter does not add to it)
      assert.ok(Number.isFinite(d) && d <= quantErr, `tuned logits differ by ${d}, the bases by ${quantErr}`);
      // what the adapter adds to the logits differs between the bases only through the layers' inputs: by less
      // than the quantization error
      assert.ok(Number.isFinite(effectGap) && effectGap <= quantErr, `the adapter's effect differs by ${effectGap} (bases: ${quantErr})`);
      // and each adapted linear's own effect (output with the adapter minus without) is the same on either base
      // to f32 rounding: the adapter is applied on top of the base, whatever its format
      const rng = new Rng(9);
      const linF = f32.linears(), linQ = nf4.linears();
      let layers = 0;
      for (const module of loraF.layers().keys()) {
        const lf = linF.get(module)!, lq = linQ.get(module)!;
        if (!(lq.w instanceof QuantizedWeight)) continue;
        layers++;
        const K = lq.w.shape[1];
        const x = tensor(Array.from({ length: 3 * K }, () => rng.next() * 2 - 1), [3, K]);
        const own = (lora: LoraModel, lin: Linear) => noGrad(() => tidy(() => {
          const on = applyLinear(x, lin).toFloat32Array();
          lora.setEnabled(false);
          const off = applyLinear(x, lin).toFloat32Array();
          lora.setEnabled(true);
          return minus(on, off);
        }));
        const ef = own(loraF, lf), eq = own(loraQ, lq);
        const scale = maxAbsDiff(ef, new Float32Array(ef.length));
        const gap = maxAbsDiff(eq, ef);
        assert.ok(scale > 0 && Number.isFinite(gap) && gap <= 1e-5 * scale + 1e-6, `${module}: the adapter adds ${gap} more on NF4 (its effect: ${scale})`);
        x.dispose();
      }
      assert.ok(layers > 0, 'some adapted linears have an NF4 base');
    } finally {
      f32.dispose();
      nf4.dispose();
    }
  });

  it('refuses --quant with --full or --init random, naming why', async () => {
    assertUserError(await vlmkit(['train', 'sft', '--model', TINY, '--quant', 'nf4', '--full', '--data', data.train, '--out', join(tmp, 'nope')]), /--quant .*--full trains every weight/);
    assert.ok(!existsSync(join(tmp, 'nope')));
  });
});
