// Idefics3 / SmolVLM configuration: a typed, frozen object built once from config.json. Both file forms are
// read: transformers 5.x (text_config.rope_parameters.rope_theta) and 4.x (text_config.rope_theta). Unknown keys
// are ignored; missing keys take the defaults of transformers' Idefics3Config / Idefics3VisionConfig /
// LlamaConfig (Idefics3 builds its text config as a LlamaConfig with rms_norm_eps 1e-5).
import { FileFormatError, VlmkitError } from '../../errors.js';
import { type Json, ModelDir } from '../../io/model-dir.js';
import { ConfigReader as Reader, LIMIT, deepFreeze } from '../config-reader.js';
import { type SiglipVisionConfig, siglipVisionConfigFromJson } from '../siglip/config.js';

export type { VisionAct } from '../siglip/config.js';

export const SUPPORTED_MODEL_TYPES = ['idefics3', 'smolvlm'] as const;
export type Idefics3ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** The vision tower's config is SigLIP's (src/models/siglip); this name stays for Idefics3 callers. */
export type Idefics3VisionConfig = SiglipVisionConfig;

export interface LlamaTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly hiddenAct: 'silu';
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly maxPositionEmbeddings: number;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | readonly number[] | null;
}

export interface Idefics3Config {
  readonly modelType: Idefics3ModelType;
  readonly imageTokenId: number;
  readonly scaleFactor: number;
  /** lm_head shares embed_tokens' weight */
  readonly tieWordEmbeddings: boolean;
  readonly vision: Idefics3VisionConfig;
  readonly text: LlamaTextConfig;
  /** image tokens per tile: (imageSize / patchSize)² / scaleFactor² */
  readonly imageSeqLen: number;
  /**
   * std of the normal initialisation (a random init only): the top-level initializer_range, else text_config's,
   * else 0.02, as transformers' Idefics3PreTrainedModel._init_weights reads it (vision_config's is not used)
   */
  readonly initializerRange: number;
}

function textConfig(j: Json, top: Reader, where: string): LlamaTextConfig {
  const r = new Reader(j, where);
  const mt = r.str('model_type', 'llama');
  if (!mt.startsWith('llama'))
    throw new VlmkitError('E_CONFIG', `${where}: text model_type "${mt}" is not supported; Idefics3/SmolVLM checkpoints use a llama text model`);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu') throw new FileFormatError(`${where}: hidden_act "${act}" is not supported (the Llama text model uses silu)`);
  // rope: 5.x nests it in rope_parameters, 4.x keeps rope_theta (and rope_scaling) at the top of text_config
  const rp = r.obj_('rope_parameters');
  const rs = r.obj_('rope_scaling');
  const rpr = new Reader(rp, `${where}.rope_parameters`);
  const ropeType = rpr.str('rope_type', new Reader(rs, `${where}.rope_scaling`).str('rope_type', new Reader(rs, `${where}.rope_scaling`).str('type', 'default')));
  if (ropeType !== 'default')
    throw new VlmkitError('E_CONFIG', `${where}: rope type "${ropeType}" is not supported (only the default RoPE of SmolVLM/Idefics3 checkpoints)`);
  const ropeTheta = rpr.has('rope_theta') ? rpr.num('rope_theta', 10000) : r.num('rope_theta', 10000);
  const hiddenSize = r.int('hidden_size', 4096, 1, LIMIT.width);
  const numAttentionHeads = r.int('num_attention_heads', 32);
  const numKeyValueHeads = r.int('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0)
    throw new FileFormatError(`${where}: num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  let headDim: number;
  if (r.has('head_dim')) headDim = r.int('head_dim', 0, 1, LIMIT.width);
  else {
    if (hiddenSize % numAttentionHeads !== 0)
      throw new FileFormatError(`${where}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads} and no head_dim is given`);
    headDim = hiddenSize / numAttentionHeads;
  }
  if (headDim % 2 !== 0) throw new FileFormatError(`${where}: head_dim ${headDim} must be even for RoPE`);
  const eos = j.eos_token_id;
  let eosTokenId: number | number[] | null = null;
  if (typeof eos === 'number') eosTokenId = eos;
  else if (Array.isArray(eos) && eos.every((x) => typeof x === 'number')) eosTokenId = eos as number[];
  return {
    vocabSize: r.has('vocab_size') ? r.int('vocab_size', 32000, 1, LIMIT.tokens) : top.int('vocab_size', 32000, 1, LIMIT.tokens),
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 11008, 1, LIMIT.mlp),
    numHiddenLayers: r.int('num_hidden_layers', 32, 0),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct: 'silu',
    rmsNormEps: r.num('rms_norm_eps', 1e-5),
    ropeTheta,
    maxPositionEmbeddings: r.int('max_position_embeddings', 2048, 1, LIMIT.tokens),
    attentionBias: r.bool('attention_bias', false),
    mlpBias: r.bool('mlp_bias', false),
    padTokenId: r.has('pad_token_id') ? r.optInt('pad_token_id', null) : top.optInt('pad_token_id', null),
    bosTokenId: r.optInt('bos_token_id', 1),
    eosTokenId,
  };
}

/** Builds the config from a parsed config.json. `source` names the file in error messages. */
export function idefics3ConfigFromJson(json: Json, source = 'config.json'): Idefics3Config {
  const top = new Reader(json, source);
  const mt = json.model_type;
  if (typeof mt !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt))
    throw new VlmkitError('E_CONFIG', `${source}: model_type ${JSON.stringify(mt)} is not supported by the Idefics3 loader; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  const vision = siglipVisionConfigFromJson(top.obj_('vision_config'), `${source} vision_config`);
  const textJson = top.obj_('text_config');
  const text = textConfig(textJson, top, `${source} text_config`);
  const scaleFactor = top.int('scale_factor', 2);
  const tr = new Reader(textJson, `${source} text_config`);
  const tie = top.has('tie_word_embeddings') ? top.bool('tie_word_embeddings', false) : tr.bool('tie_word_embeddings', false);
  return deepFreeze({
    modelType: mt as Idefics3ModelType,
    imageTokenId: top.int('image_token_id', 128257, 0, LIMIT.id),
    scaleFactor,
    tieWordEmbeddings: tie,
    vision,
    text,
    // int(...) as transformers; a scale_factor that does not divide the patch grid fails in the pixel shuffle
    imageSeqLen: Math.floor((vision.patchesPerSide * vision.patchesPerSide) / (scaleFactor * scaleFactor)),
    initializerRange: top.has('initializer_range') ? top.num('initializer_range', 0.02) : tr.num('initializer_range', 0.02),
  });
}

/** Reads `dir`/config.json. */
export function loadIdefics3Config(dir: string | ModelDir): Idefics3Config {
  const md = ModelDir.of(dir);
  return idefics3ConfigFromJson(md.config(), md.path('config.json'));
}
