// LoRA semantics (PEFT's): which modules a config targets, r/alpha/scaling per module, initialisation, dropout
// in training mode only and reproducible, enable/disable, merge (same logits as base + adapter, f32 and bf16
// weights) and unmerge (the base weights back), and the trainable-parameter selection.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, backward, bf16ToF32, f32ToBf16, getBackend, noGrad, sum, tensor, tidy } from '../../src/engine/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import '../../src/engine/backend/native/index.js';
import { VlmkitError } from '../../src/errors.js';
import { type Idefics3Model, type Linear, loadModel } from '../../src/models/idefics3/index.js';
import { applyLinear } from '../../src/models/common.js';
import { readCaseTensors, tensorRelErr } from '../../src/parity/train.js';
import {
  LoraModel, loraConfig, loraScaling, matchesTarget, patternKey, resolveTargets,
} from '../../src/train/lora.js';
import { loadAdapter } from '../../src/train/peft.js';
import { countParameters, selectParameters, setTrainable, trainableParameters } from '../../src/train/params.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const nat = getBackend('native');

let shared: Idefics3Model | null = null;
function tiny(): Idefics3Model {
  shared ??= loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
  return shared;
}
after(() => shared?.dispose());

const caseData = readCaseTensors(join(REF, 'cases', 'idefics3_lora_logits.safetensors'));
after(() => { for (const t of caseData.values()) t.dispose(); });
function logitsOf(m: Idefics3Model): Tensor {
  return noGrad(() => m.forward({
    inputIds: caseData.get('input_ids')!, attentionMask: caseData.get('attention_mask'),
    pixelValues: caseData.get('pixel_values'), pixelAttentionMask: caseData.get('pixel_attention_mask'),
  }));
}

describe('target modules as PEFT matches them', () => {
  it('names match the exact path or a "."-suffix; regex strings must match the whole path', () => {
    const c = loraConfig({ targetModules: ['q_proj', 'model.text_model.layers.1.mlp.down_proj'] });
    assert.ok(matchesTarget(c, 'model.text_model.layers.0.self_attn.q_proj'));
    assert.ok(matchesTarget(c, 'q_proj'));
    assert.ok(!matchesTarget(c, 'model.text_model.layers.0.self_attn.xq_proj'), 'a suffix only after a dot');
    assert.ok(matchesTarget(c, 'model.text_model.layers.1.mlp.down_proj'));
    assert.ok(!matchesTarget(c, 'model.text_model.layers.0.mlp.down_proj'));
    const re = loraConfig({ targetModules: '.*text_model.*\\.(q_proj|v_proj)' });
    assert.ok(matchesTarget(re, 'model.text_model.layers.0.self_attn.v_proj'));
    assert.ok(!matchesTarget(re, 'model.vision_model.encoder.layers.0.self_attn.v_proj'));
    assert.ok(!matchesTarget(loraConfig({ targetModules: 'q_proj' }), 'model.text_model.layers.0.self_attn.q_proj'), 'fullmatch, not search');
  });

  it('exclude_modules and layers_to_transform / layers_pattern narrow the match', () => {
    const c = loraConfig({ targetModules: ['q_proj', 'v_proj'], excludeModules: ['vision_model.encoder.layers.0.self_attn.q_proj'] });
    assert.ok(!matchesTarget(c, 'model.vision_model.encoder.layers.0.self_attn.q_proj'));
    assert.ok(matchesTarget(c, 'model.vision_model.encoder.layers.1.self_attn.q_proj'));
    const l = loraConfig({ targetModules: ['q_proj'], layersToTransform: [1], layersPattern: 'layers' });
    assert.ok(matchesTarget(l, 'model.text_model.layers.1.self_attn.q_proj'));
    assert.ok(!matchesTarget(l, 'model.text_model.layers.0.self_attn.q_proj'));
    const n = loraConfig({ targetModules: ['q_proj'], layersToTransform: 0 });
    assert.ok(matchesTarget(n, 'model.text_model.layers.0.self_attn.q_proj'));
    assert.ok(!matchesTarget(n, 'model.text_model.layers.1.self_attn.q_proj'));
  });

  it('the fixture adapter\'s targets hit the text modules and the vision q/k/v (20 layers)', () => {
    const c = loraConfig({ targetModules: ['down_proj', 'o_proj', 'k_proj', 'q_proj', 'v_proj', 'gate_proj', 'up_proj'] });
    const t = resolveTargets(tiny(), c);
    assert.equal(t.length, 20);
    assert.ok(t.includes('model.vision_model.encoder.layers.1.self_attn.k_proj'));
    assert.ok(!t.some((n) => n.includes('out_proj') || n.includes('fc1')));
  });

  it('"all-linear": every linear but lm_head, the connector included, the patch conv not', () => {
    const t = resolveTargets(tiny(), loraConfig({ targetModules: 'all-linear' }));
    // vision: q, k, v, out_proj, fc1, fc2 x 2 layers; connector; text: 7 x 2 layers
    assert.equal(t.length, 12 + 1 + 14);
    assert.ok(t.includes('model.connector.modality_projection.proj'));
    assert.ok(!t.some((n) => n.includes('patch_embedding') || n.includes('lm_head')));
  });

  it('targets that match nothing, or a conv, are errors that say what the layers are called', () => {
    assert.throws(() => resolveTargets(tiny(), loraConfig({ targetModules: ['c_attn'] })), (e: Error) =>
      e instanceof VlmkitError && /match no linear layer/.test(e.message) && /q_proj/.test(e.message) && /all-linear/.test(e.message));
    assert.throws(() => resolveTargets(tiny(), loraConfig({ targetModules: ['patch_embedding'] })), /convolution/);
  });

  it('config validation: r, dropout, a bad regex; DoRA accepted', () => {
    assert.throws(() => loraConfig({ targetModules: ['q_proj'], r: 0 }), /r must be a positive integer/);
    assert.throws(() => loraConfig({ targetModules: ['q_proj'], loraDropout: 1 }), /lora_dropout/);
    assert.equal(loraConfig({ targetModules: ['q_proj'], useDora: true }).useDora, true);
    assert.throws(() => loraConfig({ targetModules: '(' }), /not a valid regular expression/);
    assert.throws(() => loraConfig({ targetModules: [] }), /target_modules is empty/);
  });
});

