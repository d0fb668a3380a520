// The causal language-modelling loss as transformers computes it (ForCausalLMLoss): the logits of positions
// 0..T-2 predict the labels of positions 1..T-1; labels equal to -100 (padding, image tokens, prompt tokens with
// an assistant-only loss) are ignored; the mean is taken over the counted labels, or the sum is divided by
// `numItemsInBatch` (the count over all micro-batches of a gradient-accumulation step, as transformers' Trainer).
import { type Tensor, crossEntropy, div, slice } from '../engine/index.js';
import { ShapeError } from '../errors.js';

export interface CausalLmLossOptions {
  /** labels to skip (default -100) */
  ignoreIndex?: number;
  /** divide the summed loss by this count instead of taking the mean over this batch's labels */
  numItemsInBatch?: number;
}

/** Scalar loss from logits [B, T, V] and integer labels [B, T] (unshifted, as transformers takes them). */
export function causalLmLoss(logits: Tensor, labels: Tensor, o: CausalLmLossOptions = {}): Tensor {
  if (logits.rank !== 3 || labels.rank !== 2 || logits.shape[0] !== labels.shape[0] || logits.shape[1] !== labels.shape[1])
    throw new ShapeError(`causalLmLoss: logits [${logits.shape}] and labels [${labels.shape}] must be [B, T, V] and [B, T]`);
  const T = logits.shape[1]!;
  if (T < 2) throw new ShapeError(`causalLmLoss: needs at least 2 positions, got logits [${logits.shape}]`);
  const ignoreIndex = o.ignoreIndex ?? -100;
  const x = slice(logits, 1, 0, T - 1);
  const y = slice(labels, 1, 1, T);
  if (o.numItemsInBatch === undefined) return crossEntropy(x, y, { ignoreIndex });
  const s = crossEntropy(x, y, { ignoreIndex, reduction: 'sum' });
  return div(s, o.numItemsInBatch);
}
