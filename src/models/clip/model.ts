// CLIP (transformers' CLIPModel): a ViT image tower (class token, pre-layernorm, the class token's final state
// through post_layernorm), a causal text tower pooled at the end-of-text token, both projected without bias into one
// space, and softmax scores logit_scale.exp() · image · textᵀ. The encoder layers are SigLIP's (siglip/encoder.ts)
// with quick_gelu. Checkpoint names: vision_model.*, text_model.*, visual_projection, text_projection, logit_scale.
import {
  type Tensor, add, checkpoint, concat, contiguous, exp, expand, indexSelect, layerNorm, linear, permute, reshape, slice, tensor,
} from '../../engine/index.js';
import { FileFormatError, ShapeError } from '../../errors.js';
import { type Json, ModelDir } from '../../io/model-dir.js';
import { type Linear, advance, hostInts, tidyGraph } from '../common.js';
import { ConfigReader, LIMIT, deepFreeze } from '../config-reader.js';
import {
  type ContrastiveImageConfig, ContrastiveProcessor, type TensorSpec, l2Normalize, loadTowerTensors, pairLogits,
} from '../contrastive.js';
import { ENCODER_ACTS, type EncoderAct, encoderLayer } from '../siglip/encoder.js';
import { CONTRASTIVE_LORA_TARGETS, encoderLayers, encoderLinears, getter, visionTrainsIn } from '../siglip/contrastive.js';
import { type TextTowerConfig, TextTransformer, textTowerConfigFromJson } from '../siglip/text.js';
import type { VisionLayerWeights } from '../siglip/weights.js';
import type { ContrastiveModel } from '../types.js';

export interface ClipVisionConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numChannels: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly hiddenAct: EncoderAct;
  readonly layerNormEps: number;
  readonly headDim: number;
  readonly patchesPerSide: number;
}

export interface ClipConfig {
  readonly modelType: 'clip';
  readonly projectionDim: number;
  readonly text: TextTowerConfig;
  readonly vision: ClipVisionConfig;
}

