// A training forward holds what its backward reads, not every activation: graph scopes release the data of the
// intermediates no gradient rule saved (scope.ts releaseUnsaved), and gradients still flow through them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { record } from '../../src/engine/autograd.js';
import { tidyUnless } from '../../src/engine/scope.js';
import { encoderLayer } from '../../src/models/siglip/encoder.js';
import type { VisionLayerWeights } from '../../src/models/siglip/weights.js';
import { assertClose, nat } from './harness.js';

const needsGrad = (t: vk.Tensor) => t.requiresGrad;

test('a graph scope releases what no rule saved; gradients are those of the whole graph', () => {
  const w = vk.randn([24, 16], { backend: nat, seed: 1, std: 0.2 }); // frozen
  const a = vk.randn([4, 16], { backend: nat, seed: 2, std: 0.2, requiresGrad: true });
  const b = vk.randn([24, 4], { backend: nat, seed: 3, std: 0.2, requiresGrad: true });
  const x = vk.randn([6, 16], { backend: nat, seed: 4 });
  const run = (scoped: boolean) =>
    vk.tidy(() => {
      let base: vk.Tensor | null = null;
      const body = () => {
        base = vk.linear(x, w); // read by no rule: w is frozen and the add reads nothing
        return vk.silu(vk.add(base, vk.mul(vk.linear(vk.linear(x, a), b), 2)));
      };
      const y = scoped ? tidyUnless(body, needsGrad) : body();
      const released = base!.isDisposed;
      const loss = vk.sum(vk.square(y));
      vk.backward(loss);
      const g = [a, b].map((t) => t.grad!.toArray());
      for (const t of [a, b]) { t.grad!.dispose(); t.grad = null; }
      return { released, g, loss: loss.item() };
    });
  const plain = run(false), scoped = run(true);
  assert.equal(plain.released, false);
  assert.equal(scoped.released, true, 'the frozen product feeding an add is released at the end of its scope');
  assert.ok(Number.isFinite(scoped.loss) && scoped.loss === plain.loss);
  scoped.g.forEach((g, i) => assertClose(`grad ${i}`, g, plain.g[i], 0));
});

test('reading a released tensor throws a clear error', () => {
  vk.tidy(() => {
    const w = vk.randn([3, 2], { backend: nat, seed: 1, requiresGrad: true });
    let mid: vk.Tensor | null = null;
    tidyUnless(() => vk.square(vk.add((mid = vk.linear(vk.ones([1, 2], { backend: nat }), w)), 1)), needsGrad);
    assert.throws(() => mid!.toArray(), /released/);
  });
});

test('a node that does not list what it saved keeps every tensor of its scope', () => {
  vk.tidy(() => {
    const x = vk.randn([2, 3], { backend: nat, seed: 1, requiresGrad: true });
    let mid: vk.Tensor | null = null;
    tidyUnless(() => {
      mid = vk.add(x, 1);
      const out = vk.mul(mid, 2);
      // a custom rule recorded without `saved`: it may read anything, so nothing may be released
      return record(vk.contiguous(vk.exp(out)), 'custom', [out], (g) => [g]);
    }, needsGrad);
    assert.equal(mid!.isDisposed, false);
  });
});

