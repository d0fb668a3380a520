// The server's prefix cache through real HTTP: a repeated image + question and the next turn of a chat reuse the
// computed prefix (usage.prompt_tokens_details.cached_tokens, /metrics hits) and answer exactly as a server without
// the cache does (greedy), also under concurrency; a different picture with the same placeholder ids does not hit;
// a tiny --prefix-cache-mb evicts and stays under its bound.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { PNG } from 'pngjs';
import { dataUrl, metric, MODEL_ID, openaiClient, serveTiny } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';
import type { Vlm } from '../../src/api.js';

type Msg = OpenAI.ChatCompletionMessageParam;

/** A 64x64 PNG data URL whose pixels come from `px(x, y)`. */
function png(px: (x: number, y: number) => [number, number, number]): string {
  const data = Buffer.alloc(64 * 64 * 4);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const [r, g, b] = px(x, y);
      data.set([r, g, b, 255], (y * 64 + x) * 4);
    }
  }
  return `data:image/png;base64,${PNG.sync.write({ width: 64, height: 64, data } as unknown as PNG).toString('base64')}`;
}

const imageMsg = (url: string, text: string): Msg => ({ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text }] });

describe('vlmkit serve prefix cache', () => {
  let cached: RunningServer & { vlm: Vlm };
  let plain: RunningServer & { vlm: Vlm };
  let withCache: OpenAI;
  let without: OpenAI;
  before(async () => {
    cached = await serveTiny({}, { prefixCacheMb: 64 });
    plain = await serveTiny({}, { prefixCacheMb: 0 });
    withCache = new OpenAI({ baseURL: `${cached.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    without = new OpenAI({ baseURL: `${plain.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await cached.close();
    await plain.close();
  });

  const ask = (c: OpenAI, messages: Msg[], max = 12) => c.chat.completions.create({ model: MODEL_ID, messages, max_tokens: max, temperature: 0 });

  it('reuses a repeated image + question, and answers the same as without the cache', async () => {
    const m = [imageMsg(dataUrl('big_300x410.png'), 'What is in this image?')];
    const hits0 = await metric(cached.url, 'vlmkit_prefix_cache_hits_total');
    const first = await ask(withCache, m);
    assert.equal(first.usage!.prompt_tokens_details!.cached_tokens, 0, 'nothing cached yet');
    const second = await ask(withCache, m);
    const ref = await ask(without, m);
    const n = second.usage!.prompt_tokens;
    const got = second.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(got > 0 && got < n, `the repeated prompt reuses all but its last tokens: ${got} of ${n}`);
    assert.ok(got >= n - 2, `nearly all of it: ${got} of ${n}`);
    assert.equal(second.choices[0]!.message.content, ref.choices[0]!.message.content);
    assert.equal(first.choices[0]!.message.content, ref.choices[0]!.message.content);
    assert.equal(ref.usage!.prompt_tokens_details!.cached_tokens, 0, 'the server without a cache never reports cached tokens');
    assert.equal(await metric(cached.url, 'vlmkit_prefix_cache_hits_total'), hits0 + 1);
    assert.ok((await metric(cached.url, 'vlmkit_cached_prompt_tokens_total')) >= got);
  });

  it('gives the same log-probabilities from a cached prefix as from a full prompt pass (within 1e-4)', async () => {
    const m = [imageMsg(dataUrl('wide_90x150.png'), 'Name the colours.')];
    const opts = { model: MODEL_ID, messages: m, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 };
    await withCache.chat.completions.create(opts);
    const hit = await withCache.chat.completions.create(opts);
    const ref = await without.chat.completions.create(opts);
    assert.ok(hit.usage!.prompt_tokens_details!.cached_tokens! > 0);
    const a = hit.choices[0]!.logprobs!.content!, b = ref.choices[0]!.logprobs!.content!;
    assert.ok(a.length > 0);
    assert.deepEqual(a.map((t) => t.token), b.map((t) => t.token));
    let worst = 0;
    a.forEach((t, i) => t.top_logprobs.forEach((u, j) => (worst = Math.max(worst, Math.abs(u.logprob - b[i]!.top_logprobs[j]!.logprob)))));
    assert.ok(Number.isFinite(worst) && worst <= 1e-4, `worst difference ${worst}`);
  });

  it('reuses the first turn (its image) in the second turn of a chat, the same answer as without', async () => {
    const turn1 = [imageMsg(dataUrl('tall_200x70.png'), 'Describe the picture.')];
    const a1 = await ask(withCache, turn1);
    const r1 = await ask(without, turn1);
    assert.equal(a1.choices[0]!.message.content, r1.choices[0]!.message.content);
    const turn2: Msg[] = [...turn1, { role: 'assistant', content: a1.choices[0]!.message.content! }, { role: 'user', content: 'And its colours?' }];
    const a2 = await ask(withCache, turn2);
    const r2 = await ask(without, turn2);
    assert.equal(a2.choices[0]!.message.content, r2.choices[0]!.message.content);
    const got = a2.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(got >= a1.usage!.prompt_tokens - 1, `the whole first prompt (${a1.usage!.prompt_tokens} tokens, its image included) is reused: ${got}`);
    assert.ok(got < a2.usage!.prompt_tokens);
  });

  it('does not reuse a prefix across different pictures whose placeholder tokens are identical', async () => {
    const red = png(() => [220, 30, 30]);
    const stripes = png((x) => (x % 8 < 4 ? [0, 0, 0] : [250, 250, 250]));
    const enc = async (url: string) => {
      const e = await cached.vlm.processor.encodeBatch([{ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Which colour?' }] }], images: [Buffer.from(url.split(',')[1]!, 'base64')] }]);
      const ids = e.prompts[0]!.inputIds.slice();
      e.dispose();
      return ids;
    };
    assert.deepEqual(await enc(red), await enc(stripes), 'the two prompts have the same ids (else this test proves nothing)');
    const imageStart = (await enc(stripes)).indexOf(cached.vlm.tokenizer.specialIds.fakeTokenAroundImage!);
    assert.ok(imageStart > 0);
    // earlier prompts share the text before the image (the chat template's opening) at most
    const first = await ask(withCache, [imageMsg(red, 'Which colour?')]);
    assert.ok(first.usage!.prompt_tokens_details!.cached_tokens! <= imageStart);
    const other = await ask(withCache, [imageMsg(stripes, 'Which colour?')]);
    assert.ok(other.usage!.prompt_tokens_details!.cached_tokens! <= imageStart, `at most the text before the image is reused: ${other.usage!.prompt_tokens_details!.cached_tokens} (image at ${imageStart})`);
    const ref = await ask(without, [imageMsg(stripes, 'Which colour?')]);
    assert.equal(other.choices[0]!.message.content, ref.choices[0]!.message.content);
    const again = await ask(withCache, [imageMsg(red, 'Which colour?')]);
    assert.ok(again.usage!.prompt_tokens_details!.cached_tokens! > imageStart, 'the first picture is still cached');
  });

  it('answers 8 concurrent clients, repeated prompts among them, exactly as without the cache', async () => {
    const images = ['wide_90x150.png', 'square_64x64.png', 'rgba_40x52.png'];
    const prompts = Array.from({ length: 8 }, (_, i) => [imageMsg(dataUrl(images[i % 3]!), i % 2 ? 'What is it?' : 'Where is it?')]);
    const refs: (string | null)[] = [];
    for (const m of prompts) refs.push((await ask(without, m, 16)).choices[0]!.message.content);
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(prompts.map(async (m, i) => {
        await new Promise((r) => setTimeout(r, i * 3));
        return ask(withCache, m, 16);
      }));
      got.forEach((r, i) => assert.equal(r.choices[0]!.message.content, refs[i], `client ${i}, round ${round}`));
      if (round === 1) assert.ok(got.every((r) => r.usage!.prompt_tokens_details!.cached_tokens! > 0), 'the second round hits');
    }
  });
});

describe('vlmkit serve prefix cache bound', () => {
  let s: (RunningServer & { vlm: Vlm }) | undefined;
  after(() => s?.close());

  it('evicts least recently used prompts to stay within --prefix-cache-mb', async () => {
    // the size of one cached prompt first, from a server with room
    const probe = await serveTiny({}, { prefixCacheMb: 64 });
    const client = new OpenAI({ baseURL: `${probe.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    // one image, four questions: prompts of about the same size, none a prefix of another
    const m = (q: string) => [imageMsg(dataUrl('square_64x64.png'), q)];
    const questions = ['What is in this image?', 'What colour is this image?', 'Where is this image?', 'Who made this image?'];
    await client.chat.completions.create({ model: MODEL_ID, messages: m(questions[0]!), max_tokens: 2, temperature: 0 });
    const one = await metric(probe.url, 'vlmkit_prefix_cache_bytes');
    await probe.close();
    assert.ok(Number.isFinite(one) && one > 0, `one entry's bytes: ${one}`);
    const limit = one * 1.5;
    s = await serveTiny({}, { prefixCacheMb: limit / 2 ** 20 });
    const c = openaiClient(s);
    for (const q of questions) {
      await c.chat.completions.create({ model: MODEL_ID, messages: m(q), max_tokens: 2, temperature: 0 });
      const bytes = await metric(s.url, 'vlmkit_prefix_cache_bytes');
      assert.ok(Number.isFinite(bytes) && bytes > 0 && bytes <= limit, `within the bound: ${bytes} <= ${limit}`);
      assert.equal(await metric(s.url, 'vlmkit_prefix_cache_entries'), 1);
    }
    assert.equal(await metric(s.url, 'vlmkit_prefix_cache_evictions_total'), 3, 'each new prompt evicted the one before');
    // the first question's own entry is gone: asked again, only the prefix it shares with the last one is reused
    const r = await c.chat.completions.create({ model: MODEL_ID, messages: m(questions[0]!), max_tokens: 2, temperature: 0 });
    const got = r.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(got > 0 && got < r.usage!.prompt_tokens - 2, `the image part only: ${got} of ${r.usage!.prompt_tokens}`);
  });
});
