// Idefics3 / SmolVLM forward against the reference fixtures (transformers 5.17, float32, eager attention):
// logits of every single-image, batch, no-split and text-only case, the vision tower and connector alone, KV-cache
// consistency and greedy generation, and the loader's errors.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Backend, type Tensor, argmax, backward, concat, crossEntropy, fromRaw, getBackend, noGrad, referenceBackend, slice, storageStats, tensor, tidy,
} from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { VlmkitError } from '../../src/errors.js';
import {
  type Idefics3Model, type LowRankAdapter, idefics3ConfigFromJson, loadModel, positionsFromAttentionMask,
} from '../../src/models/idefics3/index.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const CASES = join(REF, 'cases');
const TOL = 1e-4;

const nat = getBackend('native');

type CaseTensors = Record<string, Tensor>;

function readCase(name: string, backend: Backend = nat): CaseTensors {
  const f = SafetensorsFile.open(join(CASES, name + '.safetensors'));
  try {
    const out: CaseTensors = {};
    for (const n of f.names()) out[n] = fromRaw(f.read(n), { backend });
    return out;
  } finally {
    f.close();
  }
}

function disposeAll(c: CaseTensors): void {
  for (const t of Object.values(c)) t.dispose();
}

/** max |a - b| / max |b| over the elements where keep(i) holds. */
function relErr(a: Tensor, b: Tensor, keep?: (i: number) => boolean): { rel: number; abs: number; maxRef: number } {
  assert.deepEqual([...a.shape], [...b.shape], `shape ${JSON.stringify(a.shape)} vs reference ${JSON.stringify(b.shape)}`);
  const x = a.toFloat32Array(), y = b.toFloat32Array();
  let abs = 0, maxRef = 0;
  for (let i = 0; i < x.length; i++) {
    if (keep && !keep(i)) continue;
    if (!Number.isFinite(x[i])) return { rel: Infinity, abs: Infinity, maxRef };
    abs = Math.max(abs, Math.abs(x[i] - y[i]));
    maxRef = Math.max(maxRef, Math.abs(y[i]));
  }
  return { rel: abs / maxRef, abs, maxRef };
}

const models = new Map<string, Idefics3Model>();
function model(kind: 'idefics3' | 'smolvlm', backend: Backend = nat): Idefics3Model {
  const key = `${kind}:${backend.name}`;
  let m = models.get(key);
  if (!m) {
    m = loadModel(join(REF, kind === 'idefics3' ? 'tiny-idefics3' : 'tiny-smolvlm'), { dtype: 'f32', backend });
    models.set(key, m);
  }
  return m;
}
after(() => {
  for (const m of models.values()) m.dispose();
});

const ALL = readdirSync(CASES).filter((f) => f.endsWith('.safetensors')).map((f) => f.slice(0, -'.safetensors'.length));
const LOGIT_CASES = ALL.filter((n) => /^(idefics3|smolvlm)_(single_.*|batch_leftpad|nosplit_.*|textonly|video)$/.test(n)).sort();

function report(name: string, what: string, e: { rel: number; abs: number }): void {
  console.log(`  ${name} ${what}: max|diff|/max|ref| = ${e.rel.toExponential(2)} (max|diff| ${e.abs.toExponential(2)})`);
}

describe('Idefics3 / SmolVLM logits match transformers', () => {
  it('finds the logit cases (a missing fixture folder must not pass as zero tests)', () => {
    assert.ok(LOGIT_CASES.length >= 16, `only ${LOGIT_CASES.length} logit cases in ${CASES}`);
  });
  for (const name of LOGIT_CASES) {
    it(name, () => {
      const kind = name.startsWith('smolvlm') ? 'smolvlm' : 'idefics3';
      const m = model(kind);
      const c = readCase(name);
      try {
        const logits = noGrad(() => m.forward({
          inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values ?? null,
          pixelAttentionMask: c.pixel_attention_mask ?? null,
        }));
        const [B, T, V] = c.logits.shape;
        const mask = c.attention_mask.toArray();
        // Query rows of left padding attend to no key: transformers' eager softmax spreads them uniformly over
        // all keys, our kernel gives zeros. Those logits are never used; compare the real tokens.
        const real = (i: number) => mask[Math.floor(i / V)] !== 0;
        const e = relErr(logits, c.logits, real);
        report(name, `logits [${B}, ${T}, ${V}]${mask.includes(0) ? ' (real tokens)' : ''}`, e);
        assert.ok(e.rel <= TOL, `${name}: logits differ by ${e.rel} > ${TOL}`);
        logits.dispose();
      } finally {
        disposeAll(c);
      }
    });
  }
});

