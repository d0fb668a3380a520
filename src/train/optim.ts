// The optimizer side of training, as torch and transformers define it:
//   - AdamW (torch.optim.AdamW): per-parameter state (step, exp_avg, exp_avg_sq) created at a parameter's first
//     update, decoupled weight decay, bias correction; the update itself is the engine's adamwStep kernel;
//   - learning-rate schedules (transformers' get_{constant,linear,cosine}_schedule_with_warmup through LambdaLR:
//     the lr of optimizer step k (0-based) is base_lr · lambda(k)); warmup by steps or by ratio of the total;
//   - clipping by global norm (torch.nn.utils.clip_grad_norm_).
import { type Tensor, adamwStep, zerosLike } from '../engine/index.js';
import { VlmkitError } from '../errors.js';

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** decoupled weight decay (torch's default 0.01) */
  weightDecay?: number;
  /** a per-parameter multiplier of the lr (torch's param groups with their own lr; default 1 for every one) */
  lrScale?: (name: string, p: Tensor) => number;
  /** parameters (by name) that get no weight decay, e.g. noDecayHF (transformers' Trainer); default: none */
  noDecay?: (name: string, p: Tensor) => boolean;
}

/**
 * transformers' Trainer exempts biases and normalisation weights from weight decay (get_decay_parameter_names);
 * this is that rule applied to parameter names.
 */
export function noDecayHF(name: string): boolean {
  return /bias/.test(name) || /layernorm|layer_norm|rmsnorm/i.test(name) || /(?:^|\.)norm(?:$|\.)/.test(name) || /_norm(?:$|\.)/.test(name);
}

interface ParamState {
  step: number;
  m: Tensor;
  v: Tensor;
}

/** Serializable optimizer state (for checkpoints): per parameter name its step count and moments. */
export interface AdamWState {
  lr: number;
  params: Map<string, { step: number; m: Tensor; v: Tensor }>;
}

