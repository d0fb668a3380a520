// Whatever a client sends ends as an answer or OpenAI's error body ({"error": {message, type, param, code}}) with
// the right status, and the server keeps serving after each: malformed JSON, wrong types, unknown model, routes
// and methods, and every request limit.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertApiError, dataUrl, MODEL_ID, post, serveTiny, userText } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';

describe('vlmkit serve: malformed requests and limits', () => {
  let s: RunningServer;
  let chat: string;
  before(async () => {
    s = await serveTiny({ maxBodyBytes: 64 * 1024, maxImages: 2, maxImageBytes: 20_000, maxImagePixels: 100 * 100, maxPromptTokens: 400, maxTokens: 16, maxN: 2 });
    chat = `${s.url}/v1/chat/completions`;
  });
  after(() => s.close());

  /** A valid request still gets its answer. */
  async function stillServes(): Promise<void> {
    const r = await post(chat, { model: MODEL_ID, messages: userText('hi'), max_tokens: 2, temperature: 0 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices.length, 1);
  }

  const ok = { model: MODEL_ID, messages: userText('hi'), max_tokens: 2 };
  const cases: [string, unknown, number, RegExp, string | null][] = [
    ['malformed JSON', '{"model": "tiny-smolvlm", "messages": [', 400, /not valid JSON/, null],
    ['a JSON array', '[1, 2]', 400, /body must be a JSON object/, 'body'],
    ['no model', { messages: userText('hi') }, 400, /model must be a string/, 'model'],
    ['an unknown model', { ...ok, model: 'gpt-5' }, 404, /"gpt-5" does not exist.*tiny-smolvlm/, 'model'],
    ['messages not a list', { ...ok, messages: 'hi' }, 400, /messages must be an array/, 'messages'],
    ['no messages', { ...ok, messages: [] }, 400, /messages is empty/, 'messages'],
    ['a message without role', { ...ok, messages: [{ content: 'hi' }] }, 400, /messages\[0\]\.role must be a string/, 'messages[0].role'],
    ['an unknown role', { ...ok, messages: [{ role: 'robot', content: 'hi' }] }, 400, /"robot" is not supported/, 'messages[0].role'],
    ['content a number', { ...ok, messages: [{ role: 'user', content: 5 }] }, 400, /content must be a string or an array/, 'messages[0].content'],
    ['an unknown part', { ...ok, messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, 400, /"input_audio" is not supported/, 'messages[0].content[0].type'],
    ['an image without url', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 400, /url must be a string/, 'messages[0].content[0].image_url.url'],
    ['temperature a string', { ...ok, temperature: 'hot' }, 400, /temperature must be a number/, 'temperature'],
    ['temperature too high', { ...ok, temperature: 9 }, 400, /temperature must be a number from 0 to 2/, 'temperature'],
    ['top_p 0', { ...ok, top_p: 0 }, 400, /top_p must be a number in \(0, 1\]/, 'top_p'],
    ['max_tokens 0', { ...ok, max_tokens: 0 }, 400, /max_tokens must be an integer >= 1/, 'max_tokens'],
    ['max_tokens 2.5', { ...ok, max_tokens: 2.5 }, 400, /max_tokens must be an integer/, 'max_tokens'],
    ['max_tokens over the limit', { ...ok, max_tokens: 17 }, 400, /over this server's limit of 16/, 'max_tokens'],
    ['max_completion_tokens over the limit', { ...ok, max_completion_tokens: 100 }, 400, /limit of 16/, 'max_completion_tokens'],
    ['n over the limit', { ...ok, n: 3 }, 400, /n must be an integer from 1 to 2/, 'n'],
    ['stop a number', { ...ok, stop: 3 }, 400, /stop must be a string or an array/, 'stop'],
    ['five stops', { ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, /at most 4/, 'stop'],
    ['an empty stop', { ...ok, stop: [''] }, 400, /must not be empty/, 'stop[0]'],
    ['seed 1.5', { ...ok, seed: 1.5 }, 400, /seed must be an integer/, 'seed'],
    ['stream a string', { ...ok, stream: 'yes' }, 400, /stream must be true or false/, 'stream'],
    ['stream_options without stream', { ...ok, stream_options: { include_usage: true } }, 400, /only allowed with "stream": true/, 'stream_options'],
    ['top_logprobs over 20', { ...ok, logprobs: true, top_logprobs: 21 }, 400, /top_logprobs must be an integer from 0 to 20/, 'top_logprobs'],
    ['json_schema', { ...ok, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 400, /json_schema is not supported/, 'response_format.type'],
    ['an assistant message last', { ...ok, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }, 400, /end with a user message/, 'messages[1].role'],
    ['an image in an assistant turn', { ...ok, messages: [{ role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }, { role: 'user', content: 'x' }] }, 400, /images go in user messages only/, 'messages[0].content[0].type'],
    ['three images', { ...ok, messages: [{ role: 'user', content: [1, 2, 3].map(() => ({ type: 'image_url', image_url: { url: dataUrl('small_20x24.png') } })) }] }, 400, /at most 2 per request/, 'messages[0].content[2].image_url'],
    ['an image too big in bytes', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.alloc(30_000).toString('base64')}` } }] }] }, 400, /over this server's limit of 20000 bytes \(--max-image-bytes\)/, 'messages[0].content[0].image_url.url'],
    ['an image with too many pixels', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl('big_300x410.png') } }] }] }, 400, /410x300, over this server's limit of 10000 pixels/, 'messages[0].content[0].image_url.url'],
    ['not an image', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from('hello world').toString('base64')}` } }] }] }, 400, /not a PNG, JPEG, GIF or WebP/, 'messages[0].content[0].image_url.url'],
    ['a truncated PNG', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(dataUrl('square_64x64.png').split(',')[1]!, 'base64').subarray(0, 60).toString('base64')}` } }] }] }, 400, /image/, null],
    ['bad base64', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,@@@@' } }] }] }, 400, /not valid base64/, 'messages[0].content[0].image_url.url'],
    ['a data: URL that is not base64', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,abc' } }] }] }, 400, /must be base64/, 'messages[0].content[0].image_url.url'],
    ['an ftp URL', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://example.com/a.png' } }] }] }, 400, /use a data: URL/, 'messages[0].content[0].image_url.url'],
    ['a file URL without --media-path', { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] }] }, 400, /--media-path/, 'messages[0].content[0].image_url.url'],
    ['a prompt over the token limit', { ...ok, messages: userText('word '.repeat(500)) }, 400, /over this server's limit of 400 \(--max-prompt-tokens\)/, 'messages'],
    ['<image> written in the text', { ...ok, messages: userText('look: <image>') }, 400, /image/, null],
  ];
  for (const [name, body, status, message, param] of cases) {
    it(`${name} → ${status}, and the server keeps serving`, async () => {
      const r = await post(chat, body);
      assertApiError(r, status, message, param ?? undefined);
      await stillServes();
    });
  }

  it('a body over the limit → 413', async () => {
    const r = await post(chat, { ...ok, pad: 'x'.repeat(100 * 1024) });
    assertApiError(r, 413, /over this server's limit of 65536 bytes/);
    await stillServes();
  });

  it('a wrong method → 405, an unknown route → 404, both with the error body', async () => {
    const get = await fetch(chat);
    assert.equal(get.status, 405);
    assert.match(((await get.json()) as { error: { message: string } }).error.message, /takes POST/);
    const r = await post(`${s.url}/v1/completions`, ok);
    assertApiError(r, 404, /no route POST \/v1\/completions/);
    await stillServes();
  });

  it('a model path with a broken %-escape → 400, an unknown one → 404', async () => {
    const broken = await fetch(`${s.url}/v1/models/%E0%A4%A`);
    assert.equal(broken.status, 400);
    assert.match(((await broken.json()) as { error: { message: string } }).error.message, /broken %-escape/);
    const unknown = await fetch(`${s.url}/v1/models/gpt-5`);
    assert.equal(unknown.status, 404);
    await stillServes();
  });

  it('counts the answers by status in /metrics', async () => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(text, /^vlmkit_requests_total\{endpoint="\/v1\/chat\/completions",status="400"\} [1-9]\d*$/m);
    assert.match(text, /^vlmkit_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} [1-9]\d*$/m);
    assert.match(text, /^# TYPE vlmkit_time_to_first_token_seconds histogram$/m);
  });
});
