// The SigLIP vision tower's configuration (transformers' SiglipVisionConfig / Idefics3VisionConfig): a typed
// object made once from its JSON, with transformers' defaults for missing keys.
import { FileFormatError } from '../../errors.js';
import type { Json } from '../../io/model-dir.js';
import { ConfigReader, LIMIT } from '../config-reader.js';

export type VisionAct = 'gelu_pytorch_tanh' | 'gelu_new' | 'gelu';

export interface SiglipVisionConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numChannels: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly hiddenAct: VisionAct;
  readonly layerNormEps: number;
  /** hiddenSize / numAttentionHeads */
  readonly headDim: number;
  /** imageSize / patchSize */
  readonly patchesPerSide: number;
}

/** The defaults of the config class that owns the JSON (Idefics3VisionConfig's unless told). */
export interface VisionDefaults {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  patchSize: number;
}
const IDEFICS3_VISION_DEFAULTS: VisionDefaults = { hiddenSize: 1152, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 16, patchSize: 32 };

/** The vision config from its JSON object (Idefics3's vision_config); `where` names it in errors. */
export function siglipVisionConfigFromJson(j: Json, where: string, defaults: VisionDefaults = IDEFICS3_VISION_DEFAULTS): SiglipVisionConfig {
  const r = new ConfigReader(j, where);
  const hiddenSize = r.int('hidden_size', defaults.hiddenSize, 1, LIMIT.width);
  const numAttentionHeads = r.int('num_attention_heads', defaults.numAttentionHeads);
  const imageSize = r.int('image_size', 224, 1, LIMIT.width);
  const patchSize = r.int('patch_size', defaults.patchSize, 1, LIMIT.width);
  const act = r.str('hidden_act', 'gelu_pytorch_tanh');
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_new' && act !== 'gelu')
    throw new FileFormatError(`${where}: hidden_act "${act}" is not supported (use gelu_pytorch_tanh, gelu_new or gelu)`);
  if (hiddenSize % numAttentionHeads !== 0)
    throw new FileFormatError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  if (imageSize % patchSize !== 0)
    throw new FileFormatError(`${where}: image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  return {
    hiddenSize,
    intermediateSize: r.int('intermediate_size', defaults.intermediateSize, 1, LIMIT.mlp),
    numHiddenLayers: r.int('num_hidden_layers', defaults.numHiddenLayers, 0),
    numAttentionHeads,
    numChannels: r.int('num_channels', 3),
    imageSize,
    patchSize,
    hiddenAct: act,
    layerNormEps: r.num('layer_norm_eps', 1e-6),
    headDim: hiddenSize / numAttentionHeads,
    patchesPerSide: imageSize / patchSize,
  };
}
