// Training checks of the parity tool (and of test/parity/train.test.ts), against the reference fixtures:
//   - idefics3_lora_sft_step: base + PEFT adapter in training mode, the causal-LM loss of a right-padded batch,
//     every LoRA gradient, every LoRA tensor after one AdamW step (lr 1e-3, betas 0.9/0.999, eps 1e-8,
//     weight decay 0.01), then the completion-only loss in eval mode;
//   - smolvlm_full_ft_grads: the loss and the gradient of every parameter (tied embeddings once);
//   - idefics3_lora_dpo: the pair through vlmkit's preference data and DPO objective (the same code as
//     `vlmkit train dpo`): both sequences' ids exactly, the pixels, the four summed log-probs (policy = base +
//     adapter, reference = the adapter switched off), the sigmoid loss and every LoRA gradient.
// Errors are max|ours - ref| / max|ref| per tensor; tolerances are the fixtures README's (loss 1e-4, tensors 1e-3).
import { type Tensor, backward, fromRaw, noGrad, tidy } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { relErr, worse } from './compare.js';
import type { ModelForwardInputs, VisionLanguageModel } from '../models/index.js';
import { causalLmLoss } from '../train/loss.js';
import { type LoraModel } from '../train/lora.js';
import { AdamW } from '../train/optim.js';
import { loadAdapter } from '../train/peft.js';
import { DpoObjective, answerLogps, dpoTerms } from '../train/dpo.js';
import { PreferenceDataset, isRowProblem } from '../train/preference-data.js';
import { concat } from '../engine/index.js';

export const TRAIN_TOLERANCE = { loss: 1e-4, tensor: 1e-3 } as const;

/** The tensors of a case file, by name (the caller disposes them). */
export function readCaseTensors(path: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const n of f.names()) out.set(n, fromRaw(f.read(n)));
    return out;
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  } finally {
    f.close();
  }
}

/** max|a - b| / max|b| (a shape mismatch, or NaN / ±Infinity anywhere, gives Infinity). */
export function tensorRelErr(ours: Tensor, ref: Tensor): number {
  if (ours.size !== ref.size || ours.shape.length !== ref.shape.length || ours.shape.some((d, i) => d !== ref.shape[i])) return Infinity;
  return relErr(ours.toFloat32Array(), ref.toFloat32Array());
}

function relScalar(ours: number, ref: number): number {
  if (!Number.isFinite(ours) || !Number.isFinite(ref)) return Infinity;
  return Math.abs(ours - ref) / Math.max(Math.abs(ref), 1e-30);
}

/** What kind of training case a set of tensor names is, if any. */
export function trainCaseKind(names: Iterable<string>): 'lora_sft_step' | 'full_ft_grads' | 'dpo' | null {
  const all = [...names];
  if (all.includes('policy_chosen_logp')) return 'dpo';
  const grads = all.filter((n) => n.startsWith('grad.'));
  if (!grads.length) return null;
  if (all.some((n) => n.startsWith('after.')) && grads.every((n) => n.includes('.lora_'))) return 'lora_sft_step';
  if (grads.every((n) => !n.includes('.lora_'))) return 'full_ft_grads';
  return null;
}

function modelInputs(c: Map<string, Tensor>): ModelForwardInputs {
  return {
    inputIds: c.get('input_ids')!,
    attentionMask: c.get('attention_mask') ?? null,
    pixelValues: c.get('pixel_values') ?? null,
    pixelAttentionMask: c.get('pixel_attention_mask') ?? null,
  };
}

export interface SftStepResult {
  loss: number;
  lossRef: number;
  lossRelErr: number;
  /** LoRA weights as loaded vs the case's before.* (should be 0) */
  beforeMaxRelErr: number;
  /** per PEFT in-memory name: gradient error */
  grads: Map<string, number>;
  /** per PEFT in-memory name: error after the AdamW step */
  after: Map<string, number>;
  lossCompletion: number | null;
  lossCompletionRef: number | null;
  lossCompletionRelErr: number | null;
}

