// The trainer: one loop for every objective. AdamW, a learning-rate schedule, gradient accumulation, clipping by
// global norm, gradient checkpointing, periodic evaluation, and a position that checkpoints (resume.ts) save and a
// later run resumes bit for bit. An objective (sft.ts, dpo.ts, contrastive.ts) says what a micro-batch is and
// what its loss is; the model is seen only through the objective's interface (TrainableModel: the hook that gives
// logits where a loss asks; ContrastiveModel: the two towers' embeddings and their pair scores).
//
// Loss and gradient accumulation. The loss of an optimizer step is the mean over every loss target of all its
// micro-batches: each micro-batch contributes sum(target losses) / (targets in the whole step), which is what
// transformers' Trainer does with num_items_in_batch (>= 4.46). Accumulating k micro-batches therefore gives
// exactly the gradient of one big batch of the same rows (not the mean of per-micro-batch means, which weights
// short rows up).
import { type Tensor, backward, noGrad, tidy } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import type { TrainableModel } from '../models/index.js';
import { BatchOrder } from './data.js';
import { findNonFinite } from './finite.js';
import type { LoraModel } from './lora.js';
import type { EvalRecord, TrainRecord } from './metrics.js';
import { AdamW, LrSchedule, type ScheduleName, clipGradNorm, noDecayHF } from './optim.js';

/** The loop's settings: one set for every objective. */
export interface TrainConfig {
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
  /**
   * the vision tower's lr as a multiple of --lr (default 1): a tower trained from scratch through a language loss
   * learns slower than the decoder it feeds, as LLaVA-style recipes find when they give the towers their own lr
   */
  visionLrScale?: number;
}

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
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
  /** the objective's own metrics over the step (Objective.takeMetrics) */
  metrics?: Record<string, number>;
}

/** What an evaluation gives: the mean loss over its targets, and the objective's own metrics. */
export interface EvalResult {
  loss: number;
  targets: number;
  samples: number;
  seconds: number;
  metrics?: Record<string, number>;
}

/** A prepared micro-batch: whatever the objective's loss reads, plus the counts the loop reports. */
export interface MicroBatch {
  /** rows */
  batchSize: number;
  /** input tokens (image tokens included) */
  numTokens: number;
  /** loss targets in this micro-batch */
  numTargets: number;
  dispose(): void;
}

/** What the loop itself asks of a model; everything else the objective reaches (TrainableModel, ContrastiveModel). */
export interface LoopModel {
  setGradientCheckpointing(on: boolean): void;
  visionTrains(): boolean;
}

/**
 * A training objective: how examples become a loss. The loop calls countTargets over a whole step first (the
 * denominator), then prepare + loss per micro-batch inside a memory scope, then backward.
 */
export interface Objective<E, B extends MicroBatch = MicroBatch, M extends LoopModel = TrainableModel> {
  /** the example's size for grouping by length (tokens) */
  length(example: E): number;
  /** loss targets of one example (what num_items_in_batch counts) */
  countTargets(example: E): number;
  /** collates a micro-batch (and loads what it needs: images); the loop disposes it */
  prepare(examples: E[]): Promise<B>;
  /** the micro-batch's summed target losses / denominator: a scalar with a graph to the trainable parameters */
  loss(model: M, batch: B, denominator: number): Tensor;
  /**
   * The objective's own metrics (DPO: rewards, log-probs), averaged over the rows its loss saw since the last
   * call, and a fresh start; null when it has none. The loop reports them with the step or the evaluation.
   */
  takeMetrics?(): Record<string, number> | null;
}

export interface TrainerInit<E, B extends MicroBatch = MicroBatch, M extends LoopModel = TrainableModel> {
  model: M;
  objective: Objective<E, B, M>;
  train: { readonly examples: readonly E[] };
  val?: { readonly examples: readonly E[] } | null;
  /** the trainable tensors by name (LoRA: PEFT's in-memory names; full: transformers names), requiresGrad set */
  params: Map<string, Tensor>;
  lora?: LoraModel | null;
  config: Partial<TrainConfig>;
}

