// Logits processors, each as transformers defines it (generation/logits_process.py), on one row of scores
// (a Float32Array of vocabulary width, modified in place). The order is transformers' order: processors
// (repetition penalty, min new tokens) always; then, when sampling, the warpers temperature -> top-k -> top-p.
import { VlmkitError } from '../errors.js';

function optError(message: string): VlmkitError {
  return new VlmkitError('E_OPTION', message);
}

/**
 * RepetitionPenaltyLogitsProcessor: for every distinct token id already in the sequence, a negative score is
 * multiplied by `penalty` and a positive one divided by it (so penalty > 1 discourages repeats).
 */
export function applyRepetitionPenalty(scores: Float32Array, tokens: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const t of tokens) {
    if (seen.has(t) || t < 0 || t >= scores.length) continue;
    seen.add(t);
    const s = scores[t]!;
    scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/** MinNewTokensLengthLogitsProcessor: end-of-sequence ids get -inf while fewer than minNewTokens were generated. */
export function applyMinNewTokens(scores: Float32Array, generated: number, minNewTokens: number, eosIds: Iterable<number>): void {
  if (generated >= minNewTokens) return;
  for (const e of eosIds) if (e >= 0 && e < scores.length) scores[e] = -Infinity;
}

/** TemperatureLogitsWarper: scores / temperature. */
export function applyTemperature(scores: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / temperature;
}

// ---------------------------------------------------------------- a max-heap of indices ordered by score

/** Binary heap over `idx[0..n)` with `better(a, b)` deciding which index sits nearer the top. */
class IndexHeap {
  readonly idx: Int32Array;
  n: number;
  private readonly better: (a: number, b: number) => boolean;
  constructor(idx: Int32Array, n: number, better: (a: number, b: number) => boolean) {
    this.idx = idx;
    this.n = n;
    this.better = better;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.down(i);
  }
  down(i: number): void {
    const h = this.idx;
    const x = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.n) break;
      const r = l + 1;
      const c = r < this.n && this.better(h[r]!, h[l]!) ? r : l;
      if (!this.better(h[c]!, x)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = x;
  }
  top(): number {
    return this.idx[0]!;
  }
  pop(): number {
    const t = this.idx[0]!;
    this.idx[0] = this.idx[--this.n]!;
    if (this.n > 0) this.down(0);
    return t;
  }
  /** replaces the top and restores the heap */
  replaceTop(v: number): void {
    this.idx[0] = v;
    this.down(0);
  }
}

/** The k-th largest score (k >= 1), in O(V log k). */
export function kthLargest(scores: Float32Array, k: number): number {
  const n = scores.length;
  if (k >= n) {
    let m = Infinity;
    for (let i = 0; i < n; i++) if (scores[i]! < m) m = scores[i]!;
    return m;
  }
  // a min-heap of the k largest seen so far
  const idx = new Int32Array(k);
  for (let i = 0; i < k; i++) idx[i] = i;
  const heap = new IndexHeap(idx, k, (a, b) => scores[a]! < scores[b]!);
  for (let i = k; i < n; i++) if (scores[i]! > scores[heap.top()]!) heap.replaceTop(i);
  return scores[heap.top()]!;
}

/**
 * TopKLogitsWarper: keeps the scores >= the k-th largest (ties at the threshold are kept), the rest -> -inf.
 * k is raised to minTokensToKeep and capped at the vocabulary.
 */
export function applyTopK(scores: Float32Array, topK: number, minTokensToKeep = 1): void {
  const k = Math.min(Math.max(topK, minTokensToKeep), scores.length);
  if (k >= scores.length || k <= 0) return;
  const thr = kthLargest(scores, k);
  for (let i = 0; i < scores.length; i++) if (scores[i]! < thr) scores[i] = -Infinity;
}

/**
 * TopPLogitsWarper (nucleus): sorting ascending, a token is removed when the cumulative softmax up to and
 * including it is <= 1 - topP; the minTokensToKeep highest are always kept. Equivalently, going down from the
 * highest score, a token is kept while the probability mass above it is < topP. Without sorting the vocabulary:
 * the probability mass is bucketed by score (2 passes), whole buckets above the crossing point are kept, and only
 * the bucket where the mass crosses topP is sorted and walked token by token.
 */
export function applyTopP(scores: Float32Array, topP: number, minTokensToKeep = 1): void {
  if (topP >= 1) return;
  const n = scores.length;
  let max = -Infinity;
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (s === -Infinity) continue;
    if (s > max) max = s;
    if (s < min) min = s;
  }
  if (max === -Infinity) return;
  const NB = 2048;
  const width = (max - min) / NB;
  const inv = width > 0 ? 1 / width : 0;
  // per token: its bucket (NB = removed already) and exp(s - max); scores more than 40 below the max have
  // probability < 4e-18 of the top token's and count as 0 (below f32 softmax resolution)
  const bucket = new Uint16Array(n);
  const prob = new Float64Array(n);
  const mass = new Float64Array(NB);
  const count = new Int32Array(NB);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const s = scores[i]!;
    if (s === -Infinity) {
      bucket[i] = NB;
      continue;
    }
    const b = Math.min(NB - 1, ((s - min) * inv) | 0);
    bucket[i] = b;
    count[b]++;
    if (s - max > -40) {
      const e = Math.exp(s - max);
      prob[i] = e;
      mass[b] += e;
      total += e;
    }
  }
  const target = topP * total; // compare unnormalised masses
  // walk buckets from the highest scores down; `cut` = lowest bucket kept whole, `partial` = tokens kept from the crossing bucket
  let above = 0;
  let kept = 0;
  let cut = NB;
  let partial: number[] = [];
  const done = () => above >= target && kept >= minTokensToKeep;
  for (let b = NB - 1; b >= 0; b--) {
    if (count[b] === 0) continue;
    if (done()) break;
    if (above + mass[b]! < target) {
      above += mass[b]!;
      kept += count[b]!;
      cut = b;
      continue;
    }
    const members: number[] = [];
    for (let i = 0; i < n; i++) if (bucket[i] === b) members.push(i);
    members.sort((x, y) => scores[y]! - scores[x]! || x - y);
    for (const i of members) {
      if (done()) break;
      partial.push(i);
      above += prob[i]!;
      kept++;
    }
    if (done()) break;
    // (only with minTokensToKeep > 1: the walk goes on below this bucket, whose tokens are all kept)
    cut = b;
    partial = [];
  }
  for (const i of partial) bucket[i] = NB;
  for (let i = 0; i < n; i++) if (bucket[i]! < cut) scores[i] = -Infinity;
}

