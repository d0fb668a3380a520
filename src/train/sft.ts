// The SFT trainer: supervised fine-tuning of an Idefics3 / SmolVLM model on a dataset of conversations, with
// AdamW, a learning-rate schedule, gradient accumulation, clipping by global norm, gradient checkpointing,
// periodic evaluation and checkpoints that a later run resumes bit for bit.
//
// Loss and gradient accumulation. The loss of an optimizer step is the mean token cross-entropy over every loss
// target of all its micro-batches: each micro-batch contributes sum(token losses) / (targets in the whole step),
// which is what transformers' Trainer does with num_items_in_batch (>= 4.46). Accumulating k micro-batches
// therefore gives exactly the gradient of one big batch of the same rows (not the mean of per-micro-batch means,
// which weights short rows up). The logits are computed only at positions whose next label counts (never at
// image, padding or masked prompt positions), so the lm_head costs what the targets need.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Tensor, backward, crossEntropy, indexSelect, linear, mul, noGrad, reshape, tensor, tidy } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { loadIdefics3Config } from '../models/idefics3/config.js';
import { type Idefics3Model, loadModel } from '../models/idefics3/model.js';
import { Processor } from '../processing/processor.js';
import * as ck from './resume.js';
import { IGNORE_INDEX, type SftBatch, SftCollator, countTargets } from './collate.js';
import { BatchOrder, SftDataset, type SftExample, loadExampleImages } from './data.js';
import { type LoraConfigInput, LoraModel } from './lora.js';
import { assertFiniteForSave, findNonFinite } from './finite.js';
import { type EvalRecord, MetricsLogger, ProgressBar, type TrainRecord } from './metrics.js';
import { trainableParameters } from './params.js';
import { saveAdapter, saveMergedCheckpoint } from './peft.js';
import { AdamW, LrSchedule, type ScheduleName, clipGradNorm, noDecayHF } from './optim.js';
import { expandHome } from '../io/paths.js';

export interface SftConfig {
  /** peak learning rate */
  lr: number;
  /** passes over the data (used when maxSteps is 0); may be fractional */
  epochs: number;
  /** optimizer steps to run (> 0 wins over epochs) */
  maxSteps: number;
  /** rows per micro-batch */
  batchSize: number;
  /** micro-batches per optimizer step */
  gradAccum: number;
  warmupSteps: number;
  warmupRatio: number;
  schedule: ScheduleName;
  /** clip the global gradient norm to this (0 = no clipping; the norm is still reported) */
  clip: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  seed: number;
  gradientCheckpointing: boolean;
  /** evaluate on the validation set every N steps (0 = only at the end when there is one) */
  evalEvery: number;
  /** write a checkpoint every N steps (0 = none but the final output) */
  saveEvery: number;
  groupByLength: boolean;
  /** rows per evaluation batch (default batchSize) */
  evalBatchSize?: number;
  /** a step whose loss or gradient norm is NaN/Inf is skipped (no update, counted) instead of stopping the run */
  skipNonfinite?: boolean;
}

export const DEFAULT_SFT_CONFIG: SftConfig = {
  lr: 2e-4, epochs: 1, maxSteps: 0, batchSize: 1, gradAccum: 1, warmupSteps: 0, warmupRatio: 0, schedule: 'linear',
  clip: 1, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, seed: 42, gradientCheckpointing: false, evalEvery: 0,
  saveEvery: 0, groupByLength: false,
};

/** Where the run stands: everything besides weights and optimizer moments that a resumed run needs. */
export interface TrainerPosition {
  /** optimizer steps done */
  step: number;
  /** current epoch (0-based) */
  epoch: number;
  /** next batch of the epoch's order */
  batchInEpoch: number;
  samplesSeen: number;
  tokensSeen: number;
  /** seconds of training so far (over every resumed part) */
  elapsed: number;
  /** steps skipped for a non-finite loss or gradient norm (--skip-nonfinite) */
  skippedSteps: number;
}

export interface SftTrainerInit {
  model: Idefics3Model;
  processor: Processor;
  train: SftDataset;
  val?: SftDataset | null;
  /** the trainable tensors by name (LoRA: PEFT's in-memory names; full: transformers names), requiresGrad set */
  params: Map<string, Tensor>;
  lora?: LoraModel | null;
  config: Partial<SftConfig>;
  assistantOnly?: boolean;
}