/**
 * The SFT-step case: `lora` must be the case's adapter attached to `model` (f32). Trains the adapter for one
 * AdamW step in place (the caller reloads it to use the original weights again).
 */
export function runLoraSftStep(model: VisionLanguageModel, lora: LoraModel, c: Map<string, Tensor>): SftStepResult {
  const params = lora.parameters();
  for (const t of model.parameters().values()) t.requireGrad(false);
  lora.requireGrad(true);
  let beforeMax = 0;
  for (const [n, p] of params) {
    const ref = c.get('before.' + n);
    if (!ref) throw new VlmkitError('E_ADAPTER', `the case has no before.${n}: the adapter does not match the case; pass the adapter the case was made with`);
    beforeMax = Math.max(beforeMax, tensorRelErr(p, ref));
  }
  lora.train();
  const labels = c.get('labels')!;
  const loss = tidy(() => {
    const l = causalLmLoss(model, modelInputs(c), labels);
    backward(l);
    return l.item();
  });
  const lossRef = c.get('loss')!.item();
  const grads = new Map<string, number>();
  for (const [n, p] of params) {
    const ref = c.get('grad.' + n);
    grads.set(n, p.grad && ref ? tensorRelErr(p.grad, ref) : Infinity);
  }
  const opt = new AdamW(params, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  opt.step();
  opt.zeroGrad();
  opt.dispose();
  const after = new Map<string, number>();
  for (const [n, p] of params) {
    const ref = c.get('after.' + n);
    after.set(n, ref ? tensorRelErr(p, ref) : Infinity);
  }
  let lossCompletion: number | null = null, lossCompletionRef: number | null = null;
  if (c.has('labels_completion') && c.has('loss_completion_after_step')) {
    lora.eval();
    lossCompletion = noGrad(() => tidy(() => causalLmLoss(model, modelInputs(c), c.get('labels_completion')!).item()));
    lossCompletionRef = c.get('loss_completion_after_step')!.item();
  }
  return {
    loss, lossRef, lossRelErr: relScalar(loss, lossRef), beforeMaxRelErr: beforeMax, grads, after,
    lossCompletion, lossCompletionRef,
    lossCompletionRelErr: lossCompletion === null ? null : relScalar(lossCompletion, lossCompletionRef!),
  };
}

export interface FullFtResult {
  loss: number;
  lossRef: number;
  lossRelErr: number;
  /** per transformers parameter name */
  grads: Map<string, number>;
  /** parameters whose reference gradient is zero up to rounding (k_proj biases: softmax ignores them) */
  nearZero: Set<string>;
}

/** The full fine-tuning case on an f32 model: loss and every parameter's gradient (grads released after). */
export function runFullFtGrads(model: VisionLanguageModel, c: Map<string, Tensor>): FullFtResult {
  const params = model.parameters();
  for (const p of params.values()) p.requireGrad(true);
  try {
    const loss = tidy(() => {
      const l = causalLmLoss(model, modelInputs(c), c.get('labels')!);
      backward(l);
      return l.item();
    });
    const lossRef = c.get('loss')!.item();
    let maxGrad = 0;
    for (const n of params.keys()) {
      const g = c.get('grad.' + n);
      if (g) for (const v of g.toFloat32Array()) maxGrad = Math.max(maxGrad, Math.abs(v));
    }
    const grads = new Map<string, number>();
    const nearZero = new Set<string>();
    for (const [n, p] of params) {
      const ref = c.get('grad.' + n);
      if (!ref || !p.grad) {
        grads.set(n, Infinity);
        continue;
      }
      // a gradient that is zero up to rounding in both (softmax ignores a per-query constant: k_proj biases)
      let refMax = 0;
      for (const v of ref.toFloat32Array()) refMax = Math.max(refMax, Math.abs(v));
      if (refMax <= 1e-6 * maxGrad) {
        let ourMax = 0;
        for (const v of p.grad.toFloat32Array()) ourMax = Math.max(ourMax, Math.abs(v));
        nearZero.add(n);
        grads.set(n, ourMax <= 1e-6 * maxGrad ? 0 : Infinity);
        continue;
      }
      grads.set(n, tensorRelErr(p.grad, ref));
    }
    return { loss, lossRef, lossRelErr: relScalar(loss, lossRef), grads, nearZero };
  } finally {
    for (const p of params.values()) {
      p.grad?.dispose();
      p.grad = null;
      p.requireGrad(false);
    }
  }
}

export interface DpoCaseResult {
  /** our tokenization of the case's prompt + answers equals chosen_input_ids / rejected_input_ids */
  idsEqual: { chosen: boolean; rejected: boolean };
  /** the answer starts where the case's prompt_len_* says */
  promptLenEqual: boolean;
  /** our pixel_values against the case's: max and mean |diff| */
  pixelMaxAbs: number;
  pixelMeanAbs: number;
  /** ours and the reference's, by case tensor name (policy_chosen_logp, ..., loss) */
  scalars: Map<string, { ours: number; ref: number; relErr: number }>;
  /** per PEFT in-memory name: gradient error */
  grads: Map<string, number>;
}

/**
 * The DPO case: `lora` must be the case's adapter attached to `model` (f32). The pair is read from the case's
 * json (prompt, chosen, rejected, image: a plain preference row) by the preference data code and collated by the
 * DPO objective; the model then runs on the case's own pixel values (the README's rule for logits and losses).
 */
export async function runLoraDpo(model: VisionLanguageModel, lora: LoraModel, c: Map<string, Tensor>, meta: Record<string, unknown>, modelDir: string, imagesDir: string): Promise<DpoCaseResult> {
  const { loadProcessor } = await import('../models/index.js');
  const processor = loadProcessor(modelDir);
  const row = { prompt: meta.prompt, chosen: meta.chosen, rejected: meta.rejected, images: typeof meta.image === 'string' ? [meta.image] : [] };
  let ex;
  try {
    ex = await PreferenceDataset.encodeRow(row, imagesDir, processor, { file: 'the case json', line: 1 });
  } catch (e) {
    if (isRowProblem(e)) throw new VlmkitError('E_DATA', `the DPO case's prompt/chosen/rejected do not make a preference row: ${e.message}`);
    throw e;
  }
  const objective = new DpoObjective(processor, { beta: Number(meta.beta ?? 0.1), lossType: (meta.loss_type ?? 'sigmoid') as 'sigmoid' }, lora);
  const b = await objective.prepare([ex]);
  try {
    const eqIds = (ours: readonly number[], ref: Tensor | undefined) => {
      if (!ref) return false;
      const r = ref.toFloat32Array();
      return r.length === ours.length && ours.every((v, i) => v === r[i]);
    };
    const idsEqual = { chosen: eqIds(ex.chosen.inputIds, c.get('chosen_input_ids')), rejected: eqIds(ex.rejected.inputIds, c.get('rejected_input_ids')) };
    const promptLenEqual = ex.chosen.assistantSpans[0]?.[0] === meta.prompt_len_chosen && ex.rejected.assistantSpans[0]?.[0] === meta.prompt_len_rejected;
    const refPv = c.get('pixel_values')!;
    let pixelMaxAbs = Infinity, pixelMeanAbs = Infinity;
    if (b.rows.pixelValues && b.rows.pixelValues.size === 2 * refPv.size) {
      const ours = b.rows.pixelValues.toFloat32Array().subarray(0, refPv.size), ref = refPv.toFloat32Array();
      let max = 0, sum = 0;
      for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(ours[i]! - ref[i]!);
        if (!(d <= max)) max = d; // (a NaN sticks)
        sum += d;
      }
      pixelMaxAbs = max;
      pixelMeanAbs = sum / ref.length;
    }
    // the rows (chosen, rejected) on the case's own pixels, each row with its copy of the image
    const pv = concat([refPv, refPv], 0);
    const pm = concat([c.get('pixel_attention_mask')!, c.get('pixel_attention_mask')!], 0);
    const rows = { ...b.rows, pixelValues: pv, pixelAttentionMask: pm };
    for (const t of model.parameters().values()) t.requireGrad(false);
    lora.requireGrad(true);
    lora.train();
    const scalars = new Map<string, { ours: number; ref: number; relErr: number }>();
    const put = (name: string, ours: number) => {
      const ref = c.get(name)?.item() ?? NaN;
      scalars.set(name, { ours, ref, relErr: relScalar(ours, ref) });
    };
    try {
      tidy(() => {
        const batch = { ...b, rows };
        const t = dpoTerms(answerLogps(model, rows, rows.labels), objective.reference(model, batch), objective.config);
        put('policy_chosen_logp', t.policyChosen[0]!);
        put('policy_rejected_logp', t.policyRejected[0]!);
        put('ref_chosen_logp', t.refChosen[0]!);
        put('ref_rejected_logp', t.refRejected[0]!);
        // the objective's loss of one pair (denominator 1: TRL's mean over the batch's one pair)
        const l = objective.loss(model, batch, 1);
        put('loss', l.item());
        backward(l);
      });
    } finally {
      pv.dispose();
      pm.dispose();
    }
    const grads = new Map<string, number>();
    for (const [n, p] of lora.parameters()) {
      const ref = c.get('grad.' + n);
      grads.set(n, p.grad && ref ? tensorRelErr(p.grad, ref) : Infinity);
      p.grad?.dispose();
      p.grad = null;
    }
    return { idsEqual, promptLenEqual, pixelMaxAbs, pixelMeanAbs, scalars, grads };
  } finally {
    b.dispose();
  }
}