export interface SamplingOptions {
  /** sample (true) or take the argmax (false). Default: true when temperature > 0 is given, else false. */
  doSample?: boolean;
  /** > 0; 0 means greedy. Default 1 when sampling. */
  temperature?: number;
  /** keep the k highest scores (0 or undefined = off) */
  topK?: number;
  /** nucleus sampling mass in (0, 1] (1 or undefined = off) */
  topP?: number;
  /** > 0; 1 or undefined = off; > 1 discourages repeating tokens of the prompt and the answer */
  repetitionPenalty?: number;
  /** end-of-sequence ids are suppressed until this many tokens were generated */
  minNewTokens?: number;
  /** seed of the sampler's Rng (default 0: sampling is reproducible unless a seed is varied) */
  seed?: number;
}

/** Validated, resolved sampling settings. */
export interface ResolvedSampling {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  minNewTokens: number;
  seed: number;
}

/** Checks the options (a bad value is a VlmkitError naming the option) and fills in defaults. */
export function resolveSampling(o: SamplingOptions = {}): ResolvedSampling {
  const num = (name: string, v: number | undefined, ok: (x: number) => boolean, want: string): void => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))) {
      throw optError(`${name} must be ${want}, got ${v}`);
    }
  };
  num('temperature', o.temperature, (x) => x >= 0, 'a number >= 0 (0 = greedy)');
  num('top_k', o.topK, (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0 (0 = off)');
  num('top_p', o.topP, (x) => x > 0 && x <= 1, 'a number in (0, 1] (1 = off)');
  num('repetition_penalty', o.repetitionPenalty, (x) => x > 0, 'a number > 0 (1 = off)');
  num('min_new_tokens', o.minNewTokens, (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
  num('seed', o.seed, (x) => Number.isInteger(x), 'an integer');
  const temperature = o.temperature ?? 1;
  const doSample = o.doSample ?? (o.temperature !== undefined && o.temperature > 0);
  if (doSample && temperature === 0) throw optError('temperature 0 means greedy decoding; drop doSample or give a temperature > 0');
  return {
    doSample,
    temperature,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    minNewTokens: o.minNewTokens ?? 0,
    seed: o.seed ?? 0,
  };
}

/**
 * Applies every enabled processor to one row, in transformers' order. `tokens` are the row's tokens so far
 * (prompt without padding, then the generated ones) for the repetition penalty; `generated` counts the latter.
 */
export function processLogits(
  scores: Float32Array,
  s: ResolvedSampling,
  ctx: { tokens: Iterable<number>; generated: number; eosIds: Iterable<number> },
): void {
  if (s.repetitionPenalty !== 1) applyRepetitionPenalty(scores, ctx.tokens, s.repetitionPenalty);
  if (s.minNewTokens > 0) applyMinNewTokens(scores, ctx.generated, s.minNewTokens, ctx.eosIds);
  if (!s.doSample) return;
  applyTemperature(scores, s.temperature);
  if (s.topK > 0) applyTopK(scores, s.topK);
  if (s.topP < 1) applyTopP(scores, s.topP);
}
