// Pretraining from a random initialisation: transformers' init rules tensor by tensor, seeded and reproducible;
// a from-scratch run gives the same losses twice, lowers the loss, and saves a complete Hugging Face checkpoint
// (bf16 when asked) that loadVlm loads and generates from; the recipe's paths, the CLI's refusals, and the
// checks that the tokenizer/processor files fit the config.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVlm } from '../../src/api.js';
import { trainOptions } from '../../src/cli/train.js';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { idefics3ConfigFromJson } from '../../src/models/idefics3/config.js';
import { initRule, randomIdefics3Weights } from '../../src/models/idefics3/init.js';
import { canonicalName, idefics3WeightSpecs } from '../../src/models/idefics3/weights.js';
import { type SftRunOptions, runSft } from '../../src/train/sft.js';
import { writeSftData } from './fixtures.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'pretrain-tiny');
const RECIPE = join(FIX, 'recipe.json');
const CONFIG = JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')) as Record<string, unknown>;
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-pretrain-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 8);

const withText = (patch: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  ({ ...CONFIG, ...top, text_config: { ...(CONFIG.text_config as object), ...patch } });

function stats(d: Float32Array): { mean: number; std: number } {
  let s = 0, s2 = 0;
  for (const x of d) { s += x; s2 += x * x; }
  const mean = s / d.length;
  return { mean, std: Math.sqrt(s2 / d.length - mean * mean) };
}

describe('random initialisation', () => {
  const cfg = idefics3ConfigFromJson(CONFIG, 'config.json');

  it('follows transformers: N(0, initializer_range) for linears, convs and embeddings, zero biases, unit norms, a zero pad row', () => {
    const { named } = randomIdefics3Weights(cfg, { seed: 3 });
    const specs = idefics3WeightSpecs(cfg).filter((s) => s.key !== 'lmHead'); // tied: lm_head is the embedding
    assert.equal(named.size, specs.length);
    const seen = { normal: 0, zeros: 0, ones: 0 };
    try {
      for (const spec of specs) {
        const t = named.get(canonicalName(spec));
        assert.ok(t, `missing ${canonicalName(spec)}`);
        assert.deepEqual(t.shape, spec.shape, canonicalName(spec));
        assert.equal(t.dtype, 'f32');
        const d = t.data as Float32Array;
        const rule = initRule(spec);
        seen[rule]++;
        if (rule === 'zeros') assert.ok(d.every((x) => x === 0), `${t.name} is not all zeros`);
        else if (rule === 'ones') assert.ok(d.every((x) => x === 1), `${t.name} is not all ones`);
        else {
          const { mean, std } = stats(d);
          // n >= 512 values: the sample std is within ~6% of 0.02 and the mean within 4 standard errors of 0
          assert.ok(Number.isFinite(std) && Math.abs(std - 0.02) <= 0.002, `${t.name}: std ${std}`);
          assert.ok(Number.isFinite(mean) && Math.abs(mean) <= (4 * 0.02) / Math.sqrt(d.length), `${t.name}: mean ${mean}`);
        }
      }
      // a weight of each kind was checked: convs/linears/embeddings, biases, LayerNorm and RMSNorm weights
      assert.ok(seen.normal > 10 && seen.zeros > 10 && seen.ones > 5, JSON.stringify(seen));
      assert.ok(specs.some((s) => s.key === 'vision.posEmbed' && initRule(s) === 'normal'));
      assert.equal(initRule(specs.find((s) => s.key === 'text.norm')!), 'ones');
      // LlamaModel's embed_tokens has padding_idx = pad_token_id: its row starts at zero
      const emb = named.get('model.text_model.embed_tokens.weight')!.data as Float32Array;
      const H = cfg.text.hiddenSize, pad = cfg.text.padTokenId!;
      assert.equal(pad, 2);
      assert.ok(emb.subarray(pad * H, (pad + 1) * H).every((x) => x === 0), 'the pad row is not zero');
      assert.ok(emb.subarray((pad + 1) * H, (pad + 2) * H).some((x) => x !== 0));
    } finally {
      for (const t of named.values()) t.dispose();
    }
  });

  it('is a pure function of (seed, tensor name): same seed same weights, another seed other weights, other layers untouched', () => {
    const a = randomIdefics3Weights(cfg, { seed: 11 }).named;
    const b = randomIdefics3Weights(cfg, { seed: 11 }).named;
    const c = randomIdefics3Weights(cfg, { seed: 12 }).named;
    const deeper = randomIdefics3Weights(idefics3ConfigFromJson(withText({ num_hidden_layers: 3 })), { seed: 11 }).named;
    try {
      for (const [n, t] of a) {
        assert.deepEqual(t.data, b.get(n)!.data, `${n} differs for the same seed`);
        assert.deepEqual(t.data, deeper.get(n)!.data, `${n} changed when a layer was added`);
      }
      const q = 'model.text_model.layers.0.self_attn.q_proj.weight';
      assert.notDeepEqual(a.get(q)!.data, c.get(q)!.data);
      assert.ok(deeper.has('model.text_model.layers.2.self_attn.q_proj.weight'));
    } finally {
      for (const m of [a, b, c, deeper]) for (const t of m.values()) t.dispose();
    }
  });

  it('takes std from the top-level initializer_range, else text_config\'s', () => {
    const top = idefics3ConfigFromJson({ ...CONFIG, initializer_range: 0.1 });
    const text = idefics3ConfigFromJson(withText({ initializer_range: 0.05 }, { initializer_range: undefined }));
    assert.equal(top.initializerRange, 0.1);
    assert.equal(text.initializerRange, 0.05);
    const w = randomIdefics3Weights(top, { seed: 1 }).named;
    try {
      const { std } = stats(w.get('model.connector.modality_projection.proj.weight')!.data as Float32Array);
      assert.ok(Math.abs(std - 0.1) <= 0.01, `std ${std}`);
    } finally {
      for (const t of w.values()) t.dispose();
    }
  });

  it('ordered tokens (location bins) start smooth: neighbours close, far bins apart, the usual scale, other rows untouched', () => {
    const V = cfg.text.vocabSize, H = cfg.text.hiddenSize;
    const ids = Array.from({ length: 64 }, (_, k) => V - 64 + k);
    const plain = randomIdefics3Weights(cfg, { seed: 5 }).named;
    const smooth = randomIdefics3Weights(cfg, { seed: 5, orderedTokens: ids }).named;
    try {
      const p = plain.get('model.text_model.embed_tokens.weight')!.data as Float32Array;
      const e = smooth.get('model.text_model.embed_tokens.weight')!.data as Float32Array;
      const row = (d: Float32Array, id: number) => d.subarray(id * H, (id + 1) * H);
      const cos = (a: Float32Array, b: Float32Array) => {
        let ab = 0, aa = 0, bb = 0;
        for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; }
        return ab / Math.sqrt(aa * bb);
      };
      // an independent draw is near-orthogonal to its neighbour; a smooth row is nearly its neighbour
      assert.ok(Math.abs(cos(row(p, ids[10]!), row(p, ids[11]!))) < 0.5);
      assert.ok(cos(row(e, ids[10]!), row(e, ids[11]!)) > 0.9, `neighbours: ${cos(row(e, ids[10]!), row(e, ids[11]!))}`);
      assert.ok(cos(row(e, ids[0]!), row(e, ids[63]!)) < 0.5, `ends: ${cos(row(e, ids[0]!), row(e, ids[63]!))}`);
      const all = e.subarray(ids[0]! * H, (ids[63]! + 1) * H);
      assert.ok(Math.abs(stats(all).std - 0.02) < 0.006, `std ${stats(all).std}`);
      for (let id = 0; id < ids[0]!; id++) assert.deepEqual(row(e, id), row(p, id));
      assert.throws(() => randomIdefics3Weights(cfg, { seed: 5, orderedTokens: [V] }), /outside the vocabulary/);
    } finally {
      for (const t of [...plain.values(), ...smooth.values()]) t.dispose();
    }
  });

  it('an untied config gets its own normal lm_head', () => {
    const w = randomIdefics3Weights(idefics3ConfigFromJson({ ...withText({ tie_word_embeddings: false }), tie_word_embeddings: false }), { seed: 1 });
    try {
      const lm = w.named.get('lm_head.weight')!;
      assert.ok(lm && lm !== w.weights.text.embed && !w.weights.text.tied);
      assert.ok(Math.abs(stats(lm.data as Float32Array).std - 0.02) <= 0.002);
    } finally {
      for (const t of w.named.values()) t.dispose();
    }
  });
});