describe('vision tower and connector match transformers', () => {
  for (const kind of ['idefics3', 'smolvlm'] as const) {
    it(`${kind}_vision_connector`, () => {
      const m = model(kind);
      const c = readCase(`${kind}_vision_connector`);
      try {
        noGrad(() => tidy(() => {
          const vh = m.visionHiddenStates(c.pixel_values);
          const ev = relErr(vh, c.vision_last_hidden_state);
          report(`${kind}_vision_connector`, 'vision_last_hidden_state', ev);
          const co = m.connector.forward(vh);
          const ec = relErr(co, c.connector_out);
          report(`${kind}_vision_connector`, 'connector_out', ec);
          const feats = m.visionFeatures(c.pixel_values);
          assert.equal(relErr(feats, co).abs, 0, 'visionFeatures = connector(visionHiddenStates)');
          assert.ok(ev.rel <= TOL, `vision hidden states differ by ${ev.rel}`);
          assert.ok(ec.rel <= TOL, `connector output differs by ${ec.rel}`);
        }));
      } finally {
        disposeAll(c);
      }
    });
  }
});

/** Greedy decoding with the KV cache: prefill, then one token per step; returns the tokens per row. */
function greedy(m: Idefics3Model, c: CaseTensors, steps: number, positions: 'arange' | 'mask'): number[][] {
  return noGrad(() => tidy(() => {
    const [B, T] = c.input_ids.shape;
    const cache = m.createCache(B, T + steps);
    try {
      let mask = c.attention_mask;
      const maskOf = () => Int32Array.from(mask.toArray());
      const pos = positions === 'mask' ? tensor(positionsFromAttentionMask(maskOf(), B, T), [B, T], { dtype: 'i32', backend: nat }) : null;
      let logits = m.prefill({
        inputIds: c.input_ids, attentionMask: mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask, positionIds: pos,
      }, cache);
      const out: number[][] = Array.from({ length: B }, () => []);
      for (let s = 0; s < steps; s++) {
        const next = argmax(logits, -1).toArray();
        next.forEach((t, b) => out[b].push(t));
        if (s === steps - 1) break;
        mask = concat([mask, tensor(new Array(B).fill(1), [B, 1], { dtype: mask.dtype, backend: nat })], 1);
        const len = T + s + 1;
        const p = positions === 'mask'
          ? positionsFromAttentionMask(maskOf(), B, len, 1)
          : Int32Array.from({ length: B }, () => len - 1);
        logits = m.step({
          inputIds: tensor(next, [B, 1], { dtype: 'i32', backend: nat }),
          positionIds: tensor(p, [B, 1], { dtype: 'i32', backend: nat }),
          attentionMask: mask,
        }, cache);
      }
      return out;
    } finally {
      cache.dispose();
    }
  }));
}

describe('KV cache', () => {
  it('cached step-by-step logits equal the full forward (single image and left-padded batch)', () => {
    for (const name of ['idefics3_single_wide_90x150', 'smolvlm_batch_leftpad']) {
      const m = model(name.startsWith('smolvlm') ? 'smolvlm' : 'idefics3');
      const c = readCase(name);
      try {
        noGrad(() => tidy(() => {
          const [B, T] = c.input_ids.shape;
          const full = m.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask });
          const cache = m.createCache(B, T + 2);
          const split = T - 3;
          // prompt part (with the images), then the remaining tokens one at a time
          m.forward({
            inputIds: slice(c.input_ids, 1, 0, split), attentionMask: slice(c.attention_mask, 1, 0, split),
            pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask,
          }, { cache, logitsFor: 'last' });
          let last: Tensor | null = null;
          for (let t = split; t < T; t++) {
            last = m.forward({ inputIds: slice(c.input_ids, 1, t, t + 1), attentionMask: slice(c.attention_mask, 1, 0, t + 1) }, { cache, logitsFor: 'last' });
          }
          assert.equal(cache.length, T);
          const ref = slice(full, 1, T - 1, T);
          const e = relErr(last!, ref);
          report(name, 'cached last-position logits vs full forward', e);
          assert.ok(e.rel <= 1e-5, `cached logits differ by ${e.rel}`);
          // and against transformers
          const eh = relErr(last!, slice(c.logits, 1, T - 1, T));
          assert.ok(eh.rel <= TOL, `cached logits differ from transformers by ${eh.rel}`);
          cache.dispose();
        }));
      } finally {
        disposeAll(c);
      }
    }
  });

  it('greedy generation with the cache reproduces transformers generate()', () => {
    for (const name of ['idefics3_single_wide_90x150', 'smolvlm_single_big_300x410', 'idefics3_batch_leftpad', 'smolvlm_batch_leftpad']) {
      const m = model(name.startsWith('smolvlm') ? 'smolvlm' : 'idefics3');
      const c = readCase(name);
      try {
        const ref = c.generate;
        const [B, S] = ref.shape;
        // transformers' generate() positions left-padded rows by cumsum(mask) - 1
        const got = greedy(m, c, S, 'mask');
        const want = Array.from({ length: B }, (_, b) => ref.toArray().slice(b * S, (b + 1) * S));
        console.log(`  ${name} greedy: ${JSON.stringify(got)} (transformers ${JSON.stringify(want)})`);
        assert.deepEqual(got, want);
        if (c.greedy_nocache) {
          const nc = c.greedy_nocache.toArray();
          assert.deepEqual(got[0], nc, 'cached greedy = uncached greedy');
        }
      } finally {
        disposeAll(c);
      }
    }
  });
});

