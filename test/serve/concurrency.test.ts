// Many clients at once: 8 concurrent clients each get exactly the greedy answer they get alone; a client that
// hangs up mid-stream frees the engine at once; a full queue answers 429; a request past its time limit ends
// with an error (a 408 before the answer started, an error event in a stream) and the server keeps serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { assertApiError, dataUrl, metric, MODEL_ID, openaiClient, post, serveTiny, userText } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';

/** Polls `cond` every 20 ms for up to `ms`; true when it held. */
async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** Starts a long streamed answer (2,000 tokens take this tiny model ~10 s) and waits for its first piece. */
async function longStream(base: string, ctl: AbortController): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_ID, messages: userText('go on'), max_tokens: 2000, temperature: 0, stream: true }),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /^data: \{/);
  return reader;
}

describe('vlmkit serve: concurrent clients', () => {
  let s: RunningServer;
  before(async () => {
    // one sequence at a time: a second request waits in the queue (of one) instead of joining the batch
    s = await serveTiny({ maxQueue: 1, maxBatch: 1 });
  });
  after(() => s.close());

  it('8 concurrent clients each get exactly their answer alone (greedy)', async () => {
    const client = openaiClient(s);
    const images = ['wide_90x150.png', 'tall_200x70.png', 'square_64x64.png', 'small_20x24.png'];
    const requests = Array.from({ length: 8 }, (_, i) => ({
      model: MODEL_ID, max_tokens: 8, temperature: 0,
      messages: [{ role: 'user' as const, content: [
        ...(i % 2 === 0 ? [{ type: 'image_url' as const, image_url: { url: dataUrl(images[i / 2]!) } }] : []),
        { type: 'text' as const, text: `question number ${i}: ${'why '.repeat(i)}` },
      ] }],
    }));
    const alone: string[] = [];
    for (const r of requests) alone.push((await client.chat.completions.create(r)).choices[0]!.message.content!);
    // the 8 share a queue of 1 here: the server's own one would answer 429, so these go to a roomier server
    const roomy = await serveTiny({ maxQueue: 16 });
    try {
      const c8 = new OpenAI({ baseURL: `${roomy.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const together = await Promise.all(requests.map(async (r, i) => {
        if (i % 2) {
          // half of them stream
          let text = '';
          for await (const c of await c8.chat.completions.create({ ...r, stream: true })) text += c.choices[0]?.delta.content ?? '';
          return text;
        }
        return (await c8.chat.completions.create(r)).choices[0]!.message.content!;
      }));
      assert.deepEqual(together, alone);
      assert.ok(new Set(alone).size > 1, 'the prompts have different answers');
    } finally {
      await roomy.close();
    }
  });

  it('a client that hangs up mid-stream frees the engine at once', async () => {
    const before = await metric(s.url, 'vlmkit_completion_tokens_total');
    const ctl = new AbortController();
    await longStream(s.url, ctl);
    assert.equal(await metric(s.url, 'vlmkit_requests_running'), 1);
    ctl.abort();
    // a full answer would take ~10 s more
    assert.ok(await waitFor(async () => (await metric(s.url, 'vlmkit_requests_running')) === 0, 3000), 'the generation stopped');
    assert.equal(await metric(s.url, 'vlmkit_completion_tokens_total'), before, 'no answer was counted');
    const r = await post(`${s.url}/v1/chat/completions`, { model: MODEL_ID, messages: userText('hi'), max_tokens: 2 });
    assert.equal(r.status, 200, r.text);
  });

  it('a full queue answers 429; a waiting client that hangs up leaves the queue', async () => {
    const ctl = new AbortController();
    const reader = await longStream(s.url, ctl);
    const waitCtl = new AbortController();
    const waiting = fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', signal: waitCtl.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, messages: userText('me next'), max_tokens: 2 }),
    }).catch((e: Error) => e);
    assert.ok(await waitFor(async () => (await metric(s.url, 'vlmkit_queue_depth')) === 1, 3000), 'the second request waits');
    const third = await post(`${s.url}/v1/chat/completions`, { model: MODEL_ID, messages: userText('and me'), max_tokens: 2 });
    assertApiError(third, 429, /busy: 1 requests are already waiting \(--max-queue\)/);
    assert.equal(third.json.error.type, 'rate_limit_error');
    waitCtl.abort();
    assert.ok((await waiting) instanceof Error);
    assert.ok(await waitFor(async () => (await metric(s.url, 'vlmkit_queue_depth')) === 0, 3000), 'the waiting client left the queue');
    await reader.cancel();
    ctl.abort();
    assert.ok(await waitFor(async () => (await metric(s.url, 'vlmkit_requests_running')) === 0, 3000));
    const r = await post(`${s.url}/v1/chat/completions`, { model: MODEL_ID, messages: userText('hi'), max_tokens: 2 });
    assert.equal(r.status, 200, r.text);
  });
});

describe('vlmkit serve: the request time limit', () => {
  let s: RunningServer;
  before(async () => {
    // short: on a quiet machine the tiny model writes its 2,000 tokens in well under a second
    s = await serveTiny({ requestTimeoutMs: 150 });
  });
  after(() => s.close());

  const long = { model: MODEL_ID, messages: userText('go on'), max_tokens: 2000, temperature: 0 };

  it('a request past it gets a 408 and the engine is freed', async () => {
    const t = Date.now();
    const r = await post(`${s.url}/v1/chat/completions`, long);
    assertApiError(r, 408, /time limit of 0\.15 s \(--request-timeout\)/);
    assert.ok(Date.now() - t < 5000, `stopped at the limit, not after the answer (${Date.now() - t} ms)`);
    assert.equal(await metric(s.url, 'vlmkit_requests_running'), 0);
  });

  it('a stream past it ends with an error event and [DONE]', async () => {
    const r = await post(`${s.url}/v1/chat/completions`, { ...long, stream: true });
    assert.equal(r.status, 200);
    const events = r.text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    assert.equal(events.at(-1), '[DONE]');
    const err = JSON.parse(events.at(-2)!);
    assert.equal(err.error.code, 'request_timeout');
    assert.ok(events.length >= 3, 'some of the answer came first');
    const ok = await post(`${s.url}/v1/chat/completions`, { ...long, max_tokens: 2 });
    assert.equal(ok.status, 200, ok.text);
  });
});
