// A chat that keeps its KV cache between turns: each turn runs only the tokens the cache does not hold, and the
// answers are token for token those of a fresh generation over the whole conversation. Also: where a cached
// prefix may end (never inside an image tile), a prompt that diverges half-way, and misuse.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVlm, type GenerateResult, type TextStream, type Vlm } from '../../src/api.js';
import { storageStats } from '../../src/engine/index.js';
import { PromptCache } from '../../src/generate/prompt-cache.js';
import { generate } from '../../src/generate/generate.js';
import { userMessage } from '../../src/models/idefics3/processor.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const IMG = (name: string) => join(REF, 'images', name);
const greedy = { maxNewTokens: 6, temperature: 0, eosTokenIds: [] as number[] };

async function drain(s: TextStream): Promise<GenerateResult> {
  for await (const _ of s);
  return s.result;
}

describe('chat session: KV cache kept between turns', () => {
  let vlm: Vlm;
  before(async () => {
    vlm = await loadVlm(join(REF, 'tiny-smolvlm'));
  });
  after(() => vlm.dispose());

  it('runs only the new tokens of each turn and answers as a fresh generation does', async () => {
    const chat = vlm.chat({ system: 'You are terse.' });
    const turns: [string, string[]][] = [['What is in this image?', [IMG('square_64x64.png')]], ['And its colours?', []], ['Compare it with this one.', [IMG('wide_90x150.png')]]];
    let cachedBefore = 0;
    for (const [i, [text, images]] of turns.entries()) {
      const before = { messages: [...chat.messages], images: [...chat.images] };
      const r = await drain(chat.send(text, images, greedy));
      const fresh = await vlm.generate([...before.messages, userMessage(text, images.length)], [...before.images, ...images], greedy);
      assert.deepEqual(r.tokenIds, fresh.tokenIds, `turn ${i}: the cached answer differs from a fresh generation`);
      assert.equal(r.promptTokens, fresh.promptTokens);
      if (i === 0) assert.equal(r.timings.reusedTokens, 0);
      else {
        // everything up to the previous answer is reused (its re-rendered text may tokenize differently at the end)
        assert.ok(r.timings.reusedTokens >= cachedBefore, `turn ${i}: reused ${r.timings.reusedTokens} of ${cachedBefore} cached prompt tokens`);
        assert.equal(r.timings.prefillTokens + r.timings.reusedTokens, r.promptTokens);
      }
      cachedBefore = r.promptTokens;
      assert.equal(chat.messages.length, 1 + 2 * (i + 1));
      assert.equal(chat.messages.at(-1)!.role, 'assistant');
    }
    assert.equal(chat.images.length, 2);
    chat.reset();
    assert.equal(chat.messages.length, 1);
    const r = await drain(chat.send('Hello', [], greedy));
    assert.equal(r.timings.reusedTokens, 0);
    chat.dispose();
  });

  it('a turn with other image options starts over: the same tokens would stand for other pixels', async () => {
    const chat = vlm.chat();
    await drain(chat.send('What is in this image?', [IMG('square_64x64.png')], greedy));
    const before = { messages: [...chat.messages], images: [...chat.images] };
    // 64x64 -> 128 (the checkpoint's long edge) or 100, both 4x4 tiles of 32: equal ids, other pixel values
    const a = await vlm.encode('x', [IMG('square_64x64.png')]);
    const b = await vlm.encode('x', [IMG('square_64x64.png')], { longestEdge: 100 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.pixelValues!.toArray(), b.pixelValues!.toArray());
    a.dispose();
    b.dispose();
    const opts = { ...greedy, longestEdge: 100 };
    const r = await drain(chat.send('And now?', [], opts));
    assert.equal(r.timings.reusedTokens, 0);
    const fresh = await vlm.generate([...before.messages, userMessage('And now?', 0)], before.images, opts);
    assert.deepEqual(r.tokenIds, fresh.tokenIds);
    // the same options again: the cache serves
    const r2 = await drain(chat.send('Once more.', [], opts));
    assert.ok(r2.timings.reusedTokens > 0);
    chat.dispose();
  });

  it('one message at a time; a closed stream leaves the session usable', async () => {
    const chat = vlm.chat();
    const s = chat.send('Hi', [], greedy);
    assert.throws(() => chat.send('again'), /still answering/);
    for await (const _ of s) break; // close early
    await assert.rejects(s.result, /closed before/);
    const r = await drain(chat.send('Hi', [], greedy));
    assert.equal(r.tokenIds.length, 6);
    chat.dispose();
  });

  it('a prompt that diverges keeps the shared prefix, cut at a tile boundary', async () => {
    const model = vlm.model;
    const img = vlm.config.imageTokenId, seq = vlm.config.imageSeqLen;
    const ids = [1, 2, ...Array(seq).fill(img), 7, ...Array(seq).fill(img), 8];
    assert.equal(model.resumePoint(ids, 2), 2);
    assert.ok(seq >= 2);
    assert.equal(model.resumePoint(ids, 2 + seq - 1), 2); // inside the first tile: back to its start
    assert.equal(model.resumePoint(ids, 2 + seq), 2 + seq); // right after it
    assert.equal(model.resumePoint(ids, 3 + seq + 1), 3 + seq); // one token into the second tile
    assert.equal(model.resumePoint(ids, ids.length), ids.length);

    const pc = new PromptCache();
    const a = await vlm.encode('Describe this picture in detail please.', [IMG('tall_200x70.png')]);
    const b = await vlm.encode('Describe this picture in one word.', [IMG('tall_200x70.png')]);
    try {
      await generate(model, a, { ...greedy, promptCache: pc });
      const shared = (() => {
        const x = a.ids[0]!, y = b.ids[0]!;
        let p = 0;
        while (p < x.length && p < y.length && x[p] === y[p]) p++;
        return p;
      })();
      const viaCache = await generate(model, b, { ...greedy, promptCache: pc });
      const fresh = await generate(model, b, greedy);
      assert.equal(viaCache.timings.reusedTokens, model.resumePoint(b.ids[0]!, shared));
      assert.ok(viaCache.timings.reusedTokens > seq, 'the image tiles before the divergence stay cached');
      assert.deepEqual(viaCache.rows[0]!.tokenIds, fresh.rows[0]!.tokenIds);
    } finally {
      a.dispose();
      b.dispose();
      pc.dispose();
    }
  });

  it('reports image tiles as they are encoded, only the new ones when a turn resumes', async () => {
    const seen: [number, number][] = [];
    const onImageTile = (d: number, t: number) => void seen.push([d, t]);
    const chat = vlm.chat();
    await drain(chat.send('Look.', [IMG('big_300x410.png')], { ...greedy, onImageTile }));
    const n = seen.length;
    assert.ok(n >= 1);
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => [i + 1, n]));
    seen.length = 0;
    await drain(chat.send('Again.', [], { ...greedy, onImageTile }));
    assert.equal(seen.length, 0, 'the cached image is not encoded again');
    const before = { messages: [...chat.messages], images: [...chat.images] };
    await drain(chat.send('And this one.', [IMG('small_20x24.png')], { ...greedy, onImageTile }));
    const resumed = seen.length;
    // a fresh generation of the same conversation encodes both images
    seen.length = 0;
    await vlm.generate([...before.messages, userMessage('And this one.', 1)], [...before.images, IMG('small_20x24.png')], { ...greedy, onImageTile });
    assert.ok(resumed >= 1);
    assert.equal(resumed, seen.length - n, 'only the new image is encoded');
    chat.dispose();
  });

  it('refuses batches and frees everything', async () => {
    const before = storageStats().count;
    const pc = new PromptCache();
    const enc = await vlm.processor.encodeBatch([{ text: 'a b c' }, { text: 'a' }], { padding: 'left' });
    try {
      await assert.rejects(generate(vlm.model, enc, { ...greedy, promptCache: pc }), /one unpadded row at a time/);
    } finally {
      enc.dispose();
    }
    const one = await vlm.encode('Hello there');
    try {
      await generate(vlm.model, one, { ...greedy, promptCache: pc });
      assert.ok(pc.cache && pc.ids.length === one.ids[0]!.length + 5);
    } finally {
      one.dispose();
    }
    pc.dispose();
    assert.equal(storageStats().count, before);
  });
});
