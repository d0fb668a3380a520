// Logits processors and samplers against values computed by hand from transformers' definitions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyMinNewTokens,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  kthLargest,
  processLogits,
  resolveSampling,
} from '../../src/generate/logits.js';
import { argmax, sampleMultinomial, softmax, multinomialSampler } from '../../src/generate/sampling.js';
import { StopStringMatcher, loadGenerationConfig } from '../../src/generate/stopping.js';
import { Rng } from '../../src/engine/ops/create.js';
import { VlmkitError } from '../../src/errors.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const f = (xs: number[]) => Float32Array.from(xs);
const NEG = -Infinity;

describe('repetition penalty', () => {
  it('divides positive and multiplies negative scores of seen tokens, once per distinct token', () => {
    const s = f([2, -1, 0.5, 3, -4]);
    applyRepetitionPenalty(s, [0, 1, 1, 4, 4, 4], 2);
    assert.deepEqual(Array.from(s), [1, -2, 0.5, 3, -8]);
  });
  it('penalty 1 changes nothing; ids outside the vocabulary are ignored', () => {
    const s = f([1, 2]);
    applyRepetitionPenalty(s, [0, 1, 7], 1);
    assert.deepEqual(Array.from(s), [1, 2]);
    applyRepetitionPenalty(s, [7, -1], 1.5);
    assert.deepEqual(Array.from(s), [1, 2]);
  });
  it('penalty < 1 encourages repeats', () => {
    const s = f([1, -1]);
    applyRepetitionPenalty(s, [0, 1], 0.5);
    assert.deepEqual(Array.from(s), [2, -0.5]);
  });
});

describe('temperature / min new tokens', () => {
  it('temperature divides every score', () => {
    const s = f([1, -2, 4]);
    applyTemperature(s, 0.5);
    assert.deepEqual(Array.from(s), [2, -4, 8]);
  });
  it('min new tokens masks eos until reached', () => {
    const s = f([1, 2, 3]);
    applyMinNewTokens(s, 0, 2, [2]);
    assert.deepEqual(Array.from(s), [1, 2, NEG]);
    const t = f([1, 2, 3]);
    applyMinNewTokens(t, 2, 2, [2]);
    assert.deepEqual(Array.from(t), [1, 2, 3]);
  });
});

describe('top-k', () => {
  it('keeps the k largest and ties at the threshold', () => {
    const s = f([1, 5, 3, 3, 0, 4]);
    applyTopK(s, 3);
    // 3rd largest = 3: scores < 3 removed, both 3s kept
    assert.deepEqual(Array.from(s), [NEG, 5, 3, 3, NEG, 4]);
  });
  it('k >= vocab or 0 is a no-op; k = 1 keeps the max', () => {
    const s = f([1, 2, 3]);
    applyTopK(s, 10);
    assert.deepEqual(Array.from(s), [1, 2, 3]);
    applyTopK(s, 1);
    assert.deepEqual(Array.from(s), [NEG, NEG, 3]);
  });
  it('kthLargest agrees with sorting', () => {
    const rng = new Rng(3);
    const s = Float32Array.from({ length: 1000 }, () => rng.normal());
    const sorted = Array.from(s).sort((a, b) => b - a);
    for (const k of [1, 2, 17, 50, 999, 1000]) assert.equal(kthLargest(s, k), sorted[k - 1]);
  });
});

