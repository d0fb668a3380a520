// response_format {"type": "json_object"} through the openai client: the answer JSON.parse()s as an object for
// several seeds and temperatures, with the tiny random-weights model (which on its own never writes JSON) and the
// built-in one, streamed or not; finish_reason "length" when max_tokens cuts it; {"type": "text"} is the default
// and json_schema a 400.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type OpenAI from 'openai';
import { BUILTIN_MODEL_DIR, loadVlm, type Vlm } from '../../src/api.js';
import { defaultLimits, startServer, type RunningServer } from '../../src/serve/server.js';
import { assertApiError, dataUrl, MODEL_ID, openaiClient, post, serveTiny } from './helpers.js';

function assertObject(text: string | null | undefined, what: string): void {
  assert.equal(typeof text, 'string', what);
  let v: unknown;
  assert.doesNotThrow(() => (v = JSON.parse(text!)), `${what}: ${JSON.stringify(text)} is valid JSON`);
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${what}: an object, got ${text}`);
}

const json = { type: 'json_object' as const };

describe('vlmkit serve response_format json_object (tiny random model)', () => {
  let s: RunningServer & { vlm: Vlm };
  let client: OpenAI;
  before(async () => {
    s = await serveTiny();
    client = openaiClient(s);
  });
  after(() => s.close());

  const messages = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: dataUrl('square_64x64.png') } }, { type: 'text' as const, text: 'Describe it as JSON.' }] }];

  it('writes a JSON object for every seed and temperature, ending with stop', async () => {
    const free = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 40, temperature: 0 });
    assert.throws(() => JSON.parse(free.choices[0]!.message.content!), 'the random model alone writes no JSON (else this test proves nothing)');
    for (const temperature of [0, 0.7, 1.5]) {
      for (const seed of [1, 2, 3]) {
        const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 60, temperature, seed, response_format: json });
        const c = r.choices[0]!;
        assertObject(c.message.content, `temperature ${temperature}, seed ${seed}`);
        assert.equal(c.finish_reason, 'stop');
        if (temperature === 0) break; // greedy: the seed plays no part
      }
    }
  });

  it('closes the object within small max_tokens, and n choices are each an object', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 6, temperature: 1, seed: 9, n: 3, response_format: json });
    assert.equal(r.choices.length, 3);
    for (const c of r.choices) {
      assertObject(c.message.content, `choice ${c.index}`);
      assert.ok(r.usage!.completion_tokens <= 18);
    }
  });

  it('streams the same object as the plain answer', async () => {
    const plain = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, temperature: 0.9, seed: 4, response_format: json });
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, temperature: 0.9, seed: 4, response_format: json, stream: true });
    let text = '';
    for await (const c of stream) for (const ch of c.choices) text += ch.delta.content ?? '';
    assertObject(text, 'streamed');
    assert.equal(text, plain.choices[0]!.message.content);
  });

  it('finish_reason is "length" when max_tokens cannot hold even "{}"', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 1, temperature: 0, response_format: json });
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.throws(() => JSON.parse(r.choices[0]!.message.content!), 'cut, so not a whole object (as OpenAI)');
  });

  it('takes {"type": "text"} as the default and refuses json_schema and unknown types', async () => {
    const url = `${s.url}/v1/chat/completions`;
    const base = { model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0 };
    const text = await post(url, { ...base, response_format: { type: 'text' } });
    const plain = await post(url, base);
    assert.equal(text.status, 200, text.text);
    assert.equal(text.json.choices[0].message.content, plain.json.choices[0].message.content);
    assertApiError(await post(url, { ...base, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }), 400, /json_schema is not supported/, 'response_format.type');
    assertApiError(await post(url, { ...base, response_format: { type: 'yaml' } }), 400, /yaml/, 'response_format.type');
    assertApiError(await post(url, { ...base, response_format: 'json' }), 400, /response_format/, 'response_format');
  });
});

describe('vlmkit serve response_format json_object (built-in model)', () => {
  let vlm: Vlm;
  let s: RunningServer;
  let client: OpenAI;
  before(async () => {
    vlm = await loadVlm(BUILTIN_MODEL_DIR);
    s = await startServer({ vlm, modelId: 'vlmkit-shapes', limits: defaultLimits(vlm.model.maxPositions), host: '127.0.0.1', port: 0, log: () => undefined });
    client = openaiClient(s);
  });
  after(async () => {
    await s.close();
    vlm.dispose();
  });

  it('writes a JSON object about a picture for several seeds and temperatures', async () => {
    const messages = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: dataUrl('big_300x410.png') } }, { type: 'text' as const, text: 'What shapes are there? Answer in JSON.' }] }];
    for (const [temperature, seed] of [[0, 0], [0.5, 1], [1, 2], [1, 3]] as const) {
      const r = await client.chat.completions.create({ model: 'vlmkit-shapes', messages, max_tokens: 48, temperature, seed, response_format: json });
      assertObject(r.choices[0]!.message.content, `temperature ${temperature}, seed ${seed}`);
      assert.equal(r.choices[0]!.finish_reason, 'stop');
    }
  });
});