/** The result of one optimizer step. */
export interface StepResult {
  loss: number;
  lr: number;
  gradNorm: number;
  /** loss targets (tokens the loss counted) */
  targets: number;
  /** input tokens (image tokens included) */
  tokens: number;
  samples: number;
  seconds: number;
  /** the loss or gradient norm was not finite and skipNonfinite is set: no update was applied */
  skipped: boolean;
}

/**
 * Scalar loss of one micro-batch: sum of the token cross-entropies at its targets divided by `denominator`.
 * Vision runs without a graph when nothing in it trains.
 */
export function microBatchLoss(model: Idefics3Model, b: SftBatch, denominator: number, visionTrains: boolean): Tensor {
  const B = b.batchSize, T = b.seqLen, H = model.config.text.hiddenSize;
  const rows: number[] = [], targets: number[] = [];
  for (let r = 0; r < B; r++)
    for (let t = 0; t + 1 < T; t++) {
      const y = b.labels[r * T + t + 1]!;
      if (y !== IGNORE_INDEX) {
        rows.push(r * T + t);
        targets.push(y);
      }
    }
  let feats: Tensor | null = null;
  if (b.pixelValues) {
    if (visionTrains) feats = model.visionFeatures(b.pixelValues, b.pixelAttentionMask);
    else {
      const vh = noGrad(() => model.visionHiddenStates(b.pixelValues!, b.pixelAttentionMask));
      feats = model.connector.forward(vh);
    }
  }
  const emb = model.embedInputs(b.inputIds, null, null, feats);
  const h = model.text.hidden(emb, { attentionMask: b.attentionMask });
  const backend = h.backend;
  const idx = tensor(rows, [rows.length], { dtype: 'i32', backend });
  const sel = indexSelect(reshape(h, [B * T, H]), idx);
  const logits = linear(sel, model.text.w.lmHead);
  const y = tensor(targets, [targets.length], { dtype: 'i32', backend });
  const sum = crossEntropy(logits, y, { reduction: 'sum' });
  return mul(sum, 1 / denominator);
}

function check(ok: boolean, flag: string, want: string, got: unknown): void {
  if (!ok) throw new VlmkitError('E_ARGS', `${flag} must be ${want}, got ${JSON.stringify(got)}`);
}

