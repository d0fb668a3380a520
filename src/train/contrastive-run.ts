// A whole contrastive run (`vlmkit train contrastive`): a CLIP or SigLIP model (a checkpoint, or a new one built
// from --model-config with --init random), image-text rows, full training or LoRA, the shared loop (loop.ts: resume,
// checkpoints, evaluation, metrics, the non-finite stop), and at the end a model folder that loadContrastive and
// `vlmkit classify` read (full) or a PEFT adapter (LoRA).
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { ModelDir, readJsonFile } from '../io/model-dir.js';
import { expandHome } from '../io/paths.js';
import {
  type ContrastiveConfig, type ContrastiveModel, contrastiveConfigFromJson, loadContrastiveModel, loadContrastiveProcessor,
  randomContrastiveModel, readContrastiveConfig,
} from '../models/index.js';
import { CONTRASTIVE_LOSSES, type ContrastiveLossName } from './contrastive-loss.js';
import { type ContrastiveBatch, ContrastiveDataset, type ContrastiveExample, ContrastiveObjective } from './contrastive.js';
import { assertFiniteForSave } from './finite.js';
import { type LoraConfigInput, LoraModel } from './lora.js';
import { type RunResult, openRunFolder, openRunLog, runLoop } from './loop.js';
import type { MetricsLogger } from './metrics.js';
import { trainableParameters } from './params.js';
import { saveAdapter, saveMergedCheckpoint } from './peft.js';
import * as ck from './resume.js';
import { modelConfigHash, stageBase } from './scratch.js';
import type { SftRunIo } from './sft.js';
import { type StepResult, type TrainConfig, Trainer, resolveTrainConfig } from './trainer.js';

export interface ContrastiveRunOptions extends Partial<TrainConfig> {
  /** the checkpoint to train (CLIPModel / SiglipModel folder); null with init 'random' */
  model?: string | null;
  /** 'random': build a new model from modelConfig with the tokenizer files of `tokenizer` */
  init?: 'pretrained' | 'random';
  modelConfig?: string | null;
  tokenizer?: string | null;
  /** image-text rows, JSONL {"image", "text"} */
  data: string;
  val?: string | null;
  out: string;
  /** 'clip' (symmetric softmax, the default for CLIP) or 'siglip' (sigmoid, the default for SigLIP) */
  loss?: ContrastiveLossName;
  /** 'full' (every weight, f32) or 'lora' (adapters on the encoder linears) */
  mode?: 'full' | 'lora';
  lora?: Partial<LoraConfigInput> | null;
  skipBadRows?: boolean;
  resume?: boolean | string | null;
  saveTotalLimit?: number;
  saveDtype?: 'f32' | 'bf16' | 'f16';
}

export interface ContrastiveRunIo extends Omit<SftRunIo, 'onStep'> {
  onStep?: (t: Trainer<ContrastiveExample, ContrastiveBatch, ContrastiveModel>, r: StepResult) => void | Promise<void>;
}

export type ContrastiveRunResult = RunResult;

const argsError = (msg: string) => new VlmkitError('E_ARGS', msg);

