// LoRA with Hugging Face PEFT's semantics (peft/tuners/lora/{config,layer,model}.py), on any model that lists
// its linear layers by transformers module path (model.linears()):
//   - which modules: target_modules as a list (a module matches when its path equals an entry or ends with
//     "." + entry; layers_to_transform / layers_pattern narrow it to layer indices), as one regex string (full
//     match of the path), or "all-linear" (every nn.Linear of the model except the output layer, lm_head);
//     exclude_modules takes modules out the same way;
//   - per module: r and lora_alpha (rank_pattern / alpha_pattern override them for paths matching
//     "(.*\.)?(key)$"), scaling = alpha / r, or alpha / sqrt(r) with use_rslora;
//   - weights: A [r, in] as torch's nn.Linear default (kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)))
//     or "gaussian" (normal with std 1/r), B [out, r] zeros;
//   - forward: y = base(x) + scaling * B(A(dropout(x))), dropout only in training mode, its masks a function of
//     (seed, dropoutStep, module) so that gradient checkpointing's recomputation and a resumed run see the same;
//   - merge: W += scaling * B·A in W's dtype (bf16/f16 weights too); unmerge subtracts it again.
//   - a block-quantized base weight (QuantizedWeight, QLoRA's frozen base) is adapted the same way: the adapters
//     stay f32 and train, the base takes no gradient; merging into it is refused (merge onto the f32/bf16 base).
//   - use_dora (DoRA, models/dora.ts): a magnitude m [out] per module, initialised as PEFT does to ‖W + s·BA‖ per
//     output feature (‖W‖ with B zeros: step 0 is the base model); merge: W ← m/‖W + s·BA‖ ⊙ (W + s·BA), the norm
//     kept for the unmerge.
// Parameter names are PEFT's in-memory ones: base_model.model.<module>.lora_A.<adapter>.weight ("default"),
// base_model.model.<module>.lora_magnitude_vector.<adapter>.weight for DoRA.
// lora_bias, fan_in_fan_out (GPT-2 Conv1D) and conv / embedding targets are not supported.
import { QuantizedWeight, type Tensor, Rng, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, matmul, mul, noGrad, rand, randn, tensor, zeros } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import type { Linear, LowRankAdapter } from '../models/common.js';
import { doraWeightNorm } from '../models/dora.js';

export const ALL_LINEAR = 'all-linear';

/** Module names (exact path or "."-suffix), one regex string (full match), or "all-linear". */
export type TargetModules = readonly string[] | string;

export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: TargetModules;
  excludeModules: TargetModules | null;
  useRslora: boolean;
  /** true: A kaiming-uniform (torch's nn.Linear default), B zeros; 'gaussian': A ~ N(0, 1/r²), B zeros */
  initLoraWeights: boolean | 'gaussian';
  /** per-module rank: key -> r for module paths matching "(.*\.)?(key)$" */
  rankPattern: Readonly<Record<string, number>>;
  /** per-module alpha, as rankPattern */
  alphaPattern: Readonly<Record<string, number>>;
  layersToTransform: readonly number[] | number | null;
  layersPattern: readonly string[] | string | null;
  useDora: boolean;
  taskType: string | null;
  baseModelNameOrPath: string | null;
}

export type LoraConfigInput = Partial<LoraConfig> & { targetModules: TargetModules };

const badConfig = (why: string) => new VlmkitError('E_LORA_CONFIG', `LoRA config: ${why}`);

