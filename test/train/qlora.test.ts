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

test('LoRA on a Q8_0, Q4_0 or NF4 base (QLoRA): adapter gradients equal those on the dequantized f32 base', () => {
  // 3 rows: the decode kernels; 40 rows: gemm_nt strips (Q8_0) or decoded panels, and the decoded-panel input gradient
  for (const [fmt, M] of [['q8_0', 3], ['q8_0', 40], ['q4_0', 3], ['q4_0', 40], ['nf4', 3], ['nf4', 40]] as const) {
    const gq = loraGrads(nat, true, M, fmt), gf = loraGrads(nat, false, M, fmt);
    assert.equal(gq.size, 4);
    for (const [name, g] of gq) {
      const want = gf.get(name)!;
      let maxRef = 0, maxDiff = 0;
      for (let i = 0; i < g.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(want[i]));
        maxDiff = Math.max(maxDiff, Math.abs(g[i] - want[i]));
      }
      const rel = maxDiff / maxRef;
      assert.ok(maxRef > 0 && Number.isFinite(rel) && rel <= 1e-5, `${fmt} ${name} (${M} rows): max rel err ${rel}`);
    }
  }
});

test('a Linear<QuantizedWeight> is a Linear: models keep their plain type', () => {
  const l: Linear = { w: tensor([1, 2], [1, 2], { backend: nat }), b: null };
  const a: AdaptableLinear = l;
  assert.equal(a.w.rank, 2);
  (l.w as Tensor).dispose();
});
