// The small contract between generation and a model. Generation never looks inside a model: it hands it token
// ids, masks and positions, and gets back logits of the positions it asked for. A model (or a thin adapter around
// one, see adapter.ts) implements CausalLM; the KV cache is the model's own object, opaque to generation except
// for its length and the two operations batching needs (drop finished rows, dispose).
import type { Tensor } from '../engine/tensor.js';
import type { ModelCache } from '../models/types.js';

/** What the processor produces and a model's forward consumes (one batch, left- or right-padded). */
export interface ModelInputs {
  /** [B, T] token ids (i32) */
  inputIds: Tensor;
  /** [B, T] 1 = token, 0 = padding (i32) */
  attentionMask: Tensor;
  /** [B, N, 3, H, W] f32, N = the batch's largest tile count; absent for text-only batches */
  pixelValues?: Tensor;
  /** [B, N, H, W] u8, 1 = real pixel; padded tiles are all zero */
  pixelAttentionMask?: Tensor;
}

/** Prompt pass input: ModelInputs plus explicit positions (left padding: cumsum(mask) - 1, 1 at pads, as transformers). */
export interface PrefillInputs extends ModelInputs {
  /** [B, T] i32 */
  positionIds: Tensor;
}

/** One decode step: one new token per row. */
export interface StepInputs {
  /** [B, 1] i32 */
  inputIds: Tensor;
  /** [B, 1] i32: each row's own position (rows of a left-padded batch differ) */
  positionIds: Tensor;
  /** [B, past + 1] i32: the padding of the prompt stays masked for the whole generation */
  attentionMask: Tensor;
}

/** The model's key/value cache for one batch (the models' own face of it). */
export type KVCache = ModelCache;

/**
 * A causal LM with a KV cache. prefill and step return f32 logits [B, V] for the last position of each row only
 * (the lm_head is computed where logits are needed); the caller disposes them.
 */
export interface CausalLM {
  /** logits width (may exceed the tokenizer's vocabulary: models pad their embedding matrix) */
  readonly vocabSize: number;
  /** the text model's context length (max_position_embeddings) */
  readonly maxPositions: number;
  /** A cache for `batch` rows holding up to `capacity` positions. */
  createCache(batch: number, capacity: number): KVCache;
  /** Runs the prompt (vision tower included when pixelValues are given), fills `cache`, returns [B, V]. */
  prefill(inputs: PrefillInputs, cache: KVCache, opts?: PrefillOptions): Tensor;
  /** One token per row, appended to `cache`; returns [B, V]. */
  step(inputs: StepInputs, cache: KVCache): Tensor;
  /** Resuming from a cached prefix (PromptCache): where a prefix of `ids` may end, at most at p. */
  resumePoint?(ids: readonly number[], p: number): number;
  /** The prompt pass of a one-row prompt whose first `start` positions the cache already holds; returns [1, V]. */
  prefillFrom?(inputs: ModelInputs, cache: KVCache, start: number, opts?: PrefillOptions): Tensor;
  /**
   * Continuous batching (continuous.ts): a new cache whose row i holds parts[i]'s positions [from, to)
   * right-aligned to end at `length` (the columns before them are padding for the attention mask to hide), with
   * room for `capacity` positions. The sources stay as they are.
   */
  gatherCache?(parts: readonly CacheRowSpan[], length: number, capacity: number): KVCache;
}

/** Positions [from, to) of one row of a cache. */
export interface CacheRowSpan {
  cache: KVCache;
  row: number;
  from: number;
  to: number;
}

export interface PrefillOptions {
  /** called after each image tile has been encoded (tiles done, tiles in all): progress for long prompts */
  onTile?: (done: number, total: number) => void;
}

/** Why a row stopped. */
export type FinishReason = 'eos' | 'stop_string' | 'length' | 'context' | 'aborted';

export interface GenerationTimings {
  /** prompt tokens processed by the prefill (real tokens, padding excluded) */
  prefillTokens: number;
  prefillMs: number;
  prefillTokensPerSec: number;
  /** tokens produced by decode steps (every generated token but each row's first, which comes from the prefill) */
  decodeTokens: number;
  decodeMs: number;
  decodeTokensPerSec: number;
  /** every generated token of every row */
  generatedTokens: number;
  /** prompt tokens whose keys/values came from a PromptCache (not in prefillTokens) */
  reusedTokens: number;
  totalMs: number;
}
