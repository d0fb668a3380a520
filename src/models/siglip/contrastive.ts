// The contrastive SigLIP model (transformers' SiglipModel): the SigLIP vision tower with its attention-pooling
// head, the text tower (no causal mask) pooled at its last position through a linear head, and sigmoid scores
// logit_scale.exp() · image · textᵀ + logit_bias. Checkpoint names: vision_model.*, text_model.*, logit_scale,
// logit_bias.
import { type Tensor, add, attention, contiguous, exp, expand, layerNorm, linear, permute, reshape, slice } from '../../engine/index.js';
import { FileFormatError } from '../../errors.js';
import { type Json, ModelDir } from '../../io/model-dir.js';
import { applyLinear, tidyGraph } from '../common.js';
import { ConfigReader, deepFreeze } from '../config-reader.js';
import {
  type ContrastiveImageConfig, ContrastiveProcessor, type TensorSpec, l2Normalize, loadTowerTensors, pairLogits,
} from '../contrastive.js';
import type { ContrastiveModel } from '../types.js';
import { type SiglipVisionConfig, siglipVisionConfigFromJson } from './config.js';
import { activate } from './encoder.js';
import { type TextTowerConfig, TextTransformer, type TextTowerWeights, textTowerConfigFromJson } from './text.js';
import { VisionTransformer } from './vision.js';
import type { Norm, VisionLayerWeights, VisionWeights } from './weights.js';
import type { Linear } from '../common.js';

export interface SiglipConfig {
  readonly modelType: 'siglip';
  readonly text: TextTowerConfig & { readonly projectionSize: number };
  readonly vision: SiglipVisionConfig;
}

/** SiglipConfig from config.json (transformers' class defaults for missing keys). */
export function siglipConfigFromJson(j: Json, source: string): SiglipConfig {
  const r = new ConfigReader(j, source);
  const tj = r.obj_('text_config'), vj = r.obj_('vision_config');
  const text = textTowerConfigFromJson(tj, `${source} text_config`, {
    vocabSize: 32000, hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12, maxPositionEmbeddings: 64,
    hiddenAct: 'gelu_pytorch_tanh', layerNormEps: 1e-6, padTokenId: 1, bosTokenId: 49406, eosTokenId: 49407,
  });
  const projectionSize = new ConfigReader(tj, `${source} text_config`).int('projection_size', text.hiddenSize, 1, 65536);
  const vision = siglipVisionConfigFromJson(vj, `${source} vision_config`, { hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12, patchSize: 16 });
  if (vj.vision_use_head === false)
    throw new FileFormatError(`${source}: vision_config.vision_use_head is false: a SiglipModel needs the vision pooling head for its image embeddings`);
  if (projectionSize !== vision.hiddenSize)
    throw new FileFormatError(`${source}: text_config.projection_size ${projectionSize} differs from vision_config.hidden_size ${vision.hiddenSize}; the two embeddings must have one width`);
  return deepFreeze({ modelType: 'siglip', text: { ...text, projectionSize }, vision });
}

/** SiglipImageProcessor's defaults: a fixed bicubic resize (to the tower's side), rescale, 0.5 mean / std. */
export function siglipImageDefaults(size: number): ContrastiveImageConfig {
  return {
    doResize: true, shortestEdge: null, height: size, width: size, resample: 3, doCenterCrop: false, cropHeight: size, cropWidth: size,
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5],
  };
}

export function loadSiglipProcessor(md: ModelDir, cfg: SiglipConfig): ContrastiveProcessor {
  const t = cfg.text;
  // SigLIP was trained on texts padded to 64 tokens and pools the last position: transformers' zero-shot pipeline
  // pads to max_length for it, and so do we
  return ContrastiveProcessor.fromDir(md, {
    family: 'siglip', vocabSize: t.vocabSize, maxLength: t.maxPositionEmbeddings, padding: 'max_length', padTokenId: t.padTokenId, requiredIds: [],
  }, siglipImageDefaults(cfg.vision.imageSize), cfg.vision.imageSize);
}