describe('KV cache rows', () => {
  it('keepRows drops finished rows: the kept row decodes as before', () => {
    const m = model('idefics3');
    const c = readCase('idefics3_batch_leftpad');
    try {
      noGrad(() => tidy(() => {
        const [B, T] = c.input_ids.shape;
        const S = c.generate.shape[1];
        const want = c.generate.toArray().slice(S, 2 * S);
        const cache = m.createCache(B, T + S);
        const maskArr = Int32Array.from(c.attention_mask.toArray());
        const pos = tensor(positionsFromAttentionMask(maskArr, B, T), [B, T], { dtype: 'i32', backend: nat });
        let logits = m.prefill({ inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask, positionIds: pos }, cache);
        // row 0 "finishes" after the prefill: keep row 1 only
        let tok = argmax(logits, -1).toArray()[1];
        cache.keepRows([1]);
        assert.equal(cache.batch, 1);
        const got = [tok];
        const mask1 = Array.from(maskArr.slice(T, 2 * T));
        for (let s = 1; s < S; s++) {
          mask1.push(1);
          const len = mask1.length;
          const p = positionsFromAttentionMask(mask1, 1, len, 1);
          logits = m.step({
            inputIds: tensor([tok], [1, 1], { dtype: 'i32', backend: nat }),
            positionIds: tensor(p, [1, 1], { dtype: 'i32', backend: nat }),
            attentionMask: tensor(mask1, [1, len], { dtype: 'i32', backend: nat }),
          }, cache);
          tok = argmax(logits, -1).toArray()[0];
          got.push(tok);
        }
        assert.deepEqual(got, want);
        cache.dispose();
      }));
    } finally {
      disposeAll(c);
    }
  });
});

describe('low-rank adapters on the linears', () => {
  it('idefics3_lora_logits: the PEFT adapter attached to model.linears() gives transformers\' logits; disabled gives the base', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
    const c = readCase('idefics3_lora_logits');
    const f = SafetensorsFile.open(join(REF, 'tiny-idefics3-lora', 'adapter_model.safetensors'));
    try {
      const linears = m.linears();
      const scale = 8 / 4; // lora_alpha / r (adapter_config.json)
      let attached = 0;
      const adapters: LowRankAdapter[] = [];
      for (const n of f.names()) {
        const mm = /^base_model\.model\.(.*)\.lora_A\.weight$/.exec(n);
        if (!mm) continue;
        const lin = linears.get(mm[1]);
        assert.ok(lin, `adapter module ${mm[1]} is a linear of the model`);
        const ad: LowRankAdapter = {
          a: fromRaw(f.read(n), { backend: nat }),
          b: fromRaw(f.read(n.replace('lora_A', 'lora_B')), { backend: nat }),
          scale,
        };
        (lin.adapters ??= []).push(ad);
        adapters.push(ad);
        attached++;
      }
      assert.equal(attached, 20, '7 text modules x 2 layers + vision q/k/v x 2 layers');
      const run = () => noGrad(() => m.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask }));
      const withLora = run();
      const e = relErr(withLora, c.logits);
      report('idefics3_lora_logits', 'logits with the adapter', e);
      assert.ok(e.rel <= TOL);
      for (const ad of adapters) ad.enabled = false;
      const base = run();
      const ref = model('idefics3').forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask });
      assert.equal(relErr(base, ref).abs, 0, 'disabled adapters leave the base model');
      assert.ok(relErr(withLora, ref).rel > 1e-2, 'the adapter changes the logits');
      for (const t of [withLora, base, ref]) t.dispose();
      for (const ad of adapters) { ad.a.dispose(); ad.b.dispose(); }
    } finally {
      f.close();
      disposeAll(c);
      m.dispose();
    }
  });
});

