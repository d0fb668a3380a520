// Supervised fine-tuning: one objective of the trainer (trainer.ts). A micro-batch is a set of conversations
// collated by the model's processor (SftCollator: tokens, image tiles, labels); its loss is the causal-LM loss
// (loss.ts) over the targets the labels mark. runSft is a whole run: the model directory (through models/index),
// the data, LoRA or full fine-tuning, the loop (loop.ts), the saved result.
import { join, resolve } from 'node:path';
import type { QuantFormat, Tensor } from '../engine/index.js';
import { type Processor, type TrainableModel, type VisionLanguageModel, loadModelWeights, loadProcessor, randomInitModel, readModelConfig } from '../models/index.js';
import { ModelDir } from '../io/model-dir.js';
import { type SftBatch, SftCollator, countTargets } from './collate.js';
import { SftDataset, type SftExample, loadExampleMedia } from './data.js';
import { allLocTokens } from '../data/loc.js';
import { VlmkitError } from '../errors.js';
import { type LoraConfigInput, LoraModel } from './lora.js';
import { assertFiniteForSave } from './finite.js';
import type { MetricsLogger } from './metrics.js';
import { causalLmLoss } from './loss.js';
import { type RunResult, openRunFolder, openRunLog, readingProgress, runLoop } from './loop.js';
import { trainableParameters } from './params.js';
import { saveAdapter, saveMergedCheckpoint } from './peft.js';
import { loadVisionFrom } from './vision-from.js';
import { type SaveDtype, type ScratchModel, checkFilesMatchConfig, modelConfigHash, readScratchSource, stageBase } from './scratch.js';
import * as ck from './resume.js';
import {
  DEFAULT_TRAIN_CONFIG, type Objective, type StepResult, type TrainConfig, Trainer, resolveTrainConfig,
} from './trainer.js';
import { expandHome } from '../io/paths.js';

export type { StepResult, TrainerPosition } from './trainer.js';
/** SFT's settings are the trainer's. */
export type SftConfig = TrainConfig;
export const DEFAULT_SFT_CONFIG: SftConfig = DEFAULT_TRAIN_CONFIG;
export const resolveSftConfig = resolveTrainConfig;

/**
 * Scalar loss of one micro-batch: sum of the token cross-entropies at its targets divided by `denominator`.
 * (The model runs its vision tower without a graph when nothing in it trains.)
 */
export function microBatchLoss(model: Pick<TrainableModel, 'logitsAt' | 'hiddenAt'>, b: SftBatch, denominator: number): Tensor {
  return causalLmLoss(model, b, b.labels, { numItemsInBatch: denominator });
}

/** The SFT objective: conversations collated by the processor, the causal-LM loss on their marked targets. */
export class SftObjective implements Objective<SftExample, SftBatch> {
  readonly collator: SftCollator;

  constructor(readonly processor: Processor, o: { assistantOnly?: boolean } = {}) {
    this.collator = new SftCollator(processor, { assistantOnly: o.assistantOnly });
  }

  length(ex: SftExample): number {
    return ex.length;
  }

  countTargets(ex: SftExample): number {
    return countTargets(this.collator.labels(ex));
  }

  async prepare(exs: SftExample[]): Promise<SftBatch> {
    const media = await loadExampleMedia(this.processor, exs);
    return this.collator.collate(exs, media.images, media.configs);
  }

  loss(model: TrainableModel, b: SftBatch, denominator: number): Tensor {
    return microBatchLoss(model, b, denominator);
  }
}

export interface SftTrainerInit {
  model: TrainableModel;
  processor: Processor;
  train: SftDataset;
  val?: SftDataset | null;
  /** the trainable tensors by name (LoRA: PEFT's in-memory names; full: transformers names), requiresGrad set */
  params: Map<string, Tensor>;
  lora?: LoraModel | null;
  config: Partial<SftConfig>;
  assistantOnly?: boolean;
}

