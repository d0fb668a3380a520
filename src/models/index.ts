// The model families behind one door. config.json's model_type picks the family with a plain switch; what comes
// back satisfies the small interfaces of types.ts (generation, LoRA, training) plus the family's processor.
// Nothing outside src/models imports a family folder: api.ts, cli/, generate/, train/ and parity/ come here.
import type { QuantFormat } from '../engine/quant/formats.js';
import { VlmkitError } from '../errors.js';
import { ModelDir } from '../io/model-dir.js';
import { type Idefics3Config, SUPPORTED_MODEL_TYPES as IDEFICS3_TYPES, idefics3ConfigFromJson } from './idefics3/config.js';
import { loadModel as loadIdefics3Model } from './idefics3/model.js';
import { type RandomInitOptions, randomModel as randomIdefics3Model } from './idefics3/init.js';
import type { Json } from '../io/model-dir.js';
import { Processor, type ProcessorOptions } from './idefics3/processor.js';
import { type DescribeOptions, type ModelDescription, describeIdefics3 } from './idefics3/describe.js';
import type { ContrastiveModel, VisionLanguageModel } from './types.js';
import { type ClipConfig, ClipModel, clipConfigFromJson, clipTensorSpecs, loadClipModel, loadClipProcessor } from './clip/model.js';
import { type SiglipConfig, SiglipModel, loadSiglipModel, loadSiglipProcessor, siglipConfigFromJson, siglipTensorSpecs } from './siglip/contrastive.js';
import { type ContrastiveProcessor, randomSpecTensors } from './contrastive.js';

export { ContrastiveProcessor, type ContrastiveImageConfig, type EncodedTexts } from './contrastive.js';
export type { ClipConfig } from './clip/model.js';
export type { SiglipConfig } from './siglip/contrastive.js';

export type { DescribeOptions, ModelDescription } from './idefics3/describe.js';

export type * from './types.js';
export { applyLinear, hostInts, type Linear, type LowRankAdapter } from './common.js';

// The processor face is Idefics3's today (the only vision-language family): its class and the pieces the SFT
// collator, the parity tool and `vlmkit info` use. A second VLM family narrows this into an interface.
export {
  Processor, userMessage, checkMediaCount, imageGridForSize, withImageOptions,
  type ImageInput, type ImageOptions, type ProcessorSample, type FramedSample, type EncodedBatch, type ProcessorOptions, type EncodeOptions,
} from './idefics3/processor.js';
export {
  PromptBuilder, buildPrompt, buildPromptBatch, padBatch, padLeft, padRight, imagePromptString, videoFrameTimestamps,
  type BuiltPrompt, type ImageGrid, type VideoPromptInfo,
} from './idefics3/prompt.js';
export {
  loadVideoProcessorConfig, videoFrameToSquare, processVideoFrames, DEFAULT_VIDEO_SAMPLING, FRAMES_INTRO,
  type VideoProcessorConfig, type VideoInput, type VideoFrames, type VideoOptions,
} from './idefics3/video.js';
export { processImages, loadImageProcessorConfig, imageProcessorConfigFromJson, longestEdgeSize, type ImageProcessorConfig, type ProcessedImages } from './idefics3/image.js';

// The concrete family, for callers that want its full class (the rest of src/ uses the interfaces above).
export { Idefics3Model, VISION_TOWER, loadModel as loadIdefics3Model, loadIdefics3Config, type Idefics3Config } from './idefics3/index.js';
export { checkQuantFormat, quantizeCheckpoint, type QuantizeCheckpointOptions, type QuantizeCheckpointResult } from './quantize.js';

/** The families vlmkit runs. */
export type ModelFamily = 'idefics3';

/** A family's config (a union as families arrive). */
export type ModelConfig = Idefics3Config;

/** The model's context length in tokens (prompts longer than this are refused before any forward). */
export function contextLength(family: ModelFamily, config: ModelConfig): number {
  switch (family) {
    case 'idefics3':
      return config.text.maxPositionEmbeddings;
  }
}

