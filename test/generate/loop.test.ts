// The generation loop on toy models whose logits depend on the token, its position and the masked context, so
// that left padding, per-row positions, the step mask and dropping finished rows all show in the tokens.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng, tensor } from '../../src/engine/ops/create.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { generate, generateStream, positionIdsFromMask, type GenerationEvent } from '../../src/generate/generate.js';
import { noCacheLM } from '../../src/generate/no-cache.js';
import type { CausalLM, KVCache, ModelInputs } from '../../src/generate/types.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import { padLeft } from '../../src/models/idefics3/prompt.js';
import { VlmkitError } from '../../src/errors.js';

const V = 13;
const rng = new Rng(11);
const W = Array.from({ length: V }, () => Array.from({ length: V }, () => rng.normal()));

/** The toy "model": logits of one position from its token, its position and the sum of the visible tokens. */
function toyLogits(tok: number, pos: number, sum: number, out: Float32Array, at: number): void {
  for (let u = 0; u < V; u++) out[at + u] = W[tok]![u]! + 0.3 * Math.sin(pos * (u + 1)) + 0.2 * ((sum * 7 + u) % 5);
}

function rows(t: Tensor): number[][] {
  const flat = t.toArray();
  const [B, T] = t.shape as [number, number];
  return Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T));
}

/** Full forward [B, T] -> [B, T, V]. */
function toyForward(inputs: ModelInputs & { positionIds?: Tensor }): Tensor {
  const ids = rows(inputs.inputIds);
  const mask = rows(inputs.attentionMask);
  const pos = inputs.positionIds ? rows(inputs.positionIds) : positionIdsFromMask(mask);
  const B = ids.length;
  const T = ids[0]!.length;
  const out = new Float32Array(B * T * V);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let t = 0; t < T; t++) {
      s += mask[b]![t]! * ids[b]![t]!;
      toyLogits(ids[b]![t]!, pos[b]![t]!, s, out, (b * T + t) * V);
    }
  }
  return tensor(out, [B, T, V]);
}

class ToyCache implements KVCache {
  toks: number[][] = [];
  get length(): number {
    return this.toks[0]?.length ?? 0;
  }
  keepRows(r: readonly number[]): void {
    this.toks = r.map((i) => this.toks[i]!);
  }
  dispose(): void {}
}

/** A KV-cached toy: the cache holds the tokens, the step mask decides which of them count. */
function toyLM(stats: { stepRows: number[] } = { stepRows: [] }, maxPositions = 1000): CausalLM {
  return {
    vocabSize: V,
    maxPositions,
    createCache: () => new ToyCache(),
    prefill(inputs, cache) {
      const c = cache as ToyCache;
      c.toks = rows(inputs.inputIds);
      const full = toyForward(inputs);
      const B = c.toks.length;
      const T = c.length;
      const d = full.toFloat32Array();
      const out = new Float32Array(B * V);
      for (let b = 0; b < B; b++) out.set(d.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
      full.dispose();
      return tensor(out, [B, V]);
    },
    step(inputs, cache) {
      const c = cache as ToyCache;
      const ids = inputs.inputIds.toArray();
      const pos = inputs.positionIds.toArray();
      const mask = rows(inputs.attentionMask);
      assert.equal(mask.length, c.toks.length);
      assert.equal(mask[0]!.length, c.length + 1);
      stats.stepRows.push(ids.length);
      const out = new Float32Array(ids.length * V);
      c.toks = c.toks.map((r, b) => [...r, ids[b]!]);
      c.toks.forEach((r, b) => {
        let s = 0;
        for (let i = 0; i < r.length; i++) s += mask[b]![i]! * r[i]!;
        toyLogits(ids[b]!, pos[b]!, s, out, b * V);
      });
      return tensor(out, [ids.length, V]);
    },
  };
}

function batch(seqs: number[][]): ModelInputs {
  const p = padLeft(seqs, 0);
  return {
    inputIds: tensor(p.inputIds.flat(), [p.batchSize, p.seqLen], { dtype: 'i32' }),
    attentionMask: tensor(p.attentionMask.flat(), [p.batchSize, p.seqLen], { dtype: 'i32' }),
  };
}

const PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10, 11]];