/** A complete, validated LoRA config with PEFT's defaults (r 8, lora_alpha 8, dropout 0, init true). */
export function loraConfig(o: LoraConfigInput): LoraConfig {
  const c: LoraConfig = {
    r: o.r ?? 8,
    loraAlpha: o.loraAlpha ?? 8,
    loraDropout: o.loraDropout ?? 0,
    targetModules: typeof o.targetModules === 'string' ? o.targetModules : [...o.targetModules],
    excludeModules: o.excludeModules == null ? null : typeof o.excludeModules === 'string' ? o.excludeModules : [...o.excludeModules],
    useRslora: o.useRslora ?? false,
    initLoraWeights: o.initLoraWeights ?? true,
    rankPattern: { ...(o.rankPattern ?? {}) },
    alphaPattern: { ...(o.alphaPattern ?? {}) },
    layersToTransform: o.layersToTransform ?? null,
    layersPattern: o.layersPattern ?? null,
    useDora: o.useDora ?? false,
    taskType: o.taskType ?? null,
    baseModelNameOrPath: o.baseModelNameOrPath ?? null,
  };
  if (!(Number.isInteger(c.r) && c.r > 0)) throw badConfig(`r must be a positive integer, got ${c.r}`);
  for (const [k, v] of Object.entries(c.rankPattern))
    if (!(Number.isInteger(v) && v > 0)) throw badConfig(`rank_pattern["${k}"] must be a positive integer, got ${v}`);
  if (!Number.isFinite(c.loraAlpha)) throw badConfig(`lora_alpha must be a number, got ${c.loraAlpha}`);
  for (const [k, v] of Object.entries(c.alphaPattern))
    if (!Number.isFinite(v)) throw badConfig(`alpha_pattern["${k}"] must be a number, got ${v}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) throw badConfig(`lora_dropout must be in [0, 1), got ${c.loraDropout}`);
  if (c.initLoraWeights !== true && c.initLoraWeights !== false && c.initLoraWeights !== 'gaussian')
    throw badConfig(`init_lora_weights ${JSON.stringify(c.initLoraWeights)} is not supported (use true or "gaussian")`);
  if (typeof c.targetModules !== 'string' && c.targetModules.length === 0)
    throw badConfig('target_modules is empty; give module names (e.g. q_proj,v_proj), a regex, or "all-linear"');
  if (typeof c.targetModules === 'string') compileRegex(c.targetModules, 'target_modules');
  if (typeof c.excludeModules === 'string') compileRegex(c.excludeModules, 'exclude_modules');
  return c;
}

const regexCache = new Map<string, RegExp>();
/** Python's re.fullmatch(pattern, s) as a JS RegExp (the common syntax of both). */
function compileRegex(pattern: string, what: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = new RegExp(`^(?:${pattern})$`);
    } catch (e) {
      throw badConfig(`${what} ${JSON.stringify(pattern)} is not a valid regular expression (${(e as Error).message})`);
    }
    regexCache.set(pattern, re);
  }
  return re;
}

function listMatch(list: readonly string[], key: string): boolean {
  return list.some((t) => key === t || key.endsWith(`.${t}`));
}

/** Whether PEFT would adapt the module at path `key` (check_target_module_exists; "all-linear" matches all). */
export function matchesTarget(cfg: LoraConfig, key: string): boolean {
  const ex = cfg.excludeModules;
  if (ex != null && (typeof ex === 'string' ? compileRegex(ex, 'exclude_modules').test(key) : listMatch(ex, key))) return false;
  const t = cfg.targetModules;
  if (typeof t === 'string') return t.toLowerCase() === ALL_LINEAR || compileRegex(t, 'target_modules').test(key);
  if (t.includes(key)) return true;
  if (!listMatch(t, key)) return false;
  const idx = cfg.layersToTransform;
  if (idx == null || (Array.isArray(idx) && idx.length === 0)) return true;
  const pats = cfg.layersPattern == null ? [] : typeof cfg.layersPattern === 'string' ? [cfg.layersPattern] : cfg.layersPattern;
  let m: RegExpExecArray | null = null;
  if (pats.length === 0) m = /^.*?\.[^.]*\.(\d+)\./.exec(key);
  else for (const p of pats) if ((m = new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`).exec(key))) break;
  if (!m) return false;
  const layer = Number(m[1]);
  return typeof idx === 'number' ? layer === idx : (idx as readonly number[]).includes(layer);
}