describe('a from-scratch run', () => {
  const base = (out: string): SftRunOptions => ({
    init: 'random', modelConfig: join(FIX, 'config.json'), tokenizer: FIX, data: data.train, out: join(tmp, out),
    mode: 'full', maxSteps: 6, batchSize: 2, lr: 3e-3, warmupSteps: 1, schedule: 'cosine', seed: 7, saveDtype: 'bf16',
  });
  let first: Awaited<ReturnType<typeof runSft>>;
  before(async () => {
    first = await runSft(base('a'));
  });

  it('gives the same losses twice, starting near ln(vocab) and going down', async () => {
    const again = await runSft(base('b'));
    assert.equal(first.losses.length, 6);
    assert.deepEqual(again.losses, first.losses);
    assert.deepEqual(again.losses.map((l) => l.toFixed(4)), first.losses.map((l) => l.toFixed(4)));
    const l0 = first.losses[0]!, last = first.losses[first.losses.length - 1]!;
    // small random weights give nearly uniform logits: the first loss is about ln(448) = 6.10
    assert.ok(Number.isFinite(l0) && Math.abs(l0 - Math.log(448)) <= 0.1, `first loss ${l0}`);
    assert.ok(Number.isFinite(last) && last < l0 - 0.5, `loss ${l0} -> ${last}`);
    // another seed is another run
    const other = await runSft({ ...base('c'), seed: 8 });
    assert.notDeepEqual(other.losses, first.losses);
  });

  it('saves a complete bf16 checkpoint with standard names that loadVlm loads and generates from', async () => {
    const dir = join(tmp, 'a', 'model');
    assert.equal(first.output, dir);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'processor_config.json', 'generation_config.json'])
      assert.ok(existsSync(join(dir, f)), `model/ lacks ${f}`);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved.torch_dtype, 'bfloat16');
    assert.deepEqual({ ...saved, torch_dtype: CONFIG.torch_dtype }, CONFIG);
    const st = SafetensorsFile.open(join(dir, 'model.safetensors'));
    try {
      const names = st.names();
      const cfg = idefics3ConfigFromJson(CONFIG);
      assert.deepEqual([...names].sort(), idefics3WeightSpecs(cfg).filter((s) => s.key !== 'lmHead').map(canonicalName).sort());
      for (const n of names) assert.equal(st.info(n).dtype, 'BF16', n);
    } finally {
      st.close();
    }
    const vlm = await loadVlm(dir);
    try {
      const r = await vlm.generate('What is in this image?', [join(tmp, 'square_64x64.png')], { maxNewTokens: 4 });
      assert.ok(r.tokenIds.length >= 1 && r.tokenIds.length <= 4, JSON.stringify(r));
      assert.ok(r.tokenIds.every((t) => Number.isInteger(t) && t >= 0 && t < 448));
      assert.ok(r.promptTokens > 4);
    } finally {
      vlm.dispose();
    }
  });

  it('a resume with another model config is refused and leaves the run as it was', async () => {
    const other = join(tmp, 'other-config.json');
    writeFileSync(other, JSON.stringify(withText({ intermediate_size: 96 })));
    const stop = { requested: false };
    const part = await runSft({ ...base('d'), saveDtype: 'f32' }, { stop, onStep: () => { stop.requested = true; } });
    assert.equal(part.interrupted, true);
    const staged = readFileSync(join(tmp, 'd', 'base', 'config.json'), 'utf8');
    await assert.rejects(runSft({ ...base('d'), modelConfig: other, resume: true }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_RESUME' && /model/.test(e.message));
    assert.equal(readFileSync(join(tmp, 'd', 'base', 'config.json'), 'utf8'), staged);
    // the same config resumes and finishes the run with the uninterrupted losses
    const rest = await runSft({ ...base('d'), saveDtype: 'f32', resume: true });
    assert.deepEqual([...part.losses, ...rest.losses], first.losses);
  });
});

