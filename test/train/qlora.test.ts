// LoRA over a block-quantized (Q8_0, Q4_0, NF4 double-quantized: QLoRA) base weight: the base is frozen, the f32
// adapters train, and their gradients equal those on a base that holds the dequantized f32 values; merging into a
// quantized base is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Backend, type QuantFormat, QuantizedWeight, type Tensor, Rng, backward, getBackend, mul, quantize, silu, sum, tensor, tidy,
} from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { VlmkitError } from '../../src/errors.js';
import { type Linear, applyLinear } from '../../src/models/common.js';
import { type AdaptableLinear, LoraModel } from '../../src/train/lora.js';

const nat = getBackend('native');

/** Two stacked linears (q_proj, o_proj) with a silu between, on a given base weight kind. */
class Toy {
  readonly layers: Map<string, AdaptableLinear>;
  constructor(ws: [Tensor | QuantizedWeight, Tensor | QuantizedWeight], bias: Tensor) {
    this.layers = new Map<string, AdaptableLinear>([
      ['layers.0.q_proj', { w: ws[0], b: bias }],
      ['layers.0.o_proj', { w: ws[1], b: null }],
    ]);
  }
  linears(): Map<string, AdaptableLinear> {
    return this.layers;
  }
  forward(x: Tensor): Tensor {
    return applyLinear(silu(applyLinear(x, this.layers.get('layers.0.q_proj')!)), this.layers.get('layers.0.o_proj')!);
  }
}

function values(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** LoRA gradients (PEFT names -> values) of sum(out * probe) for a base of quantized weights or their f32 values. */
function loraGrads(b: Backend, quantized: boolean, M: number, fmt: QuantFormat = 'q8_0'): Map<string, number[]> {
  return tidy(() => {
    const rng = new Rng(21);
    const w0 = tensor(values(rng, 128 * 64), [128, 64], { backend: b });
    const w1 = tensor(values(rng, 32 * 128), [32, 128], { backend: b });
    const bias = tensor(values(rng, 128), [128], { backend: b });
    const q = [quantize(w0, fmt), quantize(w1, fmt)] as const;
    const base: [Tensor | QuantizedWeight, Tensor | QuantizedWeight] = quantized ? [q[0], q[1]] : [q[0].dequantize(), q[1].dequantize()];
    const model = new Toy(base, bias);
    // init false: B is not zero, so A's gradient is not zero either
    const lora = LoraModel.create(model, { targetModules: ['q_proj', 'o_proj'], r: 4, loraAlpha: 8, initLoraWeights: false }, { seed: 5 });
    const x = tensor(values(rng, M * 64), [M, 64], { backend: b });
    const probe = tensor(values(rng, M * 32), [M, 32], { backend: b });
    backward(sum(mul(model.forward(x), probe)));
    const out = new Map<string, number[]>();
    for (const [name, t] of lora.parameters()) {
      assert.ok(t.grad, `${name} has a gradient`);
      out.set(name, t.grad.toArray());
    }
    if (quantized) {
      assert.throws(() => lora.merge(), (e: Error) => e instanceof VlmkitError && new RegExp(`layers\\.0\\.q_proj.*${fmt} base weight`).test(e.message));
      assert.throws(() => lora.mergedWeight('layers.0.o_proj'), VlmkitError);
    }
    lora.remove();
    for (const w of q) w.dispose();
    return out;
  });
}

/** Max |g - want| over max |want| at most `tol` (a zero or non-finite reference fails). */
function assertClose(g: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < g.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(g[i]! - want[i]!));
  }
  const rel = maxDiff / maxRef;
  assert.ok(g.length === want.length && maxRef > 0 && Number.isFinite(rel) && rel <= tol, `${what}: max rel err ${rel}`);
}

test('LoRA on a Q8_0, Q4_0 or NF4 base (QLoRA): adapter gradients equal those on the dequantized f32 base', () => {
  // 3 rows: the decode kernels; 40 rows: gemm_nt strips (Q8_0) or decoded panels, and the decoded-panel input gradient
  for (const [fmt, M] of [['q8_0', 3], ['q8_0', 40], ['q4_0', 3], ['q4_0', 40], ['nf4', 3], ['nf4', 40]] as const) {
    const gq = loraGrads(nat, true, M, fmt), gf = loraGrads(nat, false, M, fmt);
    assert.equal(gq.size, 4);
    for (const [name, g] of gq) assertClose(g, gf.get(name)!, 1e-5, `${fmt} ${name} (${M} rows)`);
  }
});

test('a Linear<QuantizedWeight> is a Linear: models keep their plain type', () => {
  const l: Linear = { w: tensor([1, 2], [1, 2], { backend: nat }), b: null };
  const a: AdaptableLinear = l;
  assert.equal(a.w.rank, 2);
  (l.w as Tensor).dispose();
});

// The whole model: an NF4 base (its token embeddings and lm_head in Q8_0, as Idefics3Model.quantize keeps them)
// against the f32 model holding every packed weight's dequantized values. The loss runs as training runs it
// (causalLmLoss: the lookup in the Q8_0 table, the fused head loss reading the Q8_0 head); the adapters' gradients
// agree to the bound.
test('QLoRA on the tiny Idefics3 model: adapter gradients equal those of the f32 model holding the dequantized weights', async () => {
  const { loadModel } = await import('../../src/models/idefics3/model.js');
  const { causalLmLoss } = await import('../../src/train/loss.js');
  const TINY = new URL('../fixtures/reference/tiny-idefics3', import.meta.url).pathname;
  const q = loadModel(TINY, { dtype: 'f32', quant: 'nf4' });
  const f = loadModel(TINY, { dtype: 'f32' });
  const deq: Tensor[] = [];
  try {
    const packed = q.quantizedWeights();
    assert.equal(packed.get('model.text_model.embed_tokens.weight')?.format, 'q8_0');
    assert.equal(packed.get('lm_head.weight')?.format, 'q8_0');
    // f: every packed weight of q as its dequantized f32 values
    const fl = f.linears();
    for (const [name, w] of packed) {
      const d = w.dequantize();
      deq.push(d);
      if (name === 'model.text_model.embed_tokens.weight') f.text.w.embed = d;
      else if (name === 'lm_head.weight') f.text.w.lmHead = d;
      else fl.get(name.slice(0, -'.weight'.length))!.w = d;
    }
    const grads = (m: typeof q) => tidy(() => {
      const lora = LoraModel.create(m, { targetModules: ['q_proj', 'v_proj', 'down_proj'], r: 4, loraAlpha: 8, initLoraWeights: false }, { seed: 7 });
      const T = 12, ids = Array.from({ length: T }, (_, t) => 3 + ((t * 37) % 90));
      const inputIds = tensor(ids, [1, T], { backend: nat, dtype: 'i32' });
      const labels = ids.map((v, t) => (t < 4 ? -100 : v));
      backward(causalLmLoss(m, { inputIds }, labels));
      const out = new Map<string, number[]>();
      for (const [name, t] of lora.parameters()) {
        if (name.includes('vision_model')) continue; // (no image here: the tower's adapters take no gradient)
        assert.ok(t.grad, `${name} has a gradient`);
        out.set(name, t.grad.toArray());
      }
      lora.remove();
      return out;
    });
    const gq = grads(q), gf = grads(f);
    assert.ok(gq.size > 0);
    for (const [name, g] of gq) assertClose(g, gf.get(name)!, 1e-4, name);
  } finally {
    q.dispose();
    f.dispose();
    for (const d of deq) d.dispose();
  }
});
