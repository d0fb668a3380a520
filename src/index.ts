// vlmkit's public API: the engine (tensors, ops, autograd, backends), the library API for SmolVLM / Idefics3
// (loadVlm), and the pieces it is made of (processor, generation, models, checkpoints) for callers that need them.
export * from './engine/index.js';
export { VlmkitError, ShapeError, FileFormatError } from './errors.js';
export {
  loadVlm,
  toSample,
  resolveGenerateOptions,
  type Vlm,
  type LoadVlmOptions,
  type PromptInput,
  type VlmGenerateOptions,
  type GenerateResult,
  type TextStream,
  type BatchItem,
} from './api.js';
export { Processor, userMessage, type ImageInput, type ProcessorSample, type EncodedBatch, type ProcessorOptions, type EncodeOptions } from './processing/processor.js';
export { Tokenizer, StreamDecoder } from './processing/tokenizer.js';
export { ChatTemplate, type ChatMessage, type ContentPart } from './processing/chat-template.js';
export { PromptBuilder, buildPrompt, buildPromptBatch, padBatch, padLeft, padRight, type BuiltPrompt, type ImageGrid } from './processing/prompt.js';
export { loadImage, decodeImage, processImages, loadImageProcessorConfig, type RgbImage, type ImageProcessorConfig } from './processing/image.js';
export { generate, generateStream, positionIdsFromMask, type GenerateOptions, type GenerationEvent, type GenerationOutput, type RowResult } from './generate/generate.js';
export { resolveSampling, processLogits, applyRepetitionPenalty, applyTemperature, applyTopK, applyTopP, applyMinNewTokens, type SamplingOptions } from './generate/logits.js';
export { argmax as argmaxScores, sampleMultinomial, greedySampler, multinomialSampler, type Sampler } from './generate/sampling.js';
export { loadGenerationConfig, StopStringMatcher, type GenerationConfig } from './generate/stopping.js';
export { noCacheLM } from './generate/no-cache.js';
export type { CausalLM, KVCache, ModelInputs, PrefillInputs, StepInputs, FinishReason, GenerationTimings } from './generate/types.js';
export { loadModel, loadIdefics3Config, Idefics3Model, SUPPORTED_MODEL_TYPES, type Idefics3Config } from './models/idefics3/index.js';
export { Checkpoint } from './io/model-dir.js';
export { SafetensorsFile } from './io/safetensors.js';
export {
  LoraModel, loraConfig, loraScaling, matchesTarget, resolveTargets, ALL_LINEAR,
  type LoraConfig, type LoraConfigInput, type LoraLayer, type LoraCreateOptions, type TargetModules, type AdaptableModel,
} from './train/lora.js';
export { loadAdapter, saveAdapter, readAdapterConfig, saveMergedCheckpoint, loraConfigFromJson, loraConfigToJson, type SaveMergedOptions } from './train/peft.js';
export { AdamW, LrSchedule, clipGradNorm, lrLambda, resolveWarmupSteps, noDecayHF, type AdamWConfig, type ScheduleName } from './train/optim.js';
export { trainableParameters, setTrainable, selectParameters, countParameters, VISION_TOWER, type TrainMode, type ParamSelection } from './train/params.js';
export { causalLmLoss } from './train/loss.js';
export { writeSafetensors, type SafetensorsEntry } from './io/safetensors-write.js';
export { SftDataset, BatchOrder, loadExampleImages, type SftExample, type SftDataOptions, type BadRow } from './train/data.js';
export { SftCollator, encodeConversation, labelsFor, truncateConversation, IGNORE_INDEX, type SftBatch, type CollateItem } from './train/collate.js';
export { SftTrainer, runSft, microBatchLoss, resolveSftConfig, DEFAULT_SFT_CONFIG, type SftConfig, type SftRunOptions, type SftRunResult, type StepResult } from './train/sft.js';
export { saveTrainingCheckpoint, loadTrainingCheckpoint, latestCheckpoint, listCheckpoints } from './train/resume.js';
export { MetricsLogger, ProgressBar } from './train/metrics.js';