/** The trainer with the SFT objective. */
export class SftTrainer extends Trainer<SftExample, SftBatch> {
  readonly processor: Processor;

  constructor(init: SftTrainerInit) {
    super({ ...init, objective: new SftObjective(init.processor, { assistantOnly: init.assistantOnly }) });
    this.processor = init.processor;
  }

  get collator(): SftCollator {
    return (this.objective as SftObjective).collator;
  }
}

// ------------------------------------------------------------------------------------------------ a whole run

export type SftMode = 'lora' | 'full' | 'frozen-vision';

export interface SftRunOptions extends Partial<SftConfig> {
  /** checkpoint directory of the base model (init 'pretrained') */
  model?: string | null;
  /**
   * 'pretrained' (default): load --model's weights. 'random': build the model from modelConfig with a fresh
   * initialisation (seeded by seed) and train every weight (mode 'full'); the tokenizer and processor files come
   * from `tokenizer`.
   */
  init?: 'pretrained' | 'random';
  /** init 'random': the config.json of the model to build (default <tokenizer>/config.json) */
  modelConfig?: string | null;
  /**
   * a SigLIP or Idefics3 checkpoint whose vision tower starts the new model's (init 'random'), or replaces the
   * tower of --model before a full fine-tune (train/vision-from.ts)
   */
  visionFrom?: string | null;
  /** init 'random': the folder of tokenizer.json, tokenizer_config.json, the chat template and processor configs */
  tokenizer?: string | null;
  /** dtype of the saved weights (the final model/ or adapter): default f32, as trained */
  saveDtype?: SaveDtype;
  /** training JSONL */
  data: string;
  /** validation JSONL */
  val?: string | null;
  /** run folder: checkpoints, metrics.jsonl, the final adapter (LoRA) or model/ (full fine-tuning) */
  out: string;
  /** 'lora' (default; 'full' with init 'random'), 'full' or 'frozen-vision' (full fine-tuning of all but the vision tower) */
  mode?: SftMode;
  /** LoRA settings (mode 'lora'); targets default to the model's (Idefics3: q/k/v/o/gate/up/down_proj) */
  lora?: LoraConfigInput | Partial<LoraConfigInput> | null;
  /** LoRA only: no adapters on the vision tower */
  freezeVision?: boolean;
  assistantOnly?: boolean;
  /** token limit per row (default: the model's context length) */
  maxLength?: number;
  /** false: rows over maxLength are bad rows instead of cut */
  truncate?: boolean;
  skipBadRows?: boolean;
  /** true / 'latest': the newest checkpoint in `out`; or a checkpoint directory */
  resume?: boolean | string | null;
  /** keep only the newest N checkpoints (0 = all) */
  saveTotalLimit?: number;
  /** load every weight as f32 (LoRA keeps stored bf16 weights frozen otherwise) */
  f32?: boolean;
  /** LoRA only: block-quantize the frozen base at load (nf4: QLoRA) */
  quant?: QuantFormat;
}

export interface SftRunIo {
  /** JSON lines when json is set */
  stdout?: { write(s: string): unknown; isTTY?: boolean } | null;
  /** progress bar and human-readable lines */
  stderr?: { write(s: string): unknown; isTTY?: boolean } | null;
  json?: boolean;
  /** set requested = true to stop after the current step with a checkpoint (Ctrl-C) */
  stop?: { requested: boolean };
  /** called after every step (tests) */
  onStep?: (t: SftTrainer, r: StepResult) => void | Promise<void>;
}

export interface SftRunResult extends RunResult {
  trainSummary: ReturnType<SftDataset['summary']>;
  valSummary: ReturnType<SftDataset['summary']> | null;
}