// SigLIP's encoder layer with LoRA on q/k/v (the vision tower of a LoRA step): the backward reads the layer input
// (ln1), ln1's output (the adapters' A products), q, k, v and the attention output (with its lse), the residual
// sum (ln2), fc1's output (the GELU) and the adapters' r-wide x·Aᵀ. Everything else (the frozen projections'
// outputs, the LoRA up-projections and their scaled copies, the merged heads, the GELU's output that only feeds
// the frozen fc2, the sums) is released; before, the layer held all of it (about twice the bound below).
test('an encoder layer with LoRA holds only what its backward reads', () => {
  const B = 1, T = 64, D = 48, H = 4, F = 192, r = 4;
  let seed = 10;
  const rnd = (shape: number[], o: { requiresGrad?: boolean; std?: number } = {}) =>
    vk.randn(shape, { backend: nat, seed: seed++, std: o.std ?? 0.1, requiresGrad: o.requiresGrad });
  const lin = (n: number, k: number, lora: boolean) => ({
    w: rnd([n, k]),
    b: rnd([n]),
    adapters: lora ? [{ a: rnd([r, k], { requiresGrad: true }), b: rnd([n, r], { requiresGrad: true }), scale: 2 }] : undefined,
  });
  const l: VisionLayerWeights = {
    ln1: { w: vk.ones([D], { backend: nat }), b: vk.zeros([D], { backend: nat }) },
    q: lin(D, D, true), k: lin(D, D, true), v: lin(D, D, true), out: lin(D, D, false),
    ln2: { w: vk.ones([D], { backend: nat }), b: vk.zeros([D], { backend: nat }) },
    fc1: lin(F, D, false), fc2: lin(D, F, false),
  };
  const x = rnd([B, T, D], { std: 1 });
  vk.tidy(() => {
    const before = vk.storageStats().bytes;
    const y = encoderLayer(x, l, { heads: H, headDim: D / H, eps: 1e-6, act: 'gelu_pytorch_tanh', keyMask: null });
    const held = vk.storageStats().bytes - before;
    // saved [B, T, D] tensors (x is the caller's, made before): h, q, k, v, attention out, x1; plus fc1's [B, T, F],
    // three [B, T, r] products, the lse [B, H, T] and both norms' mean/rstd [B, T]; plus the output y itself
    const f32 = 4;
    // (and the three LoRA scales, scalar tensors the multiplications read)
    const bound = f32 * (B * T * (7 * D + F + 3 * r) + B * H * T + 4 * B * T + 3);
    assert.ok(Number.isFinite(held) && held <= bound, `the layer holds ${held} bytes after its forward, bound ${bound}`);
    const loss = vk.sum(vk.square(y));
    vk.backward(loss);
    for (const p of [l.q, l.k, l.v]) {
      const g = p.adapters![0].a.grad;
      assert.ok(g && g.toArray().every(Number.isFinite), 'every adapter gets a finite gradient');
    }
    // B starts random here, so A's gradient is nonzero
    assert.ok(l.q.adapters![0].a.grad!.toArray().some((v) => v !== 0));
  });
});

test('backward with releaseSaved frees each saved activation once its last reader has run', () => {
  const L = 6, M = 32, D = 64, r = 4;
  const ws = Array.from({ length: L }, (_, i) => vk.randn([D, D], { backend: nat, seed: 100 + i, std: 0.1 }));
  const as = Array.from({ length: L }, (_, i) => vk.randn([r, D], { backend: nat, seed: 200 + i, std: 0.1, requiresGrad: true }));
  const bs = Array.from({ length: L }, (_, i) => vk.randn([D, r], { backend: nat, seed: 300 + i, std: 0.1, requiresGrad: true }));
  const x = vk.randn([M, D], { backend: nat, seed: 1 });
  const gradBytes = 4 * L * (r * D + D * r);
  const run = (releaseSaved: boolean) =>
    vk.tidy(() => {
      const before = vk.storageStats().bytes;
      let h = x;
      for (let i = 0; i < L; i++) h = vk.silu(vk.loraLinear(h, ws[i], null, as[i], bs[i], 2));
      const loss = vk.sum(vk.square(h));
      const heldForward = vk.storageStats().bytes - before;
      vk.backward(loss, undefined, { releaseSaved });
      const heldAfter = vk.storageStats().bytes - before - gradBytes;
      const g = [...as, ...bs].map((t) => t.grad!.toArray());
      for (const t of [...as, ...bs]) { t.grad!.dispose(); t.grad = null; }
      return { heldForward, heldAfter, g, loss: loss.item() };
    });
  const keep = run(false), rel = run(true);
  // every layer saves its input [M, D], its pre-activation [M, D] (silu) and x·Aᵀ [M, r]
  assert.ok(keep.heldForward >= 4 * L * M * (2 * D + r), `forward holds ${keep.heldForward} bytes`);
  assert.ok(keep.heldAfter >= 4 * L * M * 2 * D, `without release the activations stay: ${keep.heldAfter} bytes`);
  // with it, only the loss, its scalars and the first layer's input (the caller's x, not an intermediate) remain
  assert.ok(Number.isFinite(rel.heldAfter) && rel.heldAfter <= 4 * (M * D + 16), `after backward ${rel.heldAfter} bytes remain`);
  assert.equal(rel.loss, keep.loss);
  rel.g.forEach((g, i) => assert.deepEqual(g, keep.g[i], `gradient ${i}`));
});
