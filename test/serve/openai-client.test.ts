// vlmkit serve against the official `openai` npm client over real HTTP: plain and streamed chat completions
// (text and image parts), usage, stop strings, n with a seed, /v1/models, and an API key.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { dataUrl, MODEL_ID, openaiClient, serveTiny } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';
import type { Vlm } from '../../src/api.js';

describe('vlmkit serve with the openai client', () => {
  let s: RunningServer & { vlm: Vlm };
  let client: OpenAI;
  before(async () => {
    s = await serveTiny();
    client = openaiClient(s);
  });
  after(() => s.close());

  const image = dataUrl('wide_90x150.png');
  const messages = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: image } }, { type: 'text' as const, text: 'What is in this image?' }] }];

  it('answers as the library does (greedy), with usage', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 12, temperature: 0 });
    const ref = await s.vlm.generate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }], [Buffer.from(image.split(',')[1]!, 'base64')], { maxNewTokens: 12, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, MODEL_ID);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, ref.text);
    assert.ok(ref.tokenIds.length > 0);
    assert.equal(r.choices[0]!.finish_reason, ref.finishReason === 'length' ? 'length' : 'stop');
    assert.equal(r.usage?.prompt_tokens, ref.promptTokens);
    assert.equal(r.usage?.completion_tokens, ref.tokenIds.length);
    assert.equal(r.usage?.total_tokens, ref.promptTokens + ref.tokenIds.length);
  });

  it('streams the same answer as chunks, [DONE] at the end and usage in the last chunk', async () => {
    const whole = await client.chat.completions.create({ model: MODEL_ID, messages, max_completion_tokens: 12, temperature: 0 });
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_completion_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    let role = '';
    for await (const c of stream) {
      chunks++;
      assert.equal(c.object, 'chat.completion.chunk');
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        if (ch.delta.role) role = ch.delta.role;
        text += ch.delta.content ?? '';
        if (ch.finish_reason) finishes.push(ch.finish_reason);
      }
    }
    assert.ok(chunks >= 3, `a stream of chunks, got ${chunks}`);
    assert.equal(role, 'assistant');
    assert.equal(text, whole.choices[0]!.message.content);
    assert.deepEqual(finishes, [whole.choices[0]!.finish_reason]);
    assert.deepEqual(usage, whole.usage);
  });

  it('cuts the answer before a stop string and says "stop"', async () => {
    // (the image question: this random model's answer to it is plain ASCII, so a stop string is met mid-stream)
    const full = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0 });
    const text = full.choices[0]!.message.content!;
    assert.ok(text.length >= 2 && !text.includes('\ufffd'), `need a plain answer to cut: ${JSON.stringify(text)}`);
    const stop = text.slice(1, 2);
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0, stop: [stop, 'never-there'] });
    assert.equal(r.choices[0]!.message.content, text.slice(0, text.indexOf(stop)));
    assert.equal(r.choices[0]!.finish_reason, 'stop');
  });

  it('samples n choices, the same ones again for the same seed', async () => {
    const ask = () => client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'say something' }], max_tokens: 8, temperature: 1.5, top_p: 0.95, seed: 7, n: 3 });
    const a = await ask();
    const b = await ask();
    assert.equal(a.choices.length, 3);
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
    const used = a.usage?.completion_tokens ?? NaN;
    assert.ok(used >= 3 && used <= 24, `completion tokens of all 3 choices (at most 8 each): ${used}`);
    assert.ok(new Set(a.choices.map((c) => c.message.content)).size > 1, 'the choices differ (their own seeds)');
  });

  it('lists the model with its input modalities', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    assert.deepEqual(ids, [MODEL_ID]);
    const m = (await client.models.retrieve(MODEL_ID)) as OpenAI.Model & { input_modalities?: string[] };
    assert.deepEqual(m.input_modalities, ['text', 'image']);
  });
});

describe('vlmkit serve --api-key', () => {
  let s: RunningServer;
  before(async () => {
    s = await serveTiny({}, { apiKey: 'sekret' });
  });
  after(() => s.close());

  it('refuses a missing or wrong key with 401 and takes the right one', async () => {
    const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    const none = await fetch(`${s.url}/v1/models`);
    assert.equal(none.status, 401);
    const right = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
    const r = await right.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 });
    assert.equal(r.choices.length, 1);
    assert.equal((await fetch(`${s.url}/health`)).status, 200, '/health needs no key');
  });
});
