// logprobs / top_logprobs through the openai client: OpenAI's shape in plain and streamed answers, the model's
// log_softmax (checked against a direct forward pass of prompt + answer), the greedy token on top, the answer
// unchanged by asking for them, and 400s naming the field for bad values.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { tensor } from '../../src/engine/index.js';
import { assertApiError, dataUrl, MODEL_ID, openaiClient, post, serveTiny } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';
import type { Vlm } from '../../src/api.js';

describe('vlmkit serve logprobs', () => {
  let s: RunningServer & { vlm: Vlm };
  let client: OpenAI;
  before(async () => {
    s = await serveTiny();
    client = openaiClient(s);
  });
  after(() => s.close());

  const image = dataUrl('wide_90x150.png');
  const imageBytes = Buffer.from(image.split(',')[1]!, 'base64');
  const messages = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: image } }, { type: 'text' as const, text: 'What is in this image?' }] }];

  /** log_softmax of every position of prompt + answer tokens, by a direct forward pass of the whole sequence */
  async function directLogSoftmax(answerIds: number[]): Promise<Float64Array[]> {
    const enc = await s.vlm.processor.encodeBatch([{ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }], images: [imageBytes] }]);
    try {
      const prompt = enc.prompts[0]!.inputIds;
      const ids = [...prompt, ...answerIds];
      const T = ids.length;
      const inputIds = tensor(ids, [1, T], { dtype: 'i32' });
      const attentionMask = tensor(new Array(T).fill(1), [1, T], { dtype: 'i32' });
      const logits = s.vlm.model.logits({ inputIds, attentionMask, pixelValues: enc.pixelValues, pixelAttentionMask: enc.pixelAttentionMask });
      inputIds.dispose();
      attentionMask.dispose();
      const V = logits.shape[2]!;
      const all = logits.toFloat32Array();
      logits.dispose();
      // the logits at position t predict token t + 1: answer token j comes from position prompt + j - 1
      return answerIds.map((_, j) => {
        const row = all.subarray((prompt.length + j - 1) * V, (prompt.length + j) * V);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        const lse = max + Math.log(sum);
        return Float64Array.from(row, (v) => v - lse);
      });
    } finally {
      enc.dispose();
    }
  }

  it('reports the model log_softmax of each token and its top alternatives, the answer unchanged', async () => {
    const plain = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0 });
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0, logprobs: true, top_logprobs: 5 });
    const ch = r.choices[0]!;
    assert.equal(ch.message.content, plain.choices[0]!.message.content, 'logprobs do not change the answer');
    const content = ch.logprobs?.content;
    assert.ok(Array.isArray(content) && content.length > 0, 'logprobs.content is a list');
    // every token of the answer but an end of sequence
    const n = r.usage!.completion_tokens - (ch.finish_reason === 'stop' ? 1 : 0);
    assert.equal(content.length, n);
    assert.equal(Buffer.from(content.flatMap((c) => c.bytes!)).toString('utf8'), ch.message.content, 'the tokens\' bytes spell the answer');
    for (const c of content) {
      assert.equal(typeof c.token, 'string');
      assert.ok(Number.isFinite(c.logprob) && c.logprob <= 0, `a log-probability: ${c.logprob}`);
      assert.equal(c.top_logprobs.length, 5);
      const best = Math.max(...c.top_logprobs.map((t) => t.logprob));
      assert.ok(Number.isFinite(best) && Math.abs(c.logprob - best) <= 1e-12, 'the greedy token is the most likely one');
      assert.equal(c.top_logprobs[0]!.token, c.token);
      for (let i = 1; i < 5; i++) assert.ok(c.top_logprobs[i - 1]!.logprob >= c.top_logprobs[i]!.logprob, 'most likely first');
    }
    // against a direct forward pass: the answer's token ids are the top-1 ids of each step; recover them from the
    // full forward's argmax, and compare every value
    const ref = await s.vlm.generate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }], [imageBytes], { maxNewTokens: 10, temperature: 0 });
    const answerIds = ref.tokenIds.slice(0, content.length);
    const direct = await directLogSoftmax(answerIds);
    let worst = 0;
    content.forEach((c, j) => {
      const row = direct[j]!;
      worst = Math.max(worst, Math.abs(row[answerIds[j]!]! - c.logprob));
      const sorted = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, 5);
      c.top_logprobs.forEach((t, i) => (worst = Math.max(worst, Math.abs(row[sorted[i]!]! - t.logprob))));
    });
    assert.ok(Number.isFinite(worst) && worst <= 1e-4, `equal to a direct forward's log_softmax within 1e-4, worst ${worst}`);
  });

  it('streams logprobs per chunk, the same values as the plain answer', async () => {
    const plain = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 });
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
    const got: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const c of stream) for (const ch of c.choices) got.push(...(ch.logprobs?.content ?? []));
    assert.ok(got.length > 0);
    assert.deepEqual(got, plain.choices[0]!.logprobs!.content);
  });

  it('gives token logprobs without alternatives when top_logprobs is left out, and none without logprobs', async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 4, temperature: 0.8, seed: 3, logprobs: true });
    const c = r.choices[0]!.logprobs!.content!;
    assert.ok(c.length > 0);
    for (const t of c) {
      assert.deepEqual(t.top_logprobs, []);
      assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0);
    }
    const sampled = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 4, temperature: 0.8, seed: 3 });
    assert.equal(sampled.choices[0]!.message.content, r.choices[0]!.message.content, 'sampling is unchanged by logprobs');
    assert.equal(sampled.choices[0]!.logprobs, null);
  });

  it('refuses bad logprobs values with OpenAI error bodies naming the field', async () => {
    const url = `${s.url}/v1/chat/completions`;
    const base = { model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
    assertApiError(await post(url, { ...base, logprobs: true, top_logprobs: 21 }), 400, /top_logprobs/, 'top_logprobs');
    assertApiError(await post(url, { ...base, logprobs: true, top_logprobs: -1 }), 400, /top_logprobs/, 'top_logprobs');
    assertApiError(await post(url, { ...base, logprobs: true, top_logprobs: 1.5 }), 400, /top_logprobs/, 'top_logprobs');
    assertApiError(await post(url, { ...base, top_logprobs: 3 }), 400, /logprobs/, 'top_logprobs');
    assertApiError(await post(url, { ...base, logprobs: 'yes' }), 400, /logprobs/, 'logprobs');
    const ok = await post(url, { ...base, logprobs: true, top_logprobs: 20 });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.choices[0].logprobs.content[0].top_logprobs.length, 20);
  });
});