describe('autograd through the model', () => {
  it('smolvlm_full_ft_grads: loss and the gradient of every parameter match transformers; nothing leaks', () => {
    // a private f32 copy: its parameters require grad
    const m = loadModel(join(REF, 'tiny-smolvlm'), { dtype: 'f32' });
    const c = readCase('smolvlm_full_ft_grads');
    try {
      const params = m.parameters();
      for (const p of params.values()) p.requireGrad();
      const before = storageStats().count;
      const loss = tidy(() => {
        const logits = m.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values, pixelAttentionMask: c.pixel_attention_mask });
        const T = logits.shape[1];
        // transformers' causal LM loss: logits of 0..T-2 against labels 1..T-1, mean over labels != -100
        const l = crossEntropy(slice(logits, 1, 0, T - 1), slice(c.labels, 1, 1, T), { ignoreIndex: -100 });
        backward(l);
        return l.item();
      });
      // every intermediate and saved tensor was released by the tidy; only the .grad of each parameter remains
      assert.equal(storageStats().count - before, params.size, 'one gradient per parameter, no other buffer left');
      const lr = Math.abs(loss - c.loss.item()) / Math.abs(c.loss.item());
      console.log(`  smolvlm_full_ft_grads loss ${loss} (transformers ${c.loss.item()}, rel ${lr.toExponential(2)})`);
      assert.ok(lr <= TOL);
      let worst = 0, worstName = '', maxGrad = 0;
      for (const n of params.keys()) maxGrad = Math.max(maxGrad, relErr(c['grad.' + n], c['grad.' + n]).maxRef);
      for (const [n, p] of params) {
        const ref = c['grad.' + n];
        assert.ok(ref, `the fixture has a gradient for ${n}`);
        assert.ok(p.grad, `${n} got a gradient`);
        const e = relErr(p.grad!, ref);
        if (n.includes('self_attn.k_proj.bias')) {
          // softmax ignores a per-query constant: this gradient is zero up to rounding in both implementations
          assert.ok(e.abs <= 1e-6 * maxGrad, `${n}: |grad| ${e.abs} should be ~0`);
          continue;
        }
        if (e.rel > worst) { worst = e.rel; worstName = n; }
        assert.ok(e.rel <= 1e-3, `${n}: gradient differs by ${e.rel}`);
      }
      console.log(`  smolvlm_full_ft_grads worst gradient max|diff|/max|ref| = ${worst.toExponential(2)} (${worstName}) over ${params.size} parameters`);
    } finally {
      disposeAll(c);
      for (const p of m.parameters().values()) { p.grad?.dispose(); p.grad = null; }
      m.dispose();
    }
  });
});

describe('reference backend', () => {
  it('idefics3_textonly and idefics3_nosplit_big_300x410 on the reference backend', () => {
    const m = model('idefics3', referenceBackend);
    for (const name of ['idefics3_textonly', 'idefics3_nosplit_big_300x410']) {
      const c = readCase(name, referenceBackend);
      try {
        const logits = noGrad(() => m.forward({
          inputIds: c.input_ids, attentionMask: c.attention_mask, pixelValues: c.pixel_values ?? null,
          pixelAttentionMask: c.pixel_attention_mask ?? null,
        }));
        const e = relErr(logits, c.logits);
        report(`${name} (reference backend)`, 'logits', e);
        assert.ok(e.rel <= TOL);
        logits.dispose();
      } finally {
        disposeAll(c);
      }
    }
  });
});

