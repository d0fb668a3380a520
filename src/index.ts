// vlmkit's public API: the engine (tensors, ops, autograd, backends), the library API (loadVlm: the model family
// comes from config.json), and the pieces it is made of (processor, generation, models, training) for callers that
// need them. Model families are reached through models/index.ts only.
export * from './engine/index.js';
export { VlmkitError, ShapeError, FileFormatError } from './errors.js';
export {
  loadVlm,
  inspectModel,
  loadModelProcessor,
  describeModel,
  BUILTIN_MODEL_DIR,
  builtinModelDir,
  toSample,
  resolveGenerateOptions,
  type Vlm,
  type LoadVlmOptions,
  type PromptInput,
  type VlmGenerateOptions,
  type GenerateResult,
  type TextStream,
  type BatchItem,
  type ModelInfo,
  type MediaInput,
} from './api.js';
export {
  loadContrastive, applyTemplate, checkLabels,
  type ContrastiveHandle, type LoadContrastiveOptions, type ClassifyOptions, type ClassifyResult, type LabelScore,
  SearchIndex, searchFolder, updateIndex, listImages, modelIdentity, topK, DEFAULT_INDEX_NAME,
  type IndexedFile, type ModelIdentity, type SearchHit, type SearchOptions, type UpdateIndexOptions, type UpdateStats, type Hit,
} from './contrastive-api.js';
export { ContrastiveProcessor, loadContrastiveModel, type ContrastiveModel, type ContrastiveFamily } from './models/index.js';
export { Processor, userMessage, type ImageInput, type VideoInput, type VideoFrames, type VideoOptions, type ProcessorSample, type EncodedBatch, type ProcessorOptions, type EncodeOptions } from './models/index.js';
export { Tokenizer, StreamDecoder } from './processing/tokenizer.js';
export { ChatTemplate, type ChatMessage, type ContentPart } from './processing/chat-template.js';
export { PromptBuilder, buildPrompt, buildPromptBatch, padBatch, padLeft, padRight, type BuiltPrompt, type ImageGrid } from './models/index.js';
export { loadImage, decodeImage, type RgbImage } from './processing/decode.js';
export { processImages, loadImageProcessorConfig, type ImageProcessorConfig } from './models/index.js';
export { generate, generateStream, positionIdsFromMask, type GenerateOptions, type GenerationEvent, type GenerationOutput, type RowResult } from './generate/generate.js';
export { resolveSampling, processLogits, applyRepetitionPenalty, applyTemperature, applyTopK, applyTopP, applyMinNewTokens, type SamplingOptions } from './generate/logits.js';
export { argmax as argmaxScores, sampleMultinomial, greedySampler, multinomialSampler, type Sampler } from './generate/sampling.js';
export { loadGenerationConfig, StopStringMatcher, type GenerationConfig } from './generate/stopping.js';
export { noCacheLM } from './generate/no-cache.js';
export type { CausalLM, KVCache, ModelInputs, PrefillInputs, StepInputs, FinishReason, GenerationTimings } from './generate/types.js';
export {
  loadModelDir, loadModelWeights, loadProcessor, readModelConfig, contextLength, SUPPORTED_MODEL_TYPES,
  Idefics3Model, VISION_TOWER, loadIdefics3Model, loadIdefics3Model as loadModel, loadIdefics3Config, type Idefics3Config,
  type ModelFamily, type ModelConfig, type LoadedModel, type VisionLanguageModel, type GenerationModel, type TrainableModel,
  type ModelForwardInputs, type ModelCache, type VisionEncoder,
} from './models/index.js';
export { Checkpoint, ModelDir, readJsonFile } from './io/model-dir.js';
export { SafetensorsFile } from './io/safetensors.js';
export {
  LoraModel, loraConfig, loraScaling, matchesTarget, resolveTargets, ALL_LINEAR,
  type LoraConfig, type LoraConfigInput, type LoraLayer, type LoraCreateOptions, type TargetModules, type AdaptableModel,
} from './train/lora.js';
export { loadAdapter, saveAdapter, readAdapterConfig, saveMergedCheckpoint, loraConfigFromJson, loraConfigToJson, type SaveMergedOptions } from './train/peft.js';
export { AdamW, LrSchedule, clipGradNorm, lrLambda, resolveWarmupSteps, noDecayHF, type AdamWConfig, type ScheduleName } from './train/optim.js';
export { trainableParameters, setTrainable, selectParameters, countParameters, type TrainMode, type ParamSelection } from './train/params.js';
export { causalLmLoss, causalLmTargets, type CausalLmLossOptions } from './train/loss.js';
export { writeSafetensors, type SafetensorsEntry } from './io/safetensors-write.js';
export { SftDataset, BatchOrder, loadExampleImages, type SftExample, type SftDataOptions, type BadRow } from './train/data.js';
export { SftCollator, encodeConversation, labelsFor, truncateConversation, IGNORE_INDEX, type SftBatch, type CollateItem } from './train/collate.js';
export { Trainer, resolveTrainConfig, DEFAULT_TRAIN_CONFIG, type Objective, type MicroBatch, type TrainConfig, type TrainerInit, type StepResult } from './train/trainer.js';
export { runLoop, openRunFolder, type RunIo, type LoopOptions, type LoopResult } from './train/loop.js';
export { SftTrainer, SftObjective, runSft, microBatchLoss, resolveSftConfig, DEFAULT_SFT_CONFIG, type SftConfig, type SftRunOptions, type SftRunResult } from './train/sft.js';
export { saveTrainingCheckpoint, loadTrainingCheckpoint, latestCheckpoint, listCheckpoints } from './train/resume.js';
export { MetricsLogger, ProgressBar } from './train/metrics.js';
