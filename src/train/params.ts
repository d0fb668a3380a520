// Which parameters train: full fine-tuning, a frozen vision tower, LoRA only, or any include/exclude patterns
// over transformers parameter names. Selection sets requiresGrad on the chosen tensors and clears it on every
// other parameter, so the forward builds a graph only where a gradient is wanted.
import type { Tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import type { LoraModel } from './lora.js';

/** A name pattern: a RegExp, or a string taken as a regular expression searched anywhere in the name. */
export type NamePattern = string | RegExp;

export type TrainMode = 'full' | 'frozen-vision' | 'lora';

export interface ParamSelection {
  /** names must match one of these (default: every parameter) */
  include?: readonly NamePattern[];
  /** names matching one of these are frozen (applied after include) */
  exclude?: readonly NamePattern[];
}

function toRegex(p: NamePattern): RegExp {
  if (p instanceof RegExp) return p;
  try {
    return new RegExp(p);
  } catch (e) {
    throw new VlmkitError('E_ARGS', `parameter pattern ${JSON.stringify(p)} is not a valid regular expression (${(e as Error).message})`);
  }
}

/** The parameters whose names pass the selection (no side effects). */
export function selectParameters(params: Map<string, Tensor>, sel: ParamSelection): Map<string, Tensor> {
  const inc = sel.include?.map(toRegex) ?? null;
  const exc = sel.exclude?.map(toRegex) ?? [];
  const out = new Map<string, Tensor>();
  for (const [n, t] of params) {
    if (inc && !inc.some((r) => r.test(n))) continue;
    if (exc.some((r) => r.test(n))) continue;
    out.set(n, t);
  }
  return out;
}

/** A model that lists its parameters by transformers name (and, when it has one, names its vision tower's). */
export interface ParameterizedModel {
  parameters(): Map<string, Tensor>;
  readonly visionParameters?: RegExp;
}

/**
 * Freezes every parameter of `model` except those selected, which are marked requiresGrad and returned by name.
 * Trained model weights must be f32 (bf16/f16 weights are frozen-only: load the model with dtype 'f32').
 * Throws when the selection is empty.
 */
export function setTrainable(model: ParameterizedModel, sel: ParamSelection): Map<string, Tensor> {
  const all = model.parameters();
  const chosen = selectParameters(all, sel);
  if (!chosen.size)
    throw new VlmkitError('E_ARGS', `no parameter matches the trainable selection (include ${JSON.stringify(sel.include?.map(String) ?? 'all')}, exclude ${JSON.stringify(sel.exclude?.map(String) ?? [])}); parameter names look like ${[...all.keys()][0] ?? '(none)'}`);
  for (const [n, t] of chosen)
    if (t.dtype !== 'f32' && t.dtype !== 'f64')
      throw new VlmkitError('E_DTYPE', `parameter ${n} is ${t.dtype} and cannot be trained; load the model with dtype 'f32' for full fine-tuning (LoRA trains on frozen bf16 weights)`);
  for (const t of all.values()) t.requireGrad(false);
  for (const t of chosen.values()) t.requireGrad(true);
  return chosen;
}

/**
 * The trainable parameters for a mode: 'full' (every model weight; tied embeddings count once), 'frozen-vision'
 * (everything but the vision tower), 'lora' (only the adapter's A and B, by PEFT's in-memory names; the base
 * model is frozen). Returns them by name, marked requiresGrad.
 */
export function trainableParameters(model: ParameterizedModel, mode: TrainMode, lora?: LoraModel | null): Map<string, Tensor> {
  switch (mode) {
    case 'full':
      return setTrainable(model, {});
    case 'frozen-vision':
      if (!model.visionParameters) throw new VlmkitError('E_ARGS', "train mode 'frozen-vision' needs a model with a vision tower; use 'full' or 'lora'");
      return setTrainable(model, { exclude: [model.visionParameters] });
    case 'lora': {
      if (!lora) throw new VlmkitError('E_ARGS', "train mode 'lora' needs a LoRA adapter (LoraModel.create or loadAdapter)");
      for (const t of model.parameters().values()) t.requireGrad(false);
      lora.requireGrad(true);
      return lora.parameters();
    }
    default:
      throw new VlmkitError('E_ARGS', `unknown train mode ${JSON.stringify(mode)}; use full, frozen-vision or lora`);
  }
}

/** Number of scalar values in a set of parameters. */
export function countParameters(params: Iterable<Tensor>): number {
  let n = 0;
  for (const t of params) n += t.size;
  return n;
}