/** PEFT's get_pattern_key: the first key of a rank/alpha pattern whose "(.*\.)?(key)$" matches the module path. */
export function patternKey(keys: Iterable<string>, module: string): string | null {
  for (const k of keys) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${k})$`);
    } catch {
      continue;
    }
    if (re.test(module)) return k;
  }
  return null;
}

/** r, alpha and the scaling PEFT uses for one module. */
export function loraScaling(cfg: LoraConfig, module: string): { r: number; alpha: number; scale: number } {
  const rk = patternKey(Object.keys(cfg.rankPattern), module);
  const ak = patternKey(Object.keys(cfg.alphaPattern), module);
  const r = rk !== null ? cfg.rankPattern[rk]! : cfg.r;
  const alpha = ak !== null ? cfg.alphaPattern[ak]! : cfg.loraAlpha;
  return { r, alpha, scale: cfg.useRslora ? alpha / Math.sqrt(r) : alpha / r };
}

/** A linear whose base weight may be block-quantized. */
export type AdaptableLinear = Linear<Tensor | QuantizedWeight>;

/** A model whose linear layers can carry adapters: module path -> Linear (the objects its forward reads). */
export interface AdaptableModel {
  linears(): Map<string, AdaptableLinear>;
}

/** A linear layer in torch terms: a 2-D weight (the patch conv is listed by some models with a 4-D weight). */
const isLinear = (l: AdaptableLinear) => l.w.rank === 2;

/**
 * The module paths the config adapts on this model, in the model's order. Throws when none matches, or when a
 * matched module is not a linear layer (vlmkit adapts linears only).
 */
export function resolveTargets(model: AdaptableModel, cfg: LoraConfig): string[] {
  const all = cfg.targetModules === ALL_LINEAR || (typeof cfg.targetModules === 'string' && cfg.targetModules.toLowerCase() === ALL_LINEAR);
  const out: string[] = [];
  for (const [name, l] of model.linears()) {
    if (!matchesTarget(cfg, name)) continue;
    if (!isLinear(l)) {
      if (all) continue;
      throw new VlmkitError('E_LORA_TARGET', `LoRA target ${name} is a convolution (weight [${l.w.shape}]); vlmkit adapts linear layers only: leave it out of target_modules`);
    }
    out.push(name);
  }
  if (!out.length) {
    const names = [...model.linears().keys()];
    const leaves = [...new Set(names.map((n) => n.slice(n.lastIndexOf('.') + 1)))];
    throw new VlmkitError('E_LORA_TARGET', `LoRA target_modules ${JSON.stringify(cfg.targetModules)} match no linear layer of the model; its linear layers are named ${leaves.join(', ')} (e.g. ${names[0] ?? '(none)'}), or use "all-linear"`);
  }
  return out;
}

/** One adapted linear. */
export interface LoraLayer {
  /** transformers module path */
  module: string;
  linear: AdaptableLinear;
  /** the adapter attached to linear.adapters (a [r, in], b [out, r], f32; DoRA: magnitude [out], f32) */
  adapter: LowRankAdapter;
  r: number;
  alpha: number;
  scale: number;
}

export interface LoraCreateOptions {
  /** seed of the initialisation and of the dropout masks (default 0) */
  seed?: number;
  /** PEFT adapter name used in parameter names (default "default") */
  adapterName?: string;
  /** mark A and B as requiring grad (default true for a new adapter) */
  trainable?: boolean;
}

/** Weights for one module, as read from an adapter file. */
export interface LoraWeights {
  a: Tensor;
  b: Tensor;
  /** DoRA's magnitude [out] (lora_magnitude_vector); required with use_dora, refused without */
  m?: Tensor;
}

/**
 * LoRA adapters attached to a model's linears. The model's own forward applies them (applyLinear); this object
 * owns A and B, switches training mode (dropout), enables/disables, merges/unmerges, and names the tensors.
 */
export class LoraModel {
  readonly config: LoraConfig;
  readonly adapterName: string;
  /** the adapted module paths, in the model's order */
  readonly targets: readonly string[];
  private readonly layerMap: Map<string, LoraLayer>;
  private readonly seed: number;
  /**
   * Dropout masks are a function of (seed, dropoutStep, module), not of a stream that advances per call: a
   * recomputation (gradient checkpointing) sees the same masks, and a resumed run the same as the original. A
   * trainer sets it before each micro-batch (e.g. to the global micro-batch index).
   */
  dropoutStep = 0;
  private training_ = false;
  private enabled_ = true;
  private merged_ = false;
  private removed = false;
  /** DoRA: ‖W + s·BA‖ per module at merge time; the unmerge divides by the same factor (PEFT caches it too) */
  private readonly mergeNorms = new Map<string, Float32Array>();

  private constructor(config: LoraConfig, layers: Map<string, LoraLayer>, seed: number, adapterName: string) {
    this.config = config;
    this.layerMap = layers;
    this.seed = seed;
    this.adapterName = adapterName;
    this.targets = [...layers.keys()];
    let i = 0;
    for (const l of layers.values()) {
      const index = i++;
      // only with dropout: an adapter without an input hook takes the fused LoRA op (models/common.ts applyLinear),
      // which frees the base product and the up-projection inside the op instead of holding them to the end of the
      // layer (the same numbers; a vision layer of a 1-tile QLoRA step held 18 MB more without it)
      if (config.loraDropout > 0) l.adapter.input = (x) => this.dropout(x, index);
      (l.linear.adapters ??= []).push(l.adapter);
    }
  }

  /** Attaches freshly initialised adapters (PEFT's get_peft_model): A as configured, B zeros. */
  static create(model: AdaptableModel, config: LoraConfig | LoraConfigInput, o: LoraCreateOptions = {}): LoraModel {
    const cfg = loraConfig(config);
    const rng = new Rng(o.seed ?? 0);
    const linears = model.linears();
    const layers = new Map<string, LoraLayer>();
    const trainable = o.trainable ?? true;
    try {
      for (const name of resolveTargets(model, cfg)) {
        const lin = linears.get(name)!;
        const [N, K] = lin.w.shape;
        const { r, alpha, scale } = loraScaling(cfg, name);
        const backend = lin.w.backend;
        // kaiming_uniform_(a=sqrt(5)) on [r, K] (torch's nn.Linear default): gain sqrt(2 / (1 + 5)),
        // bound = gain * sqrt(3 / K) = 1 / sqrt(K)
        const bound = 1 / Math.sqrt(K);
        const a = cfg.initLoraWeights === 'gaussian'
          ? randn([r, K], { rng, std: 1 / r, backend })
          : rand([r, K], { rng, low: -bound, high: bound, backend });
        // init_lora_weights=false keeps nn.Linear's default for B too (an adapter that is not a no-op)
        const b = cfg.initLoraWeights === false
          ? rand([N, r], { rng, low: -1 / Math.sqrt(r), high: 1 / Math.sqrt(r), backend })
          : zeros([N, r], { backend });
        a.requireGrad(trainable);
        b.requireGrad(trainable);
        const adapter: LowRankAdapter = { a, b, scale };
        // PEFT's DoraLinearLayer.update_layer: m = ‖W + s·BA‖ per output feature
        if (cfg.useDora) adapter.magnitude = doraWeightNorm(lin.w, a, b, scale).requireGrad(trainable);
        layers.set(name, { module: name, linear: lin, adapter, r, alpha, scale });
      }
    } catch (e) {
      for (const l of layers.values()) for (const t of adapterTensors(l.adapter)) t.dispose();
      throw e;
    }
    return new LoraModel(cfg, layers, o.seed ?? 0, o.adapterName ?? 'default');
  }

  /**
   * Attaches adapters with given weights (module path -> A [r, in], B [out, r]; taken over, f32). Each module must
   * be a linear of the model with matching shapes; r comes from the weights and must agree with the config.
   */
  static fromWeights(model: AdaptableModel, config: LoraConfig, weights: Map<string, LoraWeights>, o: LoraCreateOptions = {}): LoraModel {
    const linears = model.linears();
    const layers = new Map<string, LoraLayer>();
    // keep the model's order
    const order = [...linears.keys()].filter((n) => weights.has(n));
    for (const n of weights.keys()) if (!linears.has(n)) throw new VlmkitError('E_ADAPTER', `LoRA weights for ${n}: the model has no such linear layer`);
    for (const name of order) {
      const lin = linears.get(name)!;
      const { a, b, m } = weights.get(name)!;
      const { r: rCfg, alpha } = loraScaling(config, name);
      if (!isLinear(lin)) throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name}: it is a convolution (weight [${lin.w.shape}]), vlmkit adapts linear layers only`);
      const [N, K] = lin.w.shape;
      const r = a.shape[0];
      if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== K || b.shape[0] !== N || b.shape[1] !== r)
        throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name}: lora_A [${a.shape}] and lora_B [${b.shape}] do not fit the layer's weight [${lin.w.shape}] (expected [r, ${K}] and [${N}, r])`);
      if (r !== rCfg)
        throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name} have rank ${r} but the config gives r = ${rCfg} for this module (r / rank_pattern)`);
      if (config.useDora && !m)
        throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name}: the config has use_dora (DoRA) but there is no lora_magnitude_vector for this module`);
      if (!config.useDora && m)
        throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name}: a DoRA lora_magnitude_vector is given but the config has no use_dora: true`);
      if (m && !(m.rank === 1 && m.shape[0] === N))
        throw new VlmkitError('E_ADAPTER', `LoRA weights for ${name}: lora_magnitude_vector [${m.shape}] does not fit the layer's weight [${lin.w.shape}] (expected [${N}], one value per output feature)`);
      const scale = config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
      const adapter: LowRankAdapter = { a, b, scale };
      if (m) adapter.magnitude = m;
      for (const t of adapterTensors(adapter)) t.requireGrad(o.trainable ?? false);
      layers.set(name, { module: name, linear: lin, adapter, r, alpha, scale });
    }
    return new LoraModel(config, layers, o.seed ?? 0, o.adapterName ?? 'default');
  }

  /** The adapted layers by module path. */
  layers(): ReadonlyMap<string, LoraLayer> {
    return this.layerMap;
  }

  /**
   * Every LoRA tensor by PEFT's in-memory name (base_model.model.<module>.lora_A.<adapter>.weight; DoRA's
   * magnitude base_model.model.<module>.lora_magnitude_vector.<adapter>.weight).
   */
  parameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const l of this.layerMap.values()) {
      out.set(`base_model.model.${l.module}.lora_A.${this.adapterName}.weight`, l.adapter.a);
      out.set(`base_model.model.${l.module}.lora_B.${this.adapterName}.weight`, l.adapter.b);
      if (l.adapter.magnitude) out.set(`base_model.model.${l.module}.lora_magnitude_vector.${this.adapterName}.weight`, l.adapter.magnitude);
    }
    return out;
  }

  /**
   * Every LoRA tensor by the name PEFT saves it under (adapter_model.safetensors: no adapter name; DoRA's magnitude
   * as base_model.model.<module>.lora_magnitude_vector, without ".weight", as PEFT's get_peft_model_state_dict).
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const l of this.layerMap.values()) {
      out.set(`base_model.model.${l.module}.lora_A.weight`, l.adapter.a);
      out.set(`base_model.model.${l.module}.lora_B.weight`, l.adapter.b);
      if (l.adapter.magnitude) out.set(`base_model.model.${l.module}.lora_magnitude_vector`, l.adapter.magnitude);
    }
    return out;
  }

  /** Sets every A and B (and DoRA magnitude) to require grad (or not). */
  requireGrad(on = true): this {
    for (const l of this.layerMap.values()) {
      dropNormCache(l.adapter);
      for (const t of adapterTensors(l.adapter)) t.requireGrad(on);
    }
    return this;
  }

  get training(): boolean {
    return this.training_;
  }
  /** Training mode: lora_dropout applies to the adapters' input. */
  train(on = true): this {
    this.training_ = on;
    return this;
  }
  /** Inference mode: no dropout. */
  eval(): this {
    return this.train(false);
  }

  get enabled(): boolean {
    return this.enabled_;
  }
  get merged(): boolean {
    return this.merged_;
  }

  /** Turns the adapters off (the base model alone) or back on. Disabling a merged adapter unmerges it first. */
  setEnabled(on: boolean): this {
    if (!on && this.merged_) this.unmerge();
    this.enabled_ = on;
    this.sync();
    return this;
  }

  /** Runs fn with the adapters disabled (PEFT's disable_adapter()). */
  withDisabled<T>(fn: () => T): T {
    const prev = this.enabled_;
    this.setEnabled(false);
    try {
      return fn();
    } finally {
      this.setEnabled(prev);
    }
  }

  private sync(): void {
    for (const l of this.layerMap.values()) l.adapter.enabled = this.enabled_ && !this.merged_;
  }

  private dropout(x: Tensor, layerIndex: number): Tensor {
    const p = this.config.loraDropout;
    if (!this.training_ || p === 0) return x;
    const m = dropoutMask(mixSeed(this.seed, this.dropoutStep, layerIndex), p, x.size);
    const mask = tensor(m, x.shape, { backend: x.backend, dtype: x.dtype });
    return mul(x, mask);
  }

  private layer(module: string): LoraLayer {
    const l = this.layerMap.get(module);
    if (!l) throw new VlmkitError('E_ADAPTER', `no LoRA adapter on module ${module}`);
    return l;
  }

  /** scaling · B·A of one module, [out · in] row-major, f32 (as PEFT's get_delta_weight). */
  deltaWeight(module: string): Float32Array {
    const l = this.layer(module);
    return noGrad(() => {
      const ba = matmul(l.adapter.b, l.adapter.a);
      try {
        const d = ba.toFloat32Array();
        const s = Math.fround(l.scale);
        for (let i = 0; i < d.length; i++) d[i] = Math.fround(d[i]! * s);
        return d;
      } finally {
        ba.dispose();
      }
    });
  }

  /**
   * The module's weight with the adapter merged in (W + scaling · B·A; DoRA: m/‖W + s·BA‖ ⊙ (W + s·BA)), in W's
   * dtype, as a fresh array (Float32Array for f32, Uint16Array of bf16/f16 bits); the model is not changed.
   */
  mergedWeight(module: string): Float32Array | Uint16Array {
    const l = this.layer(module);
    const w = plainWeight(l);
    const src = w.isContiguous() ? w.data : null;
    if (!src) throw new VlmkitError('E_ADAPTER', `the weight of ${module} is not contiguous; cannot merge into it`);
    const out = src.slice() as Float32Array | Uint16Array;
    if (this.merged_) return out;
    if (l.adapter.magnitude) doraMerge(w.dtype, out, this.deltaWeight(module), l.adapter.magnitude.toFloat32Array());
    else applyDelta(w.dtype, out, this.deltaWeight(module), +1);
    return out;
  }

  /**
   * Merges every adapter into its base weight, in place (W += scaling · B·A in W's dtype; DoRA: W ← m/‖W + s·BA‖ ⊙
   * (W + s·BA)); forward uses W alone.
   */
  merge(): void {
    this.assertLive();
    if (this.merged_) return;
    for (const l of this.layerMap.values()) plainWeight(l);
    for (const l of this.layerMap.values()) {
      // a frozen DoRA adapter's cached norms are of this W; the unmerge gives it back only to rounding
      dropNormCache(l.adapter);
      const w = plainWeight(l);
      if (!w.isContiguous()) throw new VlmkitError('E_ADAPTER', `the weight of ${l.module} is not contiguous; cannot merge into it`);
      const data = w.data as Float32Array | Uint16Array;
      if (l.adapter.magnitude) this.mergeNorms.set(l.module, doraMerge(w.dtype, data, this.deltaWeight(l.module), l.adapter.magnitude.toFloat32Array()));
      else applyDelta(w.dtype, data, this.deltaWeight(l.module), +1);
    }
    this.merged_ = true;
    this.sync();
  }

  /** Takes the merged adapters out of the base weights again (PEFT's unmerge: W -= scaling · B·A; DoRA: W / factor − s·BA). */
  unmerge(): void {
    this.assertLive();
    if (!this.merged_) return;
    for (const l of this.layerMap.values()) {
      const w = plainWeight(l);
      const data = w.data as Float32Array | Uint16Array;
      const norms = this.mergeNorms.get(l.module);
      if (l.adapter.magnitude && norms) doraUnmerge(w.dtype, data, this.deltaWeight(l.module), l.adapter.magnitude.toFloat32Array(), norms);
      else applyDelta(w.dtype, data, this.deltaWeight(l.module), -1);
    }
    this.mergeNorms.clear();
    this.merged_ = false;
    this.sync();
  }

  /** Detaches the adapters from the model (unmerging first if merged) and releases A, B and their gradients. */
  remove(): void {
    if (this.removed) return;
    if (this.merged_) this.unmerge();
    for (const l of this.layerMap.values()) {
      if (l.linear.adapters) {
        l.linear.adapters = l.linear.adapters.filter((a) => a !== l.adapter);
        if (!l.linear.adapters.length) delete l.linear.adapters;
      }
      dropNormCache(l.adapter);
      for (const t of adapterTensors(l.adapter)) {
        t.grad?.dispose();
        t.grad = null;
        t.dispose();
      }
    }
    this.removed = true;
  }

  /** Same as remove(). */
  dispose(): void {
    this.remove();
  }

  private assertLive(): void {
    if (this.removed) throw new VlmkitError('E_ADAPTER', 'this LoRA adapter was removed from its model');
  }
}

