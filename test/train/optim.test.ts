// The optimizer side as torch / transformers define it: AdamW against the textbook update in f64 over several
// steps (weight decay, no-decay groups, parameters without gradients skipped, per-parameter step counts), its
// state saved and restored to continue bit for bit; transformers' lr schedules; clip_grad_norm_.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, getBackend, tensor } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { isVisionParam } from '../../src/train/trainer.js';
import { AdamW, LrSchedule, clipGradNorm, lrLambda, noDecayHF, resolveWarmupSteps } from '../../src/train/optim.js';

const nat = getBackend('native');
const t = (v: number[], shape = [v.length]) => tensor(v, shape, { backend: nat });

/** torch.optim.AdamW's update in f64. */
function adamwRef(p: number[], grads: number[][], o: { lr: number[]; b1: number; b2: number; eps: number; wd: number }): number[] {
  const m = p.map(() => 0), v = p.map(() => 0);
  const x = p.slice();
  grads.forEach((g, k) => {
    const step = k + 1, lr = o.lr[k]!;
    for (let i = 0; i < x.length; i++) {
      x[i] *= 1 - lr * o.wd;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g[i]!;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g[i]! * g[i]!;
      const mh = m[i]! / (1 - o.b1 ** step), denom = Math.sqrt(v[i]!) / Math.sqrt(1 - o.b2 ** step) + o.eps;
      x[i] -= lr * mh / denom;
    }
  });
  return x;
}

function setGrad(p: Tensor, g: number[]): void {
  p.grad?.dispose();
  p.grad = t(g, [...p.shape]);
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `[${i}] ${a[i]} vs ${b[i]}`);
};