describe('top-p', () => {
  // probs of log([0.5, 0.3, 0.15, 0.05]) are exactly those
  const logits = () => f([0.5, 0.3, 0.15, 0.05].map(Math.log));
  it('keeps the smallest set whose mass reaches top_p (transformers: remove cum_asc <= 1 - p)', () => {
    // ascending: 0.05 (cum .05), 0.15 (.20), 0.30 (.50), 0.50 (1.0); p = 0.7 -> remove cum <= 0.3: .05, .15
    const s = logits();
    applyTopP(s, 0.7);
    assert.equal(s[2], NEG);
    assert.equal(s[3], NEG);
    assert.ok(Number.isFinite(s[0]!) && Number.isFinite(s[1]!));
  });
  it('p = 0.5 keeps only the top token (mass above the 2nd is 0.5, not < 0.5)', () => {
    const s = logits();
    applyTopP(s, 0.5);
    assert.deepEqual(Array.from(s).map(Number.isFinite), [true, false, false, false]);
  });
  it('p = 0.81 keeps three; tiny p keeps one (min_tokens_to_keep)', () => {
    const s = logits();
    applyTopP(s, 0.81);
    assert.deepEqual(Array.from(s).map(Number.isFinite), [true, true, true, false]);
    const t = logits();
    applyTopP(t, 1e-9);
    assert.deepEqual(Array.from(t).map(Number.isFinite), [true, false, false, false]);
  });
  it('agrees with the literal definition (sort ascending, cumsum of softmax, remove <= 1 - p) on random rows', () => {
    const rng = new Rng(9);
    for (let trial = 0; trial < 40; trial++) {
      const n = 50 + rng.int(3000);
      const spread = [0.1, 1, 4, 15][trial % 4]!;
      const s = Float32Array.from({ length: n }, () => rng.normal() * spread);
      if (trial % 5 === 0) for (let i = 0; i < n; i += 7) s[i] = -Infinity;
      const p = [0.1, 0.5, 0.8, 0.95, 0.999][trial % 5]!;
      // reference: transformers' TopPLogitsWarper in f64
      const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => s[a]! - s[b]! || b - a);
      const mx = Math.max(...Array.from(s));
      const e = idx.map((i) => Math.exp(s[i]! - mx));
      const tot = e.reduce((a, b) => a + b, 0);
      let cum = 0;
      const removed = new Set<number>();
      idx.forEach((i, k) => {
        cum += e[k]! / tot;
        if (cum <= 1 - p && k < n - 1) removed.add(i);
      });
      const ours = s.slice();
      applyTopP(ours, p);
      for (let i = 0; i < n; i++) {
        const want = removed.has(i) || s[i] === -Infinity;
        assert.equal(ours[i] === -Infinity, want, `trial ${trial} token ${i}`);
      }
    }
  });
  it('after top-k the mass is renormalised over what is left', () => {
    const s = logits();
    applyTopK(s, 2); // [0.5, 0.3] -> 0.625, 0.375
    applyTopP(s, 0.6);
    assert.deepEqual(Array.from(s).map(Number.isFinite), [true, false, false, false]);
    const t = logits();
    applyTopK(t, 2);
    applyTopP(t, 0.7);
    assert.deepEqual(Array.from(t).map(Number.isFinite), [true, true, false, false]);
  });
});

describe('processLogits / resolveSampling', () => {
  it('greedy by default; temperature > 0 turns sampling on', () => {
    assert.equal(resolveSampling({}).doSample, false);
    assert.equal(resolveSampling({ temperature: 0 }).doSample, false);
    assert.equal(resolveSampling({ temperature: 0.7 }).doSample, true);
  });
  it('rejects bad values with a VlmkitError naming the option', () => {
    for (const [o, name] of [[{ topP: 0 }, 'top_p'], [{ topP: 1.5 }, 'top_p'], [{ topK: -1 }, 'top_k'], [{ temperature: -1 }, 'temperature'], [{ repetitionPenalty: 0 }, 'repetition_penalty']] as const) {
      assert.throws(() => resolveSampling(o), (e: unknown) => e instanceof VlmkitError && e.message.includes(name));
    }
  });
  it('applies penalty, then temperature, top-k, top-p, in that order', () => {
    const s = f([4, 2, 1, 0]);
    processLogits(s, resolveSampling({ temperature: 2, topK: 3, repetitionPenalty: 2 }), { tokens: [0], generated: 0, eosIds: [] });
    // penalty: [2, 2, 1, 0]; temperature: [1, 1, 0.5, 0]; top-3: threshold 0.5 -> [1, 1, 0.5, -inf]
    assert.deepEqual(Array.from(s), [1, 1, 0.5, NEG]);
  });
  it('warpers are skipped when greedy', () => {
    const s = f([4, 2, 1, 0]);
    processLogits(s, resolveSampling({ topK: 1 }), { tokens: [], generated: 0, eosIds: [] });
    assert.deepEqual(Array.from(s), [4, 2, 1, 0]);
  });
});

