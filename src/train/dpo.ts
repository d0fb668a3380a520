// Direct preference optimisation: one objective of the trainer (trainer.ts), with the loss as TRL's DPOTrainer
// computes it.
//
//   logps      the log-probabilities of an answer's tokens, summed (ipo: averaged over its tokens, as TRL does)
//   delta      (policy - reference) of the chosen answer minus (policy - reference) of the rejected one
//   sigmoid    -(1 - s) log σ(β delta) - s log σ(-β delta)       (s = label smoothing; s = 0 is DPO itself)
//   ipo        (delta - 1 / (2β))²
//   hinge      relu(1 - β delta)
//   rewards    β (policy - reference) per answer; accuracy = chosen reward > rejected reward
//
// The reference is the same model with the LoRA adapters switched off (PEFT's disable_adapter(), TRL's
// null_ref_context), run without a graph: no second copy of the weights. Or it is computed once before training
// (--precompute-ref) and kept with each example.
//
// The hybrid (TRL's rpo_alpha, now loss_type ["sigmoid", "sft"]): W times the NLL of the chosen answers is added
// to the loss. TRL takes that NLL as one cross-entropy over every chosen answer token of the batch (a mean over
// tokens, not over rows) and adds it to each row's loss before the mean over rows, so a batch's loss is
// mean(row losses) + W · NLL. Here a micro-batch contributes (sum of row losses + W · NLL · rows) / (pairs in the
// optimizer step): one micro-batch per step is TRL's number exactly; with accumulation, micro-batches of equal
// size give TRL's mean of micro-batch losses.
//
// The trainer's "targets" are pairs: countTargets is 1 per example, so the step loss is a mean over pairs.
import { type Tensor, add, crossEntropy, logsigmoid, matmul, mul, neg, noGrad, relu, reshape, slice, square, sub, sum, tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import type { ModelForwardInputs, Processor, TrainableModel } from '../models/index.js';
import type { RgbImage } from '../processing/decode.js';
import { type CollateItem, type SftBatch, SftCollator } from './collate.js';
import type { LoraModel } from './lora.js';
import { causalLmTargets } from './loss.js';
import type { PreferenceExample } from './preference-data.js';
import type { MicroBatch, Objective } from './trainer.js';

export type DpoLossType = 'sigmoid' | 'ipo' | 'hinge';
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ['sigmoid', 'ipo', 'hinge'];

export interface DpoConfig {
  /** β: how far the policy may move from the reference (default 0.1) */
  beta: number;
  lossType: DpoLossType;
  /** the probability that a pair's preference is flipped (sigmoid loss only; default 0) */
  labelSmoothing: number;
  /** W of the hybrid: W · NLL of the chosen answers is added (TRL's rpo_alpha; default 0 = DPO alone) */
  sftWeight: number;
}

export const DEFAULT_DPO_CONFIG: DpoConfig = { beta: 0.1, lossType: 'sigmoid', labelSmoothing: 0, sftWeight: 0 };

export function resolveDpoConfig(c: Partial<DpoConfig>): DpoConfig {
  // (only DPO's own keys: callers pass whole run options)
  const o: DpoConfig = { ...DEFAULT_DPO_CONFIG };
  for (const k of Object.keys(DEFAULT_DPO_CONFIG) as (keyof DpoConfig)[]) if (c[k] !== undefined) (o as unknown as Record<string, unknown>)[k] = c[k];
  const fail = (flag: string, want: string, got: unknown) => new VlmkitError('E_ARGS', `${flag} must be ${want}, got ${JSON.stringify(got)}`);
  if (!(typeof o.beta === 'number' && Number.isFinite(o.beta) && o.beta > 0)) throw fail('--beta', 'a number > 0', o.beta);
  if (!DPO_LOSS_TYPES.includes(o.lossType)) throw fail('--loss-type', 'sigmoid, ipo or hinge', o.lossType);
  if (!(typeof o.labelSmoothing === 'number' && o.labelSmoothing >= 0 && o.labelSmoothing < 0.5)) throw fail('--label-smoothing', 'in [0, 0.5)', o.labelSmoothing);
  if (o.labelSmoothing > 0 && o.lossType !== 'sigmoid') throw new VlmkitError('E_ARGS', `--label-smoothing goes with --loss-type sigmoid (TRL's robust DPO), not ${o.lossType}; drop one of them`);
  if (!(typeof o.sftWeight === 'number' && Number.isFinite(o.sftWeight) && o.sftWeight >= 0)) throw fail('--sft-weight', 'a number >= 0', o.sftWeight);
  return o;
}

/** The summed answer log-probs of every row of a batch, with the answer token counts. */
export interface AnswerLogps {
  /** [rows] summed log-probs of each row's answer tokens (a graph to whatever trains) */
  sum: Tensor;
  /** answer tokens per row */
  counts: number[];
}

/**
 * log p(answer | prompt) summed over each row's answer tokens: the targets the (unshifted) labels mark, as
 * loss.ts reads them (the logits at t score the label at t + 1). The model computes logits at those rows only.
 */
export function answerLogps(model: Pick<TrainableModel, 'logitsAt'>, inputs: ModelForwardInputs, labels: ArrayLike<number>): AnswerLogps {
  const [B, T] = inputs.inputIds.shape as [number, number];
  const { rows, targets } = causalLmTargets(labels, B, T);
  const counts = new Array<number>(B).fill(0);
  for (const r of rows) counts[Math.floor(r / T)]!++;
  const empty = counts.findIndex((n) => n === 0);
  if (empty >= 0) throw new VlmkitError('E_DATA', `row ${empty} of the batch has no answer token to score; every pair needs a non-empty chosen and rejected answer`);
  const logits = model.logitsAt(inputs, rows);
  const y = tensor(targets, [targets.length], { dtype: 'i32', backend: logits.backend });
  const tokenLogp = neg(crossEntropy(logits, y, { reduction: 'none' }));
  // each row's sum as one product with its 0/1 membership matrix [B, N]
  const member = new Float32Array(B * rows.length);
  rows.forEach((r, i) => (member[Math.floor(r / T) * rows.length + i] = 1));
  const m = tensor(member, [B, rows.length], { dtype: 'f32', backend: logits.backend });
  return { sum: reshape(matmul(m, reshape(tokenLogp, [rows.length, 1])), [B]), counts };
}

/** What one batch of pairs gives: the loss's pieces and the values its metrics are made of (host numbers). */
export interface DpoTerms {
  /** sum over pairs of the DPO loss (+ W · NLL · pairs for the hybrid): a scalar with a graph */
  lossSum: Tensor;
  /** per pair: the policy's and the reference's logps (as the loss type uses them: ipo averages) */
  policyChosen: number[];
  policyRejected: number[];
  refChosen: number[];
  refRejected: number[];
  /** NLL of the chosen answers (mean over their tokens); null without the hybrid */
  nll: number | null;
}

/**
 * The DPO loss of B pairs from the policy's summed answer logps (chosen rows [0, B), rejected rows [B, 2B) of
 * `policy`) and the reference's summed logps (host numbers, no graph).
 */
export function dpoTerms(policy: AnswerLogps, ref: { chosen: readonly number[]; rejected: readonly number[] }, c: DpoConfig): DpoTerms {
  const B = ref.chosen.length;
  if (policy.counts.length !== 2 * B || ref.rejected.length !== B) throw new Error(`vlmkit internal: ${policy.counts.length} policy rows for ${B} pairs`);
  const be = policy.sum.backend;
  const ipo = c.lossType === 'ipo';
  const scale = (i: number) => (ipo ? 1 / policy.counts[i]! : 1);
  // a row's logps as the loss uses them: the sum, or (ipo) the mean over its answer tokens
  const select = (first: number) => {
    const m = new Float32Array(B * 2 * B);
    for (let b = 0; b < B; b++) m[b * 2 * B + first + b] = scale(first + b);
    return reshape(matmul(tensor(m, [B, 2 * B], { dtype: 'f32', backend: be }), reshape(policy.sum, [2 * B, 1])), [B]);
  };
  const pc = select(0), pr = select(B);
  const policyChosen = Array.from(pc.toFloat32Array());
  const policyRejected = Array.from(pr.toFloat32Array());
  const refChosen = ref.chosen.map((v, b) => v * scale(b));
  const refRejected = ref.rejected.map((v, b) => v * scale(B + b));
  const delta = sub(sub(pc, pr), tensor(refChosen.map((v, b) => v - refRejected[b]!), [B], { dtype: 'f32', backend: be }));
  let losses: Tensor;
  if (c.lossType === 'sigmoid') {
    const z = mul(delta, c.beta);
    losses = neg(logsigmoid(z));
    if (c.labelSmoothing > 0) losses = add(mul(losses, 1 - c.labelSmoothing), mul(neg(logsigmoid(neg(z))), c.labelSmoothing));
  } else if (c.lossType === 'ipo') {
    losses = square(sub(delta, 1 / (2 * c.beta)));
  } else {
    losses = relu(sub(1, mul(delta, c.beta)));
  }
  let lossSum = sum(losses);
  let nll: number | null = null;
  if (c.sftWeight > 0) {
    // one cross-entropy over every chosen answer token of the batch, added to each of the B rows
    let tokens = 0;
    for (let b = 0; b < B; b++) tokens += policy.counts[b]!;
    const nllT = mul(sum(slice(policy.sum, 0, 0, B)), -1 / tokens);
    nll = nllT.item();
    lossSum = add(lossSum, mul(nllT, c.sftWeight * B));
  }
  return { lossSum, policyChosen, policyRejected, refChosen, refRejected, nll };
}

/** Sums of the per-pair metrics over the rows since the last take, as TRL names them. */
export class DpoMetrics {
  private n = 0;
  private s = { chosen: 0, rejected: 0, acc: 0, margin: 0, lc: 0, lr: 0, nll: 0, nllRows: 0 };

  add(t: DpoTerms, beta: number): void {
    t.policyChosen.forEach((pc, b) => {
      const rc = beta * (pc - t.refChosen[b]!), rr = beta * (t.policyRejected[b]! - t.refRejected[b]!);
      this.s.chosen += rc;
      this.s.rejected += rr;
      this.s.acc += rc > rr ? 1 : 0;
      this.s.margin += rc - rr;
      this.s.lc += pc;
      this.s.lr += t.policyRejected[b]!;
      this.n++;
    });
    if (t.nll !== null) {
      this.s.nll += t.nll * t.policyChosen.length;
      this.s.nllRows += t.policyChosen.length;
    }
  }

  /** The means since the last take (null when no pair was seen), and a fresh start. */
  take(): Record<string, number> | null {
    const n = this.n, s = this.s;
    this.n = 0;
    this.s = { chosen: 0, rejected: 0, acc: 0, margin: 0, lc: 0, lr: 0, nll: 0, nllRows: 0 };
    if (!n) return null;
    return {
      'rewards/chosen': s.chosen / n, 'rewards/rejected': s.rejected / n, 'rewards/accuracies': s.acc / n,
      'rewards/margins': s.margin / n, 'logps/chosen': s.lc / n, 'logps/rejected': s.lr / n,
      ...(s.nllRows ? { nll_loss: s.nll / s.nllRows } : {}),
    };
  }
}

/** A micro-batch of B pairs: one collated batch of 2B rows (chosen first, then rejected), answers as labels. */
export interface PreferenceBatch extends MicroBatch {
  rows: SftBatch;
  examples: PreferenceExample[];
}

/** The collator items of some pairs: the chosen sequences, then the rejected ones (labels: the answers only). */
export function preferenceItems(exs: readonly PreferenceExample[]): CollateItem[] {
  const side = (ex: PreferenceExample, s: 'chosen' | 'rejected'): CollateItem => ({ ...ex[s], grids: ex.grids, where: ex.where, completionOnly: true });
  return [...exs.map((ex) => side(ex, 'chosen')), ...exs.map((ex) => side(ex, 'rejected'))];
}

/** The DPO objective: pairs collated into one batch, the policy and reference logps, TRL's loss. */
export class DpoObjective implements Objective<PreferenceExample, PreferenceBatch> {
  readonly collator: SftCollator;
  readonly config: DpoConfig;
  readonly metrics = new DpoMetrics();

  /**
   * `lora`: the adapters the reference runs without. Without one (full fine-tuning) every example must carry
   * precomputed reference logps (`ex.ref`).
   */
  constructor(readonly processor: Processor, config: Partial<DpoConfig>, readonly lora: LoraModel | null) {
    this.collator = new SftCollator(processor);
    this.config = resolveDpoConfig(config);
  }

  length(ex: PreferenceExample): number {
    return ex.length;
  }

  countTargets(): number {
    return 1;
  }

  async prepare(exs: PreferenceExample[]): Promise<PreferenceBatch> {
    const images = await Promise.all(exs.map(async (ex) => {
      try {
        return await this.processor.loadImages(ex.images);
      } catch (e) {
        throw new VlmkitError('E_DATA', `${ex.where}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }));
    const both: RgbImage[][] = [...images, ...images];
    const rows = this.collator.collate(preferenceItems(exs), both);
    return { rows, examples: exs, batchSize: exs.length, numTokens: rows.numTokens, numTargets: exs.length, dispose: () => rows.dispose() };
  }

  /** The reference's summed answer logps of a batch: precomputed, or the model without its adapters. */
  reference(model: TrainableModel, b: PreferenceBatch): { chosen: number[]; rejected: number[] } {
    if (b.examples.every((ex) => ex.ref)) return { chosen: b.examples.map((ex) => ex.ref!.chosen), rejected: b.examples.map((ex) => ex.ref!.rejected) };
    if (!this.lora) throw new VlmkitError('E_STATE', `${b.examples[0]!.where}: no reference log-probs: without LoRA adapters to switch off, compute them before training (--precompute-ref)`);
    const v = noGrad(() => this.lora!.withDisabled(() => answerLogps(model, b.rows, b.rows.labels).sum.toFloat32Array()));
    const B = b.examples.length;
    return { chosen: Array.from(v.subarray(0, B)), rejected: Array.from(v.subarray(B, 2 * B)) };
  }

  loss(model: TrainableModel, b: PreferenceBatch, denominator: number): Tensor {
    const ref = this.reference(model, b);
    const t = dpoTerms(answerLogps(model, b.rows, b.rows.labels), ref, this.config);
    this.metrics.add(t, this.config.beta);
    return mul(t.lossSum, 1 / denominator);
  }

  takeMetrics(): Record<string, number> | null {
    return this.metrics.take();
  }
}
