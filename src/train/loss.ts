// The causal language-modelling loss as transformers computes it (ForCausalLMLoss): the logits of position t
// predict the label of position t + 1; labels equal to -100 (padding, image tokens, prompt tokens with an
// assistant-only loss) are ignored; the summed loss is divided by the number of counted labels, or by
// `numItemsInBatch` (the count over all micro-batches of a gradient-accumulation step, as transformers' Trainer).
// This is the one loss path: the SFT objective trains with it and the parity cases check it. The model computes
// logits only at the positions whose next label counts (never at image, padding or masked prompt positions), so
// the lm_head costs what the targets need. A model that hands out the hidden states before its head (hiddenAt)
// gets the head and the cross-entropy as one op (linearCrossEntropy) when the head is frozen (LoRA, QLoRA): the
// [targets, V] logits and their gradient are made a chunk at a time and never held through the model's backward.
import { type Tensor, crossEntropy, linear, linearCrossEntropy, mul, tensor } from '../engine/index.js';
import { ShapeError, VlmkitError } from '../errors.js';
import { type ModelForwardInputs, type TrainableModel, hostInts } from '../models/index.js';

export interface CausalLmLossOptions {
  /** labels to skip (default -100) */
  ignoreIndex?: number;
  /** divide the summed loss by this count instead of this batch's number of targets */
  numItemsInBatch?: number;
}

/** The flat positions (row · T + t) whose next label counts, and those labels, from unshifted labels [B, T]. */
export function causalLmTargets(labels: ArrayLike<number>, B: number, T: number, ignoreIndex = -100): { rows: number[]; targets: number[] } {
  if (labels.length !== B * T) throw new ShapeError(`causalLmLoss: ${labels.length} labels for input ids [${B}, ${T}]; give one label per input token`);
  const rows: number[] = [], targets: number[] = [];
  for (let r = 0; r < B; r++)
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[r * T + t + 1]!;
      if (y !== ignoreIndex) {
        rows.push(r * T + t);
        targets.push(y);
      }
    }
  return { rows, targets };
}

/** Scalar loss of `model` on `inputs` against integer labels [B, T] (unshifted, as transformers takes them). */
export function causalLmLoss(model: Pick<TrainableModel, 'logitsAt' | 'hiddenAt'>, inputs: ModelForwardInputs, labels: ArrayLike<number> | Tensor, o: CausalLmLossOptions = {}): Tensor {
  if (inputs.inputIds.rank !== 2) throw new ShapeError(`causalLmLoss: input ids [${inputs.inputIds.shape}] must be [batch, tokens]`);
  const [B, T] = inputs.inputIds.shape as [number, number];
  const host = 'shape' in labels && typeof (labels as Tensor).rank === 'number' ? hostInts(labels as Tensor) : (labels as ArrayLike<number>);
  const { rows, targets } = causalLmTargets(host, B, T, o.ignoreIndex ?? -100);
  if (!rows.length) throw new VlmkitError('E_DATA', 'causalLmLoss: every label is masked (-100), so there is no target to take a loss on; check the labels');
  const scale = 1 / (o.numItemsInBatch ?? rows.length);
  if (model.hiddenAt) {
    const { hidden, head } = model.hiddenAt(inputs, rows);
    const y = tensor(targets, [targets.length], { dtype: 'i32', backend: hidden.backend });
    const sum = head.requiresGrad ? crossEntropy(linear(hidden, head), y, { reduction: 'sum' }) : linearCrossEntropy(hidden, head, y, { reduction: 'sum' });
    return mul(sum, scale);
  }
  const logits = model.logitsAt(inputs, rows);
  const y = tensor(targets, [targets.length], { dtype: 'i32', backend: logits.backend });
  const sum = crossEntropy(logits, y, { reduction: 'sum' });
  return mul(sum, scale);
}