/** An encoder layer's tensors under an HF prefix (SigLIP's vision and text towers, and CLIP's, name them alike). */
function encoderLayerSpecs(out: TensorSpec[], prefix: string, D: number, F: number, from: string): void {
  for (const [n, shape] of [
    ['layer_norm1.weight', [D]], ['layer_norm1.bias', [D]], ['layer_norm2.weight', [D]], ['layer_norm2.bias', [D]],
    ...['q_proj', 'k_proj', 'v_proj', 'out_proj'].flatMap((p) => [[`self_attn.${p}.weight`, [D, D]], [`self_attn.${p}.bias`, [D]]]),
    ['mlp.fc1.weight', [F, D]], ['mlp.fc1.bias', [F]], ['mlp.fc2.weight', [D, F]], ['mlp.fc2.bias', [D]],
  ] as [string, number[]][]) out.push({ hf: `${prefix}${n}`, shape, from });
}

/** The SigLIP vision tower's tensors (SiglipVisionModel's names, no pooling head), in checkpoint order. */
export function siglipVisionTowerSpecs(v: SiglipVisionConfig): TensorSpec[] {
  const D = v.hiddenSize, from = 'vision_config hidden_size, intermediate_size, patch_size, image_size';
  const out: TensorSpec[] = [
    { hf: 'vision_model.embeddings.patch_embedding.weight', shape: [D, v.numChannels, v.patchSize, v.patchSize], from },
    { hf: 'vision_model.embeddings.patch_embedding.bias', shape: [D], from },
    { hf: 'vision_model.embeddings.position_embedding.weight', shape: [v.patchesPerSide ** 2, D], from },
  ];
  for (let i = 0; i < v.numHiddenLayers; i++) encoderLayerSpecs(out, `vision_model.encoder.layers.${i}.`, D, v.intermediateSize, from);
  out.push({ hf: 'vision_model.post_layernorm.weight', shape: [D], from }, { hf: 'vision_model.post_layernorm.bias', shape: [D], from });
  return out;
}

/** Every tensor a SiglipModel checkpoint holds, with its expected shape. */
export function siglipTensorSpecs(cfg: SiglipConfig): TensorSpec[] {
  const v = cfg.vision, t = cfg.text, D = v.hiddenSize, H = t.hiddenSize;
  const vf = 'vision_config hidden_size, intermediate_size, patch_size, image_size';
  const out = siglipVisionTowerSpecs(v);
  out.push({ hf: 'vision_model.head.probe', shape: [1, 1, D], from: vf });
  out.push({ hf: 'vision_model.head.attention.in_proj_weight', shape: [3 * D, D], from: vf }, { hf: 'vision_model.head.attention.in_proj_bias', shape: [3 * D], from: vf });
  out.push({ hf: 'vision_model.head.attention.out_proj.weight', shape: [D, D], from: vf }, { hf: 'vision_model.head.attention.out_proj.bias', shape: [D], from: vf });
  out.push({ hf: 'vision_model.head.layernorm.weight', shape: [D], from: vf }, { hf: 'vision_model.head.layernorm.bias', shape: [D], from: vf });
  out.push({ hf: 'vision_model.head.mlp.fc1.weight', shape: [v.intermediateSize, D], from: vf }, { hf: 'vision_model.head.mlp.fc1.bias', shape: [v.intermediateSize], from: vf });
  out.push({ hf: 'vision_model.head.mlp.fc2.weight', shape: [D, v.intermediateSize], from: vf }, { hf: 'vision_model.head.mlp.fc2.bias', shape: [D], from: vf });
  const tf = 'text_config vocab_size, hidden_size, intermediate_size, max_position_embeddings, projection_size';
  out.push({ hf: 'text_model.embeddings.token_embedding.weight', shape: [t.vocabSize, H], from: tf });
  out.push({ hf: 'text_model.embeddings.position_embedding.weight', shape: [t.maxPositionEmbeddings, H], from: tf });
  for (let i = 0; i < t.numHiddenLayers; i++) encoderLayerSpecs(out, `text_model.encoder.layers.${i}.`, H, t.intermediateSize, tf);
  out.push({ hf: 'text_model.final_layer_norm.weight', shape: [H], from: tf }, { hf: 'text_model.final_layer_norm.bias', shape: [H], from: tf });
  out.push({ hf: 'text_model.head.weight', shape: [t.projectionSize, H], from: tf }, { hf: 'text_model.head.bias', shape: [t.projectionSize], from: tf });
  out.push({ hf: 'logit_scale', shape: [1], from: 'SiglipModel' }, { hf: 'logit_bias', shape: [1], from: 'SiglipModel' });
  return out;
}