describe('files that do not fit the config', () => {
  const run = (patch: Record<string, unknown>, top: Record<string, unknown> = {}, vision: Record<string, unknown> | null = null) => {
    const p = join(tmp, `cfg-${Math.random().toString(36).slice(2)}.json`);
    const j: Record<string, unknown> = withText(patch, top);
    if (vision) j.vision_config = { ...(CONFIG.vision_config as object), ...vision };
    writeFileSync(p, JSON.stringify(j));
    return runSft({ init: 'random', modelConfig: p, tokenizer: FIX, data: data.train, out: join(tmp, 'bad'), mode: 'full', maxSteps: 1 });
  };
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof VlmkitError && e.code === 'E_ARGS' && re.test(e.message) && !e.message.includes('\n');

  it('an image_token_id other than the tokenizer\'s <image>', async () => {
    await assert.rejects(run({}, { image_token_id: 7 }), oneLine(/<image> token has id 5 but image_token_id is 7/));
  });
  it('a vocabulary smaller than the tokenizer', async () => {
    await assert.rejects(run({ vocab_size: 100 }), oneLine(/vocab_size is 100; set vocab_size to at least/));
  });
  it('a tile size other than the vision image_size', async () => {
    await assert.rejects(run({}, {}, { image_size: 64 }), oneLine(/tiles are 32 px .* vision_config.image_size is 64/));
  });
  it('no tokenizer folder, or one without tokenizer.json', async () => {
    await assert.rejects(runSft({ init: 'random', data: data.train, out: join(tmp, 'bad') }), oneLine(/needs --tokenizer/));
    const empty = join(tmp, 'empty');
    cpSync(join(FIX, 'config.json'), join(empty, 'config.json'));
    await assert.rejects(runSft({ init: 'random', tokenizer: empty, data: data.train, out: join(tmp, 'bad') }), oneLine(/has no tokenizer.json/));
  });
});

