// One chat completion on the engine: the request's messages and images encoded (one row; its n choices share
// the prompt pass), checked against the prompt-token limit, then generated among the other requests (queue.ts).
// Events stream out as the engine makes them; the return value has every choice's text, tokens and finish reason.
import { createHash } from 'node:crypto';
import { resolveGenerateOptions, type Vlm } from '../api.js';
import type { GenerationEvent, GenerationOutput } from '../generate/generate.js';
import type { FinishReason } from '../generate/types.js';
import { ApiError, badRequest } from './errors.js';
import type { RequestQueue } from './queue.js';
import type { ChatRequest, ServeLimits } from './request.js';

export interface Completion {
  out: GenerationOutput;
  promptTokens: number;
}

/**
 * Where each image's placeholder run starts in a prompt's ids: an image is <fake_token_around_image> ... with its
 * tiles, and ends at the <fake_token_around_image> after its global tile. null when the runs found do not match
 * the images given (then no image position is trusted: see imageStarts' use in the prefix cache).
 */
export function imageStarts(ids: readonly number[], fake: number | null, global: number | null, images: number): number[] | null {
  if (fake === null || global === null) return null;
  const starts: number[] = [];
  let inside = false;
  let sawGlobal = false;
  ids.forEach((t, i) => {
    if (t === global && inside) sawGlobal = true;
    else if (t === fake) {
      if (!inside) {
        starts.push(i);
        inside = true;
      } else if (sawGlobal) inside = sawGlobal = false;
    }
  });
  return starts.length === images ? starts : null;
}

/** OpenAI's finish_reason for ours ('aborted' never reaches a client: the request failed or the client left). */
export function finishReason(f: FinishReason): 'stop' | 'length' {
  return f === 'eos' || f === 'stop_string' ? 'stop' : 'length';
}

export async function* complete(
  vlm: Vlm, queue: RequestQueue, req: ChatRequest, images: readonly Uint8Array[], limits: ServeLimits, signal: AbortSignal,
): AsyncGenerator<GenerationEvent, Completion, undefined> {
  if (req.n > queue.maxBatch) {
    throw badRequest('n', `n is ${req.n} but this server decodes at most ${queue.maxBatch} sequences together (--max-batch); ask for fewer choices`, 'invalid_value');
  }
  const enc = await vlm.processor.encodeBatch([{ messages: req.messages, images }], { maxImagePixels: limits.maxImagePixels });
  try {
    const promptTokens = enc.prompts[0]!.inputIds.length;
    if (promptTokens > limits.maxPromptTokens) {
      throw badRequest('messages', `the prompt is ${promptTokens} tokens (images included), over this server's limit of ${limits.maxPromptTokens} (--max-prompt-tokens); send fewer or smaller images or a shorter conversation`, 'context_length_exceeded');
    }
    if (signal.aborted) throw signal.reason;
    const sampling = req.temperature === undefined || req.temperature > 0;
    const o = resolveGenerateOptions(vlm.generationConfig, {
      temperature: req.temperature,
      topP: req.topP,
      // OpenAI's seed is optional and leaves sampling random when left out
      seed: req.seed ?? (sampling ? Math.floor(Math.random() * 2 ** 31) : 0),
      maxNewTokens: req.maxTokens,
      stopStrings: req.stop,
      signal,
    }, vlm.eosTokenIds);
    const ids = enc.prompts[0]!.inputIds;
    const sp = vlm.tokenizer.specialIds;
    // placeholders of the same size are the same ids for any picture: the prefix cache tells images apart by content
    const prefix = {
      images: images.map((b) => createHash('sha256').update(b).digest('hex')),
      // unknown image positions: every image counts as starting at 0, so any differing picture shares nothing
      imageStarts: imageStarts(ids, sp.fakeTokenAroundImage, sp.globalImage, images.length) ?? images.map(() => 0),
    };
    const out: GenerationOutput = yield* queue.generate(enc, { ...o, n: req.n, tokenizer: vlm.tokenizer, logprobs: req.topLogprobs, json: req.json, prefix });
    if (signal.aborted) throw signal.reason instanceof ApiError ? signal.reason : signal.reason ?? new Error('aborted');
    return { out, promptTokens };
  } finally {
    enc.dispose();
  }
}