describe('loader', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-model-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const tinyConfig = () => JSON.parse(JSON.stringify({
    model_type: 'idefics3', image_token_id: 5, scale_factor: 2, tie_word_embeddings: false,
    text_config: { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, intermediate_size: 128, vocab_size: 448, rope_theta: 100000.0, rms_norm_eps: 1e-5 },
    vision_config: { hidden_size: 32, image_size: 32, patch_size: 8, intermediate_size: 64, num_attention_heads: 4, num_hidden_layers: 2 },
  })) as Record<string, unknown>;

  it('reads 4.x and 5.x config forms; defaults follow transformers', () => {
    const c4 = idefics3ConfigFromJson({
      model_type: 'idefics3', image_token_id: 49190, scale_factor: 4, tie_word_embeddings: true, vocab_size: 49280,
      text_config: {
        model_type: 'llama', hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3,
        intermediate_size: 1536, vocab_size: 49280, rope_theta: 100000, rms_norm_eps: 1e-5, max_position_embeddings: 8192,
        tie_word_embeddings: true, unknown_key: [1, 2],
      },
      vision_config: { hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, image_size: 512, patch_size: 16 },
    });
    assert.equal(c4.text.ropeTheta, 100000);
    assert.equal(c4.text.headDim, 64);
    assert.equal(c4.text.numKeyValueHeads, 3);
    assert.equal(c4.vision.patchesPerSide, 32);
    assert.equal(c4.imageSeqLen, 64);
    assert.equal(c4.tieWordEmbeddings, true);
    assert.equal(c4.vision.layerNormEps, 1e-6);
    assert.ok(Object.isFrozen(c4) && Object.isFrozen(c4.text));
    const c5 = idefics3ConfigFromJson({ model_type: 'smolvlm', text_config: { rope_parameters: { rope_theta: 273768, rope_type: 'default' } } });
    assert.equal(c5.text.ropeTheta, 273768);
    assert.equal(c5.vision.hiddenSize, 1152);
    assert.equal(c5.vision.patchSize, 32);
    assert.equal(c5.text.rmsNormEps, 1e-5);
    assert.equal(c5.imageTokenId, 128257);
    assert.equal(c5.tieWordEmbeddings, false);
  });

  it('rejects an unsupported model_type, listing the supported ones', () => {
    assert.throws(() => idefics3ConfigFromJson({ model_type: 'llava' }), (e: unknown) =>
      e instanceof VlmkitError && /model_type "llava"/.test(e.message) && /idefics3, smolvlm/.test(e.message));
    const d = join(tmp, 'llava');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...tinyConfig(), model_type: 'llava' }));
    copyFileSync(join(REF, 'tiny-idefics3', 'model.safetensors'), join(d, 'model.safetensors'));
    assert.throws(() => loadModel(d), /not supported .*idefics3, smolvlm/);
  });

  it('names a missing directory', () => {
    assert.throws(() => loadModel(join(tmp, 'nope')), (e: unknown) => e instanceof VlmkitError && /does not exist/.test(e.message));
  });

  /** A safetensors file with the given f32 tensors (name -> [shape, values]). */
  function writeSafetensors(path: string, tensors: Record<string, { shape: number[]; data: Float32Array }>): void {
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [n, t] of Object.entries(tensors)) {
      header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
      off += t.data.byteLength;
    }
    let h = Buffer.from(JSON.stringify(header));
    const pad = (8 - (h.length % 8)) % 8;
    h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(path, Buffer.concat([len, h, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]));
  }

  function tinyTensors(): Record<string, { shape: number[]; data: Float32Array }> {
    const f = SafetensorsFile.open(join(REF, 'tiny-idefics3', 'model.safetensors'));
    try {
      const out: Record<string, { shape: number[]; data: Float32Array }> = {};
      for (const n of f.names()) {
        const r = f.read(n);
        out[n] = { shape: r.shape, data: r.data as Float32Array };
      }
      return out;
    } finally {
      f.close();
    }
  }

  it('names a missing weight, its file and expected shape', () => {
    const d = join(tmp, 'missing');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify(tinyConfig()));
    const t = tinyTensors();
    delete t['model.text_model.layers.1.mlp.up_proj.weight'];
    writeSafetensors(join(d, 'model.safetensors'), t);
    assert.throws(() => loadModel(d), (e: unknown) => e instanceof VlmkitError &&
      /missing tensor "model\.text_model\.layers\.1\.mlp\.up_proj\.weight"/.test(e.message) && /\[128, 64\]/.test(e.message) &&
      e.message.includes('model.safetensors'));
  });

  it('names a weight of the wrong shape', () => {
    const d = join(tmp, 'shape');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify(tinyConfig()));
    const t = tinyTensors();
    t['model.text_model.norm.weight'] = { shape: [32], data: new Float32Array(32) };
    writeSafetensors(join(d, 'model.safetensors'), t);
    assert.throws(() => loadModel(d), /"model\.text_model\.norm\.weight" in .*model\.safetensors has shape \[32\], expected \[64\]/);
  });

  it('loads sharded checkpoints without the model. prefix and ties a missing lm_head', () => {
    const d = join(tmp, 'sharded');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify(tinyConfig()));
    const t = tinyTensors();
    const names = Object.keys(t).filter((n) => n !== 'lm_head.weight');
    const strip = (n: string) => n.replace(/^model\./, '');
    const a: typeof t = {}, b: typeof t = {};
    names.forEach((n, i) => ((i % 2 ? a : b)[strip(n)] = t[n]));
    writeSafetensors(join(d, 'model-00001-of-00002.safetensors'), a);
    writeSafetensors(join(d, 'model-00002-of-00002.safetensors'), b);
    const weightMap: Record<string, string> = {};
    for (const n of Object.keys(a)) weightMap[n] = 'model-00001-of-00002.safetensors';
    for (const n of Object.keys(b)) weightMap[n] = 'model-00002-of-00002.safetensors';
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const m = loadModel(d, { dtype: 'f32' });
    try {
      assert.equal(m.weights.text.tied, true);
      assert.equal(m.weights.text.lmHead, m.weights.text.embed);
      assert.ok(m.parameters().has('model.text_model.layers.0.self_attn.q_proj.weight'));
      assert.ok(!m.parameters().has('lm_head.weight'));
      // the same weights as the single-file checkpoint (lm_head aside): equal vision features
      const c = readCase('idefics3_vision_connector');
      try {
        noGrad(() => tidy(() => {
          const a1 = m.visionFeatures(c.pixel_values), a2 = model('idefics3').visionFeatures(c.pixel_values);
          assert.equal(relErr(a1, a2).abs, 0);
        }));
      } finally {
        disposeAll(c);
      }
    } finally {
      m.dispose();
    }
    // a shard named in the index but absent
    rmSync(join(d, 'model-00002-of-00002.safetensors'));
    assert.throws(() => loadModel(d), /shard model-00002-of-00002\.safetensors listed in .* is missing/);
  });

  it('keeps bf16 weights in bf16 unless dtype f32 is asked', () => {
    const d = join(tmp, 'bf16');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify(tinyConfig()));
    // write the tiny checkpoint in bf16
    const t = tinyTensors();
    const header: Record<string, unknown> = {};
    const bufs: Buffer[] = [];
    let off = 0;
    for (const [n, v] of Object.entries(t)) {
      const u = new Uint16Array(v.data.length);
      const u32 = new Uint32Array(v.data.buffer, v.data.byteOffset, v.data.length);
      for (let i = 0; i < u.length; i++) u[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16;
      header[n] = { dtype: 'BF16', shape: v.shape, data_offsets: [off, off + u.byteLength] };
      off += u.byteLength;
      bufs.push(Buffer.from(u.buffer));
    }
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(join(d, 'model.safetensors'), Buffer.concat([len, h, ...bufs]));
    const m = loadModel(d);
    const m32 = loadModel(d, { dtype: 'f32' });
    try {
      assert.equal((m.weights.text.layers[0].q.w as Tensor).dtype, 'bf16');
      assert.equal((m.weights.connector.proj as Tensor).dtype, 'bf16');
      assert.equal(m.weights.text.layers[0].inputNorm.dtype, 'f32');
      assert.equal(m.weights.vision.posEmbed.dtype, 'f32');
      assert.equal((m32.weights.text.layers[0].q.w as Tensor).dtype, 'f32');
      const c = readCase('idefics3_textonly');
      try {
        noGrad(() => tidy(() => {
          const a = m.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask });
          const b = m32.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask });
          const e = relErr(a, b);
          report('idefics3_textonly', 'bf16 weights vs the same weights in f32', e);
          assert.ok(e.rel <= 1e-4, `bf16 kernels read the weights exactly: ${e.rel}`);
          // and the bf16 rounding of the weights moves the logits only a little from transformers' f32 ones
          assert.ok(relErr(a, c.logits).rel < 0.05);
        }));
      } finally {
        disposeAll(c);
      }
    } finally {
      m.dispose();
      m32.dispose();
    }
  });
});