/** Every config.json model_type vlmkit loads, across families. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = [...IDEFICS3_TYPES];

/** The family and typed config of a parsed config.json (`source` names the file in errors). */
export function modelConfigFromJson(json: Json, source: string): { family: ModelFamily; config: ModelConfig } {
  const mt = json.model_type;
  switch (mt) {
    case 'idefics3':
    case 'smolvlm':
      return { family: 'idefics3', config: idefics3ConfigFromJson(json, source) };
    case 'clip':
    case 'siglip':
      throw new VlmkitError('E_CONFIG', `${source}: model_type ${JSON.stringify(mt)} is a contrastive image-text model, not a vision-language model; use it with vlmkit classify or vlmkit embed`);
    default:
      throw new VlmkitError('E_CONFIG', `${source}: model_type ${JSON.stringify(mt)} is not supported; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
}

/** The family of a model directory and its typed config, from config.json alone (nothing heavy is read). */
export function readModelConfig(dir: string | ModelDir): { family: ModelFamily; config: ModelConfig } {
  const md = ModelDir.of(dir);
  return modelConfigFromJson(md.config(), md.path('config.json'));
}

export type { RandomInitOptions } from './idefics3/init.js';

/** A new model of the family with transformers' random initialisation (pretraining from scratch), seeded. */
export function randomInitModel(family: ModelFamily, config: ModelConfig, o: RandomInitOptions = {}): VisionLanguageModel {
  switch (family) {
    case 'idefics3':
      return randomIdefics3Model(config, o);
  }
}

export interface LoadFamilyOptions {
  /** 'f32': every weight in f32 (parity, training). Default: weights stay in their stored dtype (bf16 etc.). */
  dtype?: 'f32';
  /** block-quantize the linears at load time (q8_0, q4_0, nf4; docs/quantization.md) */
  quant?: QuantFormat;
  /** processor settings over the checkpoint's (image splitting, longest edge, alpha, pixel limit, max length) */
  processor?: ProcessorOptions;
}

/** A loaded model directory: its family, config, the model behind the interfaces, and its processor. */
export interface LoadedModel {
  family: ModelFamily;
  config: ModelConfig;
  model: VisionLanguageModel;
  processor: Processor;
}

/** The processor of a model directory alone (tokens, prompts, image tiles; no weights). */
export function loadProcessor(dir: string | ModelDir, o: ProcessorOptions = {}): Processor {
  const md = ModelDir.of(dir);
  switch (readModelConfig(md).family) {
    case 'idefics3':
      return Processor.fromDir(md, o);
  }
}

/** The model of a model directory alone (weights; no tokenizer). */
export function loadModelWeights(dir: string | ModelDir, o: { dtype?: 'f32'; quant?: QuantFormat } = {}): VisionLanguageModel {
  const md = ModelDir.of(dir);
  switch (readModelConfig(md).family) {
    case 'idefics3':
      return loadIdefics3Model(md, { dtype: o.dtype, quant: o.quant });
  }
}

/** Loads a model directory: config first (clear errors before anything heavy), then processor and weights. */
export function loadModelDir(dir: string | ModelDir, o: LoadFamilyOptions = {}): LoadedModel {
  const md = ModelDir.of(dir);
  const { family, config } = readModelConfig(md);
  const processor = loadProcessor(md, o.processor);
  const model = loadModelWeights(md, { dtype: o.dtype, quant: o.quant });
  return { family, config, model, processor };
}

/** What a checkpoint is, from its files alone (no weights read): sizes, parameter counts, image tokens. */
export function describeModel(dir: string | ModelDir, o: DescribeOptions): ModelDescription {
  const md = ModelDir.of(dir);
  switch (readModelConfig(md).family) {
    case 'idefics3':
      return describeIdefics3(md, o);
  }
}

// ---------------------------------------------------------------- contrastive families (CLIP, SigLIP)

/** The contrastive families: an image tower and a text tower in one embedding space (no generation). */
export type ContrastiveFamily = 'clip' | 'siglip';
export type ContrastiveConfig = ClipConfig | SiglipConfig;
export const CONTRASTIVE_MODEL_TYPES: readonly string[] = ['clip', 'siglip'];

/** The family and typed config of a contrastive model directory, from config.json alone. */
export function readContrastiveConfig(dir: string | ModelDir): { family: ContrastiveFamily; config: ContrastiveConfig } {
  const md = ModelDir.of(dir);
  return contrastiveConfigFromJson(md.config(), md.path('config.json'));
}

/** The family and typed config of a contrastive config.json's contents (`source` names it in errors). */
export function contrastiveConfigFromJson(json: Json, source: string): { family: ContrastiveFamily; config: ContrastiveConfig } {
  switch (json.model_type) {
    case 'clip':
      return { family: 'clip', config: clipConfigFromJson(json, source) };
    case 'siglip':
      return { family: 'siglip', config: siglipConfigFromJson(json, source) };
    default:
      throw new VlmkitError('E_CONFIG', `${source}: model_type ${JSON.stringify(json.model_type)} is not a contrastive image-text model; ` +
        `classify and embed take ${CONTRASTIVE_MODEL_TYPES.join(' or ')} checkpoints (CLIPModel, SiglipModel)`);
  }
}

/** A contrastive model with fresh, seeded weights (randomSpecTensors), every weight f32. */
export function randomContrastiveModel(config: ContrastiveConfig, seed: number): ContrastiveModel {
  return config.modelType === 'clip'
    ? new ClipModel(config, randomSpecTensors(clipTensorSpecs(config), seed))
    : new SiglipModel(config, randomSpecTensors(siglipTensorSpecs(config), seed));
}

export interface LoadedContrastiveModel {
  family: ContrastiveFamily;
  config: ContrastiveConfig;
  model: ContrastiveModel;
  processor: ContrastiveProcessor;
}

/** The processor (tokenizer + image processor) of a contrastive model directory; no weights. */
export function loadContrastiveProcessor(dir: string | ModelDir): ContrastiveProcessor {
  const md = ModelDir.of(dir);
  const { config } = readContrastiveConfig(md);
  return config.modelType === 'clip' ? loadClipProcessor(md, config) : loadSiglipProcessor(md, config);
}

/** Loads a contrastive model directory: config first, then the processor (tokenizer checks), then the weights. */
export function loadContrastiveModel(dir: string | ModelDir, o: { dtype?: 'f32' } = {}): LoadedContrastiveModel {
  const md = ModelDir.of(dir);
  const { family, config } = readContrastiveConfig(md);
  const processor = config.modelType === 'clip' ? loadClipProcessor(md, config) : loadSiglipProcessor(md, config);
  const model = config.modelType === 'clip' ? loadClipModel(md, config, o) : loadSiglipModel(md, config, o);
  return { family, config, model, processor };
}
