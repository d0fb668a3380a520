// DoRA (PEFT's use_dora) on one linear: the forward equals m ⊙ (W + s·BA) / ‖W + s·BA‖ computed here with plain
// loops (f32, bf16 and NF4 bases); the gradients of A, B, m and the input equal finite differences of that function
// with the norm held constant (PEFT's detached norm), which differ from those of the non-detached function; a new
// adapter is the base model exactly; dropout follows PEFT (a second base product of the dropped input); the merge
// equals the unmerged forward and the unmerge gives W back.
import { withExactActivations } from '../../src/engine/quant/activations.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, QuantizedWeight, Rng, backward, getBackend, mul, noGrad, quantize, sum, tensor, tidy } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { applyLinear } from '../../src/models/common.js';
import { type AdaptableLinear, LoraModel } from '../../src/train/lora.js';

const nat = getBackend('native');

function values(rng: Rng, n: number, lo = -1, hi = 1): number[] {
  return Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
}

/** One linear q_proj [N, K] with a bias, as a model with one adaptable layer. */
class One {
  readonly lin: AdaptableLinear;
  constructor(w: Tensor | QuantizedWeight, b: Tensor | null) {
    this.lin = { w, b };
  }
  linears(): Map<string, AdaptableLinear> {
    return new Map([['layers.0.q_proj', this.lin]]);
  }
}

interface Plain {
  N: number; K: number; T: number; r: number; s: number;
  w: Float64Array; bias: Float64Array | null; a: Float64Array; b: Float64Array; m: Float64Array; x: Float64Array;
}

/** s·BA + W, row-major [N, K] */
function adapted(p: Plain): Float64Array {
  const v = new Float64Array(p.N * p.K);
  for (let i = 0; i < p.N; i++)
    for (let k = 0; k < p.K; k++) {
      let ba = 0;
      for (let j = 0; j < p.r; j++) ba += p.b[i * p.r + j]! * p.a[j * p.K + k]!;
      v[i * p.K + k] = p.w[i * p.K + k]! + p.s * ba;
    }
  return v;
}

function rowNorms(v: Float64Array, N: number, K: number): Float64Array {
  const n = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let k = 0; k < K; k++) ss += v[i * K + k]! ** 2;
    n[i] = Math.sqrt(ss);
  }
  return n;
}

/** y [T, N] = x · (m ⊙ V / norm)ᵀ + bias, V = W + s·BA; `norm` fixed when given, else ‖V‖ of these values. */
function plainForward(p: Plain, norm?: Float64Array): Float64Array {
  const v = adapted(p);
  const n = norm ?? rowNorms(v, p.N, p.K);
  const y = new Float64Array(p.T * p.N);
  for (let t = 0; t < p.T; t++)
    for (let i = 0; i < p.N; i++) {
      let acc = 0;
      for (let k = 0; k < p.K; k++) acc += p.x[t * p.K + k]! * v[i * p.K + k]!;
      y[t * p.N + i] = (p.m[i]! / n[i]!) * acc + (p.bias ? p.bias[i]! : 0);
    }
  return y;
}

const f64 = (t: Tensor) => Float64Array.from(t.toFloat32Array());

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / den;
}

/** A DoRA adapter on one random layer with random (non-initial) A, B and magnitude. */
function setup(kind: 'f32' | 'bf16' | 'nf4', seed: number, o: { N?: number; K?: number; T?: number; r?: number; dropout?: number } = {}) {
  const N = o.N ?? 6, K = o.K ?? 64, T = o.T ?? 3, r = o.r ?? 2;
  const rng = new Rng(seed);
  const w32 = tensor(values(rng, N * K), [N, K], { backend: nat });
  const w = kind === 'f32' ? w32 : kind === 'bf16' ? tensor(w32.toFloat32Array(), [N, K], { backend: nat, dtype: 'bf16' }) : quantize(w32, 'nf4');
  if (w !== w32) w32.dispose();
  const bias = tensor(values(rng, N), [N], { backend: nat });
  const model = new One(w, bias);
  const lora = LoraModel.create(model, { targetModules: ['q_proj'], r, loraAlpha: 3, useDora: true, loraDropout: o.dropout ?? 0 }, { seed });
  const ad = lora.layers().get('layers.0.q_proj')!.adapter;
  (ad.a.data as Float32Array).set(values(rng, r * K));
  (ad.b.data as Float32Array).set(values(rng, N * r));
  (ad.magnitude!.data as Float32Array).set(values(rng, N, 0.5, 4));
  const x = tensor(values(rng, T * K), [T, K], { backend: nat });
  const wPlain = w instanceof QuantizedWeight ? noGrad(() => { const d = w.dequantize(); const f = f64(d); d.dispose(); return f; })
    : kind === 'bf16' ? Float64Array.from(w.toArray()) : f64(w);
  const plain: Plain = { N, K, T, r, s: ad.scale, w: wPlain, bias: f64(bias), a: f64(ad.a), b: f64(ad.b), m: f64(ad.magnitude!), x: f64(x) };
  const dispose = () => { lora.remove(); x.dispose(); bias.dispose(); w.dispose(); };
  return { model, lora, ad, x, plain, dispose, rng };
}