/** The layer's base weight as a Tensor; a block-quantized base cannot take a merge. */
function plainWeight(l: LoraLayer): Tensor {
  const w = l.linear.w;
  if (w instanceof QuantizedWeight)
    throw new VlmkitError('E_ADAPTER', `cannot merge the LoRA adapter of ${l.module} into its ${w.format} base weight; merge onto the f32/bf16 model instead (the adapter file loads onto it)`);
  return w;
}

/**
 * An inverted-dropout mask of n values: 0 with probability p (resolved to 1/65536), else 1/(1-p). mulberry32
 * inlined, two 16-bit draws per 32-bit output (about 3x faster than a float per element: a 17-tile SmolVLM
 * sample feeds ~13M values to each vision q/k/v adapter).
 */
function dropoutMask(seed: number, p: number, n: number): Float32Array {
  const m = new Float32Array(n);
  const thr = Math.round(p * 65536), keep = 1 / (1 - p);
  let s = seed >>> 0;
  for (let i = 0; i < n; i += 2) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    m[i] = (t & 0xffff) < thr ? 0 : keep;
    if (i + 1 < n) m[i + 1] = t >>> 16 < thr ? 0 : keep;
  }
  return m;
}

/** A 32-bit seed from three integers (murmur3-style finalizer over a running hash). */
function mixSeed(a: number, b: number, c: number): number {
  let h = 0x9e3779b9;
  for (const v of [a, b, c]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    // numbers beyond 32 bits (large step counts) contribute their high part too
    if (v > 0xffffffff) h = Math.imul(h ^ Math.floor(v / 4294967296), 0x27d4eb2f);
  }
  return h >>> 0;
}