/** The encoder layers' weights under an HF prefix, from tensors by name (shared with CLIP). */
export function encoderLayers(g: (name: string) => Tensor, prefix: string, n: number): VisionLayerWeights[] {
  const lin = (p: string): Linear => ({ w: g(`${p}.weight`), b: g(`${p}.bias`) });
  const norm = (p: string): Norm => ({ w: g(`${p}.weight`), b: g(`${p}.bias`) });
  return Array.from({ length: n }, (_, i) => {
    const p = `${prefix}${i}.`;
    return {
      ln1: norm(`${p}layer_norm1`), q: lin(`${p}self_attn.q_proj`), k: lin(`${p}self_attn.k_proj`), v: lin(`${p}self_attn.v_proj`),
      out: lin(`${p}self_attn.out_proj`), ln2: norm(`${p}layer_norm2`), fc1: lin(`${p}mlp.fc1`), fc2: lin(`${p}mlp.fc2`),
    };
  });
}

/** The encoder layers' linears by module path ("<prefix><i>.self_attn.q_proj"): what LoRA adapts. */
export function encoderLinears(layers: readonly VisionLayerWeights[], prefix: string, into: Map<string, Linear>): Map<string, Linear> {
  layers.forEach((l, i) => {
    const p = `${prefix}${i}.`;
    for (const [n, lin] of [['self_attn.q_proj', l.q], ['self_attn.k_proj', l.k], ['self_attn.v_proj', l.v], ['self_attn.out_proj', l.out], ['mlp.fc1', l.fc1], ['mlp.fc2', l.fc2]] as const)
      into.set(`${p}${n}`, lin);
  });
  return into;
}

/** LoRA's default targets for the contrastive families: every linear of every encoder layer. */
export const CONTRASTIVE_LORA_TARGETS: readonly string[] = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'];

/** Whether anything under the vision tower trains: one of its weights, or an adapter on one of its linears. */
export function visionTrainsIn(named: Map<string, Tensor>, linears: Map<string, Linear>): boolean {
  for (const [n, t] of named) if (n.startsWith('vision_model.') && t.requiresGrad) return true;
  for (const [n, l] of linears) if (n.startsWith('vision_model.') && l.adapters?.some((a) => a.a.requiresGrad || a.b.requiresGrad || !!a.magnitude?.requiresGrad)) return true;
  return false;
}

/** A getter over loaded tensors whose miss is a bug (every name was checked against the specs). */
export function getter(named: Map<string, Tensor>): (name: string) => Tensor {
  return (name) => {
    const t = named.get(name);
    if (!t) throw new Error(`vlmkit internal: tensor ${name} was not loaded`);
    return t;
  };
}

interface PoolingHead {
  probe: Tensor;
  inW: Tensor;
  inB: Tensor;
  out: Linear;
  norm: Norm;
  fc1: Linear;
  fc2: Linear;
}

export class SiglipModel implements ContrastiveModel {
  readonly family = 'siglip';
  readonly scoring = 'sigmoid' as const;
  readonly vision: VisionTransformer;
  readonly text: TextTransformer;
  private readonly head: PoolingHead;
  private readonly textHead: Linear;
  private readonly adaptable: Map<string, Linear>;
  readonly defaultLoraTargets = CONTRASTIVE_LORA_TARGETS;
  readonly visionParameters = /^vision_model\./;
  readonly visionModules = '^vision_model\\..*';

  constructor(readonly cfg: SiglipConfig, private readonly named: Map<string, Tensor>) {
    const g = getter(named);
    const v = cfg.vision, t = cfg.text;
    const vw: VisionWeights = {
      patch: { w: g('vision_model.embeddings.patch_embedding.weight'), b: g('vision_model.embeddings.patch_embedding.bias') },
      posEmbed: g('vision_model.embeddings.position_embedding.weight'),
      layers: encoderLayers(g, 'vision_model.encoder.layers.', v.numHiddenLayers),
      post: { w: g('vision_model.post_layernorm.weight'), b: g('vision_model.post_layernorm.bias') },
    };
    this.vision = new VisionTransformer(v, vw, { positions: 'arange' });
    const tw: TextTowerWeights = {
      tokEmbed: g('text_model.embeddings.token_embedding.weight'),
      posEmbed: g('text_model.embeddings.position_embedding.weight'),
      layers: encoderLayers(g, 'text_model.encoder.layers.', t.numHiddenLayers),
      finalNorm: { w: g('text_model.final_layer_norm.weight'), b: g('text_model.final_layer_norm.bias') },
    };
    this.text = new TextTransformer(t, tw, false);
    const h = 'vision_model.head.';
    this.head = {
      probe: g(`${h}probe`), inW: g(`${h}attention.in_proj_weight`), inB: g(`${h}attention.in_proj_bias`),
      out: { w: g(`${h}attention.out_proj.weight`), b: g(`${h}attention.out_proj.bias`) },
      norm: { w: g(`${h}layernorm.weight`), b: g(`${h}layernorm.bias`) },
      fc1: { w: g(`${h}mlp.fc1.weight`), b: g(`${h}mlp.fc1.bias`) }, fc2: { w: g(`${h}mlp.fc2.weight`), b: g(`${h}mlp.fc2.bias`) },
    };
    this.textHead = { w: g('text_model.head.weight'), b: g('text_model.head.bias') };
    this.adaptable = encoderLinears(tw.layers, 'text_model.encoder.layers.', encoderLinears(vw.layers, 'vision_model.encoder.layers.', new Map()));
  }