describe('rank, alpha and scaling', () => {
  it('alpha / r, alpha / sqrt(r) with rsLoRA, rank_pattern / alpha_pattern by "(.*\\.)?(key)$"', () => {
    const c = loraConfig({ targetModules: ['q_proj', 'v_proj'], r: 8, loraAlpha: 16, rankPattern: { 'layers.1.self_attn.q_proj': 4 }, alphaPattern: { v_proj: 4 } });
    assert.deepEqual(loraScaling(c, 'model.text_model.layers.0.self_attn.q_proj'), { r: 8, alpha: 16, scale: 2 });
    assert.deepEqual(loraScaling(c, 'model.text_model.layers.1.self_attn.q_proj'), { r: 4, alpha: 16, scale: 4 });
    assert.deepEqual(loraScaling(c, 'model.text_model.layers.0.self_attn.v_proj'), { r: 8, alpha: 4, scale: 0.5 });
    assert.equal(patternKey(['q_proj'], 'model.x.xq_proj'), null, 'a key matches whole dotted components');
    const rs = loraConfig({ targetModules: ['q_proj'], r: 16, loraAlpha: 8, useRslora: true });
    assert.equal(loraScaling(rs, 'a.q_proj').scale, 2);
    const m = tiny();
    const lora = LoraModel.create(m, c, { seed: 1 });
    try {
      const l = lora.layers().get('model.text_model.layers.1.self_attn.q_proj')!;
      assert.deepEqual(l.adapter.a.shape, [4, 64]);
      assert.equal(l.adapter.scale, 4);
    } finally {
      lora.remove();
    }
  });
});

describe('initialisation', () => {
  it('default: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform a=sqrt(5)), B = 0, so the model is unchanged', () => {
    const m = tiny();
    const base = logitsOf(m);
    const lora = LoraModel.create(m, { targetModules: ['q_proj', 'down_proj'], r: 4, loraAlpha: 8 }, { seed: 7 });
    try {
      for (const l of lora.layers().values()) {
        const K = l.linear.w.shape[1];
        const a = l.adapter.a.toFloat32Array();
        const bound = 1 / Math.sqrt(K);
        assert.ok(a.every((v) => Math.abs(v) <= bound));
        assert.ok(Math.max(...a.map(Math.abs)) > 0.8 * bound, 'spread over the interval');
        assert.ok(l.adapter.b.toFloat32Array().every((v) => v === 0));
        assert.ok(l.adapter.a.requiresGrad && l.adapter.b.requiresGrad);
      }
      const withLora = logitsOf(m);
      assert.equal(tensorRelErr(withLora, base), 0, 'B = 0: the adapter is a no-op');
      const again = LoraModel.create(m, { targetModules: ['q_proj', 'down_proj'], r: 4, loraAlpha: 8 }, { seed: 7 });
      const p1 = lora.parameters(), p2 = again.parameters();
      for (const [n, t] of p1) assert.equal(tensorRelErr(p2.get(n)!, t), 0, 'same seed, same weights');
      again.remove();
      base.dispose();
      withLora.dispose();
    } finally {
      lora.remove();
    }
  });

  it('"gaussian": A ~ N(0, 1/r²)', () => {
    const m = tiny();
    const lora = LoraModel.create(m, { targetModules: 'all-linear', r: 4, initLoraWeights: 'gaussian' }, { seed: 3 });
    try {
      let s = 0, s2 = 0, n = 0;
      for (const l of lora.layers().values()) for (const v of l.adapter.a.toFloat32Array()) { s += v; s2 += v * v; n++; }
      const mean = s / n, std = Math.sqrt(s2 / n - mean * mean);
      assert.ok(Math.abs(std - 0.25) < 0.01, `std ${std}`);
      assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    } finally {
      lora.remove();
    }
  });
});

