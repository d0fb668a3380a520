// Continuous batching over real HTTP: requests that arrive while another streams join its decode steps (they end
// long before it does), a client that hangs up leaves the others' answers as they are, and the built-in model
// answers 8 staggered clients about its demo picture exactly as it answers each alone (greedy).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type OpenAI from 'openai';
import { loadVlm } from '../../src/api.js';
import { DEMO_QUESTIONS } from '../../src/cli/demo.js';
import { defaultLimits, startServer, type RunningServer } from '../../src/serve/server.js';
import { MODEL_ID, openaiClient, post, ROOT, serveTiny, userText } from './helpers.js';

interface Stream {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  /** what the first read brought */
  first: string;
}

/** Starts a streamed answer and returns its reader after the first chunk. */
async function startStream(base: string, body: object, ctl: AbortController): Promise<Stream> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_ID, temperature: 0, stream: true, ...body }),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  return { reader, first };
}

/** The streamed answer's text, read to [DONE]. */
async function readStream({ reader, first }: Stream): Promise<string> {
  let raw = first;
  const dec = new TextDecoder();
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    raw += dec.decode(r.value, { stream: true });
  }
  const events = raw.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  assert.equal(events.at(-1), '[DONE]');
  return events.slice(0, -1).map((e) => JSON.parse(e)).map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
}

describe('vlmkit serve: continuous batching (tiny model)', () => {
  let s: RunningServer;
  before(async () => {
    s = await serveTiny();
  });
  after(() => s.close());

  it('a request arriving mid-stream joins the running batch and ends long before the stream', async () => {
    const ctl = new AbortController();
    // ~2,000 tokens: seconds of decoding
    const { reader } = await startStream(s.url, { messages: userText('go on'), max_tokens: 2000 }, ctl);
    const t = performance.now();
    const r = await post(`${s.url}/v1/chat/completions`, { model: MODEL_ID, messages: userText('a short one'), max_tokens: 4, temperature: 0 });
    const waited = performance.now() - t;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.completion_tokens, 4);
    assert.equal(s.metrics.running, 1, 'the long stream still runs');
    assert.ok(waited < 3000, `answered in ${waited} ms, without waiting for the stream to end`);
    await reader.cancel();
    ctl.abort();
  });

  it('a client that hangs up mid-stream leaves the other streams as they are', async () => {
    const bodies = [
      { messages: userText('first one stays'), max_tokens: 40 },
      { messages: userText('second one stays, with more words'), max_tokens: 30 },
    ];
    const alone: string[] = [];
    for (const b of bodies) alone.push(await readStream(await startStream(s.url, b, new AbortController())));
    const ctl = new AbortController();
    const leaver = await startStream(s.url, { messages: userText('this one hangs up'), max_tokens: 2000 }, ctl);
    const readers = await Promise.all(bodies.map((b) => startStream(s.url, b, new AbortController())));
    const texts = readers.map(readStream);
    // hang up while the others decode
    await leaver.reader.read();
    ctl.abort();
    assert.deepEqual(await Promise.all(texts), alone);
    assert.equal(s.metrics.running, 0, 'nothing left running');
  });
});

describe('vlmkit serve: the built-in model, 8 staggered clients on the demo picture', () => {
  let s: RunningServer;
  before(async () => {
    const vlm = await loadVlm(join(ROOT, 'models', 'vlmkit-shapes'));
    s = await startServer({ vlm, modelId: 'vlmkit-shapes', limits: defaultLimits(vlm.model.maxPositions), host: '127.0.0.1', port: 0, log: () => undefined });
  });
  after(() => s.close());

  it('each gets the answer it gets alone (greedy), and they ran together', async () => {
    const client = openaiClient(s);
    const url = `data:image/png;base64,${readFileSync(join(ROOT, 'assets', 'demo.png')).toString('base64')}`;
    const questions = [...DEMO_QUESTIONS, 'What shapes are there?', 'Is there a green circle?'];
    assert.equal(questions.length, 8);
    const requests = questions.map((q, i) => ({
      model: 'vlmkit-shapes', temperature: 0, max_tokens: 6 + 5 * i,
      // half of them without the picture: prompts of very different lengths
      messages: [{ role: 'user' as const, content: [...(i % 3 === 2 ? [] : [{ type: 'image_url' as const, image_url: { url } }]), { type: 'text' as const, text: q }] }],
    }));
    const alone: string[] = [];
    for (const r of requests) alone.push((await client.chat.completions.create(r)).choices[0]!.message.content!);
    const m = s.metrics;
    const steps0 = m.decodeSteps, tokens0 = m.decodeTokens;
    let most = 0;
    const poll = setInterval(() => {
      most = Math.max(most, s.metrics.running);
    }, 2);
    try {
      const together = await Promise.all(requests.map(async (r, i) => {
        // a few ms apart: on a quiet machine a short answer takes well under 40 ms, and 40-ms gaps let them run one by one
        await new Promise((res) => setTimeout(res, 6 * i));
        if (i % 2) {
          let text = '';
          for await (const c of await client.chat.completions.create({ ...r, stream: true })) text += c.choices[0]?.delta.content ?? '';
          return text;
        }
        return (await client.chat.completions.create(r)).choices[0]!.message.content!;
      }));
      assert.deepEqual(together, alone);
    } finally {
      clearInterval(poll);
    }
    assert.ok(new Set(alone).size > 3, 'the questions have different answers');
    assert.ok(most >= 3, `requests shared the batch (at most ${most} ran at once)`);
    const steps = m.decodeSteps - steps0, tokens = m.decodeTokens - tokens0;
    assert.ok(steps > 0 && tokens > steps, `some decode steps ran several rows (${tokens} tokens in ${steps} steps)`);
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(text, new RegExp(`^vlmkit_decode_tokens_total ${m.decodeTokens}$`, 'm'));
  });
});