describe('generation loop (toy model)', () => {
  it('KV-cached greedy equals re-running the full forward, left-padded batch', async () => {
    const a = await generate(toyLM(), batch(PROMPTS), { maxNewTokens: 12 });
    const b = await generate(noCacheLM(toyForward, { vocabSize: V, maxPositions: 1000 }), batch(PROMPTS), { maxNewTokens: 12 });
    assert.deepEqual(a.rows.map((r) => r.tokenIds), b.rows.map((r) => r.tokenIds));
    assert.ok(a.rows.every((r) => r.tokenIds.length === 12 && r.finishReason === 'length'));
  });

  it('a row in a padded batch gets the same tokens as alone (per-row positions and masks)', async () => {
    const together = await generate(toyLM(), batch(PROMPTS), { maxNewTokens: 10 });
    for (let i = 0; i < PROMPTS.length; i++) {
      const alone = await generate(toyLM(), batch([PROMPTS[i]!]), { maxNewTokens: 10 });
      assert.deepEqual(together.rows[i]!.tokenIds, alone.rows[0]!.tokenIds, `row ${i}`);
    }
  });

  it('rows that hit eos leave the batch; the others go on', async () => {
    const free = await generate(toyLM(), batch(PROMPTS), { maxNewTokens: 10 });
    // pick an eos that row 1 produces early and that does not appear in the others' first tokens
    const r1 = free.rows[1]!.tokenIds;
    const eos = r1[2]!;
    const stats = { stepRows: [] as number[] };
    const out = await generate(toyLM(stats), batch(PROMPTS), { maxNewTokens: 10, eosTokenIds: [eos] });
    for (let i = 0; i < PROMPTS.length; i++) {
      const full = free.rows[i]!.tokenIds;
      const cut = full.indexOf(eos);
      const want = cut >= 0 ? full.slice(0, cut + 1) : full;
      assert.deepEqual(out.rows[i]!.tokenIds, want, `row ${i}`);
      assert.equal(out.rows[i]!.finishReason, cut >= 0 ? 'eos' : 'length');
    }
    // every step ran exactly the rows still going
    const steps = Math.max(...out.rows.map((r) => r.tokenIds.length)) - 1;
    assert.equal(stats.stepRows.length, steps);
    for (let s = 0; s < steps; s++) {
      const running = out.rows.filter((r) => r.tokenIds.length > s + 1).length;
      assert.equal(stats.stepRows[s], running, `step ${s}`);
    }
    assert.equal(out.timings.decodeTokens, stats.stepRows.reduce((a, b) => a + b, 0));
    assert.equal(out.timings.generatedTokens, out.rows.reduce((a, r) => a + r.tokenIds.length, 0));
  });

  it('min new tokens suppresses eos', async () => {
    const free = await generate(toyLM(), batch([PROMPTS[1]!]), { maxNewTokens: 6 });
    const eos = free.rows[0]!.tokenIds[0]!;
    const stopped = await generate(toyLM(), batch([PROMPTS[1]!]), { maxNewTokens: 6, eosTokenIds: [eos] });
    assert.deepEqual(stopped.rows[0]!.tokenIds, [eos]);
    const forced = await generate(toyLM(), batch([PROMPTS[1]!]), { maxNewTokens: 6, eosTokenIds: [eos], minNewTokens: 6 });
    assert.equal(forced.rows[0]!.tokenIds.length, 6);
    assert.ok(!forced.rows[0]!.tokenIds.slice(0, 5).includes(eos));
  });

  it('sampling is reproducible by seed and differs across seeds', async () => {
    const run = (seed: number) => generate(toyLM(), batch(PROMPTS), { maxNewTokens: 16, temperature: 1.5, topK: 8, topP: 0.95, seed });
    const a = await run(5);
    const b = await run(5);
    const c = await run(6);
    assert.deepEqual(a.rows.map((r) => r.tokenIds), b.rows.map((r) => r.tokenIds));
    assert.notDeepEqual(a.rows.map((r) => r.tokenIds), c.rows.map((r) => r.tokenIds));
  });

  it('stops at the end of the context, and refuses a prompt that does not fit', async () => {
    const out = await generate(toyLM(undefined, 8), batch([[1, 2, 3, 4, 5]]), { maxNewTokens: 50 });
    assert.equal(out.rows[0]!.finishReason, 'context');
    assert.equal(out.rows[0]!.tokenIds.length, 3);
    await assert.rejects(generate(toyLM(undefined, 4), batch([[1, 2, 3, 4, 5]]), { maxNewTokens: 5 }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_CONTEXT');
  });

  it('needs left padding', async () => {
    const inputs: ModelInputs = {
      inputIds: tensor([1, 2, 0, 3, 4, 5], [2, 3], { dtype: 'i32' }),
      attentionMask: tensor([1, 1, 0, 1, 1, 1], [2, 3], { dtype: 'i32' }),
    };
    await assert.rejects(generate(toyLM(), inputs, { maxNewTokens: 2 }), /left/);
  });

  it('breaking out of the stream stops generation', async () => {
    const stats = { stepRows: [] as number[] };
    let n = 0;
    for await (const _ of generateStream(toyLM(stats), batch(PROMPTS), { maxNewTokens: 100 })) if (++n === 7) break;
    assert.ok(stats.stepRows.length <= 3);
  });

  it('abort signal ends every row', async () => {
    const ac = new AbortController();
    const it = generateStream(toyLM(), batch(PROMPTS), { maxNewTokens: 100, signal: ac.signal });
    let done;
    let count = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        done = r.value;
        break;
      }
      if (++count === 3) ac.abort();
    }
    assert.ok(done.rows.every((r) => r.finishReason === 'aborted' && r.tokenIds.length <= 2));
  });
});