/** Content hash of the rows a run trains on (FNV-1a over ids, spans and image paths). */
function datasetHash(ds: SftDataset): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (const e of ds.examples) {
    mix(e.inputIds.length);
    for (const t of e.inputIds) mix(t);
    for (const [s, f] of e.assistantSpans) { mix(s); mix(f); }
    for (const p of e.images) for (let i = 0; i < p.length; i++) mix(p.charCodeAt(i));
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The LoRA config with `vision` (the model's vision-tower module pattern) added to exclude_modules. */
function loraWithout(c: LoraConfigInput, vision: string): LoraConfigInput {
  const ex = c.excludeModules;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let excludeModules: string;
  if (ex == null) excludeModules = vision;
  else if (typeof ex === 'string') excludeModules = `(?:${ex})|${vision}`;
  else excludeModules = [...ex.map((t) => `(?:.*\\.)?${esc(t)}`), vision].join('|');
  return { ...c, excludeModules };
}

/**
 * A whole SFT run: loads the model, data and adapter, trains (resuming when asked), evaluates, writes
 * checkpoints and metrics, and saves the result. Returns when done or, after stop.requested, with a checkpoint.
 */
export async function runSft(o: SftRunOptions, io: SftRunIo = {}): Promise<SftRunResult> {
  o = { ...o, data: expandHome(o.data), out: expandHome(o.out) };
  if (o.modelConfig) o.modelConfig = expandHome(o.modelConfig);
  if (o.tokenizer) o.tokenizer = expandHome(o.tokenizer);
  if (o.model) o.model = expandHome(o.model);
  if (o.val) o.val = expandHome(o.val);
  if (typeof o.resume === 'string' && o.resume !== 'latest') o.resume = expandHome(o.resume);
  // a new model trains every weight
  const mode: SftMode = o.mode ?? (o.init === 'random' ? 'full' : 'lora');
  const config = resolveSftConfig(o);
  const saveDtype = o.saveDtype ?? 'f32';
  if (!['f32', 'bf16', 'f16'].includes(saveDtype)) throw new VlmkitError('E_ARGS', `--save-dtype must be f32, bf16 or f16, got ${JSON.stringify(saveDtype)}`);
  // a missing folder, an unsupported model or a bad config fails here, before anything is written
  let scratch: ScratchModel | null = null;
  if (o.init === 'random') {
    if (mode === 'lora') throw new VlmkitError('E_ARGS', '--init random trains every weight of a new model; drop --lora');
    if (mode === 'frozen-vision' && !o.visionFrom) throw new VlmkitError('E_ARGS', '--init random with --freeze-vision would keep a random vision tower; add --vision-from DIR (a trained tower) or drop --freeze-vision');
    if (o.model) throw new VlmkitError('E_ARGS', '--init random builds the model from --model-config, not from --model; drop --model');
    scratch = readScratchSource(o);
  } else if (o.visionFrom && mode === 'lora') {
    // the adapter would be saved against a base whose tower it no longer matches
    throw new VlmkitError('E_ARGS', '--vision-from replaces the vision tower of --model, which a LoRA adapter cannot carry; add --full (or --full --freeze-vision)');
  } else if (o.init !== undefined && o.init !== 'pretrained') {
    throw new VlmkitError('E_ARGS', `--init must be pretrained or random, got ${JSON.stringify(o.init)}`);
  } else {
    if (!o.model) throw new VlmkitError('E_ARGS', '--model is required: the checkpoint folder to fine-tune (or --init random to train a new model)');
    readModelConfig(ModelDir.of(o.model)); // a missing folder or an unsupported model fails here, before anything is written
  }
  // the trained weights would be f32 copies beside a quantized original: only frozen weights are quantized
  if (o.quant && mode !== 'lora') throw new VlmkitError('E_ARGS', `--quant ${o.quant} holds a frozen base under LoRA adapters; ${mode} fine-tuning trains the weights themselves (drop --quant)`);
  const say = (s: string) => { if (!io.json) io.stderr?.write(s + '\n'); };
  const resumeDir = openRunFolder(o.out, o.resume ?? null, say);

  // the model directory everything reads: the base checkpoint, or the staged config + tokenizer files
  const modelDir = scratch ? stageBase(o.out, scratch, saveDtype, { resuming: resumeDir !== null }) : o.model!;
  const md = ModelDir.of(modelDir);
  const processor = loadProcessor(md);
  if (scratch) checkFilesMatchConfig(processor, scratch);
  const model: VisionLanguageModel = scratch
    ? randomInitModel(scratch.family, scratch.config, { seed: config.seed, orderedTokens: locationTokenIds(processor) })
    : loadModelWeights(md, { dtype: mode !== 'lora' || o.f32 ? 'f32' : undefined, quant: o.quant });
  // read on resuming too: a frozen tower is not in the checkpoints (a tower that trains is, and the restore that
  // follows overwrites this). With --model the tower is replaced: a fine-tune that gives a trained VLM a new tower.
  if (o.visionFrom) {
    try {
      say(`vision tower from ${o.visionFrom}: ${loadVisionFrom(o.visionFrom, model.parameters())} tensors`);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  let lora: LoraModel | null = null;
  let trainer: SftTrainer | null = null;
  let logger: MetricsLogger | null = null;
  try {
    const maxLength = o.maxLength ?? model.maxPositions;
    const dataOpts = { maxLength, truncate: o.truncate, skipBadRows: o.skipBadRows, assistantOnly: o.assistantOnly, shouldStop: () => !!io.stop?.requested };
    const train = await SftDataset.load(o.data, processor, { ...dataOpts, onRow: readingProgress(io, o.data) });
    const val = o.val ? await SftDataset.load(o.val, processor, { ...dataOpts, onRow: readingProgress(io, o.val) }) : null;
    let loraInput: LoraConfigInput | null = null;
    if (mode === 'lora') {
      loraInput = { ...(o.lora ?? {}), targetModules: o.lora?.targetModules ?? [...(model.defaultLoraTargets ?? [])] } as LoraConfigInput;
      if (o.freezeVision) loraInput = loraWithout(loraInput, model.visionModules);
      lora = LoraModel.create(model, { ...loraInput, baseModelNameOrPath: loraInput.baseModelNameOrPath ?? resolve(modelDir) }, { seed: config.seed });
    }
    const params = trainableParameters(model, mode, lora);
    trainer = new SftTrainer({ model, processor, train, val, params, lora, config, assistantOnly: o.assistantOnly });
    // every setting that changes what the next step computes: a resume with any of them different would not
    // continue this run (the data order, the lr schedule, the update rule or the loss would change under it)
    const fingerprint: ck.RunFingerprint = {
      data: { rows: train.length, hash: datasetHash(train) }, seed: config.seed, batchSize: config.batchSize,
      gradAccum: config.gradAccum, groupByLength: config.groupByLength, mode, assistantOnly: !!o.assistantOnly,
      // (lora.dora only when on: the checkpoints of LoRA runs from before DoRA still resume)
      trainable: [...params.keys()].length, lora: lora ? { r: lora.config.r, alpha: lora.config.loraAlpha, dropout: lora.config.loraDropout, targets: lora.targets.length, ...(lora.config.useDora ? { dora: true } : {}) } : null,
      lr: config.lr, schedule: config.schedule, totalSteps: trainer.totalSteps, warmupSteps: trainer.schedule.warmupSteps,
      clip: config.clip, weightDecay: config.weightDecay, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
      // (only when set: the checkpoints of runs from before it still resume)
      ...(config.visionLrScale !== undefined && config.visionLrScale !== 1 ? { visionLrScale: config.visionLrScale } : {}),
      maxLength, truncate: o.truncate !== false,
      // the base the adapters train on: a run on another quantization is another run (absent when unquantized,
      // so the checkpoints of runs from before --quant still resume)
      ...(o.quant ? { quant: o.quant } : {}),
      // a from-scratch run is another run when the model it builds differs
      ...(scratch ? { init: 'random', modelConfig: modelConfigHash(scratch.json) } : {}),
    };
    const settings = {
      ...config, mode, model: o.model ?? null, data: o.data, val: o.val ?? null, maxLength, lora: loraInput, saveDtype, quant: o.quant ?? null,
      ...(scratch ? { init: 'random', modelConfig: scratch.configPath, tokenizer: scratch.tokenizerDir } : {}),
      ...(o.visionFrom ? { visionFrom: o.visionFrom } : {}),
    };
    logger = openRunLog(o.out, io, { dir: resumeDir, trainer: trainer, fingerprint }, say);
    const ts = train.summary(), vs = val?.summary() ?? null;
    logger.log({ type: 'event', event: 'start', step: trainer.position.step, total_steps: trainer.totalSteps, trainable_params: countValues(params), train: ts, val: vs });
    say(`training ${mode === 'lora' ? `${lora!.config.useDora ? 'DoRA' : 'LoRA'} (${lora!.targets.length} modules, ${countValues(params)} parameters)` : `${mode} (${countValues(params)} parameters)`} on ${ts.used} rows` +
      `${ts.skipped ? ` (${ts.skipped} bad rows skipped)` : ''}${ts.truncated ? ` (${ts.truncated} truncated)` : ''}: ${trainer.totalSteps} steps`);

    const sft = trainer;
    const run = await runLoop(trainer, {
      out: o.out, logger, say, io: { ...io, onStep: io.onStep ? (r) => io.onStep!(sft, r) : undefined }, resumeDir,
      saveTotalLimit: o.saveTotalLimit ?? 0, checkpoint: { fingerprint, settings, baseModel: resolve(modelDir) },
    });
    const summary = { trainSummary: ts, valSummary: vs, skippedSteps: trainer.position.skippedSteps };
    if (run.interrupted) return { steps: trainer.position.step, totalSteps: trainer.totalSteps, interrupted: true, checkpoint: run.checkpoint, output: null, losses: run.losses, evalLoss: run.evalLoss, ...summary };
    let output: string;
    assertFiniteForSave(params, lora ? `the adapter to ${o.out}` : `the model to ${join(o.out, 'model')}`);
    const stDtype = saveDtype === 'bf16' ? 'BF16' : saveDtype === 'f16' ? 'F16' : 'F32';
    if (lora) {
      saveAdapter(lora, o.out, { baseModelNameOrPath: resolve(modelDir), dtype: stDtype });
      output = o.out;
    } else {
      output = join(o.out, 'model');
      // f32 as trained unless asked (a bf16 copy of a fine-tune would round small updates away)
      saveMergedCheckpoint(model, null, { sourceDir: modelDir, outDir: output, overwrite: true, dtype: stDtype });
    }
    const skippedSteps = trainer.position.skippedSteps;
    const losses = run.losses;
    logger.log({ type: 'event', event: 'done', step: trainer.position.step, output, final_loss: losses[losses.length - 1] ?? null, eval_loss: run.evalLoss, elapsed_s: trainer.position.elapsed, skipped_steps: skippedSteps });
    say(`done: ${trainer.position.step} steps in ${trainer.position.elapsed.toFixed(1)} s${skippedSteps ? ` (${skippedSteps} skipped for a non-finite loss or gradient)` : ''}; ${lora ? 'adapter' : 'model'} saved to ${output}`);
    return { steps: trainer.position.step, totalSteps: trainer.totalSteps, interrupted: false, checkpoint: run.checkpoint, output, losses, evalLoss: run.evalLoss, ...summary };
  } finally {
    logger?.close();
    trainer?.dispose();
    lora?.remove();
    model.dispose();
  }
}

function countValues(params: Map<string, Tensor>): number {
  let n = 0;
  for (const t of params.values()) n += t.size;
  return n;
}

/** The ids of <loc0000>..<loc1023> when the tokenizer has all of them (they start smooth in a new model), else none. */
function locationTokenIds(processor: Processor): number[] | undefined {
  const ids: number[] = [];
  for (const t of allLocTokens()) {
    const id = processor.tokenizer.tokenToId(t);
    if (id === undefined) return undefined;
    ids.push(id);
  }
  return ids;
}
