// A whole DPO run (`vlmkit train dpo`): the model, preference pairs, LoRA adapters, the reference (the adapters
// switched off, or precomputed once and cached in the run folder), the loop (loop.ts) with the same run options
// as SFT (resume, checkpoints, evaluation, JSON metrics, the non-finite stop), and the PEFT adapter at the end.
import { existsSync, readFileSync } from 'node:fs';
import { writeTextFileAtomic } from '../io/safetensors-write.js';
import { join, resolve } from 'node:path';
import { noGrad, type QuantFormat, tidy, type Tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { ModelDir } from '../io/model-dir.js';
import { expandHome } from '../io/paths.js';
import { type TrainableModel, type VisionLanguageModel, loadModelWeights, loadProcessor, readModelConfig } from '../models/index.js';
import { type DpoConfig, DpoObjective, answerLogps, resolveDpoConfig } from './dpo.js';
import { assertFiniteForSave } from './finite.js';
import { type LoraConfigInput, LoraModel } from './lora.js';
import { type RunResult, openRunFolder, openRunLog, runLoop } from './loop.js';
import type { MetricsLogger } from './metrics.js';
import { trainableParameters } from './params.js';
import { saveAdapter } from './peft.js';
import { PreferenceDataset, type PreferenceExample } from './preference-data.js';
import * as ck from './resume.js';
import { type StepResult, type TrainConfig, Trainer, resolveTrainConfig } from './trainer.js';
import type { SftRunIo } from './sft.js';

export interface DpoRunOptions extends Partial<TrainConfig>, Partial<DpoConfig> {
  /** the base checkpoint (the policy starts as it plus fresh adapters; the reference is it alone) */
  model: string;
  /** preference pairs, JSONL */
  data: string;
  val?: string | null;
  out: string;
  /** LoRA settings; targets default to the model's */
  lora?: Partial<LoraConfigInput> | null;
  freezeVision?: boolean;
  /** the reference's log-probs computed once before training (and cached in the run folder) */
  precomputeRef?: boolean;
  /** a pair whose longer sequence is over this many tokens is a bad row (default: the model's context) */
  maxLength?: number;
  skipBadRows?: boolean;
  resume?: boolean | string | null;
  saveTotalLimit?: number;
  f32?: boolean;
  /** block-quantize the frozen base at load (nf4: QLoRA) */
  quant?: QuantFormat;
  saveDtype?: 'f32' | 'bf16' | 'f16';
}

export interface DpoRunIo extends Omit<SftRunIo, 'onStep'> {
  onStep?: (t: Trainer<PreferenceExample>, r: StepResult) => void | Promise<void>;
}

export interface DpoRunResult extends RunResult {
  trainSummary: ReturnType<PreferenceDataset['summary']>;
  valSummary: ReturnType<PreferenceDataset['summary']> | null;
}

/** Content hash of the pairs a run trains on (FNV-1a over both sequences, their answer spans and image paths). */
export function preferenceHash(exs: readonly PreferenceExample[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (const e of exs) {
    for (const side of [e.chosen, e.rejected]) {
      mix(side.inputIds.length);
      for (const t of side.inputIds) mix(t);
      for (const [s, f] of side.assistantSpans) { mix(s); mix(f); }
    }
    for (const p of e.images) for (let i = 0; i < p.length; i++) mix(p.charCodeAt(i));
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * The reference's summed answer log-probs of every pair (the model with its adapters off, no graph), kept in
 * `ex.ref`. `cacheFile`: read when it was written for the same pairs and base model, written (whole, through a
 * temporary file) otherwise, so a resumed run does not recompute them.
 */
export async function precomputeReference(model: TrainableModel, lora: LoraModel, objective: DpoObjective, exs: readonly PreferenceExample[],
  o: { batchSize: number; cacheFile?: string; baseModel?: string; say?: (s: string) => void }): Promise<'computed' | 'cached'> {
  const key = { pairs: exs.length, hash: preferenceHash(exs), baseModel: o.baseModel ?? null };
  if (o.cacheFile && existsSync(o.cacheFile)) {
    let cached: { chosen: number[]; rejected: number[] } | null = null;
    try {
      const j = JSON.parse(readFileSync(o.cacheFile, 'utf8')) as Record<string, unknown>;
      const nums = (v: unknown): v is number[] => Array.isArray(v) && v.length === exs.length && v.every((x) => typeof x === 'number' && Number.isFinite(x));
      if (JSON.stringify(j.key) === JSON.stringify(key) && nums(j.chosen) && nums(j.rejected)) cached = { chosen: j.chosen, rejected: j.rejected };
    } catch {
      cached = null; // unreadable: computed again and rewritten
    }
    const ok = cached !== null;
    if (ok) {
      exs.forEach((ex, i) => (ex.ref = { chosen: cached!.chosen[i]!, rejected: cached!.rejected[i]! }));
      return 'cached';
    }
    o.say?.(`${o.cacheFile} was made for other pairs or another base model; computing the reference log-probs again`);
  }
  const wasTraining = lora.training;
  lora.eval();
  try {
    for (let i = 0; i < exs.length; i += o.batchSize) {
      const part = exs.slice(i, i + o.batchSize);
      const b = await objective.prepare(part);
      try {
        const v = noGrad(() => tidy(() => lora.withDisabled(() => answerLogps(model, b.rows, b.rows.labels).sum.toFloat32Array())));
        part.forEach((ex, k) => (ex.ref = { chosen: v[k]!, rejected: v[part.length + k]! }));
      } finally {
        b.dispose();
      }
    }
  } finally {
    lora.train(wasTraining);
  }
  const bad = exs.find((ex) => !Number.isFinite(ex.ref!.chosen) || !Number.isFinite(ex.ref!.rejected));
  if (bad) throw new VlmkitError('E_NONFINITE', `${bad.where}: the reference log-probs are not finite (${bad.ref!.chosen}, ${bad.ref!.rejected}); check the base model's weights`);
  if (o.cacheFile) {
    writeTextFileAtomic(o.cacheFile, JSON.stringify({ key, chosen: exs.map((e) => e.ref!.chosen), rejected: exs.map((e) => e.ref!.rejected) }) + '\n');
  }
  return 'computed';
}

function countValues(params: Map<string, Tensor>): number {
  let n = 0;
  for (const t of params.values()) n += t.size;
  return n;
}

/** The LoRA config with the model's vision-tower pattern added to exclude_modules. */
function withoutVision(c: LoraConfigInput, vision: string): LoraConfigInput {
  const ex = c.excludeModules;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const excludeModules = ex == null ? vision : typeof ex === 'string' ? `(?:${ex})|${vision}` : [...ex.map((t) => `(?:.*\\.)?${esc(t)}`), vision].join('|');
  return { ...c, excludeModules };
}

/**
 * A whole DPO run: loads the model, pairs and adapters, trains (resuming when asked), evaluates, writes
 * checkpoints and metrics, and saves the PEFT adapter. Returns when done or, after stop.requested, with a checkpoint.
 */
export async function runDpo(o: DpoRunOptions, io: DpoRunIo = {}): Promise<DpoRunResult> {
  if (!o.model) throw new VlmkitError('E_ARGS', '--model is required: the checkpoint folder to align');
  o = { ...o, model: expandHome(o.model), data: expandHome(o.data), out: expandHome(o.out) };
  if (o.val) o.val = expandHome(o.val);
  if (typeof o.resume === 'string' && o.resume !== 'latest') o.resume = expandHome(o.resume);
  const config = resolveTrainConfig(o);
  const dpo = resolveDpoConfig(o);
  const saveDtype = o.saveDtype ?? 'f32';
  if (!['f32', 'bf16', 'f16'].includes(saveDtype)) throw new VlmkitError('E_ARGS', `--save-dtype must be f32, bf16 or f16, got ${JSON.stringify(saveDtype)}`);
  const md = ModelDir.of(o.model);
  readModelConfig(md); // a missing folder or an unsupported model fails here, before anything is written
  const say = (s: string) => { if (!io.json) io.stderr?.write(s + '\n'); };
  const resumeDir = openRunFolder(o.out, o.resume ?? null, say);
  const processor = loadProcessor(md);
  const model: VisionLanguageModel = loadModelWeights(md, { dtype: o.f32 ? 'f32' : undefined, quant: o.quant });
  let lora: LoraModel | null = null;
  let trainer: Trainer<PreferenceExample> | null = null;
  let logger: MetricsLogger | null = null;
  try {
    const maxLength = o.maxLength ?? model.maxPositions;
    const dataOpts = { maxLength, skipBadRows: o.skipBadRows };
    const train = await PreferenceDataset.load(o.data, processor, dataOpts);
    const val = o.val ? await PreferenceDataset.load(o.val, processor, dataOpts) : null;
    let loraInput = { ...(o.lora ?? {}), targetModules: o.lora?.targetModules ?? [...(model.defaultLoraTargets ?? [])] } as LoraConfigInput;
    if (o.freezeVision) loraInput = withoutVision(loraInput, model.visionModules);
    lora = LoraModel.create(model, { ...loraInput, baseModelNameOrPath: loraInput.baseModelNameOrPath ?? resolve(o.model) }, { seed: config.seed });
    const params = trainableParameters(model, 'lora', lora);
    const objective = new DpoObjective(processor, dpo, lora);
    if (o.precomputeRef) {
      const t0 = performance.now();
      const all = [...train.examples, ...(val?.examples ?? [])];
      const how = await precomputeReference(model, lora, objective, all, { batchSize: config.evalBatchSize ?? config.batchSize, cacheFile: join(o.out, 'reference-logps.json'), baseModel: resolve(o.model), say });
      say(`reference log-probs of ${all.length} pairs ${how === 'cached' ? 'read from' : `computed in ${((performance.now() - t0) / 1e3).toFixed(1)} s and saved to`} ${join(o.out, 'reference-logps.json')}`);
    }
    trainer = new Trainer({ model, objective, train, val, params, lora, config });
    // every setting that changes what the next step computes
    const fingerprint: ck.RunFingerprint = {
      objective: 'dpo', data: { rows: train.length, hash: preferenceHash(train.examples) }, seed: config.seed, batchSize: config.batchSize,
      gradAccum: config.gradAccum, groupByLength: config.groupByLength, mode: 'lora', trainable: params.size,
      lora: { r: lora.config.r, alpha: lora.config.loraAlpha, dropout: lora.config.loraDropout, targets: lora.targets.length },
      lr: config.lr, schedule: config.schedule, totalSteps: trainer.totalSteps, warmupSteps: trainer.schedule.warmupSteps,
      clip: config.clip, weightDecay: config.weightDecay, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
      // (only when set: the checkpoints of runs from before it still resume)
      ...(config.visionLrScale !== undefined && config.visionLrScale !== 1 ? { visionLrScale: config.visionLrScale } : {}), maxLength,
      beta: dpo.beta, lossType: dpo.lossType, labelSmoothing: dpo.labelSmoothing, sftWeight: dpo.sftWeight,
      ...(o.quant ? { quant: o.quant } : {}),
    };
    const settings = { ...config, ...dpo, objective: 'dpo', model: o.model, data: o.data, val: o.val ?? null, maxLength, lora: loraInput, saveDtype, precomputeRef: !!o.precomputeRef, quant: o.quant ?? null };
    logger = openRunLog(o.out, io, { dir: resumeDir, trainer: trainer, fingerprint }, say);
    const ts = train.summary(), vs = val?.summary() ?? null;
    logger.log({ type: 'event', event: 'start', step: trainer.position.step, total_steps: trainer.totalSteps, trainable_params: countValues(params), train: ts, val: vs, objective: 'dpo', ...dpo });
    say(`training DPO (${dpo.lossType}, beta ${dpo.beta}${dpo.sftWeight ? `, sft weight ${dpo.sftWeight}` : ''}) with ${lora.config.useDora ? 'DoRA' : 'LoRA'} (${lora.targets.length} modules, ${countValues(params)} parameters) on ${ts.used} pairs` +
      `${ts.skipped ? ` (${ts.skipped} bad rows skipped)` : ''}: ${trainer.totalSteps} steps`);
    const tr = trainer;
    const run = await runLoop(trainer, {
      out: o.out, logger, say, io: { ...io, onStep: io.onStep ? (r) => io.onStep!(tr, r) : undefined }, resumeDir,
      saveTotalLimit: o.saveTotalLimit ?? 0, checkpoint: { fingerprint, settings, baseModel: resolve(o.model) },
    });
    const summary = { trainSummary: ts, valSummary: vs, skippedSteps: trainer.position.skippedSteps };
    if (run.interrupted) return { steps: trainer.position.step, totalSteps: trainer.totalSteps, interrupted: true, checkpoint: run.checkpoint, output: null, losses: run.losses, evalLoss: run.evalLoss, ...summary };
    assertFiniteForSave(params, `the adapter to ${o.out}`);
    saveAdapter(lora, o.out, { baseModelNameOrPath: resolve(o.model), dtype: saveDtype === 'bf16' ? 'BF16' : saveDtype === 'f16' ? 'F16' : 'F32' });
    const losses = run.losses;
    logger.log({ type: 'event', event: 'done', step: trainer.position.step, output: o.out, final_loss: losses[losses.length - 1] ?? null, eval_loss: run.evalLoss, elapsed_s: trainer.position.elapsed, skipped_steps: trainer.position.skippedSteps });
    say(`done: ${trainer.position.step} steps in ${trainer.position.elapsed.toFixed(1)} s; adapter saved to ${o.out}`);
    return { steps: trainer.position.step, totalSteps: trainer.totalSteps, interrupted: false, checkpoint: run.checkpoint, output: o.out, losses, evalLoss: run.evalLoss, ...summary };
  } finally {
    logger?.close();
    trainer?.dispose();
    lora?.remove();
    model.dispose();
  }
}