/** FNV-1a over the rows' captions' ids and image paths: what a resumed run must train on again. */
function rowsHash(exs: readonly ContrastiveExample[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => { h = Math.imul(h ^ (x & 0xffff), 0x01000193); h = Math.imul(h ^ (x >>> 16), 0x01000193); };
  for (const e of exs) {
    mix(e.ids.length);
    for (const t of e.ids) mix(t);
    for (let i = 0; i < e.image.length; i++) mix(e.image.charCodeAt(i));
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

function countValues(params: Map<string, Tensor>): number {
  let n = 0;
  for (const t of params.values()) n += t.size;
  return n;
}

/** The config.json and tokenizer folder of a new model, checked before anything is written. */
function readRandomSource(o: ContrastiveRunOptions): { json: Record<string, unknown>; configPath: string; tokenizerDir: string; config: ContrastiveConfig } {
  if (o.model) throw argsError('--init random builds the model from --model-config, not from --model; drop --model');
  if (o.mode === 'lora') throw argsError('--init random trains every weight of a new model; drop --lora');
  const tokenizerDir = o.tokenizer;
  if (!tokenizerDir) throw argsError('--init random needs --tokenizer DIR: the folder with the tokenizer.json (and preprocessor_config.json) of the model to build');
  let isDir = false;
  try { isDir = statSync(tokenizerDir).isDirectory(); } catch { /* reported below */ }
  if (!isDir) throw argsError(`--tokenizer ${tokenizerDir} is not a folder; give the folder that holds tokenizer.json`);
  if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) throw argsError(`--tokenizer ${tokenizerDir} has no tokenizer.json; give the folder of the model's tokenizer files`);
  const configPath = o.modelConfig ?? join(tokenizerDir, 'config.json');
  if (!o.modelConfig && !existsSync(configPath)) throw argsError(`--init random needs --model-config FILE (the config.json of the CLIP or SigLIP model to build), or a config.json in --tokenizer ${tokenizerDir}`);
  const json = readJsonFile(configPath, 'model config');
  return { json, configPath, tokenizerDir, config: contrastiveConfigFromJson(json, configPath).config };
}

/**
 * A whole contrastive run: loads or builds the model, reads the rows, trains (resuming when asked), evaluates,
 * writes checkpoints and metrics, and saves <out>/model (full) or the PEFT adapter in <out> (LoRA).
 */
export async function runContrastive(o: ContrastiveRunOptions, io: ContrastiveRunIo = {}): Promise<ContrastiveRunResult> {
  o = { ...o, data: expandHome(o.data), out: expandHome(o.out) };
  for (const k of ['model', 'val', 'modelConfig', 'tokenizer'] as const) if (o[k]) o[k] = expandHome(o[k]!);
  if (typeof o.resume === 'string' && o.resume !== 'latest') o.resume = expandHome(o.resume);
  const random = o.init === 'random';
  if (o.init !== undefined && o.init !== 'random' && o.init !== 'pretrained') throw argsError(`--init must be pretrained or random, got ${JSON.stringify(o.init)}`);
  const mode = o.mode ?? (random ? 'full' : 'lora');
  if (mode !== 'full' && mode !== 'lora') throw argsError(`the contrastive train mode must be full or lora, got ${JSON.stringify(mode)}`);
  const config = resolveTrainConfig(o);
  const saveDtype = o.saveDtype ?? 'f32';
  if (!['f32', 'bf16', 'f16'].includes(saveDtype)) throw argsError(`--save-dtype must be f32, bf16 or f16, got ${JSON.stringify(saveDtype)}`);
  // everything that can be checked before the run folder is touched
  const source = random ? readRandomSource(o) : null;
  if (!random) {
    if (!o.model) throw argsError('--model is required: the CLIP or SigLIP checkpoint folder to train (or --init random with --model-config)');
    if (o.modelConfig || o.tokenizer) throw argsError('--model-config and --tokenizer go with --init random; a fine-tune reads both from --model');
    readContrastiveConfig(ModelDir.of(o.model));
  }
  const family = source ? source.config.modelType : readContrastiveConfig(ModelDir.of(o.model!)).family;
  const lossName: ContrastiveLossName = o.loss ?? (family === 'siglip' ? 'siglip' : 'clip');
  if (!CONTRASTIVE_LOSSES.includes(lossName)) throw argsError(`--loss must be clip or siglip, got ${JSON.stringify(lossName)}`);
  const say = (s: string) => { if (!io.json) io.stderr?.write(s + '\n'); };
  const resumeDir = openRunFolder(o.out, o.resume ?? null, say);

  // the model directory everything reads: the checkpoint, or <out>/base with the new model's config and tokenizer
  const modelDir = source ? stageBase(o.out, source, saveDtype, { resuming: resumeDir !== null }) : o.model!;
  const processor = loadContrastiveProcessor(modelDir);
  const model: ContrastiveModel = source
    ? randomContrastiveModel(source.config, config.seed)
    : loadContrastiveModel(modelDir, { dtype: mode === 'full' ? 'f32' : undefined }).model;
  let lora: LoraModel | null = null;
  let trainer: Trainer<ContrastiveExample, ContrastiveBatch, ContrastiveModel> | null = null;
  let logger: MetricsLogger | null = null;
  try {
    const train = await ContrastiveDataset.load(o.data, processor, { skipBadRows: o.skipBadRows });
    const val = o.val ? await ContrastiveDataset.load(o.val, processor, { skipBadRows: o.skipBadRows }) : null;
    let loraInput: LoraConfigInput | null = null;
    if (mode === 'lora') {
      loraInput = { ...(o.lora ?? {}), targetModules: o.lora?.targetModules ?? [...model.defaultLoraTargets] } as LoraConfigInput;
      lora = LoraModel.create(model, { ...loraInput, baseModelNameOrPath: loraInput.baseModelNameOrPath ?? resolve(modelDir) }, { seed: config.seed });
    }
    const params = trainableParameters(model, mode, lora);
    const objective = new ContrastiveObjective(processor, lossName);
    const t = new Trainer<ContrastiveExample, ContrastiveBatch, ContrastiveModel>({ model, objective, train, val, params, lora, config });
    trainer = t;
    const fingerprint: ck.RunFingerprint = {
      objective: 'contrastive', loss: lossName, data: { rows: train.length, hash: rowsHash(train.examples) }, seed: config.seed,
      batchSize: config.batchSize, gradAccum: config.gradAccum, groupByLength: config.groupByLength, mode, trainable: params.size,
      lora: lora ? { r: lora.config.r, alpha: lora.config.loraAlpha, dropout: lora.config.loraDropout, targets: lora.targets.length } : null,
      lr: config.lr, schedule: config.schedule, totalSteps: t.totalSteps, warmupSteps: t.schedule.warmupSteps,
      clip: config.clip, weightDecay: config.weightDecay, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
      // (only when set: the checkpoints of runs from before it still resume)
      ...(config.visionLrScale !== undefined && config.visionLrScale !== 1 ? { visionLrScale: config.visionLrScale } : {}),
      ...(source ? { init: 'random', modelConfig: modelConfigHash(source.json) } : {}),
    };
    const settings = {
      ...config, objective: 'contrastive', loss: lossName, mode, model: o.model ?? null, data: o.data, val: o.val ?? null, lora: loraInput, saveDtype,
      ...(source ? { init: 'random', modelConfig: source.configPath, tokenizer: source.tokenizerDir } : {}),
    };
    logger = openRunLog(o.out, io, { dir: resumeDir, trainer: t, fingerprint }, say);
    const ts = train.summary(), vs = val?.summary() ?? null;
    logger.log({ type: 'event', event: 'start', step: t.position.step, total_steps: t.totalSteps, trainable_params: countValues(params), train: ts, val: vs, objective: 'contrastive', loss: lossName });
    say(`training ${family} (${lossName} loss) ${mode === 'lora' ? `with ${lora!.config.useDora ? 'DoRA' : 'LoRA'} (${lora!.targets.length} modules, ${countValues(params)} parameters)` : `in full (${countValues(params)} parameters)`} on ${ts.used} image-text rows` +
      `${ts.skipped ? ` (${ts.skipped} bad rows skipped)` : ''}: ${t.totalSteps} steps of ${config.batchSize} rows`);
    const run = await runLoop(t, {
      out: o.out, logger, say, io: { ...io, onStep: io.onStep ? (r) => io.onStep!(t, r) : undefined }, resumeDir,
      saveTotalLimit: o.saveTotalLimit ?? 0, checkpoint: { fingerprint, settings, baseModel: resolve(modelDir) },
    });
    const base = { steps: t.position.step, totalSteps: t.totalSteps, checkpoint: run.checkpoint, losses: run.losses, evalLoss: run.evalLoss, skippedSteps: t.position.skippedSteps };
    if (run.interrupted) return { ...base, interrupted: true, output: null };
    const stDtype = saveDtype === 'bf16' ? 'BF16' : saveDtype === 'f16' ? 'F16' : 'F32';
    let output: string;
    assertFiniteForSave(params, lora ? `the adapter to ${o.out}` : `the model to ${join(o.out, 'model')}`);
    if (lora) {
      saveAdapter(lora, o.out, { baseModelNameOrPath: resolve(modelDir), dtype: stDtype });
      output = o.out;
    } else {
      output = join(o.out, 'model');
      saveMergedCheckpoint(model, null, { sourceDir: modelDir, outDir: output, overwrite: true, dtype: stDtype });
    }
    const losses = run.losses;
    logger.log({ type: 'event', event: 'done', step: t.position.step, output, final_loss: losses[losses.length - 1] ?? null, eval_loss: run.evalLoss, elapsed_s: t.position.elapsed, skipped_steps: t.position.skippedSteps });
    say(`done: ${t.position.step} steps in ${t.position.elapsed.toFixed(1)} s; ${lora ? 'adapter' : 'model'} saved to ${output}`);
    return { ...base, interrupted: false, output };
  } finally {
    logger?.close();
    trainer?.dispose();
    lora?.remove();
    model.dispose();
  }
}