export function resolveSftConfig(c: Partial<SftConfig>): SftConfig {
  const o: SftConfig = { ...DEFAULT_SFT_CONFIG };
  for (const [k, v] of Object.entries(c)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  const int = (x: number, min: number) => Number.isInteger(x) && x >= min;
  check(o.lr >= 0 && Number.isFinite(o.lr), '--lr', 'a number >= 0', o.lr);
  check(o.epochs > 0 && Number.isFinite(o.epochs), '--epochs', 'a number > 0', o.epochs);
  check(int(o.maxSteps, 0), '--max-steps', 'an integer >= 0', o.maxSteps);
  check(int(o.batchSize, 1), '--batch-size', 'an integer >= 1', o.batchSize);
  check(int(o.gradAccum, 1), '--grad-accum', 'an integer >= 1', o.gradAccum);
  check(int(o.warmupSteps, 0), '--warmup-steps', 'an integer >= 0', o.warmupSteps);
  check(o.warmupRatio >= 0 && o.warmupRatio <= 1, '--warmup-ratio', 'in [0, 1]', o.warmupRatio);
  check(['constant', 'constant_with_warmup', 'linear', 'cosine'].includes(o.schedule), '--schedule', 'constant, linear or cosine', o.schedule);
  check(o.clip >= 0, '--clip', 'a number >= 0 (0 = off)', o.clip);
  check(o.weightDecay >= 0, '--weight-decay', 'a number >= 0', o.weightDecay);
  check(int(o.seed, 0), '--seed', 'an integer >= 0', o.seed);
  check(int(o.evalEvery, 0), '--eval-every', 'an integer >= 0', o.evalEvery);
  check(int(o.saveEvery, 0), '--save-every', 'an integer >= 0', o.saveEvery);
  check(o.beta1 >= 0 && o.beta1 < 1, 'beta1', 'in [0, 1)', o.beta1);
  check(o.beta2 >= 0 && o.beta2 < 1, 'beta2', 'in [0, 1)', o.beta2);
  check(o.eps >= 0 && Number.isFinite(o.eps), 'eps', 'a number >= 0', o.eps);
  if (o.evalBatchSize !== undefined) check(int(o.evalBatchSize, 1), '--eval-batch-size', 'an integer >= 1', o.evalBatchSize);
  return o;
}

export class SftTrainer {
  readonly model: Idefics3Model;
  readonly processor: Processor;
  readonly train: SftDataset;
  readonly val: SftDataset | null;
  readonly params: Map<string, Tensor>;
  readonly lora: LoraModel | null;
  readonly config: SftConfig;
  readonly collator: SftCollator;
  readonly optimizer: AdamW;
  readonly schedule: LrSchedule;
  readonly order: BatchOrder;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly visionTrains: boolean;
  position: TrainerPosition = { step: 0, epoch: 0, batchInEpoch: 0, samplesSeen: 0, tokensSeen: 0, elapsed: 0, skippedSteps: 0 };
  private epochCache: { epoch: number; batches: number[][] } | null = null;

  constructor(init: SftTrainerInit) {
    this.model = init.model;
    this.processor = init.processor;
    this.train = init.train;
    this.val = init.val ?? null;
    this.params = init.params;
    this.lora = init.lora ?? null;
    this.config = resolveSftConfig(init.config);
    if (!this.params.size) throw new VlmkitError('E_ARGS', 'nothing to train: the trainable parameter set is empty');
    this.collator = new SftCollator(init.processor, { assistantOnly: init.assistantOnly });
    const c = this.config;
    this.order = new BatchOrder(this.train.examples.map((e) => e.length), { batchSize: c.batchSize, seed: c.seed, groupByLength: c.groupByLength });
    this.stepsPerEpoch = Math.ceil(this.order.batchesPerEpoch / c.gradAccum);
    this.totalSteps = c.maxSteps > 0 ? c.maxSteps : Math.max(1, Math.ceil(c.epochs * this.stepsPerEpoch));
    this.schedule = new LrSchedule(c.schedule, c.lr, { totalSteps: this.totalSteps, warmupSteps: c.warmupSteps, warmupRatio: c.warmupRatio });
    this.optimizer = new AdamW(this.params, {
      lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay,
      // transformers' Trainer: no decay on biases and norms (LoRA A/B are decayed, as PEFT + Trainer do)
      noDecay: (n) => noDecayHF(n),
    });
    this.visionTrains = [...this.params.keys()].some((n) => n.includes('vision_model.'));
    this.model.text.gradientCheckpointing = c.gradientCheckpointing;
    this.model.vision.gradientCheckpointing = c.gradientCheckpointing && this.visionTrains;
    this.lora?.train(true);
  }

  get done(): boolean {
    return this.position.step >= this.totalSteps;
  }

  private epochBatches(epoch: number): number[][] {
    if (this.epochCache?.epoch !== epoch) this.epochCache = { epoch, batches: this.order.epoch(epoch) };
    return this.epochCache.batches;
  }

  /**
   * Where the data order stands after `step` optimizer steps: the epoch and the next batch within it, as step()
   * leaves them (a finished epoch stays at batchesPerEpoch until the next step moves on). Checks a resumed position.
   */
  positionAt(step: number): { epoch: number; batchInEpoch: number } {
    if (step <= 0) return { epoch: 0, batchInEpoch: 0 };
    const epoch = Math.floor((step - 1) / this.stepsPerEpoch);
    const inEpoch = step - epoch * this.stepsPerEpoch;
    return { epoch, batchInEpoch: Math.min(inEpoch * this.config.gradAccum, this.order.batchesPerEpoch) };
  }

  /** The micro-batches (example lists) of the next optimizer step; advances nothing. */
  peekStep(): { epoch: number; start: number; batches: SftExample[][] } {
    let { epoch, batchInEpoch } = this.position;
    if (batchInEpoch >= this.order.batchesPerEpoch) {
      epoch++;
      batchInEpoch = 0;
    }
    const all = this.epochBatches(epoch);
    const ids = all.slice(batchInEpoch, batchInEpoch + this.config.gradAccum);
    return { epoch, start: batchInEpoch, batches: ids.map((b) => b.map((i) => this.train.examples[i]!)) };
  }

  /**
   * One optimizer step: forward + backward over its micro-batches (collated one at a time), clip, AdamW. A step
   * whose loss or gradient norm is not finite throws E_NONFINITE (the weights are left as before the step), or,
   * with skipNonfinite, updates nothing (skipped: true) and training goes on. An update that itself makes a weight
   * non-finite (an lr far too high) always throws: it cannot be undone, and every later step would be NaN.
   */
  async step(): Promise<StepResult> {
    if (this.done) throw new VlmkitError('E_STATE', `training is complete (${this.totalSteps} steps)`);
    const t0 = performance.now();
    const { epoch, start, batches } = this.peekStep();
    // the loss denominator: every target of the whole step, known before any forward
    let targets = 0;
    for (const exs of batches) for (const ex of exs) targets += countTargets(this.collator.labels(ex));
    if (targets === 0) throw new VlmkitError('E_DATA', `step ${this.position.step + 1} has no loss target (every label is masked)`);
    const lr = this.schedule.lrAt(this.position.step);
    this.optimizer.lr = lr;
    let loss = 0, samples = 0, tokens = 0;
    try {
      for (const [i, exs] of batches.entries()) {
        const b = this.collator.collate(exs, await loadExampleImages(this.processor, exs));
        try {
          // dropout masks: a function of (seed, micro-batch, module), the same in a recomputation and after a resume
          if (this.lora) this.lora.dropoutStep = this.position.step * this.config.gradAccum + i;
          loss += tidy(() => {
            const l = microBatchLoss(this.model, b, targets, this.visionTrains);
            const v = l.item();
            backward(l);
            return v;
          });
          samples += b.batchSize;
          tokens += b.numTokens;
        } finally {
          b.dispose();
        }
      }
      const gradNorm = clipGradNorm(this.params.values(), this.config.clip > 0 ? this.config.clip : Infinity);
      const n = this.position.step + 1;
      const skipped = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
      if (skipped && !this.config.skipNonfinite)
        throw new VlmkitError('E_NONFINITE', `step ${n}: the loss is ${loss} and the gradient norm ${gradNorm}; stopped before updating (lr ${lr}). Lower --lr, check the data, or pass --skip-nonfinite to skip such steps`);
      if (!skipped) {
        noGrad(() => this.optimizer.step());
        const bad = findNonFinite(this.params);
        if (bad) throw new VlmkitError('E_NONFINITE', `step ${n}: the update with lr ${lr} made ${bad.name} ${bad.value}; the run diverged (nothing from this step on is saved). Start again with a lower --lr`);
      }
      const seconds = (performance.now() - t0) / 1e3;
      this.position = {
        step: n, epoch, batchInEpoch: start + batches.length,
        samplesSeen: this.position.samplesSeen + samples, tokensSeen: this.position.tokensSeen + tokens,
        elapsed: this.position.elapsed + seconds, skippedSteps: this.position.skippedSteps + (skipped ? 1 : 0),
      };
      return { loss, lr, gradNorm, targets, tokens, samples, seconds, skipped };
    } finally {
      this.optimizer.zeroGrad();
    }
  }

  /** Mean token loss over a dataset (the validation set by default), without dropout or a graph. */
  async evaluate(ds: SftDataset | null = this.val): Promise<{ loss: number; targets: number; samples: number; seconds: number }> {
    if (!ds) throw new VlmkitError('E_ARGS', 'no validation set to evaluate on; pass --val');
    const t0 = performance.now();
    const bs = this.config.evalBatchSize ?? this.config.batchSize;
    const wasTraining = this.lora?.training ?? false;
    this.lora?.eval();
    let sum = 0, targets = 0;
    try {
      for (let i = 0; i < ds.examples.length; i += bs) {
        const exs = ds.examples.slice(i, i + bs);
        const b = this.collator.collate(exs, await loadExampleImages(this.processor, exs));
        try {
          if (!b.numTargets) continue;
          sum += noGrad(() => tidy(() => microBatchLoss(this.model, b, 1, false).item()));
          targets += b.numTargets;
        } finally {
          b.dispose();
        }
      }
    } finally {
      if (wasTraining) this.lora?.train(true);
    }
    return { loss: targets ? sum / targets : NaN, targets, samples: ds.examples.length, seconds: (performance.now() - t0) / 1e3 };
  }

  trainRecord(r: StepResult): TrainRecord {
    return {
      type: 'train', step: this.position.step,
      epoch: Number((this.position.epoch + this.position.batchInEpoch / Math.max(1, this.order.batchesPerEpoch)).toFixed(4)),
      loss: r.loss, lr: r.lr, grad_norm: r.gradNorm,
      tokens_per_s: r.tokens / r.seconds, samples_per_s: r.samples / r.seconds,
      tokens: r.targets, samples: r.samples, step_s: r.seconds, elapsed_s: this.position.elapsed,
      ...(r.skipped ? { skipped: true } : {}),
    };
  }

  evalRecord(e: { loss: number; targets: number; samples: number; seconds: number }): EvalRecord {
    return { type: 'eval', step: this.position.step, eval_loss: e.loss, eval_tokens: e.targets, eval_samples: e.samples, eval_s: e.seconds };
  }

  /** Releases the optimizer state and leaves the model's gradient checkpointing off. */
  dispose(): void {
    this.optimizer.dispose();
    this.model.text.gradientCheckpointing = false;
    this.model.vision.gradientCheckpointing = false;
  }
}

// ------------------------------------------------------------------------------------------------ a whole run

export type SftMode = 'lora' | 'full' | 'frozen-vision';

export interface SftRunOptions extends Partial<SftConfig> {
  /** checkpoint directory of the base model */
  model: string;
  /** training JSONL */
  data: string;
  /** validation JSONL */
  val?: string | null;
  /** run folder: checkpoints, metrics.jsonl, the final adapter (LoRA) or model/ (full fine-tuning) */
  out: string;
  /** 'lora' (default), 'full' or 'frozen-vision' (full fine-tuning of everything but the vision tower) */
  mode?: SftMode;
  /** LoRA settings (mode 'lora'); targets default to q/k/v/o/gate/up/down_proj */
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

export interface SftRunResult {
  steps: number;
  totalSteps: number;
  interrupted: boolean;
  /** the last checkpoint written, if any */
  checkpoint: string | null;
  /** the final adapter folder (LoRA) or model folder (full), absent when interrupted */
  output: string | null;
  losses: number[];
  evalLoss: number | null;
  trainSummary: ReturnType<SftDataset['summary']>;
  valSummary: ReturnType<SftDataset['summary']> | null;
  /** steps skipped for a non-finite loss or gradient norm (skipNonfinite), over every resumed part */
  skippedSteps: number;
}

export const DEFAULT_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

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

function loraWithoutVision(c: LoraConfigInput): LoraConfigInput {
  const vision = '.*vision_model\\..*';
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
  o = { ...o, model: expandHome(o.model), data: expandHome(o.data), out: expandHome(o.out) };
  if (o.val) o.val = expandHome(o.val);
  if (typeof o.resume === 'string' && o.resume !== 'latest') o.resume = expandHome(o.resume);
  const mode: SftMode = o.mode ?? 'lora';
  const config = resolveSftConfig(o);
  loadIdefics3Config(o.model); // a missing folder or an unsupported model fails here, before anything is written
  const say = (s: string) => { if (!io.json) io.stderr?.write(s + '\n'); };
  makeRunFolder(o.out);
  const stale = ck.removeStaleTemps(o.out);
  if (stale.length) say(`removed ${stale.length} unfinished temporary file(s) of an interrupted run`);

  let resumeDir: string | null = null;
  if (o.resume) {
    resumeDir = ck.resolveResumeDir(o.resume === true || o.resume === 'latest' ? o.out : o.resume, say);
    ck.readTrainerState(resumeDir);
  }

  const processor = Processor.fromDir(o.model);
  const model = loadModel(o.model, { dtype: mode !== 'lora' || o.f32 ? 'f32' : undefined });
  let lora: LoraModel | null = null;
  let trainer: SftTrainer | null = null;
  let logger: MetricsLogger | null = null;
  try {
    const maxLength = o.maxLength ?? model.maxPositions;
    const dataOpts = { maxLength, truncate: o.truncate, skipBadRows: o.skipBadRows, assistantOnly: o.assistantOnly };
    const train = await SftDataset.load(o.data, processor, dataOpts);
    const val = o.val ? await SftDataset.load(o.val, processor, dataOpts) : null;
    let loraInput: LoraConfigInput | null = null;
    if (mode === 'lora') {
      loraInput = { ...(o.lora ?? {}), targetModules: o.lora?.targetModules ?? DEFAULT_LORA_TARGETS } as LoraConfigInput;
      if (o.freezeVision) loraInput = loraWithoutVision(loraInput);
      lora = LoraModel.create(model, { ...loraInput, baseModelNameOrPath: loraInput.baseModelNameOrPath ?? resolve(o.model) }, { seed: config.seed });
    }
    const params = trainableParameters(model, mode, lora);
    trainer = new SftTrainer({ model, processor, train, val, params, lora, config, assistantOnly: o.assistantOnly });
    // every setting that changes what the next step computes: a resume with any of them different would not
    // continue this run (the data order, the lr schedule, the update rule or the loss would change under it)
    const fingerprint: ck.RunFingerprint = {
      data: { rows: train.length, hash: datasetHash(train) }, seed: config.seed, batchSize: config.batchSize,
      gradAccum: config.gradAccum, groupByLength: config.groupByLength, mode, assistantOnly: !!o.assistantOnly,
      trainable: [...params.keys()].length, lora: lora ? { r: lora.config.r, alpha: lora.config.loraAlpha, dropout: lora.config.loraDropout, targets: lora.targets.length } : null,
      lr: config.lr, schedule: config.schedule, totalSteps: trainer.totalSteps, warmupSteps: trainer.schedule.warmupSteps,
      clip: config.clip, weightDecay: config.weightDecay, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
      maxLength, truncate: o.truncate !== false,
    };
    const settings = { ...config, mode, model: o.model, data: o.data, val: o.val ?? null, maxLength, lora: loraInput };
    logger = new MetricsLogger({ file: join(o.out, 'metrics.jsonl'), stdout: io.json ? io.stdout ?? null : null });
    if (resumeDir) {
      const st = ck.loadTrainingCheckpoint(resumeDir, trainer, fingerprint);
      logger.log({ type: 'event', event: 'resume', step: st.position.step, checkpoint: resumeDir });
      say(`resumed from ${resumeDir} at step ${st.position.step} of ${trainer.totalSteps}`);
    }
    const ts = train.summary(), vs = val?.summary() ?? null;
    logger.log({ type: 'event', event: 'start', step: trainer.position.step, total_steps: trainer.totalSteps, trainable_params: countValues(params), train: ts, val: vs });
    say(`training ${mode === 'lora' ? `LoRA (${lora!.targets.length} modules, ${countValues(params)} parameters)` : `${mode} (${countValues(params)} parameters)`} on ${ts.used} rows` +
      `${ts.skipped ? ` (${ts.skipped} bad rows skipped)` : ''}${ts.truncated ? ` (${ts.truncated} truncated)` : ''}: ${trainer.totalSteps} steps`);

    const progress = new ProgressBar(io.stderr ?? { write: () => undefined }, trainer.totalSteps, { startStep: trainer.position.step });
    const losses: number[] = [];
    let checkpoint: string | null = null;
    let evalLoss: number | null = null;
    const save = (last: Record<string, unknown>) => {
      // (saveTrainingCheckpoint refuses non-finite weights or moments; pruning waits for a checkpoint that exists)
      checkpoint = ck.saveTrainingCheckpoint(o.out, trainer!, { fingerprint, settings, last, baseModel: resolve(o.model) });
      ck.pruneCheckpoints(o.out, o.saveTotalLimit ?? 0);
      logger!.log({ type: 'event', event: 'checkpoint', step: trainer!.position.step, path: checkpoint });
    };
    const evaluate = async () => {
      const e = await trainer!.evaluate();
      evalLoss = e.loss;
      logger!.log(trainer!.evalRecord(e));
      if (progress.enabled) progress.clear();
      say(`step ${trainer!.position.step}: eval loss ${e.loss.toFixed(4)} over ${e.targets} tokens`);
    };
    let lastEvalStep = -1;
    const firstStep = trainer.position.step;
    while (!trainer.done) {
      if (io.stop?.requested && trainer.position.step === firstStep) {
        // stopped before this run trained anything: nothing new to save
        logger.log({ type: 'event', event: 'interrupted', step: firstStep, checkpoint: resumeDir });
        say('interrupted before the first step; nothing to save');
        return { steps: firstStep, totalSteps: trainer.totalSteps, interrupted: true, checkpoint: resumeDir, output: null, losses, evalLoss, trainSummary: ts, valSummary: vs, skippedSteps: trainer.position.skippedSteps };
      }
      const r = await trainer.step();
      losses.push(r.loss);
      const rec = trainer.trainRecord(r);
      logger.log(rec);
      progress.update(trainer.position.step, { loss: r.loss, lr: r.lr, tokensPerS: rec.tokens_per_s });
      if (!progress.enabled && !io.json) say(`step ${rec.step}/${trainer.totalSteps} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} grad_norm ${r.gradNorm.toFixed(3)} ${rec.tokens_per_s.toFixed(1)} tok/s`);
      await io.onStep?.(trainer, r);
      const step = trainer.position.step;
      if (val && config.evalEvery > 0 && step % config.evalEvery === 0) { await evaluate(); lastEvalStep = step; }
      const stopping = io.stop?.requested === true && !trainer.done;
      if ((config.saveEvery > 0 && step % config.saveEvery === 0) || stopping) save({ loss: r.loss, lr: r.lr, grad_norm: r.gradNorm });
      if (stopping) {
        progress.clear();
        logger.log({ type: 'event', event: 'interrupted', step, checkpoint });
        say(`interrupted after step ${step}: checkpoint written to ${checkpoint}; continue with --resume`);
        return { steps: step, totalSteps: trainer.totalSteps, interrupted: true, checkpoint, output: null, losses, evalLoss, trainSummary: ts, valSummary: vs, skippedSteps: trainer.position.skippedSteps };
      }
      // let signal handlers run between steps
      await new Promise((r) => setImmediate(r));
    }
    progress.clear();
    if (val && lastEvalStep !== trainer.position.step) await evaluate();
    let output: string;
    assertFiniteForSave(params, lora ? `the adapter to ${o.out}` : `the model to ${join(o.out, 'model')}`);
    if (lora) {
      saveAdapter(lora, o.out, { baseModelNameOrPath: resolve(o.model) });
      output = o.out;
    } else {
      output = join(o.out, 'model');
      // f32 as trained: a bf16 copy would round small updates away
      saveMergedCheckpoint(model, null, { sourceDir: o.model, outDir: output, overwrite: true, dtype: 'model' });
    }
    const skippedSteps = trainer.position.skippedSteps;
    logger.log({ type: 'event', event: 'done', step: trainer.position.step, output, final_loss: losses[losses.length - 1] ?? null, eval_loss: evalLoss, elapsed_s: trainer.position.elapsed, skipped_steps: skippedSteps });
    say(`done: ${trainer.position.step} steps in ${trainer.position.elapsed.toFixed(1)} s${skippedSteps ? ` (${skippedSteps} skipped for a non-finite loss or gradient)` : ''}; ${lora ? 'adapter' : 'model'} saved to ${output}`);
    return { steps: trainer.position.step, totalSteps: trainer.totalSteps, interrupted: false, checkpoint, output, losses, evalLoss, trainSummary: ts, valSummary: vs, skippedSteps };
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

/** Creates the run folder; a file (or a file on the way) there is a one-line error naming --out. */
function makeRunFolder(out: string): void {
  let isDir = false;
  try {
    isDir = statSync(out).isDirectory();
  } catch {
    // not there yet
  }
  if (!isDir && existsSync(out)) throw new VlmkitError('E_ARGS', `--out ${out} is a file, not a folder; give a folder for the run (it is created when missing)`);
  if (isDir) return;
  try {
    mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new VlmkitError('E_ARGS', `--out ${out}: cannot create the run folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a writable folder path`);
  }
}