describe('streaming text (scripted model + the fixtures tokenizer)', () => {
  const tok = Tokenizer.fromDir(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference', 'tokenizer'));
  /** Emits script[k] at its k-th generated token. */
  function scripted(script: number[], vocab: number): CausalLM {
    let promptLen = 0;
    const oneHot = (k: number) => {
      const o = new Float32Array(vocab);
      o[script[Math.min(k, script.length - 1)]!] = 10;
      return o;
    };
    return {
      vocabSize: vocab,
      maxPositions: 10000,
      createCache: () => ({ length: 0, keepRows() {}, dispose() {} }),
      prefill(inputs) {
        promptLen = inputs.inputIds.shape[1]!;
        return tensor(oneHot(0), [1, vocab]);
      },
      step(inputs) {
        const p = inputs.positionIds.toArray()[0]!;
        return tensor(oneHot(p - promptLen + 1), [1, vocab]);
      },
    };
  }
  const eou = tok.requireTokenId('<end_of_utterance>');

  it('pieces concatenate to the final text; special tokens are not shown; eos ends it', async () => {
    const script = [...tok.encode('Hello wörld, 3 circles.'), eou, ...tok.encode(' never')];
    const events: GenerationEvent[] = [];
    const it = generateStream(scripted(script, 448), batch([[1, 2]]), { maxNewTokens: 100, eosTokenIds: [eou], tokenizer: tok });
    let out;
    for (;;) {
      const r = await it.next();
      if (r.done) { out = r.value; break; }
      events.push(r.value);
    }
    assert.equal(events.map((e) => e.text).join(''), 'Hello wörld, 3 circles.');
    assert.equal(out.rows[0]!.text, 'Hello wörld, 3 circles.');
    assert.equal(out.rows[0]!.finishReason, 'eos');
    assert.equal(events[events.length - 1]!.finishReason, 'eos');
    assert.deepEqual(out.rows[0]!.tokenIds, script.slice(0, script.indexOf(eou) + 1));
  });

  it('stop strings cut the text and never show', async () => {
    const script = [...tok.encode('The answer is 4.\nUser: next question'), eou];
    const events: string[] = [];
    const it = generateStream(scripted(script, 448), batch([[1]]), { maxNewTokens: 100, stopStrings: ['\nUser:'], tokenizer: tok });
    let out;
    for (;;) {
      const r = await it.next();
      if (r.done) { out = r.value; break; }
      events.push(r.value.text);
    }
    assert.equal(out.rows[0]!.text, 'The answer is 4.');
    assert.equal(events.join(''), 'The answer is 4.');
    assert.equal(out.rows[0]!.finishReason, 'stop_string');
  });
});