/** torch.optim.AdamW over named f32 parameters. Parameters without a gradient are skipped (as torch does). */
export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: Map<string, Tensor>;
  private readonly decay: Map<string, number>;
  private readonly scale: Map<string, number>;
  private readonly state = new Map<string, ParamState>();

  constructor(params: Map<string, Tensor> | Iterable<[string, Tensor]>, cfg: AdamWConfig) {
    this.params = new Map(params);
    this.lr = cfg.lr;
    this.beta1 = cfg.beta1 ?? 0.9;
    this.beta2 = cfg.beta2 ?? 0.999;
    this.eps = cfg.eps ?? 1e-8;
    this.weightDecay = cfg.weightDecay ?? 0.01;
    const bad = (why: string) => new VlmkitError('E_OPTIM', `AdamW: ${why}`);
    if (!(this.lr >= 0)) throw bad(`lr must be >= 0, got ${this.lr}`);
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw bad(`beta1 must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw bad(`beta2 must be in [0, 1), got ${this.beta2}`);
    if (!(this.eps >= 0)) throw bad(`eps must be >= 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw bad(`weight decay must be >= 0, got ${this.weightDecay}`);
    this.decay = new Map();
    this.scale = new Map();
    for (const [n, p] of this.params) {
      if (p.dtype !== 'f32' && p.dtype !== 'f64')
        throw bad(`parameter ${n} is ${p.dtype}; trainable parameters must be f32 (load the model with dtype 'f32' to train its weights)`);
      if (!p.isContiguous()) throw bad(`parameter ${n} [${p.shape}] is not contiguous`);
      this.decay.set(n, cfg.noDecay?.(n, p) ? 0 : this.weightDecay);
      const k = cfg.lrScale?.(n, p) ?? 1;
      if (!(k >= 0 && Number.isFinite(k))) throw bad(`the lr scale of ${n} must be a number >= 0, got ${k}`);
      this.scale.set(n, k);
    }
  }

  /** The parameters this optimizer updates, by name. */
  parameters(): Map<string, Tensor> {
    return new Map(this.params);
  }

  /** The number of updates applied to `name` so far (torch's state["step"]). */
  stepOf(name: string): number {
    return this.state.get(name)?.step ?? 0;
  }

  /** One update of every parameter that has a gradient, with the current lr. */
  step(): void {
    for (const [n, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      let s = this.state.get(n);
      if (!s) {
        s = { step: 0, m: zerosLike(p), v: zerosLike(p) };
        this.state.set(n, s);
      }
      s.step++;
      adamwStep(p, g, s.m, s.v, { lr: this.lr * this.scale.get(n)!, step: s.step, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.decay.get(n)! });
    }
  }

  /** Drops every gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params.values()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The state (lr, and per parameter step, exp_avg, exp_avg_sq); the tensors are the optimizer's own (not copies). */
  stateDict(): AdamWState {
    const params = new Map<string, { step: number; m: Tensor; v: Tensor }>();
    for (const [n, s] of this.state) params.set(n, { step: s.step, m: s.m, v: s.v });
    return { lr: this.lr, params };
  }

  /** Restores a state saved by stateDict() (its tensors are copied into the optimizer's own). */
  loadStateDict(st: AdamWState): void {
    for (const [n, s] of st.params) {
      const p = this.params.get(n);
      if (!p) throw new VlmkitError('E_OPTIM', `optimizer state names parameter ${n}, which this optimizer does not hold`);
      for (const [what, t] of [['exp_avg', s.m], ['exp_avg_sq', s.v]] as const)
        if (t.size !== p.size) throw new VlmkitError('E_OPTIM', `optimizer state ${what} of ${n} has ${t.size} values, the parameter [${p.shape}] has ${p.size}`);
      let own = this.state.get(n);
      if (!own) {
        own = { step: 0, m: zerosLike(p), v: zerosLike(p) };
        this.state.set(n, own);
      }
      own.step = s.step;
      (own.m.data as Float32Array).set(s.m.toFloat32Array());
      (own.v.data as Float32Array).set(s.v.toFloat32Array());
    }
    this.lr = st.lr;
  }

  /** Releases the moment tensors. */
  dispose(): void {
    for (const s of this.state.values()) { s.m.dispose(); s.v.dispose(); }
    this.state.clear();
  }
}

// ---- learning-rate schedules

export type ScheduleName = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

export interface ScheduleOptions {
  /** total number of optimizer steps */
  totalSteps: number;
  /** warmup steps (wins when > 0) */
  warmupSteps?: number;
  /** warmup as a fraction of totalSteps (ceil(total · ratio)), used when warmupSteps is 0 or absent */
  warmupRatio?: number;
  /** cosine only: number of waves (transformers' num_cycles, default 0.5 = one half-wave down to 0) */
  numCycles?: number;
}

/** transformers' TrainingArguments.get_warmup_steps: warmup_steps if > 0, else ceil(total · warmup_ratio). */
export function resolveWarmupSteps(o: ScheduleOptions): number {
  const ws = o.warmupSteps ?? 0;
  if (!(Number.isInteger(ws) && ws >= 0)) throw new VlmkitError('E_SCHEDULE', `warmup steps must be an integer >= 0, got ${ws}`);
  if (ws > 0) return ws;
  const ratio = o.warmupRatio ?? 0;
  if (!(ratio >= 0 && ratio <= 1)) throw new VlmkitError('E_SCHEDULE', `warmup ratio must be in [0, 1], got ${ratio}`);
  return Math.ceil(o.totalSteps * ratio);
}

/**
 * The lr multiplier of optimizer step `step` (0-based), as transformers' lr lambdas: warmup step/warmup, then
 * constant 1, linear (total - step) / (total - warmup) down to 0, or cosine 0.5 (1 + cos(π · cycles · 2 · progress)).
 * 'constant' is get_constant_schedule_with_warmup (with no warmup: get_constant_schedule).
 */
export function lrLambda(name: ScheduleName, step: number, warmup: number, total: number, numCycles = 0.5): number {
  if (step < warmup) return step / Math.max(1, warmup);
  switch (name) {
    case 'constant':
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
    }
    default:
      throw new VlmkitError('E_SCHEDULE', `unknown lr schedule ${JSON.stringify(name)}; use constant, linear or cosine`);
  }
}