describe('forward, dropout, enable/disable', () => {
  function oneLinear(): { lin: Linear; model: { linears(): Map<string, Linear> } } {
    const w = tensor(Array.from({ length: 6 * 5 }, (_, i) => Math.sin(i)), [6, 5], { backend: nat });
    const lin: Linear = { w, b: null };
    return { lin, model: { linears: () => new Map([['layer.proj', lin]]) } };
  }

  it('y = W x + scaling · B A x, the gradient of A and B as the formula', () => {
    const { lin, model } = oneLinear();
    const lora = LoraModel.create(model, { targetModules: ['proj'], r: 2, loraAlpha: 6, initLoraWeights: false }, { seed: 5 });
    const x = tensor(Array.from({ length: 3 * 5 }, (_, i) => Math.cos(i)), [3, 5], { backend: nat });
    const { a, b } = lora.layers().get('layer.proj')!.adapter;
    const A = a.toArray(), B = b.toArray(), W = (lin.w as Tensor).toArray(), X = x.toArray();
    tidy(() => {
      const y = applyLinear(x, lin);
      const Y = y.toArray();
      for (let i = 0; i < 3; i++) for (let o = 0; o < 6; o++) {
        let want = 0;
        for (let k = 0; k < 5; k++) want += W[o * 5 + k] * X[i * 5 + k];
        for (let j = 0; j < 2; j++) {
          let ax = 0;
          for (let k = 0; k < 5; k++) ax += A[j * 5 + k] * X[i * 5 + k];
          want += 3 * B[o * 2 + j] * ax;
        }
        assert.ok(Math.abs(Y[i * 6 + o] - want) < 1e-5, `y[${i},${o}] ${Y[i * 6 + o]} vs ${want}`);
      }
      backward(sum(y));
    });
    // d sum(y) / dB[o, j] = 3 · Σ_i (A x_i)_j ; d / dA[j, k] = 3 · Σ_i Σ_o B[o, j] x_i[k]
    const gB = b.grad!.toArray(), gA = a.grad!.toArray();
    for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let i = 0; i < 3; i++) for (let k = 0; k < 5; k++) s += A[j * 5 + k] * X[i * 5 + k];
      for (let o = 0; o < 6; o++) assert.ok(Math.abs(gB[o * 2 + j] - 3 * s) < 1e-4);
      let bs = 0;
      for (let o = 0; o < 6; o++) bs += B[o * 2 + j];
      for (let k = 0; k < 5; k++) {
        let xs = 0;
        for (let i = 0; i < 3; i++) xs += X[i * 5 + k];
        assert.ok(Math.abs(gA[j * 5 + k] - 3 * bs * xs) < 1e-4);
      }
    }
    lora.remove();
    x.dispose();
    lin.w.dispose();
  });

  it('dropout acts in training mode only, scaled by 1/(1-p), the same masks for the same (seed, dropoutStep)', () => {
    const { lin, model } = oneLinear();
    const lora = LoraModel.create(model, { targetModules: ['proj'], r: 2, loraDropout: 0.5, initLoraWeights: false }, { seed: 9 });
    const x = tensor(new Array(64 * 5).fill(1), [64, 5], { backend: nat });
    const run = () => noGrad(() => tidy(() => applyLinear(x, lin).toFloat32Array()));
    const evalOut = run();
    lora.train();
    const t1 = run(), t1b = run();
    lora.dropoutStep = 1;
    const t2 = run();
    assert.ok(t1.some((v, i) => Math.abs(v - evalOut[i]!) > 1e-4), 'dropout changes the training output');
    assert.deepEqual(t1, t1b, 'a recomputation (same step) sees the same masks');
    assert.ok(t2.some((v, i) => v !== t1[i]), 'another step, other masks');
    // inverted dropout: each input element is zeroed with probability p or scaled by 1/(1-p)
    const dropped = tidy(() => lora.layers().get('layer.proj')!.adapter.input!(x).toFloat32Array());
    assert.ok(dropped.every((v) => v === 0 || v === 2));
    const zeros = dropped.filter((v) => v === 0).length / dropped.length;
    assert.ok(Math.abs(zeros - 0.5) < 0.08, `dropped fraction ${zeros}`);
    lora.eval();
    assert.deepEqual(run(), evalOut);
    lora.remove();
    x.dispose();
    lin.w.dispose();
  });

  it('setEnabled(false) / withDisabled give the base model; remove() detaches and frees', () => {
    const m = tiny();
    const base = logitsOf(m);
    const lora = loadAdapter(m, join(REF, 'tiny-idefics3-lora'));
    const withLora = logitsOf(m);
    assert.ok(tensorRelErr(withLora, base) > 1e-2);
    const off = lora.withDisabled(() => logitsOf(m));
    assert.equal(tensorRelErr(off, base), 0);
    assert.equal(lora.enabled, true);
    const a = [...lora.parameters().values()][0]!;
    lora.remove();
    assert.ok(a.isDisposed);
    const after_ = logitsOf(m);
    assert.equal(tensorRelErr(after_, base), 0);
    for (const t of [base, withLora, off, after_]) t.dispose();
  });
});

