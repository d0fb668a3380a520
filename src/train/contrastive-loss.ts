// The contrastive losses over a batch of matched (image, text) pairs, where row i of logits_per_image [N, N] is
// image i scored against every text and text i is image i's own caption:
// - CLIP (Radford et al. 2021; transformers' clip_loss): cross-entropy over each row (image -> texts) and over
//   each column (text -> images) with the diagonal as the target, each averaged over the batch, then averaged.
// - SigLIP (Zhai et al. 2023; transformers' SiglipModel loss): an independent sigmoid per pair,
//   -sum(log sigmoid(z · logit)) / N with z = +1 on the diagonal and -1 elsewhere (summed over the N² pairs,
//   divided by the batch size, as the paper's pseudo-code and transformers do).
// The logits already carry the scale (and SigLIP's bias): logit_scale.exp() · cos-sim (+ logit_bias).
import { type Tensor, add, arange, contiguous, crossEntropy, logsigmoid, mul, sum, tensor, transpose } from '../engine/index.js';
import { ShapeError } from '../errors.js';

export type ContrastiveLossName = 'clip' | 'siglip';
export const CONTRASTIVE_LOSSES: readonly ContrastiveLossName[] = ['clip', 'siglip'];

function square(logits: Tensor, what: string): number {
  const [n, m] = logits.shape;
  if (logits.rank !== 2 || n !== m || !n)
    throw new ShapeError(`${what}: logits_per_image ${JSON.stringify(logits.shape)} must be [N, N] (N images against their N captions)`);
  return n!;
}

/** CLIP's symmetric softmax loss: (CE(images -> texts) + CE(texts -> images)) / 2, each a batch mean. */
export function clipLoss(logitsPerImage: Tensor): Tensor {
  const n = square(logitsPerImage, 'clipLoss');
  const y = arange(n, { dtype: 'i32', backend: logitsPerImage.backend });
  const perImage = crossEntropy(logitsPerImage, y, { reduction: 'mean' });
  const perText = crossEntropy(contiguous(transpose(logitsPerImage)), y, { reduction: 'mean' });
  return mul(add(perImage, perText), 0.5);
}

/** SigLIP's sigmoid loss: -sum over every pair of log sigmoid(z · logit), z = 2·eye - 1, divided by N. */
export function siglipLoss(logitsPerImage: Tensor): Tensor {
  const n = square(logitsPerImage, 'siglipLoss');
  const z = new Float32Array(n * n).fill(-1);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  const signs = tensor(z, [n, n], { dtype: 'f32', backend: logitsPerImage.backend });
  return mul(sum(logsigmoid(mul(logitsPerImage, signs))), -1 / n);
}

export function contrastiveLoss(name: ContrastiveLossName, logitsPerImage: Tensor): Tensor {
  return name === 'clip' ? clipLoss(logitsPerImage) : siglipLoss(logitsPerImage);
}