describe('vlmkit train pretrain --recipe', () => {
  it('reads the recipe with its input paths relative to the recipe and starts from a random init', () => {
    const { opts } = trainOptions(['--recipe', RECIPE], 'pretrain');
    assert.equal(opts.init, 'random');
    assert.equal(opts.mode, 'full');
    assert.equal(opts.model, null);
    assert.equal(opts.modelConfig, join(FIX, 'config.json'));
    assert.equal(opts.tokenizer, FIX);
    assert.equal(opts.data, join(FIX, 'train.jsonl'));
    assert.equal(opts.out, 'runs/pretrain-tiny'); // the run folder stays relative to where vlmkit runs
    assert.equal(opts.saveDtype, 'bf16');
    assert.deepEqual([opts.maxSteps, opts.batchSize, opts.lr, opts.seed, opts.schedule], [6, 2, 0.003, 7, 'cosine']);
    // flags win over the recipe
    const o2 = trainOptions(['--recipe', RECIPE, '--data', 'x.jsonl', '--lr', '0.01'], 'pretrain').opts;
    assert.deepEqual([o2.data, o2.lr], ['x.jsonl', 0.01]);
  });

  it('refuses what cannot be a from-scratch run, in one line', () => {
    const bad = (args: string[], re: RegExp, method: 'sft' | 'pretrain' = 'pretrain') =>
      assert.throws(() => trainOptions(args, method), (e: unknown) => e instanceof VlmkitError && e.code === 'E_ARGS' && re.test(e.message.split('\n')[0]!));
    bad([], /needs --recipe/);
    bad(['--recipe', RECIPE, '--model', 'x'], /drop --model/);
    bad(['--recipe', RECIPE, '--lora', 'r=4'], /drop --lora/);
    bad(['--recipe', RECIPE, '--init', 'pretrained'], /always starts from a random initialisation/);
    bad(['--recipe', RECIPE, '--save-dtype', 'int8'], /--save-dtype takes f32, bf16 or f16/);
    bad(['--recipe', RECIPE], /--recipe is for vlmkit train pretrain/, 'sft');
    bad(['--init', 'random', '--data', 'd', '--out', 'o'], /needs --tokenizer/, 'sft');
    bad(['--model', 'm', '--tokenizer', 't', '--data', 'd', '--out', 'o'], /go with --init random/, 'sft');
    bad(['--recipe', join(FIX, 'config.json')], /unknown option/);
  });

  it('train sft --init random takes the same options from flags', () => {
    const { opts } = trainOptions(['--init', 'random', '--model-config', 'c.json', '--tokenizer', 'tok', '--data', 'd.jsonl', '--out', 'o'], 'sft');
    assert.deepEqual([opts.init, opts.mode, opts.modelConfig, opts.tokenizer, opts.lr], ['random', 'full', 'c.json', 'tok', 1e-3]);
    const ft = trainOptions(['--model', 'm', '--data', 'd.jsonl', '--out', 'o'], 'sft').opts;
    assert.deepEqual([ft.init, ft.mode, ft.model], ['pretrained', 'lora', 'm']);
  });
});