/** The trained tensors of one adapter: A, B and DoRA's magnitude. */
function adapterTensors(ad: LowRankAdapter): Tensor[] {
  return ad.magnitude ? [ad.a, ad.b, ad.magnitude] : [ad.a, ad.b];
}

/** Releases a DoRA adapter's cached weight norm (its tensors are about to change or go). */
function dropNormCache(ad: LowRankAdapter): void {
  ad.normCache?.dispose();
  ad.normCache = null;
}

/** Float values of a weight's data in f32 (bf16/f16 widened exactly). */
function floatsOf(dtype: string, w: Float32Array | Uint16Array): Float32Array {
  if (dtype === 'f32') return w as Float32Array;
  if (dtype !== 'bf16' && dtype !== 'f16') throw new VlmkitError('E_ADAPTER', `cannot merge a LoRA adapter into a ${dtype} weight (f32, bf16 or f16 only)`);
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = dtype === 'bf16' ? bf16ToF32(w[i]!) : f16ToF32(w[i]!);
  return out;
}

/** Writes f32 values into a weight's data, rounding once to bf16/f16 (torch's .to(orig_dtype)). */
function storeFloats(dtype: string, w: Float32Array | Uint16Array, v: Float32Array): void {
  if (dtype === 'f32') (w as Float32Array).set(v);
  else for (let i = 0; i < v.length; i++) w[i] = dtype === 'bf16' ? f32ToBf16(v[i]!) : f32ToF16(v[i]!);
}

