// Idefics3 / SmolVLM models (src/models/idefics3) and generation: the model implements CausalLM itself
// (createCache / prefill / step, logits of the last position only, KVCache.keepRows); this file adds the full
// forward and the no-cache reference path used to check it.
import { noGrad } from '../engine/autograd.js';
import type { Tensor } from '../engine/tensor.js';
import type { Idefics3Model } from '../models/idefics3/index.js';
import { noCacheLM } from './no-cache.js';
import type { CausalLM, ModelInputs } from './types.js';

/** The model as generation sees it (a compile-time check that it fits the contract). */
export function idefics3LM(model: Idefics3Model): CausalLM {
  return model;
}

/** The model's full forward: logits [B, T, V] (positions 0..T-1 unless given, as transformers' forward). */
export function idefics3Forward(model: Idefics3Model) {
  return (inputs: ModelInputs & { positionIds?: Tensor }): Tensor =>
    noGrad(() =>
      model.forward({
        inputIds: inputs.inputIds,
        attentionMask: inputs.attentionMask,
        pixelValues: inputs.pixelValues ?? null,
        pixelAttentionMask: inputs.pixelAttentionMask ?? null,
        positions: inputs.positionIds ?? null,
      }),
    );
}

/** Greedy without a cache, as the reference's greedy_nocache (positions 0..T-1 at every step). */
export function idefics3NoCacheLM(model: Idefics3Model): CausalLM {
  return noCacheLM(idefics3Forward(model), {
    vocabSize: model.config.text.vocabSize,
    maxPositions: model.config.text.maxPositionEmbeddings,
    passPositions: false,
  });
}