/** Fields the parity tool reports for training cases. */
export interface TrainParityFields {
  input_ids_equal: boolean | null;
  pixel_values_max_abs: number | null;
  pixel_values_mean_abs: number | null;
  loss_rel_err: number | null;
  grads_max_rel_err: number | null;
  after_step_max_rel_err: number | null;
  loss_completion_rel_err: number | null;
}

/**
 * The case's before.* / grad.* / after.* names whose tensor name is not in `known`: each one is a failure (a
 * gradient nobody compares would let a case pass that checks less than it claims).
 */
function unmatched(names: readonly string[], known: ReadonlySet<string>, prefixes: readonly string[]): string[] {
  return names.filter((n) => prefixes.some((p) => n.startsWith(p) && !known.has(n.slice(p.length))));
}

/**
 * The parity tool's training check of one case file: fills the fields, pushes failures / notes and marks every
 * case tensor it compared (`mark`; what stays unmarked is reported unchecked). `modelDir` is the checkpoint the
 * case was made with, `adapterDir` the PEFT adapter (for LoRA cases).
 */
export async function checkTrainCase(casePath: string, modelDir: string, adapterDir: string | undefined,
  res: TrainParityFields, fail: (m: string) => void, note: (m: string) => void, mark: (name: string) => void,
  o: { imagesDir?: string; meta?: Record<string, unknown> } = {}): Promise<boolean> {
  const f = SafetensorsFile.open(casePath);
  const names = f.names();
  f.close();
  const kind = trainCaseKind(names);
  if (kind === null) return false;
  if ((kind === 'lora_sft_step' || kind === 'dpo') && !adapterDir) {
    note('the case was made with a LoRA adapter: pass --adapter <dir> (its adapter_config.json gives r and alpha) to check its loss, gradients and step');
    return false;
  }
  const { loadModelWeights } = await import('../models/index.js');
  const model = loadModelWeights(modelDir, { dtype: 'f32' });
  const c = readCaseTensors(casePath);
  const tol = TRAIN_TOLERANCE;
  const worst = (m: Map<string, number>, what: string) => {
    let w = 0;
    for (const [n, e] of m) {
      mark(`${what}.${n}`);
      if (!(e <= tol.tensor)) fail(c.has(`${what}.${n}`) ? `${what}.${n}: relative error ${e} > ${tol.tensor}` : `the case has no ${what}.${n}: it was made with another model or adapter`);
      w = worse(w, e);
    }
    return w;
  };
  const checkLoss = (field: 'loss_rel_err' | 'loss_completion_rel_err', key: string, ours: number, ref: number, e: number) => {
    mark(key);
    res[field] = e;
    if (!(e <= tol.loss)) fail(`${key} ${ours} vs reference ${ref}: relative error ${e} > ${tol.loss}`);
  };
  try {
    if (kind === 'full_ft_grads') {
      for (const n of unmatched(names, new Set(model.parameters().keys()), ['grad.'])) {
        mark(n);
        fail(`${n} matches no parameter of the model in ${modelDir}: the case was made with another model`);
      }
      const r = runFullFtGrads(model, c);
      checkLoss('loss_rel_err', 'loss', r.loss, r.lossRef, r.lossRelErr);
      res.grads_max_rel_err = worst(r.grads, 'grad');
      return true;
    }
    const lora = loadAdapter(model, adapterDir!);
    try {
      if (kind === 'dpo') {
        for (const n of unmatched(names, new Set(lora.parameters().keys()), ['grad.'])) {
          mark(n);
          fail(`${n} matches no LoRA tensor of the adapter in ${adapterDir}: pass the adapter the case was made with`);
        }
        if (!o.imagesDir || !o.meta) throw new Error('vlmkit internal: the DPO case needs its json and images folder');
        const r = await runLoraDpo(model, lora, c, o.meta, modelDir, o.imagesDir);
        for (const n of ['chosen_input_ids', 'rejected_input_ids', 'pixel_values', 'pixel_attention_mask']) mark(n);
        res.input_ids_equal = r.idsEqual.chosen && r.idsEqual.rejected && r.promptLenEqual;
        if (!r.idsEqual.chosen) fail('chosen_input_ids: our tokens of prompt + chosen differ from the case\'s');
        if (!r.idsEqual.rejected) fail('rejected_input_ids: our tokens of prompt + rejected differ from the case\'s');
        if (!r.promptLenEqual) fail(`the answers start at other tokens than prompt_len_chosen / prompt_len_rejected (${o.meta.prompt_len_chosen} / ${o.meta.prompt_len_rejected})`);
        res.pixel_values_max_abs = r.pixelMaxAbs;
        res.pixel_values_mean_abs = r.pixelMeanAbs;
        if (!(r.pixelMaxAbs <= 0.02)) fail(`pixel_values max |diff| ${r.pixelMaxAbs} > 0.02`);
        if (!(r.pixelMeanAbs <= 1e-3)) fail(`pixel_values mean |diff| ${r.pixelMeanAbs} > 0.001`);
        let worstScalar = 0;
        for (const [n, v] of r.scalars) {
          mark(n);
          worstScalar = worse(worstScalar, v.relErr);
          if (!(v.relErr <= tol.loss)) fail(`${n} ${v.ours} vs reference ${v.ref}: relative error ${v.relErr} > ${tol.loss}`);
        }
        res.loss_rel_err = worstScalar;
        res.grads_max_rel_err = worst(r.grads, 'grad');
        return true;
      }
      for (const n of unmatched(names, new Set(lora.parameters().keys()), ['before.', 'grad.', 'after.'])) {
        mark(n);
        fail(`${n} matches no LoRA tensor of the adapter in ${adapterDir}: pass the adapter the case was made with`);
      }
      const r = runLoraSftStep(model, lora, c);
      for (const n of lora.parameters().keys()) mark('before.' + n);
      if (r.beforeMaxRelErr !== 0) fail(`the adapter's weights differ from the case's before.* (relative ${r.beforeMaxRelErr}); pass the adapter the case was made with`);
      checkLoss('loss_rel_err', 'loss', r.loss, r.lossRef, r.lossRelErr);
      res.grads_max_rel_err = worst(r.grads, 'grad');
      res.after_step_max_rel_err = worst(r.after, 'after');
      if (r.lossCompletionRelErr !== null) checkLoss('loss_completion_rel_err', 'loss_completion_after_step', r.lossCompletion!, r.lossCompletionRef!, r.lossCompletionRelErr);
      return true;
    } finally {
      lora.remove();
    }
  } finally {
    for (const t of c.values()) t.dispose();
    model.dispose();
  }
}