function check(ok: boolean, flag: string, want: string, got: unknown): void {
  if (!ok) throw new VlmkitError('E_ARGS', `${flag} must be ${want}, got ${JSON.stringify(got)}`);
}

export function resolveTrainConfig(c: Partial<TrainConfig>): TrainConfig {
  const o: TrainConfig = { ...DEFAULT_TRAIN_CONFIG };
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
  if (o.visionLrScale !== undefined) check(o.visionLrScale > 0 && Number.isFinite(o.visionLrScale), '--vision-lr-scale', 'a number > 0', o.visionLrScale);
  if (o.evalBatchSize !== undefined) check(int(o.evalBatchSize, 1), '--eval-batch-size', 'an integer >= 1', o.evalBatchSize);
  return o;
}

/** A parameter of a vision tower (Idefics3's vision_model, CLIP's and SigLIP's vision_model), adapters included. */
export function isVisionParam(name: string): boolean {
  return /(^|\.)vision_model\./.test(name);
}

/**
 * The loop of every objective: the data order, accumulation, clipping, the schedule, AdamW, evaluation, the
 * position that checkpoints save and resume. What a micro-batch's loss is belongs to the objective.
 */
export class Trainer<E, B extends MicroBatch = MicroBatch, M extends LoopModel = TrainableModel> {
  readonly model: M;
  readonly objective: Objective<E, B, M>;
  readonly train: { readonly examples: readonly E[] };
  readonly val: { readonly examples: readonly E[] } | null;
  readonly params: Map<string, Tensor>;
  readonly lora: LoraModel | null;
  readonly config: TrainConfig;
  readonly optimizer: AdamW;
  readonly schedule: LrSchedule;
  readonly order: BatchOrder;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  position: TrainerPosition = { step: 0, epoch: 0, batchInEpoch: 0, samplesSeen: 0, tokensSeen: 0, elapsed: 0, skippedSteps: 0 };
  private epochCache: { epoch: number; batches: number[][] } | null = null;

  constructor(init: TrainerInit<E, B, M>) {
    this.model = init.model;
    this.objective = init.objective;
    this.train = init.train;
    this.val = init.val ?? null;
    this.params = init.params;
    this.lora = init.lora ?? null;
    this.config = resolveTrainConfig(init.config);
    if (!this.params.size) throw new VlmkitError('E_ARGS', 'nothing to train: the trainable parameter set is empty');
    const c = this.config;
    this.order = new BatchOrder(this.train.examples.map((e) => this.objective.length(e)), { batchSize: c.batchSize, seed: c.seed, groupByLength: c.groupByLength });
    this.stepsPerEpoch = Math.ceil(this.order.batchesPerEpoch / c.gradAccum);
    this.totalSteps = c.maxSteps > 0 ? c.maxSteps : Math.max(1, Math.ceil(c.epochs * this.stepsPerEpoch));
    this.schedule = new LrSchedule(c.schedule, c.lr, { totalSteps: this.totalSteps, warmupSteps: c.warmupSteps, warmupRatio: c.warmupRatio });
    this.optimizer = new AdamW(this.params, {
      lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay,
      // transformers' Trainer: no decay on biases and norms (LoRA A/B are decayed, as PEFT + Trainer do)
      noDecay: (n) => noDecayHF(n),
      ...(c.visionLrScale !== undefined && c.visionLrScale !== 1 && { lrScale: (n: string) => (isVisionParam(n) ? c.visionLrScale! : 1) }),
    });
    // (after the trainable set is marked: the model recomputes only in the parts that train)
    this.model.setGradientCheckpointing(c.gradientCheckpointing);
    this.lora?.train(true);
  }