describe('samplers', () => {
  it('argmax takes the first maximum', () => {
    assert.equal(argmax(f([1, 3, 3, 2])), 1);
    assert.equal(argmax(f([NEG, NEG])), 0);
  });
  it('softmax ignores -inf', () => {
    const p = softmax(f([0, 0, NEG]));
    assert.deepEqual(Array.from(p), [0.5, 0.5, 0]);
  });
  it('multinomial follows the distribution and is reproducible by seed', () => {
    const s = f([0.6, 0.3, 0.1].map(Math.log));
    const rng = new Rng(42);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleMultinomial(s, rng)]!++;
    assert.ok(Math.abs(counts[0]! / 20000 - 0.6) < 0.02, `${counts}`);
    assert.ok(Math.abs(counts[2]! / 20000 - 0.1) < 0.01, `${counts}`);
    const a = multinomialSampler(7);
    const b = multinomialSampler(7);
    const sa = Array.from({ length: 50 }, () => a.next(s));
    const sb = Array.from({ length: 50 }, () => b.next(s));
    assert.deepEqual(sa, sb);
  });
  it('never draws a token removed by top-k', () => {
    const s = f([0.1, 2, 0.3, 1.9]);
    applyTopK(s, 2);
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sampleMultinomial(s, rng));
    assert.deepEqual([...seen].sort(), [1, 3]);
  });
});

describe('stop strings', () => {
  it('holds back a possible prefix and cuts before the stop string', () => {
    const m = new StopStringMatcher(['END']);
    assert.equal(m.push('Hello E'), 'Hello ');
    assert.equal(m.push('N'), '');
    assert.equal(m.push('D and more'), '');
    assert.ok(m.stopped);
    assert.equal(m.finalText, 'Hello ');
  });
  it('releases held text when it does not become a stop string', () => {
    const m = new StopStringMatcher(['END']);
    assert.equal(m.push('an E'), 'an ');
    assert.equal(m.push('Nx'), 'ENx');
    assert.equal(m.push(' EN'), ' ');
    assert.equal(m.flush(), 'EN');
    assert.equal(m.finalText, 'an ENx EN');
  });
  it('finds the earliest of several stop strings, also inside one delta', () => {
    const m = new StopStringMatcher(['\n\n', 'Q:']);
    assert.equal(m.push('A: 4. Q: next\n\n'), 'A: 4. ');
    assert.equal(m.finalText, 'A: 4. ');
  });
  it('no stop strings: everything passes through', () => {
    const m = new StopStringMatcher([]);
    assert.equal(m.push('abc'), 'abc');
    assert.equal(m.flush(), '');
  });
});

describe('generation config', () => {
  it('reads eos/bos/pad from generation_config.json of the tiny model', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference', 'tiny-smolvlm');
    const g = loadGenerationConfig(dir);
    assert.deepEqual(g.eosTokenIds, [3]);
    assert.equal(g.bosTokenId, 1);
    assert.equal(g.padTokenId, 2);
  });
});

describe('generation defaults (api.resolveGenerateOptions)', () => {
  it('greedy unless asked; generation_config values apply when sampling; top_k 50 as transformers', async () => {
    const { resolveGenerateOptions } = await import('../../src/api.js');
    const gen = { eosTokenIds: [3], bosTokenId: 1, padTokenId: 2, temperature: 0.6, topP: 0.9 };
    const g = resolveGenerateOptions(gen, {}, [3, 4]);
    assert.equal(g.doSample, false);
    assert.equal(g.temperature, undefined);
    assert.deepEqual(g.eosTokenIds, [3, 4]);
    assert.equal(g.maxNewTokens, 256);
    const s = resolveGenerateOptions(gen, { temperature: 0.9 }, [3]);
    assert.deepEqual([s.doSample, s.temperature, s.topK, s.topP], [true, 0.9, 50, 0.9]);
    const c = resolveGenerateOptions({ ...gen, doSample: true }, { topK: 0 }, [3]);
    assert.deepEqual([c.doSample, c.temperature, c.topK], [true, 0.6, 0]);
    assert.equal(resolveGenerateOptions({ ...gen, doSample: true }, { temperature: 0 }, [3]).doSample, false);
  });
});
