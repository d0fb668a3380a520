// The continuous batcher on the tiny SmolVLM (random weights): requests that arrive while others decode join
// their steps, one that finishes early or whose caller leaves goes without disturbing the rest, and each greedy
// answer has the tokens it has alone (generate()). A spy on the model shows the steps really were batched and
// every KV cache was freed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVlm, type Vlm } from '../../src/api.js';
import { tensor } from '../../src/engine/index.js';
import { ContinuousBatcher, type SubmitOptions } from '../../src/generate/continuous.js';
import { generate, type GenerationEvent, type GenerationOutput } from '../../src/generate/generate.js';
import type { CausalLM, CacheRowSpan, KVCache, ModelInputs } from '../../src/generate/types.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');

let shared: Promise<Vlm> | null = null;
const tiny = () => (shared ??= loadVlm(join(FIX, 'tiny-smolvlm')));

/** The model, with the batch size of every step and the caches still alive on record. */
function spy(lm: CausalLM): CausalLM & { stepRows: number[]; live: Set<KVCache> } {
  const live = new Set<KVCache>();
  const track = (c: KVCache) => {
    live.add(c);
    const d = c.dispose.bind(c);
    c.dispose = () => {
      live.delete(c);
      d();
    };
    return c;
  };
  const stepRows: number[] = [];
  return {
    stepRows, live,
    vocabSize: lm.vocabSize,
    maxPositions: lm.maxPositions,
    createCache: (b, cap) => track(lm.createCache(b, cap)),
    prefill: (i, c, o) => lm.prefill(i, c, o),
    step: (i, c) => {
      stepRows.push(i.inputIds.shape[0]!);
      return lm.step(i, c);
    },
    gatherCache: (parts: readonly CacheRowSpan[], len: number, cap: number) => track(lm.gatherCache!(parts, len, cap)),
  };
}

const png = (f: string) => readFileSync(join(FIX, 'images', f));

async function encode(vlm: Vlm, text: string, image?: string): Promise<ModelInputs & { dispose(): void }> {
  const content = image ? [{ type: 'image' as const }, { type: 'text' as const, text }] : text;
  return vlm.processor.encodeBatch([{ messages: [{ role: 'user', content }], images: image ? [png(image)] : [] }]);
}

interface Run {
  events: GenerationEvent[];
  done: Promise<GenerationOutput>;
}

/** Consumes a submitted generation; `onEvent` sees each event as it comes (its index in the stream). */
function consume(it: AsyncGenerator<GenerationEvent, GenerationOutput>, onEvent?: (k: number) => void): Run {
  const events: GenerationEvent[] = [];
  const done = (async () => {
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
      events.push(r.value);
      onEvent?.(events.length - 1);
    }
  })();
  return { events, done };
}

const greedy = (maxNewTokens: number, o: SubmitOptions = {}): SubmitOptions => ({ maxNewTokens, temperature: 0, ...o });

