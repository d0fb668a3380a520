// The generation loop: prefill the (left-padded) batch once, then one KV-cached step per token for the rows
// still running. A row that finishes leaves the batch (its cache rows are dropped), so it costs no more work.
// Events stream out as they happen (row, token, newly visible text); the return value holds every row's tokens,
// text, finish reason and the timings.
import { VlmkitError } from '../errors.js';
import { argmax as argmaxOp, tensor } from '../engine/index.js';
import type { Tensor } from '../engine/tensor.js';
import type { Tokenizer, StreamDecoder } from '../processing/tokenizer.js';
import { processLogits, resolveSampling, type ResolvedSampling, type SamplingOptions } from './logits.js';
import { greedySampler, multinomialSampler, type Sampler } from './sampling.js';
import type { TokenLogprobs } from './logprobs.js';
import type { PromptCache } from './prompt-cache.js';
import { StopStringMatcher } from './stopping.js';
import type { CausalLM, FinishReason, GenerationTimings, KVCache, ModelInputs } from './types.js';

export interface GenerateOptions extends SamplingOptions {
  /** tokens to generate at most per row (default 256) */
  maxNewTokens?: number;
  /** ids that end a row (default: the caller's eos set; see api.ts) */
  eosTokenIds?: readonly number[];
  /** strings that end a row; the text is cut before them (the tokens are kept) */
  stopStrings?: readonly string[];
  /** stops every row at the next token (finish reason 'aborted') */
  signal?: AbortSignal;
  /**
   * Keys/values kept from the previous generation of a one-row conversation: the prompt's prefix shared with it is
   * not run again, and the cache is left holding this generation for the next one (see prompt-cache.ts). Shared
   * tokens are trusted to stand for the same images: the caller keeps the images and image options of the shared
   * prefix unchanged, or resets the cache (vlm.chat() starts over when a turn's image options differ).
   */
  promptCache?: PromptCache;
  /** progress of the prompt pass: called after each image tile has been encoded (tiles done, tiles in all) */
  onImageTile?: (done: number, total: number) => void;
}

export interface GenerationEvent {
  /** row of the batch */
  row: number;
  tokenId: number;
  /** text that became visible with this token ('' while a character or a possible stop string is incomplete) */
  text: string;
  /** set on the row's last event */
  finishReason?: FinishReason;
  /** the token's log-probability and the step's most likely tokens, when asked for (continuous.ts) */
  logprobs?: TokenLogprobs;
}

export interface RowResult {
  /** generated ids, the end-of-sequence token included when one ended the row */
  tokenIds: number[];
  /** decoded answer without special tokens, cut before a stop string */
  text: string;
  finishReason: FinishReason;
}

export interface GenerationOutput {
  rows: RowResult[];
  timings: GenerationTimings;
}

interface Row {
  padCount: number;
  promptIds: number[];
  tokens: number[];
  sampler: Sampler;
  decoder: StreamDecoder | null;
  stop: StopStringMatcher;
  shown: string;
  finish: FinishReason | null;
}

function genError(message: string): VlmkitError {
  return new VlmkitError('E_GENERATE', message);
}

/** Reads a [B, T] integer tensor as rows of numbers. */
function intRows(t: Tensor): number[][] {
  if (t.rank !== 2) throw genError(`expected a [batch, seq] tensor, got shape [${t.shape}]`);
  const flat = t.toArray();
  const [B, T] = t.shape as [number, number];
  const rows: number[][] = [];
  for (let b = 0; b < B; b++) rows.push(flat.slice(b * T, (b + 1) * T));
  return rows;
}

/** transformers' position ids for a left-padded prompt: cumsum(mask) - 1, and 1 at padding. */
export function positionIdsFromMask(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((m) => {
    let c = 0;
    return m.map((v) => (v ? c++ : 1));
  });
}

function f32Rows(logits: Tensor, rows: number, vocab: number): Float32Array {
  if (logits.rank !== 2 || logits.shape[0] !== rows || logits.shape[1] !== vocab) {
    throw genError(`the model returned logits of shape [${logits.shape}], expected [${rows}, ${vocab}]`);
  }
  return logits.dtype === 'f32' && logits.isContiguous() ? (logits.data as Float32Array) : logits.toFloat32Array();
}

/** The index of each row's largest logit ([B, V] -> B ids; the first among ties, as torch.argmax). */
function argmaxRows(logits: Tensor): Int32Array {
  const a = argmaxOp(logits, 1);
  try {
    return Int32Array.from(a.toArray());
  } finally {
    a.dispose();
  }
}