  /** The encoder layers' linears by module path (LoRA targets). */
  linears(): Map<string, Linear> {
    return new Map(this.adaptable);
  }

  setGradientCheckpointing(on: boolean): void {
    this.vision.gradientCheckpointing = on;
    this.text.gradientCheckpointing = on;
  }

  visionTrains(): boolean {
    return visionTrainsIn(this.named, this.adaptable);
  }

  get imageSize(): number {
    return this.cfg.vision.imageSize;
  }
  get embedDim(): number {
    return this.cfg.vision.hiddenSize;
  }

  /** SiglipMultiheadAttentionPoolingHead: the probe attends over the patches (nn.MultiheadAttention), then + MLP(LN). */
  private pool(x: Tensor): Tensor {
    const { hiddenSize: D, numAttentionHeads: nh, headDim: hd, layerNormEps: eps, hiddenAct } = this.cfg.vision;
    const [N, P] = x.shape;
    const hw = this.head;
    return tidyGraph([x], () => {
      const proj = (i: number, t: Tensor) => linear(t, slice(hw.inW, 0, i * D, (i + 1) * D), slice(hw.inB, 0, i * D, (i + 1) * D));
      const q = expand(permute(reshape(proj(0, reshape(hw.probe, [1, D])), [1, 1, nh, hd]), [0, 2, 1, 3]), [N, nh, 1, hd]);
      const heads = (t: Tensor) => permute(reshape(t, [N, P, nh, hd]), [0, 2, 1, 3]);
      const a = attention(contiguous(q), heads(proj(1, x)), heads(proj(2, x)), { scale: hd ** -0.5 });
      const h = applyLinear(reshape(permute(a, [0, 2, 1, 3]), [N, D]), hw.out);
      const m = applyLinear(activate(applyLinear(layerNorm(h, hw.norm.w, hw.norm.b, eps), hw.fc1), hiddenAct), hw.fc2);
      return add(h, m);
    });
  }

  imageEmbeds(pixelValues: Tensor): Tensor {
    return tidyGraph([pixelValues], () => l2Normalize(this.pool(this.vision.forward(pixelValues))));
  }

  textEmbeds(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    const [B, T] = inputIds.shape;
    return tidyGraph([inputIds], () => {
      const h = this.text.forward(inputIds, attentionMask);
      // pooled_output = last_hidden_state[:, -1, :] (whatever token sits there: SigLIP pads to max_length)
      const last = reshape(contiguous(slice(h, 1, T - 1, T)), [B, this.cfg.text.hiddenSize]);
      return l2Normalize(applyLinear(last, this.textHead));
    });
  }

  logitsPerImage(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return tidyGraph([imageEmbeds, textEmbeds], () => pairLogits(imageEmbeds, textEmbeds, exp(this.named.get('logit_scale')!), this.named.get('logit_bias')!));
  }

  parameters(): Map<string, Tensor> {
    return new Map(this.named);
  }

  dispose(): void {
    for (const t of this.named.values()) t.dispose();
    this.named.clear();
  }
}

export function loadSiglipModel(dir: string | ModelDir, cfg: SiglipConfig, o: { dtype?: 'f32' } = {}): SiglipModel {
  return new SiglipModel(cfg, loadTowerTensors(dir, { vision: cfg.vision.numHiddenLayers, text: cfg.text.numHiddenLayers }, siglipTensorSpecs(cfg), o));
}