describe('AdamW', () => {
  it('a per-parameter lr scale is a torch param group with its own lr (weight decay scaled with it); isVisionParam picks the tower', () => {
    const w0 = [0.5, -1.25, 2], v0 = [0.3, 0.9, -0.4];
    const w = t(w0).requireGrad(), v = t(v0).requireGrad();
    const opt = new AdamW(new Map([['model.text_model.w', w], ['model.vision_model.v', v]]), { lr: 1e-2, weightDecay: 0.1, lrScale: (n) => (isVisionParam(n) ? 4 : 1) });
    const gw: number[][] = [], gv: number[][] = [], lrs: number[] = [];
    for (let k = 0; k < 4; k++) {
      gw.push(w0.map((_, i) => Math.sin(2 * i + k)));
      gv.push(v0.map((_, i) => Math.cos(3 * i - k)));
      lrs.push(1e-2 * (1 - k / 8));
      opt.lr = lrs[k]!;
      setGrad(w, gw[k]!);
      setGrad(v, gv[k]!);
      opt.step();
    }
    close(w.toFloat32Array(), adamwRef(w0, gw, { lr: lrs, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1 }), 2e-6);
    close(v.toFloat32Array(), adamwRef(v0, gv, { lr: lrs.map((x) => 4 * x), b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1 }), 2e-6);
    // and the scaled one did move differently from an unscaled run (the check can fail)
    assert.notDeepEqual([...v.toFloat32Array()], adamwRef(v0, gv, { lr: lrs, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1 }).map(Math.fround));
    opt.dispose();
    assert.ok(isVisionParam('model.vision_model.encoder.layers.0.mlp.fc1.weight'));
    assert.ok(isVisionParam('vision_model.embeddings.patch_embedding.weight'));
    assert.ok(!isVisionParam('model.text_model.layers.0.mlp.up_proj.weight'));
    assert.ok(!isVisionParam('model.connector.modality_projection.proj.weight'));
    assert.throws(() => new AdamW(new Map([['x', t([1]).requireGrad()]]), { lr: 1, lrScale: () => Number.NaN }), /lr scale of x/);
  });

  it('matches torch.optim.AdamW over 5 steps with a changing lr; no-decay parameters skip weight decay', () => {
    const w0 = [0.5, -1.25, 2, 0.03, -0.7, 1.1];
    const b0 = [0.1, -0.2];
    const w = t(w0, [2, 3]).requireGrad(), bias = t(b0).requireGrad();
    const opt = new AdamW(new Map([['layer.weight', w], ['layer.bias', bias]]), { lr: 1e-2, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1, noDecay: noDecayHF });
    const gw: number[][] = [], gb: number[][] = [], lrs: number[] = [];
    for (let k = 0; k < 5; k++) {
      gw.push(w0.map((_, i) => Math.sin(3 * i + k) * (k + 1)));
      gb.push(b0.map((_, i) => Math.cos(i - k)));
      lrs.push(1e-2 * (1 - k / 10));
      opt.lr = lrs[k]!;
      setGrad(w, gw[k]!);
      setGrad(bias, gb[k]!);
      opt.step();
    }
    close(w.toFloat32Array(), adamwRef(w0, gw, { lr: lrs, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.1 }), 2e-6);
    close(bias.toFloat32Array(), adamwRef(b0, gb, { lr: lrs, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0 }), 2e-6);
    assert.equal(opt.stepOf('layer.weight'), 5);
    opt.zeroGrad();
    assert.equal(w.grad, null);
    opt.dispose();
    w.dispose();
    bias.dispose();
  });

  it('a parameter without a gradient is not updated and its step count does not advance (as torch)', () => {
    const a = t([1, 2]).requireGrad(), b = t([3, 4]).requireGrad();
    const opt = new AdamW([['a', a], ['b', b]], { lr: 0.1 });
    setGrad(a, [1, 1]);
    opt.step();
    assert.deepEqual(b.toArray(), [3, 4]);
    assert.equal(opt.stepOf('a'), 1);
    assert.equal(opt.stepOf('b'), 0);
    setGrad(b, [1, -1]);
    opt.step();
    assert.equal(opt.stepOf('a'), 2, 'a keeps its (old) gradient, as torch would');
    assert.equal(opt.stepOf('b'), 1);
    close(b.toFloat32Array(), adamwRef([3, 4], [[1, -1]], { lr: [0.1], b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 }), 1e-6);
    opt.zeroGrad();
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('state saved after 2 steps and loaded into a fresh optimizer continues bit for bit', () => {
    const grads = [[0.3, -0.1, 0.7], [0.2, 0.2, -0.5], [-0.4, 0.1, 0.05], [0.9, -0.8, 0.3]];
    const run = (split: boolean): number[] => {
      const p = t([1, -1, 0.5]).requireGrad();
      let opt = new AdamW([['p', p]], { lr: 0.05 });
      for (let k = 0; k < 4; k++) {
        if (split && k === 2) {
          const st = opt.stateDict();
          const copy = { lr: st.lr, params: new Map([...st.params].map(([n, s]) => [n, { step: s.step, m: t(s.m.toArray()), v: t(s.v.toArray()) }])) };
          opt.dispose();
          opt = new AdamW([['p', p]], { lr: 0.05 });
          opt.loadStateDict(copy);
          for (const s of copy.params.values()) { s.m.dispose(); s.v.dispose(); }
        }
        setGrad(p, grads[k]!);
        opt.step();
      }
      opt.zeroGrad();
      opt.dispose();
      const out = p.toArray();
      p.dispose();
      return out;
    };
    assert.deepEqual(run(true), run(false));
  });

  it('refuses bf16 parameters and bad hyperparameters with a message that says what to do', () => {
    const h = tensor([1, 2], [2], { backend: nat, dtype: 'bf16' });
    assert.throws(() => new AdamW([['w', h]], { lr: 1e-3 }), /load the model with dtype 'f32'/);
    assert.throws(() => new AdamW([], { lr: 1e-3, beta2: 1 }), /beta2/);
    h.dispose();
  });

  it('noDecayHF: biases and norm weights, as transformers\' Trainer', () => {
    for (const n of ['model.text_model.layers.0.input_layernorm.weight', 'model.text_model.norm.weight', 'model.vision_model.post_layernorm.bias', 'x.mlp.fc1.bias', 'model.text_model.layers.1.post_attention_layernorm.weight', 'model.vision_model.encoder.layers.0.layer_norm1.weight'])
      assert.ok(noDecayHF(n), n);
    for (const n of ['model.text_model.layers.0.self_attn.q_proj.weight', 'base_model.model.model.text_model.layers.0.mlp.down_proj.lora_A.default.weight', 'lm_head.weight'])
      assert.ok(!noDecayHF(n), n);
  });
});

describe('learning-rate schedules (transformers)', () => {
  it('linear with warmup: 0, 0.5, then (total - k) / (total - warmup) down to 0', () => {
    const s = new LrSchedule('linear', 1, { totalSteps: 10, warmupSteps: 2 });
    assert.deepEqual(Array.from({ length: 11 }, (_, k) => s.lrAt(k)), [0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0]);
  });

  it('cosine with warmup: half a wave from 1 to 0 after warmup', () => {
    const s = new LrSchedule('cosine', 2e-4, { totalSteps: 10, warmupSteps: 2 });
    assert.equal(s.lrAt(1), 1e-4);
    assert.equal(s.lrAt(2), 2e-4);
    assert.ok(Math.abs(s.lrAt(6) - 1e-4) < 1e-18);
    assert.ok(Math.abs(s.lrAt(10)) < 1e-20);
    assert.ok(Math.abs(lrLambda('cosine', 4, 0, 8, 1) - 0) < 1e-12, 'one full cycle: back at the bottom half-way');
  });

  it('constant (with warmup) and warmup by ratio = ceil(total · ratio); steps win over ratio', () => {
    const s = new LrSchedule('constant', 3, { totalSteps: 100, warmupSteps: 3 });
    assert.deepEqual([0, 1, 2, 3, 50].map((k) => s.lrAt(k)), [0, 1, 2, 3, 3]);
    assert.equal(new LrSchedule('constant', 3, { totalSteps: 100 }).lrAt(0), 3);
    assert.equal(resolveWarmupSteps({ totalSteps: 10, warmupRatio: 0.15 }), 2);
    assert.equal(resolveWarmupSteps({ totalSteps: 10, warmupRatio: 0.15, warmupSteps: 5 }), 5);
    assert.equal(resolveWarmupSteps({ totalSteps: 7 }), 0);
    assert.throws(() => new LrSchedule('exponential' as 'linear', 1, { totalSteps: 3 }), /unknown lr schedule/);
    assert.throws(() => resolveWarmupSteps({ totalSteps: 3, warmupRatio: 2 }), /warmup ratio/);
  });
});

describe('clip_grad_norm_', () => {
  it('global 2-norm over every gradient; scaled by max / (norm + 1e-6) only when above', () => {
    const a = t([0, 0]).requireGrad(), b = t([0]).requireGrad(), c = t([5]).requireGrad();
    setGrad(a, [3, 4]);
    setGrad(b, [12]);
    assert.equal(clipGradNorm([a, b, c], 100), 13);
    assert.deepEqual(a.grad!.toArray(), [3, 4], 'below the maximum: unchanged');
    assert.equal(clipGradNorm([a, b, c], 1), 13);
    const k = Math.fround(1 / (13 + 1e-6));
    close(a.grad!.toFloat32Array(), [3 * k, 4 * k], 1e-7);
    close(b.grad!.toFloat32Array(), [12 * k], 1e-7);
    assert.ok(Math.abs(clipGradNorm([a, b], 5) - 1) < 1e-5);
    setGrad(a, [-7, 2]);
    assert.equal(clipGradNorm([a, b], 1, { normType: Infinity }), 7);
    setGrad(a, [NaN, 1]);
    assert.throws(() => clipGradNorm([a], 1, { errorIfNonfinite: true }), /diverged/);
    assert.equal(clipGradNorm([c], 1), 0, 'no gradients: norm 0');
    for (const x of [a, b, c]) { x.grad?.dispose(); x.dispose(); }
  });
});