function clipVisionConfigFromJson(j: Json, where: string): ClipVisionConfig {
  const r = new ConfigReader(j, where);
  const hiddenSize = r.int('hidden_size', 768, 1, LIMIT.width);
  const numAttentionHeads = r.int('num_attention_heads', 12);
  const imageSize = r.int('image_size', 224, 1, LIMIT.width);
  const patchSize = r.int('patch_size', 32, 1, LIMIT.width);
  const act = r.str('hidden_act', 'quick_gelu');
  if (!(ENCODER_ACTS as readonly string[]).includes(act))
    throw new FileFormatError(`${where}: hidden_act "${act}" is not supported (use ${ENCODER_ACTS.join(', ')}); fix config.json`);
  if (hiddenSize % numAttentionHeads !== 0)
    throw new FileFormatError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}; fix config.json`);
  if (imageSize % patchSize !== 0)
    throw new FileFormatError(`${where}: image_size ${imageSize} is not a multiple of patch_size ${patchSize}; fix config.json`);
  return {
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 3072, 1, LIMIT.mlp),
    numHiddenLayers: r.int('num_hidden_layers', 12, 0),
    numAttentionHeads,
    numChannels: r.int('num_channels', 3),
    imageSize,
    patchSize,
    hiddenAct: act as EncoderAct,
    layerNormEps: r.num('layer_norm_eps', 1e-5),
    headDim: hiddenSize / numAttentionHeads,
    patchesPerSide: imageSize / patchSize,
  };
}

/** CLIPConfig from config.json (transformers' class defaults for missing keys). */
export function clipConfigFromJson(j: Json, source: string): ClipConfig {
  const r = new ConfigReader(j, source);
  const text = textTowerConfigFromJson(r.obj_('text_config'), `${source} text_config`, {
    vocabSize: 49408, hiddenSize: 512, intermediateSize: 2048, numHiddenLayers: 12, numAttentionHeads: 8, maxPositionEmbeddings: 77,
    hiddenAct: 'quick_gelu', layerNormEps: 1e-5, padTokenId: 1, bosTokenId: 49406, eosTokenId: 49407,
  });
  const vision = clipVisionConfigFromJson(r.obj_('vision_config'), `${source} vision_config`);
  return deepFreeze({ modelType: 'clip', projectionDim: r.int('projection_dim', 512, 1, LIMIT.width), text, vision });
}

/** CLIPImageProcessor's defaults: shortest edge 224 (here: the tower's side), bicubic, center crop, OpenAI mean/std. */
export function clipImageDefaults(size: number): ContrastiveImageConfig {
  return {
    doResize: true, shortestEdge: size, height: size, width: size, resample: 3, doCenterCrop: true, cropHeight: size, cropWidth: size,
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true,
    imageMean: [0.48145466, 0.4578275, 0.40821073], imageStd: [0.26862954, 0.26130258, 0.27577711],
  };
}

/**
 * transformers' legacy rule (eos_token_id 2, configs from before the fix) pools at the largest id, which was the
 * end-of-text token in the original vocabulary; otherwise at the first eos_token_id (position 0 when a text has
 * none, as torch's argmax of an all-zero row gives).
 */
export function eosPositions(ids: ArrayLike<number>, B: number, T: number, eosTokenId: number | null): number[] {
  const legacy = eosTokenId === 2 || eosTokenId === null;
  return Array.from({ length: B }, (_, b) => {
    let best = 0;
    for (let t = 0; t < T; t++) {
      const v = ids[b * T + t]!;
      if (legacy ? v > ids[b * T + best]! : v === eosTokenId) {
        best = t;
        if (!legacy) break;
      }
    }
    return best;
  });
}

export function loadClipProcessor(md: ModelDir, cfg: ClipConfig): ContrastiveProcessor {
  const t = cfg.text;
  const eos = t.eosTokenId;
  return ContrastiveProcessor.fromDir(md, {
    family: 'clip', vocabSize: t.vocabSize, maxLength: t.maxPositionEmbeddings, padding: 'longest', padTokenId: t.padTokenId,
    requiredIds: eos !== null && eos !== 2 ? [{ id: eos, field: 'text_config.eos_token_id' }] : [],
  }, clipImageDefaults(cfg.vision.imageSize), cfg.vision.imageSize);
}

/** Every tensor a CLIPModel checkpoint holds, with its expected shape. */
export function clipTensorSpecs(cfg: ClipConfig): TensorSpec[] {
  const out: TensorSpec[] = [];
  const layer = (prefix: string, D: number, F: number, from: string) => {
    for (const [n, shape] of [
      ['layer_norm1.weight', [D]], ['layer_norm1.bias', [D]], ['layer_norm2.weight', [D]], ['layer_norm2.bias', [D]],
      ...['q_proj', 'k_proj', 'v_proj', 'out_proj'].flatMap((p) => [[`self_attn.${p}.weight`, [D, D]], [`self_attn.${p}.bias`, [D]]]),
      ['mlp.fc1.weight', [F, D]], ['mlp.fc1.bias', [F]], ['mlp.fc2.weight', [D, F]], ['mlp.fc2.bias', [D]],
    ] as [string, number[]][]) out.push({ hf: `${prefix}${n}`, shape, from });
  };
  const v = cfg.vision, t = cfg.text, D = v.hiddenSize, H = t.hiddenSize, E = cfg.projectionDim;
  const vf = 'vision_config hidden_size, intermediate_size, patch_size, image_size';
  out.push({ hf: 'vision_model.embeddings.class_embedding', shape: [D], from: vf });
  out.push({ hf: 'vision_model.embeddings.patch_embedding.weight', shape: [D, v.numChannels, v.patchSize, v.patchSize], from: vf });
  out.push({ hf: 'vision_model.embeddings.position_embedding.weight', shape: [v.patchesPerSide ** 2 + 1, D], from: vf });
  out.push({ hf: 'vision_model.pre_layrnorm.weight', shape: [D], from: vf }, { hf: 'vision_model.pre_layrnorm.bias', shape: [D], from: vf });
  for (let i = 0; i < v.numHiddenLayers; i++) layer(`vision_model.encoder.layers.${i}.`, D, v.intermediateSize, vf);
  out.push({ hf: 'vision_model.post_layernorm.weight', shape: [D], from: vf }, { hf: 'vision_model.post_layernorm.bias', shape: [D], from: vf });
  const tf = 'text_config vocab_size, hidden_size, intermediate_size, max_position_embeddings';
  out.push({ hf: 'text_model.embeddings.token_embedding.weight', shape: [t.vocabSize, H], from: tf });
  out.push({ hf: 'text_model.embeddings.position_embedding.weight', shape: [t.maxPositionEmbeddings, H], from: tf });
  for (let i = 0; i < t.numHiddenLayers; i++) layer(`text_model.encoder.layers.${i}.`, H, t.intermediateSize, tf);
  out.push({ hf: 'text_model.final_layer_norm.weight', shape: [H], from: tf }, { hf: 'text_model.final_layer_norm.bias', shape: [H], from: tf });
  out.push({ hf: 'visual_projection.weight', shape: [E, D], from: 'projection_dim, vision_config hidden_size' });
  out.push({ hf: 'text_projection.weight', shape: [E, H], from: 'projection_dim, text_config hidden_size' });
  out.push({ hf: 'logit_scale', shape: [], from: 'CLIPModel' });
  return out;
}

export class ClipModel implements ContrastiveModel {
  readonly family = 'clip';
  readonly scoring = 'softmax' as const;
  readonly text: TextTransformer;
  private readonly visionLayers: VisionLayerWeights[];
  private readonly g: (name: string) => Tensor;
  gradientCheckpointing = false;
  private readonly adaptable: Map<string, Linear>;
  readonly defaultLoraTargets = CONTRASTIVE_LORA_TARGETS;
  readonly visionParameters = /^vision_model\./;
  readonly visionModules = '^vision_model\\..*';

  constructor(readonly cfg: ClipConfig, private readonly named: Map<string, Tensor>) {
    const g = (this.g = getter(named));
    this.visionLayers = encoderLayers(g, 'vision_model.encoder.layers.', cfg.vision.numHiddenLayers);
    this.text = new TextTransformer(cfg.text, {
      tokEmbed: g('text_model.embeddings.token_embedding.weight'),
      posEmbed: g('text_model.embeddings.position_embedding.weight'),
      layers: encoderLayers(g, 'text_model.encoder.layers.', cfg.text.numHiddenLayers),
      finalNorm: { w: g('text_model.final_layer_norm.weight'), b: g('text_model.final_layer_norm.bias') },
    }, true);
    this.adaptable = encoderLinears(this.text.w.layers, 'text_model.encoder.layers.', encoderLinears(this.visionLayers, 'vision_model.encoder.layers.', new Map()));
  }

  /** The encoder layers' linears by module path (LoRA targets). */
  linears(): Map<string, Linear> {
    return new Map(this.adaptable);
  }

  setGradientCheckpointing(on: boolean): void {
    this.gradientCheckpointing = on;
    this.text.gradientCheckpointing = on;
  }

  visionTrains(): boolean {
    return visionTrainsIn(this.named, this.adaptable);
  }

  get imageSize(): number {
    return this.cfg.vision.imageSize;
  }
  get embedDim(): number {
    return this.cfg.projectionDim;
  }

  /** The vision tower's pooled output [N, D]: post_layernorm of the class token's last hidden state. */
  visionPooled(pixels: Tensor): Tensor {
    const v = this.cfg.vision, g = this.g;
    const { patchSize: p, numChannels: C, hiddenSize: D, imageSize: S } = v;
    const [N, c, H, W] = pixels.shape;
    if (pixels.rank !== 4 || c !== C || H !== S || W !== S)
      throw new ShapeError(`clip vision: pixel values ${JSON.stringify(pixels.shape)} must be [images, ${C}, ${S}, ${S}] (vision_config.image_size ${S})`);
    const P = v.patchesPerSide ** 2;
    return tidyGraph([pixels], () => {
      // the patch conv (stride = kernel = p, no bias) as unfold + linear, in the weight's (c, ky, kx) order
      const u = reshape(pixels, [N, C, v.patchesPerSide, p, v.patchesPerSide, p]);
      const patches = reshape(contiguous(permute(u, [0, 2, 4, 1, 3, 5])), [N, P, C * p * p]);
      const x0 = linear(patches, reshape(g('vision_model.embeddings.patch_embedding.weight'), [D, C * p * p]));
      const cls = contiguous(expand(reshape(g('vision_model.embeddings.class_embedding'), [1, 1, D]), [N, 1, D]));
      const emb = add(concat([cls, x0], 1), g('vision_model.embeddings.position_embedding.weight'));
      let x = layerNorm(emb, g('vision_model.pre_layrnorm.weight'), g('vision_model.pre_layrnorm.bias'), v.layerNormEps);
      const o = { heads: v.numAttentionHeads, headDim: v.headDim, eps: v.layerNormEps, act: v.hiddenAct, keyMask: null };
      for (const l of this.visionLayers)
        x = advance(x, this.gradientCheckpointing ? checkpoint((xi) => encoderLayer(xi, l, o), [x]) : encoderLayer(x, l, o));
      const first = reshape(contiguous(slice(x, 1, 0, 1)), [N, D]);
      return layerNorm(first, g('vision_model.post_layernorm.weight'), g('vision_model.post_layernorm.bias'), v.layerNormEps);
    });
  }

  imageEmbeds(pixelValues: Tensor): Tensor {
    return tidyGraph([pixelValues], () => l2Normalize(linear(this.visionPooled(pixelValues), this.g('visual_projection.weight'))));
  }

  textEmbeds(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    const [B, T] = inputIds.shape;
    const H = this.cfg.text.hiddenSize;
    const pos = eosPositions(hostInts(inputIds), B, T, this.cfg.text.eosTokenId);
    return tidyGraph([inputIds], () => {
      const h = this.text.forward(inputIds, attentionMask);
      const idx = tensor(pos.map((t, b) => b * T + t), [B], { dtype: 'i32', backend: h.backend });
      const pooled = indexSelect(reshape(contiguous(h), [B * T, H]), idx);
      return l2Normalize(linear(pooled, this.g('text_projection.weight')));
    });
  }

  logitsPerImage(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return tidyGraph([imageEmbeds, textEmbeds], () => pairLogits(imageEmbeds, textEmbeds, exp(this.g('logit_scale')), null));
  }

  parameters(): Map<string, Tensor> {
    return new Map(this.named);
  }

  dispose(): void {
    for (const t of this.named.values()) t.dispose();
    this.named.clear();
  }
}

export function loadClipModel(dir: string | ModelDir, cfg: ClipConfig, o: { dtype?: 'f32' } = {}): ClipModel {
  return new ClipModel(cfg, loadTowerTensors(dir, { vision: cfg.vision.numHiddenLayers, text: cfg.text.numHiddenLayers }, clipTensorSpecs(cfg), o));
}
