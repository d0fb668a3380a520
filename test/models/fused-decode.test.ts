// The one-call decode step (Backend.llamaDecode, native/kernels/decode.cc) against the layer-by-layer path it
// replaces (LlamaText.fusedDecode = false): the same logits bit for bit at every step, the same greedy tokens and
// the same KV caches, on the tiny fixtures (f32 weights) and the built-in model (bf16), one row and a left-padded
// batch, under each instruction set the CPU has; and on block-quantized weights (Q8_0, Q4_0, NF4), whose products
// both paths run on 8-bit activations. A spy on the backend shows the fused step really ran, and that where it does
// not apply (an enabled LoRA adapter; quantized weights over more than 8 rows or with 8-bit activations turned
// off) the layer-by-layer path runs instead.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vk from '../../src/engine/index.js';
import type { Backend } from '../../src/engine/backend/backend.js';
import { loadModel, type Idefics3Model } from '../../src/models/idefics3/index.js';
import { positionsFromAttentionMask } from '../../src/models/idefics3/text.js';
import { loadAdapter } from '../../src/train/peft.js';
import { forEachIsa, nat } from '../engine/harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REF = join(ROOT, 'test', 'fixtures', 'reference');
const BUILTIN = join(ROOT, 'models', 'vlmkit-shapes');

/** Counts the native backend's llamaDecode calls while fn runs. */
function countFused<T>(fn: () => T): { out: T; calls: number } {
  const be = nat as Backend & { llamaDecode?: Backend['llamaDecode'] };
  const orig = be.llamaDecode;
  assert.ok(orig, 'the native backend has llamaDecode');
  let calls = 0;
  be.llamaDecode = (x, s) => {
    calls++;
    return orig.call(be, x, s);
  };
  try {
    return { out: fn(), calls };
  } finally {
    be.llamaDecode = orig;
  }
}

interface Run {
  logits: Float32Array[];
  tokens: number[][];
  caches: Float32Array[];
}

/**
 * Prefill of left-padded prompts, then `steps` greedy cached steps (one token per row each), with the fused step
 * on or off. Returns every step's logits, the tokens and the KV caches' contents at the end.
 */
function decode(m: Idefics3Model, prompts: number[][], steps: number, fused: boolean): Run {
  m.text.fusedDecode = fused;
  const B = prompts.length, T = Math.max(...prompts.map((p) => p.length)), V = m.vocabSize;
  const mask: number[] = [];
  const ids: number[] = [];
  for (const p of prompts) {
    const pad = T - p.length;
    for (let t = 0; t < T; t++) {
      mask.push(t < pad ? 0 : 1);
      ids.push(t < pad ? 0 : p[t - pad]!);
    }
  }
  const cache = m.createCache(B, T + steps);
  const run: Run = { logits: [], tokens: prompts.map(() => []), caches: [] };
  try {
    vk.noGrad(() => vk.tidy(() => {
      const pos = positionsFromAttentionMask(mask, B, T);
      let logits = m.prefill({
        inputIds: vk.tensor(ids, [B, T], { dtype: 'i32' }), attentionMask: vk.tensor(mask, [B, T], { dtype: 'i32' }),
        positionIds: vk.tensor(pos, [B, T], { dtype: 'i32' }),
      }, cache);
      for (let s = 0; s < steps; s++) {
        const l = logits.toFloat32Array();
        const picks = prompts.map((_, b) => {
          let best = 0;
          for (let i = 1; i < V; i++) if (l[b * V + i]! > l[b * V + best]!) best = i;
          return best;
        });
        picks.forEach((t, b) => run.tokens[b]!.push(t));
        const len = T + s + 1;
        const full: number[] = [];
        for (let b = 0; b < B; b++) for (let t = 0; t < len; t++) full.push(t < T ? mask[b * T + t]! : 1);
        const stepPos = positionsFromAttentionMask(full, B, len, 1);
        logits = m.step({
          inputIds: vk.tensor(picks, [B, 1], { dtype: 'i32' }), positionIds: vk.tensor(stepPos, [B, 1], { dtype: 'i32' }),
          attentionMask: vk.tensor(full, [B, len], { dtype: 'i32' }),
        }, cache);
        run.logits.push(logits.toFloat32Array());
      }
    }));
    for (const l of cache.layers) run.caches.push(l.k.toFloat32Array(), l.v.toFloat32Array());
    assert.equal(cache.length, T + steps);
  } finally {
    cache.dispose();
    m.text.fusedDecode = true;
  }
  return run;
}

function assertSame(what: string, got: Run, want: Run): void {
  assert.deepEqual(got.tokens, want.tokens, `${what}: greedy tokens`);
  const bits = (name: string, g: Float32Array[], w: Float32Array[]) => {
    assert.equal(g.length, w.length, `${name}: count`);
    assert.ok(w.length > 0, `${name}: nothing compared`);
    w.forEach((wi, s) => {
      assert.equal(g[s]!.length, wi.length, `${name} ${s}: length`);
      for (let i = 0; i < wi.length; i++)
        if (!Object.is(g[s]![i], wi[i])) assert.fail(`${what}: ${name} ${s} element ${i} is ${g[s]![i]}, the layer-by-layer path gives ${wi[i]}`);
    });
  };
  bits('step logits', got.logits, want.logits);
  bits('kv cache', got.caches, want.caches);
  for (const l of got.logits) assert.ok(l.every(Number.isFinite), `${what}: logits are finite`);
}