describe('continuous batching (tiny SmolVLM)', () => {
  it('requests joining mid-decode, one finishing early: each gets its tokens alone, in batched steps', async () => {
    const vlm = await tiny();
    const lm = spy(vlm.model);
    const eos = { eosTokenIds: vlm.eosTokenIds };
    const prompts = [
      { text: 'describe the picture', image: 'wide_90x150.png', max: 14 },
      { text: 'a question without a picture, rather long: why why why why', max: 10 },
      { text: 'short', max: 2 }, // finishes early, while the others go on
      { text: 'and what about this one?', image: 'small_20x24.png', max: 9 },
    ];
    const encs = await Promise.all(prompts.map((p) => encode(vlm, p.text, p.image)));
    try {
      const alone: number[][] = [];
      for (let i = 0; i < prompts.length; i++) alone.push((await generate(vlm.model, encs[i]!, { ...greedy(prompts[i]!.max), ...eos })).rows[0]!.tokenIds);
      assert.ok(alone.every((t, i) => t.length === prompts[i]!.max), 'no answer ends early on its own (the test counts on the lengths)');

      const b = new ContinuousBatcher(lm, { maxBatch: 16 });
      const runs: Run[] = [];
      const joinedAt: number[] = [];
      const order: number[] = [];
      const submit = (i: number) => {
        joinedAt[i] = runs[0]?.events.length ?? 0;
        runs[i] = consume(b.submit(encs[i]!, { ...greedy(prompts[i]!.max), ...eos }), i === 0 ? onFirst : undefined);
        void runs[i]!.done.then(() => order.push(i));
      };
      // the others arrive after the first has made 3 and 6 tokens (staggered)
      const onFirst = (k: number) => {
        if (k === 2) submit(1);
        if (k === 5) {
          submit(2);
          submit(3);
        }
      };
      submit(0);
      await runs[0]!.done;
      const outs = await Promise.all(runs.map((r) => r.done));
      await b.idle();
      outs.forEach((o, i) => assert.deepEqual(o.rows[0]!.tokenIds, alone[i], `request ${i}: tokens as alone`));
      outs.forEach((o, i) => assert.deepEqual(runs[i]!.events.map((e) => e.tokenId), alone[i], `request ${i}: streamed tokens`));
      // they joined while the first was decoding, and the early one ended while the others went on
      assert.ok(joinedAt[1]! > 0 && joinedAt[1]! < prompts[0]!.max && joinedAt[2]! < prompts[0]!.max, `joined mid-decode (${joinedAt})`);
      assert.ok(Math.max(...lm.stepRows) >= 3, `steps ran batched (rows per step: ${lm.stepRows})`);
      assert.equal(order[0], 2, `the short one finished first (order ${order})`);
      const full = lm.stepRows.indexOf(4);
      assert.ok(full >= 0 && lm.stepRows[full + 1] === 3, `the others went on batched after the short one left (rows per step: ${lm.stepRows})`);
      assert.equal(lm.live.size, 0, 'every KV cache was freed');
    } finally {
      for (const e of encs) e.dispose();
    }
  });

  it('a caller that leaves (abort) frees its row; the others are undisturbed', async () => {
    const vlm = await tiny();
    const lm = spy(vlm.model);
    const eos = { eosTokenIds: vlm.eosTokenIds };
    const encs = await Promise.all([encode(vlm, 'first of three'), encode(vlm, 'the one that hangs up', 'tall_200x70.png'), encode(vlm, 'third')]);
    try {
      const alone: number[][] = [];
      for (const e of [encs[0]!, encs[2]!]) alone.push((await generate(vlm.model, e, { ...greedy(12), ...eos })).rows[0]!.tokenIds);
      const b = new ContinuousBatcher(lm, { maxBatch: 4 });
      const ctl = new AbortController();
      const a = consume(b.submit(encs[0]!, { ...greedy(12), ...eos }));
      const gone = consume(b.submit(encs[1]!, { ...greedy(200), ...eos, signal: ctl.signal }), (k) => {
        if (k === 2) ctl.abort(new Error('client hung up'));
      });
      const c = consume(b.submit(encs[2]!, { ...greedy(12), ...eos }));
      await assert.rejects(gone.done, /client hung up/);
      const [oa, oc] = await Promise.all([a.done, c.done]);
      await b.idle();
      assert.deepEqual(oa.rows[0]!.tokenIds, alone[0]);
      assert.deepEqual(oc.rows[0]!.tokenIds, alone[1]);
      assert.ok(gone.events.length < 8, `the aborted one stopped at once (${gone.events.length} tokens)`);
      assert.ok(lm.stepRows.includes(3) && lm.stepRows.at(-1)! <= 2, `it left the batch (rows per step: ${lm.stepRows})`);
      assert.equal(b.running, 0);
      assert.equal(lm.live.size, 0, 'every KV cache was freed');

      // a consumer that stops reading (return()) leaves too, and one still waiting leaves the queue
      const one = new ContinuousBatcher(lm, { maxBatch: 1 });
      // the waiting one is checked at once, not after a timer: in a 50-ms sleep the first request could finish
      // its 50 tokens and the waiting one be admitted (seen in CI)
      const it1 = one.submit(encs[0]!, { ...greedy(50), ...eos });
      await it1.next();
      const waitCtl = new AbortController();
      const waiting = consume(one.submit(encs[2]!, { ...greedy(3), ...eos, signal: waitCtl.signal }));
      assert.equal(one.running, 1);
      assert.equal(one.waiting, 1);
      waitCtl.abort(new Error('left the queue'));
      await assert.rejects(waiting.done, /left the queue/);
      assert.equal(one.waiting, 0);
      await it1.return(undefined as never);
      await one.idle();
      assert.equal(one.running, 0);
      assert.equal(lm.live.size, 0, 'every KV cache was freed');
    } finally {
      for (const e of encs) e.dispose();
    }
  });

  it('n choices share the prompt pass; sampling follows each row\'s seed as generate() does', async () => {
    const vlm = await tiny();
    const enc1 = await encode(vlm, 'pick something');
    const enc3 = await vlm.processor.encodeBatch(Array.from({ length: 3 }, () => ({ messages: [{ role: 'user' as const, content: 'pick something' }], images: [] })));
    try {
      const o = { maxNewTokens: 6, temperature: 1.3, topP: 0.95, seed: 7, eosTokenIds: vlm.eosTokenIds };
      const ref = await generate(vlm.model, enc3, o);
      const b = new ContinuousBatcher(vlm.model, { maxBatch: 8 });
      const out = await consume(b.submit(enc1, { ...o, n: 3 })).done;
      assert.deepEqual(out.rows.map((r) => r.tokenIds), ref.rows.map((r) => r.tokenIds));
      assert.ok(new Set(out.rows.map((r) => r.tokenIds.join())).size > 1, 'the rows sampled differently');
      await assert.rejects(consume(b.submit(enc1, { ...o, n: 9 })).done, /n must be an integer in 1\.\.8/);
    } finally {
      enc1.dispose();
      enc3.dispose();
    }
  });

  it('long answers: the batch cache grows as the rows go on, the tokens stay those alone', async () => {
    const vlm = await tiny();
    const lm = spy(vlm.model);
    const encs = await Promise.all([encode(vlm, 'a long answer please'), encode(vlm, 'and another', 'square_64x64.png')]);
    try {
      // no end-of-sequence ids: every answer runs to its max tokens, past the cache's first room (128 positions)
      const max = [300, 200];
      const alone: number[][] = [];
      for (let i = 0; i < 2; i++) alone.push((await generate(vlm.model, encs[i]!, greedy(max[i]!))).rows[0]!.tokenIds);
      const b = new ContinuousBatcher(lm, { maxBatch: 4 });
      let second: Run | null = null;
      const first = consume(b.submit(encs[0]!, greedy(max[0]!)), (k) => {
        if (k === 40) second = consume(b.submit(encs[1]!, greedy(max[1]!)));
      });
      const o1 = await first.done;
      const o2 = await second!.done;
      await b.idle();
      assert.deepEqual(o1.rows[0]!.tokenIds, alone[0]);
      assert.deepEqual(o2.rows[0]!.tokenIds, alone[1]);
      assert.ok(lm.stepRows.filter((n) => n === 2).length > 150, 'they decoded together for long');
      assert.equal(lm.live.size, 0, 'every KV cache was freed');
    } finally {
      for (const e of encs) e.dispose();
    }
  });

  it('a prompt over the context fails alone; the batcher keeps serving', async () => {
    const vlm = await tiny();
    const b = new ContinuousBatcher(vlm.model, { maxBatch: 2 });
    const ok = await encode(vlm, 'fine');
    // past the processor's own check: ids straight to the batcher
    const T = vlm.model.maxPositions;
    const long = { inputIds: tensor(new Array(T).fill(1), [1, T], { dtype: 'i32' }), attentionMask: tensor(new Array(T).fill(1), [1, T], { dtype: 'i32' }) };
    const dispose = () => {
      long.inputIds.dispose();
      long.attentionMask.dispose();
    };
    try {
      await assert.rejects(consume(b.submit(long, greedy(3))).done, /context holds/);
      const out = await consume(b.submit(ok, greedy(3))).done;
      assert.equal(out.rows[0]!.tokenIds.length, 3);
    } finally {
      dispose();
      ok.dispose();
    }
  });
});