describe('DoRA linear', () => {
  for (const kind of ['f32', 'bf16', 'nf4'] as const) {
    it(`forward equals m ⊙ (W + s·BA) / ‖W + s·BA‖ computed with loops (${kind} base)`, () => {
      const { model, x, plain, dispose } = setup(kind, 11);
      try {
        // the exact product: inference over a few rows of a quantized base otherwise takes the 8-bit-activation
        // kernels (engine/quant/activations.ts), whose rounding this comparison with exact loops is not about
        const y = noGrad(() => withExactActivations(() => applyLinear(x, model.lin)));
        const err = maxRel(f64(y), plainForward(plain));
        y.dispose();
        assert.ok(Number.isFinite(err) && err <= 2e-6, `max relative error ${err}`);
      } finally {
        dispose();
      }
    });
  }

  it('gradients of A, B, m and x equal finite differences with the norm held constant (PEFT), not without', () => {
    const { model, lora, ad, x, plain, dispose, rng } = setup('f32', 23);
    try {
      lora.train(true);
      x.requireGrad(true);
      const g = values(rng, plain.T * plain.N);
      tidy(() => {
        const probe = tensor(g, [plain.T, plain.N], { backend: nat });
        backward(sum(mul(applyLinear(x, model.lin), probe)));
      });
      const n0 = rowNorms(adapted(plain), plain.N, plain.K);
      const loss = (norm?: Float64Array) => plainForward(plain, norm).reduce((acc, v, i) => acc + v * g[i]!, 0);
      const fd = (arr: Float64Array, detached: boolean) => Float64Array.from(arr, (_, i) => {
        const keep = arr[i]!, h = 1e-5;
        arr[i] = keep + h;
        const up = loss(detached ? n0 : undefined);
        arr[i] = keep - h;
        const down = loss(detached ? n0 : undefined);
        arr[i] = keep;
        return (up - down) / (2 * h);
      });
      for (const [what, t, arr] of [['A', ad.a, plain.a], ['B', ad.b, plain.b], ['m', ad.magnitude!, plain.m], ['x', x, plain.x]] as const) {
        assert.ok(t.grad, `${what} has a gradient`);
        const got = f64(t.grad);
        const err = maxRel(got, fd(arr, true));
        assert.ok(Number.isFinite(err) && err <= 1e-4, `${what}: max relative error ${err} against the detached-norm finite differences`);
        if (what === 'A' || what === 'B') {
          const full = maxRel(got, fd(arr, false));
          assert.ok(full > 1e-2, `${what}: the gradient must differ from the non-detached one (rel. difference ${full})`);
        }
      }
    } finally {
      x.grad?.dispose();
      dispose();
    }
  });

  for (const kind of ['f32', 'bf16', 'nf4'] as const) {
    it(`a new DoRA adapter (B zeros, m = ‖W‖) gives exactly the base output (${kind} base)`, () => {
      const rng = new Rng(5);
      const w32 = tensor(values(rng, 8 * 64), [8, 64], { backend: nat });
      const w = kind === 'f32' ? w32 : kind === 'bf16' ? tensor(w32.toFloat32Array(), [8, 64], { backend: nat, dtype: 'bf16' }) : quantize(w32, 'nf4');
      const bias = tensor(values(rng, 8), [8], { backend: nat });
      const model = new One(w, bias);
      const x = tensor(values(rng, 4 * 64), [4, 64], { backend: nat });
      const base = noGrad(() => applyLinear(x, model.lin)).toArray();
      const lora = LoraModel.create(model, { targetModules: ['q_proj'], r: 4, loraAlpha: 8, useDora: true }, { seed: 3 });
      try {
        const m = lora.layers().get('layers.0.q_proj')!.adapter.magnitude!;
        assert.ok(m.requiresGrad, 'the magnitude trains');
        assert.deepEqual(m.shape, [8]);
        const wv = w instanceof QuantizedWeight ? w.dequantize().toArray() : w.toArray();
        const want = rowNorms(Float64Array.from(wv), 8, 64);
        assert.ok(maxRel(f64(m), want) <= 1e-6, 'm starts as the row norms of W');
        assert.deepEqual(noGrad(() => applyLinear(x, model.lin)).toArray(), base);
      } finally {
        lora.remove();
        for (const t of [w, bias, x, w32]) if (!t.isDisposed) t.dispose();
      }
    });
  }

  it('dropout in training as PEFT: base(x) + (m/‖·‖ − 1) ⊙ dropout(x)Wᵀ + m/‖·‖ ⊙ s·BA dropout(x)', () => {
    const { model, lora, ad, x, plain, dispose } = setup('f32', 31, { dropout: 0.5, T: 4 });
    try {
      lora.train(true);
      lora.dropoutStep = 7;
      const xd = f64(ad.input!(x));
      assert.ok(xd.some((v) => v === 0), 'the mask drops something');
      const y = f64(noGrad(() => applyLinear(x, model.lin)));
      const plainBase = plainForward({ ...plain, a: new Float64Array(plain.a.length), m: rowNorms(plain.w, plain.N, plain.K) });
      const dropped = plainForward({ ...plain, x: xd, bias: null });
      const droppedBase = plainForward({ ...plain, x: xd, bias: null, a: new Float64Array(plain.a.length), m: rowNorms(plain.w, plain.N, plain.K) });
      // dropped = m/n ⊙ (xd Wᵀ + s·BA xd); the DoRA term adds (m/n − 1) ⊙ xd Wᵀ + m/n ⊙ s·BA xd = dropped − xd Wᵀ
      const want = plainBase.map((v, i) => v + dropped[i]! - droppedBase[i]!);
      const err = maxRel(y, want);
      assert.ok(Number.isFinite(err) && err <= 2e-6, `max relative error ${err}`);
      lora.eval();
      const yEval = f64(noGrad(() => applyLinear(x, model.lin)));
      assert.ok(maxRel(yEval, plainForward(plain)) <= 2e-6, 'no dropout in eval mode');
    } finally {
      dispose();
    }
  });

  for (const kind of ['f32', 'bf16'] as const) {
    it(`merge equals the unmerged forward, unmerge gives W back (${kind} weight)`, () => {
      const { model, lora, x, dispose } = setup(kind, 41);
      try {
        const w = model.lin.w as Tensor;
        const before = w.toArray();
        const unmerged = f64(noGrad(() => applyLinear(x, model.lin)));
        const mergedCopy = lora.mergedWeight('layers.0.q_proj');
        lora.merge();
        assert.deepEqual(Array.from(w.data as Float32Array | Uint16Array), Array.from(mergedCopy), 'mergedWeight is what merge writes');
        const merged = f64(noGrad(() => applyLinear(x, model.lin)));
        const tol = kind === 'f32' ? 1e-5 : 1e-2; // bf16: the merged weight is rounded to 8 bits of mantissa
        const err = maxRel(merged, unmerged);
        assert.ok(Number.isFinite(err) && err <= tol, `merged vs unmerged: max relative error ${err}`);
        lora.unmerge();
        const back = maxRel(w.toArray(), before);
        assert.ok(Number.isFinite(back) && back <= (kind === 'f32' ? 1e-5 : 1e-2), `unmerge: max relative error ${back}`);
        const again = f64(noGrad(() => applyLinear(x, model.lin)));
        assert.ok(maxRel(again, unmerged) <= tol);
      } finally {
        dispose();
      }
    });
  }
});
