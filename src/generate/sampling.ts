// Picking the next token from processed scores: greedy (argmax, the first index among equal maxima, as
// torch.argmax) or multinomial from softmax(scores) with the engine's seeded Rng (same seed, same tokens).
import { Rng } from '../engine/ops/create.js';

/** Index of the largest score; the first one on ties; NaN never wins. */
export function argmax(scores: Float32Array): number {
  let best = 0;
  let bv = -Infinity;
  let found = false;
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!;
    if (v > bv || (!found && v === bv)) {
      bv = v;
      best = i;
      found = true;
    }
  }
  return best;
}

/** Softmax in f64 (entries at -inf get probability 0). */
export function softmax(scores: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i]! > max) max = scores[i]!;
  const p = new Float64Array(scores.length);
  if (max === -Infinity) return p.fill(1 / scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const e = Math.exp(scores[i]! - max);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / sum;
  return p;
}

/** Draws one index from softmax(scores) using one uniform number from `rng`. */
export function sampleMultinomial(scores: Float32Array, rng: Rng): number {
  const p = softmax(scores);
  const u = rng.next();
  let acc = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    acc += p[i]!;
    last = i;
    if (u < acc) return i;
  }
  return last >= 0 ? last : argmax(scores); // rounding left acc a hair below 1
}

export interface Sampler {
  next(scores: Float32Array): number;
}

export function greedySampler(): Sampler {
  return { next: argmax };
}

/** A multinomial sampler with its own Rng: rows of a batch each get one, seeded seed + row. */
export function multinomialSampler(seed: number): Sampler {
  const rng = new Rng(seed);
  return { next: (s) => sampleMultinomial(s, rng) };
}