/** A schedule over a base lr: lrAt(k) is the lr of optimizer step k (0-based), base · lambda(k). */
export class LrSchedule {
  readonly name: ScheduleName;
  readonly baseLr: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  readonly numCycles: number;

  constructor(name: ScheduleName, baseLr: number, o: ScheduleOptions) {
    if (!['constant', 'constant_with_warmup', 'linear', 'cosine'].includes(name))
      throw new VlmkitError('E_SCHEDULE', `unknown lr schedule ${JSON.stringify(name)}; use constant, linear or cosine`);
    if (!(Number.isInteger(o.totalSteps) && o.totalSteps >= 0)) throw new VlmkitError('E_SCHEDULE', `total steps must be an integer >= 0, got ${o.totalSteps}`);
    this.name = name;
    this.baseLr = baseLr;
    this.totalSteps = o.totalSteps;
    this.warmupSteps = resolveWarmupSteps(o);
    this.numCycles = o.numCycles ?? 0.5;
  }

  lrAt(step: number): number {
    return this.baseLr * lrLambda(this.name, step, this.warmupSteps, this.totalSteps, this.numCycles);
  }
}

// ---- gradient clipping

export interface ClipOptions {
  /** 2 (default) or Infinity */
  normType?: number;
  /** throw when the total norm is NaN or infinite (torch's error_if_nonfinite); default false */
  errorIfNonfinite?: boolean;
}

/** A parameter's gradient as a contiguous f32 tensor (replacing a strided one in place). */
function contiguousGrad(p: Tensor): Tensor | null {
  const g = p.grad;
  if (!g) return null;
  if (g.isContiguous()) return g;
  const c = g.backend.contiguous(g);
  g.dispose();
  p.grad = c;
  return c;
}

/**
 * torch.nn.utils.clip_grad_norm_: the norm of all gradients together (the norm of the per-tensor norms);
 * when it exceeds maxNorm every gradient is multiplied by maxNorm / (norm + 1e-6). Returns the total norm
 * (before clipping). Parameters without a gradient are ignored.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, o: ClipOptions = {}): number {
  const normType = o.normType ?? 2;
  if (normType !== 2 && normType !== Infinity) throw new VlmkitError('E_OPTIM', `clipGradNorm: norm type ${normType} is not supported (2 or Infinity)`);
  const grads: Tensor[] = [];
  for (const p of params) {
    const g = contiguousGrad(p);
    if (g) grads.push(g);
  }
  if (!grads.length) return 0;
  let total = 0;
  for (const g of grads) {
    const d = g.data as Float32Array;
    if (normType === Infinity) {
      for (let i = 0; i < d.length; i++) {
        const a = Math.abs(d[i]!);
        if (!(a <= total)) total = a;
      }
    } else {
      let s = 0;
      for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
      total += s;
    }
  }
  if (normType === 2) total = Math.sqrt(total);
  if (!Number.isFinite(total) && o.errorIfNonfinite)
    throw new VlmkitError('E_NONFINITE', `the total norm of the gradients is ${total}; the loss diverged (lower the learning rate, check the data)`);
  const coef = Math.fround(maxNorm / (total + 1e-6));
  if (coef < 1 || Number.isNaN(coef)) {
    for (const g of grads) {
      const d = g.data as Float32Array;
      for (let i = 0; i < d.length; i++) d[i] = d[i]! * coef;
    }
  }
  return total;
}