/** The row's tokens so far (prompt without padding, then generated), without copying. */
function rowTokens(r: Row): Iterable<number> {
  return {
    *[Symbol.iterator]() {
      yield* r.promptIds;
      yield* r.tokens;
    },
  };
}

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Generates for a left-padded batch. `inputs` are the processor's tensors (not disposed here). eosTokenIds must
 * be resolved by the caller (the API merges generation_config.json, the tokenizer's eos and `<end_of_utterance>`).
 */
export async function* generateStream(
  lm: CausalLM,
  inputs: ModelInputs,
  opts: GenerateOptions & { tokenizer?: Tokenizer } = {},
): AsyncGenerator<GenerationEvent, GenerationOutput, undefined> {
  const t0 = performance.now();
  const sampling: ResolvedSampling = resolveSampling(opts);
  const maxNew = opts.maxNewTokens ?? 256;
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new VlmkitError('E_OPTION', `max_new_tokens must be an integer >= 1, got ${maxNew}`);
  const eos = new Set(opts.eosTokenIds ?? []);
  const ids = intRows(inputs.inputIds);
  const mask = intRows(inputs.attentionMask);
  const B = ids.length;
  const T = ids[0]?.length ?? 0;
  if (B === 0 || T === 0) throw genError('nothing to generate from: the batch has no rows or an empty prompt');

  const rows: Row[] = ids.map((rowIds, b) => {
    const m = mask[b]!;
    const pad = m.indexOf(1);
    if (pad < 0) throw genError(`batch row ${b} has no tokens (its attention mask is all zero)`);
    for (let i = pad; i < T; i++) {
      if (!m[i]) throw genError(`batch row ${b} is not left-padded (mask has a 0 after a 1); generation needs padding on the left: build the batch with the processor's padding 'left'`);
    }
    for (let i = 0; i < pad; i++) if (m[i]) throw genError(`batch row ${b}: malformed attention mask`);
    return {
      padCount: pad,
      promptIds: rowIds.slice(pad),
      tokens: [],
      sampler: sampling.doSample ? multinomialSampler(sampling.seed + b) : greedySampler(),
      decoder: opts.tokenizer ? opts.tokenizer.createStreamDecoder({ skipSpecialTokens: true }) : null,
      stop: new StopStringMatcher(opts.stopStrings ?? []),
      shown: '',
      finish: null,
    };
  });
  const longest = Math.max(...rows.map((r) => r.promptIds.length));
  if (longest >= lm.maxPositions) {
    throw new VlmkitError('E_CONTEXT', `the prompt has ${longest} tokens but the model's context holds ${lm.maxPositions}; shorten the prompt, use fewer or smaller images (or turn image splitting off)`);
  }
  // Rows stop at maxNew tokens or at the end of the context, whichever comes first: the cache never holds more.
  const shortest = Math.min(...rows.map((r) => r.promptIds.length));
  const capacity = T + Math.min(maxNew, lm.maxPositions - shortest);
  const V = lm.vocabSize;

  // A prompt cache: keep the cached positions of the longest prefix this prompt shares with them (at least one
  // token runs, for the logits), cut where the model can resume (never inside an image tile).
  const pc = opts.promptCache ?? null;
  let reused = 0;
  if (pc) {
    if (B !== 1 || rows[0]!.padCount !== 0) throw genError('a prompt cache serves one unpadded row at a time; generate batches without it');
    if (!lm.prefillFrom || !lm.resumePoint) throw genError('this model cannot resume from a cached prompt; generate without a prompt cache');
    if (pc.owner !== lm) pc.reset();
    if (pc.cache) {
      const prompt = rows[0]!.promptIds;
      const lim = Math.min(pc.ids.length, prompt.length - 1);
      let p = 0;
      while (p < lim && pc.ids[p] === prompt[p]) p++;
      reused = lm.resumePoint(prompt, p);
    }
  }
  let cache: KVCache | null;
  if (pc?.cache && reused > 0) {
    cache = pc.cache;
    pc.cache = null; // taken over; handed back when this generation ends well
    pc.ids = [];
    cache.truncate?.(reused);
    cache.reserve?.(capacity);
  } else {
    pc?.reset();
    reused = 0;
    cache = lm.createCache(B, capacity);
  }
  const prefillTokens = rows.reduce((s, r) => s + r.promptIds.length, 0) - reused;
  const plainGreedy = !sampling.doSample && sampling.repetitionPenalty === 1 && sampling.minNewTokens === 0;
  const pos = positionIdsFromMask(mask);
  const positionIds = tensor(pos.flat(), [B, T], { dtype: 'i32' });
  let prefillMs = 0;
  let decodeTokens = 0;
  let tDecode0 = 0;
  try {
    let logits: Tensor;
    try {
      const po = { onTile: opts.onImageTile };
      logits = reused > 0 ? lm.prefillFrom!(inputs, cache, reused, po) : lm.prefill({ ...inputs, positionIds }, cache, po);
    } finally {
      positionIds.dispose();
    }
    /** indices (into rows) of the rows in the model's current batch, in order */
    let active = rows.map((_, i) => i);
    let past = T;
    let firstStep = true;
    for (;;) {
      let scores: Float32Array;
      try {
        scores = f32Rows(logits, active.length, V);
        // plain greedy decoding (no logits processor applies): every row's argmax in one native reduction
        const picks = plainGreedy ? argmaxRows(logits) : null;
        const events: GenerationEvent[] = [];
        for (let j = 0; j < active.length; j++) {
          const r = rows[active[j]!]!;
          let tok: number;
          if (picks) tok = picks[j]!;
          else {
            const row = scores.subarray(j * V, (j + 1) * V);
            processLogits(row, sampling, { tokens: rowTokens(r), generated: r.tokens.length, eosIds: eos });
            tok = r.sampler.next(row);
          }
          r.tokens.push(tok);
          let text = r.decoder ? r.stop.push(r.decoder.push(tok)) : '';
          if (eos.has(tok)) r.finish = 'eos';
          else if (r.stop.stopped) r.finish = 'stop_string';
          else if (r.tokens.length >= maxNew) r.finish = 'length';
          else if (r.promptIds.length + r.tokens.length >= lm.maxPositions) r.finish = 'context';
          else if (opts.signal?.aborted) r.finish = 'aborted';
          if (r.finish && r.decoder) text += r.stop.flush(r.finish === 'stop_string' ? '' : r.decoder.flush());
          r.shown += text;
          events.push({ row: active[j]!, tokenId: tok, text, ...(r.finish ? { finishReason: r.finish } : {}) });
        }
        if (firstStep) {
          prefillMs = performance.now() - t0;
          tDecode0 = performance.now();
          firstStep = false;
        } else {
          decodeTokens += active.length;
        }
        yield* events;
      } finally {
        logits.dispose();
      }
      const keep: number[] = [];
      for (let j = 0; j < active.length; j++) if (!rows[active[j]!]!.finish) keep.push(j);
      if (keep.length === 0) break;
      if (keep.length < active.length) {
        cache.keepRows(keep);
        active = keep.map((j) => active[j]!);
      }
      const n = active.length;
      const stepIds = new Int32Array(n);
      const stepPos = new Int32Array(n);
      const stepMask = new Int32Array(n * (past + 1));
      for (let j = 0; j < n; j++) {
        const r = rows[active[j]!]!;
        stepIds[j] = r.tokens[r.tokens.length - 1]!;
        stepPos[j] = r.promptIds.length + r.tokens.length - 1;
        stepMask.fill(1, j * (past + 1) + r.padCount, (j + 1) * (past + 1));
      }
      const tIds = tensor(stepIds, [n, 1], { dtype: 'i32' });
      const tPos = tensor(stepPos, [n, 1], { dtype: 'i32' });
      const tMask = tensor(stepMask, [n, past + 1], { dtype: 'i32' });
      try {
        logits = lm.step({ inputIds: tIds, positionIds: tPos, attentionMask: tMask }, cache);
      } finally {
        tIds.dispose();
        tPos.dispose();
        tMask.dispose();
      }
      past++;
      await nextTick();
    }
  } finally {
    // a prompt cache keeps what the cache holds when that is exactly the prompt and every token fed back (also
    // when the caller stopped early, or a step failed before it counted); anything else is dropped
    const r = rows[0]!;
    if (pc && cache && cache.length === r.promptIds.length + Math.max(0, r.tokens.length - 1)) {
      pc.cache = cache;
      pc.ids = [...r.promptIds, ...r.tokens.slice(0, -1)];
      pc.owner = lm;
    } else {
      cache?.dispose();
    }
    cache = null;
  }
  const end = performance.now();
  const decodeMs = end - tDecode0;
  const generatedTokens = rows.reduce((s, r) => s + r.tokens.length, 0);
  return {
    rows: rows.map((r) => ({ tokenIds: r.tokens, text: r.decoder ? r.stop.finalText : '', finishReason: r.finish ?? 'length' })),
    timings: {
      prefillTokens,
      prefillMs,
      prefillTokensPerSec: prefillMs > 0 ? (prefillTokens / prefillMs) * 1000 : 0,
      decodeTokens,
      decodeMs,
      decodeTokensPerSec: decodeMs > 0 && decodeTokens > 0 ? (decodeTokens / decodeMs) * 1000 : 0,
      generatedTokens,
      reusedTokens: reused,
      totalMs: end - t0,
    },
  };
}

/** Runs generateStream to the end. */
export async function generate(lm: CausalLM, inputs: ModelInputs, opts: GenerateOptions & { tokenizer?: Tokenizer } = {}): Promise<GenerationOutput> {
  const it = generateStream(lm, inputs, opts);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