  /** Whether the model's vision tower trains (the trainable set reaches it). */
  get visionTrains(): boolean {
    return this.model.visionTrains();
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
  peekStep(): { epoch: number; start: number; batches: E[][] } {
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
    for (const exs of batches) for (const ex of exs) targets += this.objective.countTargets(ex);
    if (targets === 0) throw new VlmkitError('E_DATA', `step ${this.position.step + 1} has no loss target (every label is masked)`);
    const lr = this.schedule.lrAt(this.position.step);
    this.optimizer.lr = lr;
    let loss = 0, samples = 0, tokens = 0;
    this.objective.takeMetrics?.(); // (drops what an earlier failed step left)
    try {
      for (const [i, exs] of batches.entries()) {
        const b = await this.objective.prepare(exs);
        try {
          // dropout masks: a function of (seed, micro-batch, module), the same in a recomputation and after a resume
          if (this.lora) this.lora.dropoutStep = this.position.step * this.config.gradAccum + i;
          loss += tidy(() => {
            const l = this.objective.loss(this.model, b, targets);
            const v = l.item();
            // releaseSaved: each activation is freed once the backward has read it for the last time (nothing
            // reads the graph afterwards), so the step's memory falls during its backward. It was once taken off
            // because freeing activations in the middle of glibc's heap raised a 17-tile step's RSS (9.0 -> 12.4
            // GB, fragmentation); activations of 256 KB and more are now their own mappings (native/glue/memory.cc)
            // and go back to the system when freed
            backward(l, undefined, { releaseSaved: true });
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
      const metrics = this.objective.takeMetrics?.() ?? undefined;
      return { loss, lr, gradNorm, targets, tokens, samples, seconds, skipped, ...(metrics ? { metrics } : {}) };
    } finally {
      this.optimizer.zeroGrad();
    }
  }

  /** Mean token loss over a dataset (the validation set by default), without dropout or a graph. */
  async evaluate(ds: { readonly examples: readonly E[] } | null = this.val): Promise<EvalResult> {
    if (!ds) throw new VlmkitError('E_ARGS', 'no validation set to evaluate on; pass --val');
    const t0 = performance.now();
    const bs = this.config.evalBatchSize ?? this.config.batchSize;
    const wasTraining = this.lora?.training ?? false;
    this.lora?.eval();
    this.objective.takeMetrics?.();
    let sum = 0, targets = 0;
    try {
      for (let i = 0; i < ds.examples.length; i += bs) {
        const exs = ds.examples.slice(i, i + bs);
        const b = await this.objective.prepare(exs);
        try {
          if (!b.numTargets) continue;
          sum += noGrad(() => tidy(() => this.objective.loss(this.model, b, 1).item()));
          targets += b.numTargets;
        } finally {
          b.dispose();
        }
      }
    } finally {
      if (wasTraining) this.lora?.train(true);
    }
    const metrics = this.objective.takeMetrics?.() ?? undefined;
    return { loss: targets ? sum / targets : NaN, targets, samples: ds.examples.length, seconds: (performance.now() - t0) / 1e3, ...(metrics ? { metrics } : {}) };
  }

  trainRecord(r: StepResult): TrainRecord {
    return {
      type: 'train', step: this.position.step,
      epoch: Number((this.position.epoch + this.position.batchInEpoch / Math.max(1, this.order.batchesPerEpoch)).toFixed(4)),
      loss: r.loss, lr: r.lr, grad_norm: r.gradNorm,
      tokens_per_s: r.tokens / r.seconds, samples_per_s: r.samples / r.seconds,
      tokens: r.targets, samples: r.samples, step_s: r.seconds, elapsed_s: this.position.elapsed,
      ...(r.skipped ? { skipped: true } : {}),
      ...r.metrics,
    };
  }

  evalRecord(e: EvalResult): EvalRecord {
    const extra = Object.fromEntries(Object.entries(e.metrics ?? {}).map(([k, v]) => [`eval_${k}`, v]));
    return { type: 'eval', step: this.position.step, eval_loss: e.loss, eval_tokens: e.targets, eval_samples: e.samples, eval_s: e.seconds, ...extra };
  }

  /** Releases the optimizer state and leaves the model's gradient checkpointing off. */
  dispose(): void {
    this.optimizer.dispose();
    this.model.setGradientCheckpointing(false);
  }
}
