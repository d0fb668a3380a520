// The text tower of the contrastive models: token + learned position embeddings, pre-norm encoder layers, a final
// layer norm (transformers' SiglipTextTransformer; CLIPTextTransformer is the same with a causal mask). Pooling and
// the projection are the owning model's: SigLIP takes the last position through a linear head, CLIP the EOS
// position through text_projection.
import { type Tensor, add, checkpoint, embedding, layerNorm, slice } from '../../engine/index.js';
import { ShapeError } from '../../errors.js';
import type { Json } from '../../io/model-dir.js';
import { advance, tidyGraph } from '../common.js';
import { ConfigReader, LIMIT } from '../config-reader.js';
import { ENCODER_ACTS, type EncoderAct, encoderLayer } from './encoder.js';
import type { Norm, VisionLayerWeights } from './weights.js';
import { FileFormatError } from '../../errors.js';

export interface TextTowerConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: EncoderAct;
  readonly layerNormEps: number;
  readonly headDim: number;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
}

/** transformers' class defaults of the owning config (CLIPTextConfig, SiglipTextConfig). */
export type TextTowerDefaults = Omit<TextTowerConfig, 'headDim'>;

export function textTowerConfigFromJson(j: Json, where: string, d: TextTowerDefaults): TextTowerConfig {
  const r = new ConfigReader(j, where);
  const hiddenSize = r.int('hidden_size', d.hiddenSize, 1, LIMIT.width);
  const numAttentionHeads = r.int('num_attention_heads', d.numAttentionHeads);
  const act = r.str('hidden_act', d.hiddenAct);
  if (!(ENCODER_ACTS as readonly string[]).includes(act))
    throw new FileFormatError(`${where}: hidden_act "${act}" is not supported (use ${ENCODER_ACTS.join(', ')}); fix config.json`);
  if (hiddenSize % numAttentionHeads !== 0)
    throw new FileFormatError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}; fix config.json`);
  return {
    vocabSize: r.int('vocab_size', d.vocabSize, 1, LIMIT.tokens),
    hiddenSize,
    intermediateSize: r.int('intermediate_size', d.intermediateSize, 1, LIMIT.mlp),
    numHiddenLayers: r.int('num_hidden_layers', d.numHiddenLayers, 0),
    numAttentionHeads,
    maxPositionEmbeddings: r.int('max_position_embeddings', d.maxPositionEmbeddings, 1, LIMIT.tokens),
    hiddenAct: act as EncoderAct,
    layerNormEps: r.num('layer_norm_eps', d.layerNormEps),
    headDim: hiddenSize / numAttentionHeads,
    padTokenId: r.optInt('pad_token_id', d.padTokenId),
    bosTokenId: r.optInt('bos_token_id', d.bosTokenId),
    eosTokenId: r.optInt('eos_token_id', d.eosTokenId),
  };
}

export interface TextTowerWeights {
  /** [vocab, D] */
  tokEmbed: Tensor;
  /** [max positions, D] */
  posEmbed: Tensor;
  layers: VisionLayerWeights[];
  finalNorm: Norm;
}

export class TextTransformer {
  gradientCheckpointing = false;
  constructor(readonly cfg: TextTowerConfig, readonly w: TextTowerWeights, readonly causal: boolean) {}

  /** last_hidden_state [B, T, D] of ids [B, T] (i32); `mask` [B, T] (nonzero = real token) hides padding keys. */
  forward(ids: Tensor, mask: Tensor | null): Tensor {
    const [, T] = ids.shape;
    if (ids.rank !== 2) throw new ShapeError(`text tower: input ids must be [batch, length], got ${JSON.stringify(ids.shape)}`);
    if (T < 1 || T > this.cfg.maxPositionEmbeddings)
      throw new ShapeError(`text tower: ${T} tokens, the model takes 1 to ${this.cfg.maxPositionEmbeddings} (text_config.max_position_embeddings)`);
    const { numAttentionHeads: heads, headDim, layerNormEps: eps, hiddenAct: act } = this.cfg;
    return tidyGraph([ids], () => {
      let x = add(embedding(this.w.tokEmbed, ids), slice(this.w.posEmbed, 0, 0, T));
      const o = { heads, headDim, eps, act, keyMask: mask, causal: this.causal };
      for (const l of this.w.layers)
        x = advance(x, this.gradientCheckpointing ? checkpoint((xi) => encoderLayer(xi, l, o), [x]) : encoderLayer(x, l, o));
      return layerNorm(x, this.w.finalNorm.w, this.w.finalNorm.b, eps);
    });
  }
}