/**
 * Fused against layer by layer on one row, a left-padded batch of three and, with `wide`, one of ten rows (more
 * than the few-row product kernels take), under each instruction set.
 */
function checkModel(name: string, m: Idefics3Model, steps: number, wide = false): void {
  const V = m.vocabSize;
  const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 10 + ((seed * 37 + i * 11) % (V - 20)));
  const batches = [[prompt(7, 1)], [prompt(5, 2), prompt(9, 3), prompt(2, 4)]];
  if (wide) batches.push(Array.from({ length: 10 }, (_, b) => prompt(3 + (b % 4), 5 + b)));
  for (const prompts of batches) {
    forEachIsa((isa) => {
      const what = `${name} [${isa}] batch ${prompts.length}`;
      const want = decode(m, prompts, steps, false);
      const { out: got, calls } = countFused(() => decode(m, prompts, steps, true));
      assert.equal(calls, steps, `${what}: one fused call per step`);
      assertSame(what, got, want);
    });
  }
}

describe('fused decode step (llamaDecode) equals the layer-by-layer path', () => {
  it('tiny-smolvlm and tiny-idefics3 (f32 weights)', () => {
    for (const fx of ['tiny-smolvlm', 'tiny-idefics3']) {
      const m = loadModel(join(REF, fx));
      try {
        checkModel(fx, m, 6, fx === 'tiny-smolvlm');
      } finally {
        m.dispose();
      }
    }
  });

  it('the built-in model (bf16 weights)', () => {
    const m = loadModel(BUILTIN);
    try {
      assert.equal((m.text.w.layers[0]!.q.w as vk.Tensor).dtype, 'bf16', 'the built-in model keeps its bf16 weights');
      checkModel('vlmkit-shapes', m, 5);
    } finally {
      m.dispose();
    }
  });

  it('falls back to the layer-by-layer path under an enabled LoRA adapter, runs fused with it disabled', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'));
    try {
      const lora = loadAdapter(m, join(REF, 'tiny-idefics3-lora'));
      const prompts = [[11, 12, 13, 14]];
      const want = decode(m, prompts, 4, false);
      const on = countFused(() => decode(m, prompts, 4, true));
      assert.equal(on.calls, 0, 'an enabled adapter: no fused step');
      assertSame('lora enabled', on.out, want);
      for (const l of m.linears().values()) for (const a of l.adapters ?? []) a.enabled = false;
      const wantOff = decode(m, prompts, 4, false);
      const off = countFused(() => decode(m, prompts, 4, true));
      assert.equal(off.calls, 4, 'disabled adapters: the fused step runs');
      assertSame('lora disabled', off.out, wantOff);
      lora.remove();
    } finally {
      m.dispose();
    }
  });

  it('quantized weights (q8_0, q4_0, nf4 with and without double quantization) run fused on 8-bit activations', () => {
    for (const [fmt, o] of [['q8_0', {}], ['q4_0', {}], ['nf4', {}], ['nf4', { doubleQuant: false }]] as const) {
      const m = loadModel(join(REF, 'tiny-smolvlm'));
      try {
        m.quantize(fmt, o);
        assert.ok(m.text.w.layers.every((l) => l.q.w instanceof vk.QuantizedWeight && l.down.w instanceof vk.QuantizedWeight), `${fmt}: every text linear is quantized`);
        checkModel(`tiny-smolvlm ${fmt}${fmt === 'nf4' && !o.doubleQuant ? ' (no double quant)' : ''}`, m, 4);
      } finally {
        m.dispose();
      }
    }
    const m = loadModel(BUILTIN);
    try {
      m.quantize('q4_0');
      checkModel('vlmkit-shapes q4_0', m, 3);
    } finally {
      m.dispose();
    }
  });

  it('quantized weights fall back to the layer-by-layer path where 8-bit activations do not apply', () => {
    const m = loadModel(join(REF, 'tiny-smolvlm'));
    try {
      m.quantize('q8_0');
      const V = m.vocabSize;
      // more rows than the 8-bit kernels take
      const wide = Array.from({ length: 9 }, (_, b) => Array.from({ length: 3 }, (_, i) => 10 + ((b * 29 + i * 7) % (V - 20))));
      const want = decode(m, wide, 2, false);
      const got = countFused(() => decode(m, wide, 2, true));
      assert.equal(got.calls, 0, '9 rows: no fused step');
      assertSame('q8_0, 9 rows', got.out, want);
      // 8-bit activations turned off: the exact products, layer by layer
      const before = vk.setInt8Activations(false);
      try {
        const prompts = [[21, 22, 23], [24, 25, 26]];
        const exact = decode(m, prompts, 3, false);
        const off = countFused(() => decode(m, prompts, 3, true));
        assert.equal(off.calls, 0, 'int8 activations off: no fused step');
        assertSame('q8_0, exact activations', off.out, exact);
      } finally {
        vk.setInt8Activations(before);
      }
    } finally {
      m.dispose();
    }
  });
});
