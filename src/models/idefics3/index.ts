// Idefics3 / SmolVLM: config, weights, modules, the loader, and the family's processor (image tiling, prompt
// expansion, special tokens). The vision tower is SigLIP's (../siglip).
export {
  SUPPORTED_MODEL_TYPES, idefics3ConfigFromJson, loadIdefics3Config,
  type Idefics3Config, type Idefics3ModelType, type Idefics3VisionConfig, type LlamaTextConfig, type VisionAct,
} from './config.js';
export {
  idefics3WeightSpecs, checkpointNames, canonicalName, loadIdefics3Weights, assembleIdefics3Weights,
  type AssembledWeights,
  type WeightSpec, type WeightKind, type Idefics3Weights, type VisionWeights, type TextWeights, type ConnectorWeights,
  type Linear, type Norm, type LoadWeightsOptions,
} from './weights.js';
export { VisionTransformer, patchMaskFromPixelMask, fullPatchMask, visionPositionIds, type PatchMask } from '../siglip/index.js';
export { Connector } from './connector.js';
export { applyLinear, type LowRankAdapter } from '../common.js';
export { LlamaText, KVCache, positionsFromAttentionMask, type LogitsFor, type TextForwardOptions } from './text.js';
export { Idefics3Model, VISION_TOWER, loadModel, type Idefics3Inputs, type ForwardOptions, type LoadModelOptions } from './model.js';
export { Processor, userMessage, checkMediaCount, imageGridForSize, withImageOptions } from './processor.js';
export { randomModel, randomModelFromJson, randomIdefics3Weights, initRule, type RandomInitOptions, type InitRule } from './init.js';