/**
 * DoRA merge in place (PEFT's DoraLinearVariant.merge_safe): V = W + delta in f32, W ← (m / ‖V‖) ⊙ V per output
 * row, rounded once to W's dtype. Returns the row norms ‖V‖, which the unmerge needs.
 */
function doraMerge(dtype: string, w: Float32Array | Uint16Array, delta: Float32Array, m: Float32Array): Float32Array {
  const N = m.length, K = w.length / N;
  if (!Number.isInteger(K) || delta.length !== w.length) throw new Error(`vlmkit internal: DoRA merge of ${delta.length} values and ${N} magnitudes into a weight of ${w.length}`);
  const v = floatsOf(dtype, w).slice();
  const norms = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let k = i * K; k < (i + 1) * K; k++) {
      v[k] = Math.fround(v[k]! + delta[k]!);
      ss += v[k]! * v[k]!;
    }
    norms[i] = Math.sqrt(ss);
    const f = Math.fround(m[i]! / norms[i]!);
    for (let k = i * K; k < (i + 1) * K; k++) v[k] = Math.fround(f * v[k]!);
  }
  storeFloats(dtype, w, v);
  return norms;
}

/** DoRA unmerge in place (PEFT's DoraLinearVariant.unmerge): W ← W / (m / norm) − delta, with the merge's norms. */
function doraUnmerge(dtype: string, w: Float32Array | Uint16Array, delta: Float32Array, m: Float32Array, norms: Float32Array): void {
  const N = m.length, K = w.length / N;
  const v = floatsOf(dtype, w).slice();
  for (let i = 0; i < N; i++) {
    const f = Math.fround(m[i]! / norms[i]!);
    for (let k = i * K; k < (i + 1) * K; k++) v[k] = Math.fround(Math.fround(v[k]! / f) - delta[k]!);
  }
  storeFloats(dtype, w, v);
}