describe('merge and unmerge', () => {
  it('f32: merged weights give the logits of base + adapter; unmerge restores the base weights', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
    try {
      const params = m.parameters();
      const before = new Map([...params].map(([n, t]) => [n, t.toFloat32Array()]));
      const lora = loadAdapter(m, join(REF, 'tiny-idefics3-lora'));
      const ref = logitsOf(m);
      lora.merge();
      assert.equal(lora.merged, true);
      const merged = logitsOf(m);
      const e = tensorRelErr(merged, ref);
      console.log(`  merged f32 vs base + adapter: logits max|diff|/max|ref| = ${e.toExponential(2)}`);
      assert.ok(e <= 1e-5, `merged logits differ by ${e}`);
      lora.unmerge();
      let worst = 0;
      for (const [n, t] of params) {
        const b = before.get(n)!, now = t.toFloat32Array();
        let md = 0, mr = 0;
        for (let i = 0; i < b.length; i++) { md = Math.max(md, Math.abs(now[i]! - b[i]!)); mr = Math.max(mr, Math.abs(b[i]!)); }
        worst = Math.max(worst, md / mr);
      }
      console.log(`  unmerge: base weights back within max|diff|/max|W| = ${worst.toExponential(2)} (f32 rounding of W + d - d)`);
      assert.ok(worst <= 1e-6);
      const back = logitsOf(m);
      assert.ok(tensorRelErr(back, ref) <= 1e-5, 'unmerged: the adapter applies again');
      lora.remove();
      for (const t of [ref, merged, back]) t.dispose();
    } finally {
      m.dispose();
    }
  });

  it('bf16 frozen weights: the adapter trains on top of them and merges into them in bf16', () => {
    const dir = bf16Copy();
    const m = loadModel(dir);
    // the same bf16 weights, widened to f32 on load: the only difference left is the bf16 weight path itself
    const m32 = loadModel(dir, { dtype: 'f32' });
    try {
      const q = m.linears().get('model.text_model.layers.0.self_attn.q_proj')!;
      assert.equal((q.w as Tensor).dtype, 'bf16');
      assert.equal((m32.linears().get('model.text_model.layers.0.self_attn.q_proj')!.w as Tensor).dtype, 'f32');
      const lora = loadAdapter(m, join(REF, 'tiny-idefics3-lora'), { trainable: true });
      const lora32 = loadAdapter(m32, join(REF, 'tiny-idefics3-lora'), { trainable: true });
      const ref = logitsOf(m);
      // gradients flow through the bf16 base into A and B, as they do through the same weights held in f32
      for (const [mm, l] of [[m, lora], [m32, lora32]] as const) {
        l.train();
        tidy(() => {
          const lg = mm.forward({ inputIds: caseData.get('input_ids')!, pixelValues: caseData.get('pixel_values'), pixelAttentionMask: caseData.get('pixel_attention_mask') });
          backward(sum(lg));
        });
        l.eval();
      }
      const g32 = lora32.parameters();
      let worst = 0;
      for (const [n, p] of lora.parameters()) worst = Math.max(worst, tensorRelErr(p.grad!, g32.get(n)!.grad!));
      console.log(`  bf16 base vs the same weights in f32: LoRA gradients max|diff|/max|ref| = ${worst.toExponential(2)}`);
      assert.ok(Number.isFinite(worst) && worst <= 1e-4, `LoRA gradients on a bf16 base differ by ${worst}`);
      for (const p of [...lora.parameters().values(), ...g32.values()]) { p.grad?.dispose(); p.grad = null; }
      // merge: W = bf16(W + scaling · B·A), exactly as torch's in-place add on a bf16 weight
      const w0 = ((q.w as Tensor).data as Uint16Array).slice();
      const delta = lora.deltaWeight('model.text_model.layers.0.self_attn.q_proj');
      lora.merge();
      const w1 = (q.w as Tensor).data as Uint16Array;
      for (let i = 0; i < w0.length; i++) assert.equal(w1[i], f32ToBf16(bf16ToF32(w0[i]!) + delta[i]!));
      const merged = logitsOf(m);
      const e = tensorRelErr(merged, ref);
      console.log(`  merged bf16 vs bf16 base + adapter: logits max|diff|/max|ref| = ${e.toExponential(2)} (bf16 rounding of W + d)`);
      assert.ok(e < 2e-2, `merged bf16 logits differ by ${e}`);
      lora.unmerge();
      // PEFT's unmerge in bf16 (W -= bf16(delta)) returns W up to the rounding of W + delta: a few bf16 ulps
      let moved = 0, maxW = 0;
      const w2 = (q.w as Tensor).data as Uint16Array;
      for (let i = 0; i < w0.length; i++) {
        moved = Math.max(moved, Math.abs(bf16ToF32(w2[i]!) - bf16ToF32(w0[i]!)));
        maxW = Math.max(maxW, Math.abs(bf16ToF32(w0[i]!)));
      }
      console.log(`  unmerge bf16: max|W - W0| / max|W0| = ${(moved / maxW).toExponential(2)}`);
      assert.ok(moved / maxW <= 2 ** -7, `unmerge moved the bf16 weights by ${moved / maxW} of their max`);
      lora.remove();
      lora32.remove();
      ref.dispose();
      merged.dispose();
    } finally {
      m.dispose();
      m32.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A copy of tiny-idefics3 with every 2-D weight stored in bf16 (as Hub checkpoints are). */
function bf16Copy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bf16-'));
  copyFileSync(join(REF, 'tiny-idefics3', 'config.json'), join(dir, 'config.json'));
  const f = SafetensorsFile.open(join(REF, 'tiny-idefics3', 'model.safetensors'));
  try {
    const entries: SafetensorsEntry[] = f.names().map((n) => {
      const t = f.read(n);
      if (t.shape.length !== 2) return { name: n, dtype: 'F32', shape: t.shape, data: t.data };
      const d = t.data as Float32Array;
      const h = new Uint16Array(d.length);
      for (let i = 0; i < d.length; i++) h[i] = f32ToBf16(d[i]!);
      return { name: n, dtype: 'BF16', shape: t.shape, data: h };
    });
    writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt' });
  } finally {
    f.close();
  }
  return dir;
}

describe('trainable parameters', () => {
  it('full, frozen vision tower, LoRA only', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
    try {
      const all = m.parameters();
      const full = trainableParameters(m, 'full');
      assert.equal(full.size, all.size);
      assert.ok([...all.values()].every((t) => t.requiresGrad));
      const fv = trainableParameters(m, 'frozen-vision');
      assert.ok(![...fv.keys()].some((n) => n.includes('vision_model')));
      assert.ok(fv.has('model.connector.modality_projection.proj.weight'));
      assert.ok([...all].every(([n, t]) => t.requiresGrad === !n.includes('vision_model')));
      const lora = LoraModel.create(m, { targetModules: ['q_proj', 'v_proj'], r: 2 });
      const lp = trainableParameters(m, 'lora', lora);
      assert.ok([...all.values()].every((t) => !t.requiresGrad), 'the base is frozen');
      assert.equal(lp.size, 8 * 2);
      assert.ok([...lp.keys()].every((n) => /^base_model\.model\..*\.lora_[AB]\.default\.weight$/.test(n)));
      let want = 0;
      for (const l of lora.layers().values()) want += 2 * (l.linear.w.shape[0] + l.linear.w.shape[1]);
      assert.equal(countParameters(lp.values()), want);
      const sel = selectParameters(all, { include: ['text_model'], exclude: [/norm/] });
      assert.ok([...sel.keys()].every((n) => n.includes('text_model') && !n.includes('norm')));
      assert.throws(() => setTrainable(m, { include: ['nothing-like-this'] }), /no parameter matches/);
      lora.remove();
    } finally {
      m.dispose();
    }
  });
});