/** w (+/-)= delta elementwise in w's dtype: f32 in f32; bf16/f16 as torch's in-place add (computed in f32, rounded). */
function applyDelta(dtype: string, w: Float32Array | Uint16Array, delta: Float32Array, sign: 1 | -1): void {
  if (w.length !== delta.length) throw new Error(`vlmkit internal: merge of ${delta.length} values into a weight of ${w.length}`);
  if (dtype === 'f32') {
    const f = w as Float32Array;
    for (let i = 0; i < f.length; i++) f[i] = f[i]! + sign * delta[i]!;
  } else if (dtype === 'bf16') {
    const h = w as Uint16Array;
    // merge: W += delta (f32 promoted, rounded once); unmerge: W -= delta.to(bf16)
    if (sign > 0) for (let i = 0; i < h.length; i++) h[i] = f32ToBf16(bf16ToF32(h[i]!) + delta[i]!);
    else for (let i = 0; i < h.length; i++) h[i] = f32ToBf16(bf16ToF32(h[i]!) - bf16ToF32(f32ToBf16(delta[i]!)));
  } else if (dtype === 'f16') {
    const h = w as Uint16Array;
    if (sign > 0) for (let i = 0; i < h.length; i++) h[i] = f32ToF16(f16ToF32(h[i]!) + delta[i]!);
    else for (let i = 0; i < h.length; i++) h[i] = f32ToF16(f16ToF32(h[i]!) - f16ToF32(f32ToF16(delta[i]!)));
  } else throw new VlmkitError('E_ADAPTER', `cannot merge a LoRA adapter into a ${dtype} weight (f32, bf16 or f16 only)`);
}
