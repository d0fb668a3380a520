// PEFT adapter directories in and out, and merged checkpoints:
//   adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "target_modules", "lora_dropout", ...}
//   adapter_model.safetensors  base_model.model.<module path>.lora_A.weight [r, in] / .lora_B.weight [out, r]
//                              (DoRA, "use_dora": true: also .lora_magnitude_vector [out], no ".weight", as PEFT)
// as peft's save_pretrained writes them (the adapter name, "default", is not in the file), so that
// PeftModel.from_pretrained loads what vlmkit saves and vlmkit loads what PEFT saves. A merged checkpoint is a
// complete transformers model directory: the base's config and processor files copied, model.safetensors with
// W + scaling · B·A under the model's own tensor names.
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { QuantizedWeight, type Tensor, f16ToF32, f32ToBf16, f32ToF16, fromRaw } from '../engine/index.js';
import { FileFormatError, VlmkitError } from '../errors.js';
import { type Json, isModelSideFile, readJsonFile } from '../io/model-dir.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { type SafetensorsEntry, type WritableDType, writeDirAtomic, writeSafetensors, writeTextFileAtomic } from '../io/safetensors-write.js';
import { ALL_LINEAR, type AdaptableModel, type LoraConfig, LoraModel, type LoraWeights, loraConfig } from './lora.js';
import { expandHome } from '../io/paths.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

const adapterError = (msg: string) => new VlmkitError('E_ADAPTER', msg);

function strList(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
}

function numRecord(v: unknown, what: string, path: string): Record<string, number> {
  if (v == null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new FileFormatError(`${path}: "${what}" must be an object of numbers`);
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(v as Json)) {
    if (typeof x !== 'number') throw new FileFormatError(`${path}: "${what}"["${k}"] must be a number`);
    out[k] = x;
  }
  return out;
}

/** A LoRA config from a parsed adapter_config.json; features vlmkit cannot reproduce are refused by name. */
export function loraConfigFromJson(j: Json, path = ADAPTER_CONFIG): LoraConfig {
  const type = j.peft_type;
  if (type !== 'LORA')
    throw adapterError(`${path}: peft_type is ${JSON.stringify(type)}; vlmkit loads LoRA adapters only (peft_type "LORA")`);
  const unsupported = (what: string, fix: string) => adapterError(`${path}: ${what} is not supported by vlmkit; ${fix}`);
  if (j.fan_in_fan_out === true) throw unsupported('fan_in_fan_out (GPT-2 style Conv1D weights)', 'use an adapter made for this Llama-style model');
  if (j.bias !== undefined && j.bias !== null && j.bias !== 'none') throw unsupported(`bias "${String(j.bias)}"`, 'train the adapter with bias="none"');
  if (j.lora_bias === true) throw unsupported('lora_bias', 'train the adapter with lora_bias=False');
  if (strList(j.modules_to_save)?.length) throw unsupported(`modules_to_save ${JSON.stringify(j.modules_to_save)}`, 'merge the adapter with PEFT and load the merged model instead');
  if (j.trainable_token_indices != null) throw unsupported('trainable_token_indices', 'merge the adapter with PEFT and load the merged model instead');
  if (j.layer_replication != null) throw unsupported('layer_replication', 'merge the adapter with PEFT and load the merged model instead');
  if (j.target_parameters != null && !(Array.isArray(j.target_parameters) && j.target_parameters.length === 0))
    throw unsupported('target_parameters', 'use an adapter that targets modules');
  const init = j.init_lora_weights;
  const tm = j.target_modules;
  const targetModules = typeof tm === 'string' ? tm : strList(tm);
  if (targetModules === null) throw new FileFormatError(`${path}: "target_modules" must be a list of module names or a string`);
  const ex = j.exclude_modules;
  const excludeModules = ex == null ? null : typeof ex === 'string' ? ex : strList(ex);
  const ltt = j.layers_to_transform;
  const lp = j.layers_pattern;
  const num = (k: string, dflt: number) => {
    const v = j[k];
    if (v == null) return dflt;
    if (typeof v !== 'number') throw new FileFormatError(`${path}: "${k}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  return loraConfig({
    r: num('r', 8),
    loraAlpha: num('lora_alpha', 8),
    loraDropout: num('lora_dropout', 0),
    targetModules,
    excludeModules,
    useRslora: j.use_rslora === true,
    useDora: j.use_dora === true,
    // loaded weights replace any init; keep the recorded one for re-saving when it is one we know
    initLoraWeights: init === 'gaussian' ? 'gaussian' : init === false ? false : true,
    rankPattern: numRecord(j.rank_pattern, 'rank_pattern', path),
    alphaPattern: numRecord(j.alpha_pattern, 'alpha_pattern', path),
    layersToTransform: typeof ltt === 'number' ? ltt : Array.isArray(ltt) ? (ltt as number[]) : null,
    layersPattern: typeof lp === 'string' ? lp : strList(lp),
    taskType: typeof j.task_type === 'string' ? j.task_type : null,
    baseModelNameOrPath: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null,
  });
}

/**
 * adapter_config.json for a config, with the keys PEFT has written since 0.10 (older and newer PEFT versions load
 * it). `targets`: the resolved module list, saved in place of "all-linear" as PEFT does.
 */
export function loraConfigToJson(cfg: LoraConfig, targets?: readonly string[]): Json {
  const tm = typeof cfg.targetModules === 'string'
    ? (cfg.targetModules.toLowerCase() === ALL_LINEAR && targets ? [...targets] : cfg.targetModules)
    : [...cfg.targetModules];
  const j: Json = {
    alpha_pattern: { ...cfg.alphaPattern },
    auto_mapping: null,
    base_model_name_or_path: cfg.baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: cfg.initLoraWeights,
    layers_pattern: cfg.layersPattern == null ? null : typeof cfg.layersPattern === 'string' ? cfg.layersPattern : [...cfg.layersPattern],
    layers_to_transform: cfg.layersToTransform == null ? null : typeof cfg.layersToTransform === 'number' ? cfg.layersToTransform : [...cfg.layersToTransform],
    loftq_config: {},
    lora_alpha: cfg.loraAlpha,
    lora_dropout: cfg.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: cfg.r,
    rank_pattern: { ...cfg.rankPattern },
    revision: null,
    target_modules: tm,
    task_type: cfg.taskType,
    use_dora: cfg.useDora,
    use_rslora: cfg.useRslora,
  };
  if (cfg.excludeModules != null) j.exclude_modules = typeof cfg.excludeModules === 'string' ? cfg.excludeModules : [...cfg.excludeModules];
  return j;
}

function assertAdapterDir(dir: string): void {
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw adapterError(`adapter directory ${dir} does not exist; give the folder holding ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}`);
  if (!existsSync(join(dir, ADAPTER_CONFIG)))
    throw adapterError(`${dir} has no ${ADAPTER_CONFIG}; it is not a PEFT adapter directory (it should hold ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  if (!existsSync(join(dir, ADAPTER_WEIGHTS))) {
    const bin = existsSync(join(dir, 'adapter_model.bin'));
    throw adapterError(`${dir} has no ${ADAPTER_WEIGHTS}` + (bin
      ? ' (only the PyTorch pickle adapter_model.bin, which vlmkit does not read; re-save it with PEFT, safe_serialization=True)'
      : '; copy the adapter weights too'));
  }
}

/** The LoRA config of an adapter directory. */
export function readAdapterConfig(dir: string): LoraConfig {
  assertAdapterDir(dir);
  const path = join(dir, ADAPTER_CONFIG);
  return loraConfigFromJson(readJsonFile(path, 'adapter config'), path);
}

const KEY = /^base_model\.model\.(.+)\.lora_(A|B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;
/** DoRA's magnitude as PEFT saves it (no ".weight"); an adapter name or ".weight" after it is tolerated */
const MAGNITUDE_KEY = /^base_model\.model\.(.+)\.lora_magnitude_vector(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$/;

export interface LoadAdapterOptions {
  /** mark A and B trainable (continue training); default false (inference) */
  trainable?: boolean;
  /** PEFT adapter name for parameter names (default "default") */
  adapterName?: string;
  /** seed of the dropout masks */
  seed?: number;
}

/**
 * Loads a PEFT LoRA adapter directory onto `model` (its linears gain the adapters). Every tensor of the file
 * must belong to a linear of the model; otherwise a VlmkitError names the directory, the first unmatched key and
 * the fix. The adapter is in eval mode (no dropout) and enabled.
 */
export function loadAdapter(model: AdaptableModel, dir: string, o: LoadAdapterOptions = {}): LoraModel {
  dir = expandHome(dir);
  const cfg = readAdapterConfig(dir);
  const file = SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS));
  const linears = model.linears();
  const weights = new Map<string, Partial<LoraWeights>>();
  const made: Tensor[] = [];
  try {
    const resolve = (m: string): string | null => {
      for (const c of [m, `model.${m}`, m.startsWith('model.') ? m.slice('model.'.length) : null])
        if (c !== null && linears.has(c)) return c;
      return null;
    };
    for (const key of file.names()) {
      const km = KEY.exec(key) ?? MAGNITUDE_KEY.exec(key);
      if (!km) {
        throw adapterError(`adapter ${dir}: tensor "${key}" in ${ADAPTER_WEIGHTS} is not a LoRA weight vlmkit knows ` +
          '(expected base_model.model.<module>.lora_A.weight / lora_B.weight, and lora_magnitude_vector with DoRA; embedding adapters and modules_to_save are not supported)');
      }
      const part = km[2] === 'A' || km[2] === 'B' ? km[2] : 'm';
      if (part === 'm' && !cfg.useDora)
        throw adapterError(`adapter ${dir}: "${key}" is a DoRA magnitude but ${ADAPTER_CONFIG} does not say "use_dora": true; set it there (the adapter was trained with DoRA) or re-save the adapter`);
      const module = resolve(km[1]!);
      if (module === null && 'parameters' in model && typeof model.parameters === 'function') {
        const names = (model.parameters as () => Map<string, unknown>)();
        const hit = [km[1]!, `model.${km[1]!}`].find((m) => names.has(`${m}.weight`));
        if (hit) throw adapterError(`adapter ${dir}: "${key}" adapts ${hit}, which is not a linear layer vlmkit can adapt (lm_head, embeddings and convolutions are not supported); merge the adapter with PEFT (merge_and_unload) and load the merged model instead`);
      }
      if (module === null) {
        const example = [...linears.keys()].find((n) => n.endsWith('q_proj')) ?? [...linears.keys()][0] ?? '(none)';
        const base = cfg.baseModelNameOrPath ? `the model it was made for, ${cfg.baseModelNameOrPath}` : 'the base model it was trained on';
        throw adapterError(`adapter ${dir} does not fit this model: "${key}" targets module "${km[1]}", which this model does not have ` +
          `(its linear layers are named like "${example}"); load the adapter on ${base}`);
      }
      const lin = linears.get(module)!;
      const t = fromRaw(file.read(key), { dtype: 'f32', backend: lin.w.backend });
      made.push(t);
      if (part === 'm' && !(t.rank === 1 && t.shape[0] === lin.w.shape[0]))
        throw adapterError(`adapter ${dir}: "${key}" in ${ADAPTER_WEIGHTS} has shape [${t.shape}] but ${module} has ${lin.w.shape[0]} output features (expected [${lin.w.shape[0]}]); the file is damaged or made for another model, re-save the adapter`);
      const w = weights.get(module) ?? {};
      if (part === 'A') w.a = t;
      else if (part === 'B') w.b = t;
      else w.m = t;
      weights.set(module, w);
    }
    const full = new Map<string, LoraWeights>();
    for (const [m, w] of weights) {
      if (!w.a || !w.b) throw adapterError(`adapter ${dir}: module ${m} has lora_${w.a ? 'A' : 'B'} but no lora_${w.a ? 'B' : 'A'} in ${ADAPTER_WEIGHTS}; the file is incomplete, re-save the adapter`);
      if (cfg.useDora && !w.m)
        throw adapterError(`adapter ${dir}: ${ADAPTER_CONFIG} says "use_dora": true but ${ADAPTER_WEIGHTS} has no base_model.model.${m}.lora_magnitude_vector; the file is incomplete, re-save the adapter`);
      full.set(m, w.m ? { a: w.a, b: w.b, m: w.m } : { a: w.a, b: w.b });
    }
    if (!full.size) throw adapterError(`adapter ${dir}: ${ADAPTER_WEIGHTS} holds no LoRA weights`);
    try {
      return LoraModel.fromWeights(model, cfg, full, { trainable: o.trainable ?? false, adapterName: o.adapterName, seed: o.seed });
    } catch (e) {
      if (e instanceof VlmkitError) throw adapterError(`adapter ${dir}: ${e.message}`);
      throw e;
    }
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  } finally {
    file.close();
  }
}

const ST_DTYPE: Record<string, WritableDType> = { f32: 'F32', f64: 'F64', bf16: 'BF16', f16: 'F16', i32: 'I32', i64: 'I64', u8: 'U8' };

/** The bytes of a tensor, converted to `dtype` ('F32' | 'BF16' | 'F16') when it is a float tensor of another one. */
export function tensorBytes(t: Tensor, dtype?: WritableDType): { dtype: WritableDType; data: ArrayBufferView } {
  const own = ST_DTYPE[t.dtype]!;
  const want = dtype ?? own;
  if (want === own) {
    const c = t.isContiguous() ? t : t.backend.contiguous(t);
    const data = (c.data as ArrayBufferView & { slice(): ArrayBufferView }).slice();
    if (c !== t) c.dispose();
    return { dtype: own, data };
  }
  return { dtype: want, data: convertFloats(t.toFloat32Array(), want, t.dtype) };
}

function convertFloats(f: Float32Array, to: WritableDType, from: string): ArrayBufferView {
  if (to === 'F32') return f;
  if (to === 'BF16') {
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = f32ToBf16(f[i]!);
    return h;
  }
  if (to === 'F16') {
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = f32ToF16(f[i]!);
    return h;
  }
  throw new VlmkitError('E_SAFETENSORS_WRITE', `cannot convert a ${from} tensor to ${to}`);
}

export interface SaveAdapterOptions {
  /** recorded as base_model_name_or_path (default: the config's) */
  baseModelNameOrPath?: string | null;
  /** dtype of the saved A and B (default F32, as trained) */
  dtype?: 'F32' | 'BF16' | 'F16';
}

/**
 * Saves the adapter as PEFT does: adapter_config.json and adapter_model.safetensors (keys without the adapter
 * name, metadata {"format": "pt"}). A new directory appears complete or not at all; into an existing directory
 * each file is replaced atomically, the weights first and the config last.
 */
export function saveAdapter(lora: LoraModel, dir: string, o: SaveAdapterOptions = {}): void {
  const cfg: LoraConfig = { ...lora.config, baseModelNameOrPath: o.baseModelNameOrPath !== undefined ? o.baseModelNameOrPath : lora.config.baseModelNameOrPath };
  const json = JSON.stringify(loraConfigToJson(cfg, lora.targets), null, 2) + '\n';
  const entries: SafetensorsEntry[] = [...lora.stateDict()].map(([name, t]) => {
    const b = tensorBytes(t, o.dtype ?? 'F32');
    return { name, dtype: b.dtype, shape: t.shape, data: b.data };
  });
  const fill = (d: string) => {
    writeSafetensors(join(d, ADAPTER_WEIGHTS), entries, { format: 'pt' });
    writeTextFileAtomic(join(d, ADAPTER_CONFIG), json);
  };
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new VlmkitError('E_WRITE', `cannot save the adapter to ${dir}: it is a file; give a directory path`);
    fill(dir);
  } else {
    writeDirAtomic(dir, fill);
  }
}

/** Files of a model directory that are not weights (config, tokenizer, processor, chat template, ...). */
export interface SaveMergedOptions {
  /** the base model's directory: its config.json and other non-weight files are copied */
  sourceDir: string;
  /** where to write the merged model (created; must not exist unless overwrite) */
  outDir: string;
  /** replace an existing outDir (default false) */
  overwrite?: boolean;
  /**
   * dtype of the written float tensors: 'source' (default) keeps the dtype each tensor has in the source checkpoint
   * (e.g. bf16 for a bf16 Hub checkpoint loaded as f32), 'model' the dtype in memory, or one dtype for all.
   */
  dtype?: 'source' | 'model' | 'F32' | 'BF16' | 'F16';
}

/**
 * Writes a full checkpoint directory with the adapter merged in (W + scaling · B·A for every adapted linear),
 * without changing the model in memory: config.json (and the tokenizer / processor files) copied from
 * sourceDir, model.safetensors with the model's transformers tensor names, written atomically. The directory
 * appears complete or not at all.
 */
export function saveMergedCheckpoint(model: { parameters(): Map<string, Tensor> }, lora: LoraModel | null, o: SaveMergedOptions): void {
  if (!existsSync(join(o.sourceDir, 'config.json')))
    throw new VlmkitError('E_MODEL_DIR', `${o.sourceDir} has no config.json; give the base model's directory as the source of the merged checkpoint`);
  if (existsSync(o.outDir) && !o.overwrite && readdirSync(o.outDir).length > 0)
    throw new VlmkitError('E_WRITE', `${o.outDir} already exists and is not empty; choose a new directory or pass overwrite`);
  const params = model.parameters();
  const byWeight = new Map<Tensor, string>();
  if (lora) for (const l of lora.layers().values()) {
    if (l.linear.w instanceof QuantizedWeight)
      throw new VlmkitError('E_ADAPTER', `cannot write a merged checkpoint: ${l.module} has a ${l.linear.w.format} base weight; load the model in f32/bf16, load the adapter onto it, and merge that`);
    byWeight.set(l.linear.w, l.module);
  }
  // source dtypes per tensor name
  const sourceDtype = new Map<string, string>();
  const mode = o.dtype ?? 'source';
  if (mode === 'source') {
    for (const f of readdirSync(o.sourceDir).filter((n) => n.endsWith('.safetensors'))) {
      const sf = SafetensorsFile.open(join(o.sourceDir, f));
      try {
        for (const n of sf.names()) sourceDtype.set(n, sf.info(n).dtype);
      } finally {
        sf.close();
      }
    }
  }
  const entries: SafetensorsEntry[] = [];
  for (const [name, t] of params) {
    const module = byWeight.get(t) ?? null;
    let want: WritableDType = ST_DTYPE[t.dtype]!;
    if (t.isFloat) {
      if (mode === 'source') {
        const sd = sourceDtype.get(name) ?? sourceDtype.get(name.replace(/^model\./, ''));
        if (sd === 'F32' || sd === 'BF16' || sd === 'F16') want = sd;
      } else if (mode !== 'model') want = mode;
    }
    entries.push({
      name,
      dtype: want,
      shape: t.shape,
      data: () => {
        if (!module || !lora || lora.merged) return tensorBytes(t, want).data;
        const merged = lora.mergedWeight(module);
        if (want === ST_DTYPE[t.dtype]) return merged;
        const f = t.dtype === 'f32' ? (merged as Float32Array) : widen(merged as Uint16Array, t.dtype);
        return convertFloats(f, want, t.dtype);
      },
    });
  }
  writeDirAtomic(o.outDir, (tmp) => {
    for (const f of readdirSync(o.sourceDir)) {
      const p = join(o.sourceDir, f);
      if (isModelSideFile(f) && statSync(p).isFile()) copyFileSync(p, join(tmp, f));
    }
    writeSafetensors(join(tmp, 'model.safetensors'), entries, { format: 'pt' });
  });
}

function widen(h: Uint16Array, dtype: string): Float32Array {
  const out = new Float32Array(h.length);
  if (dtype === 'bf16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
  } else for (let i = 0; i < h.length; i++) out[i] = f16ToF32(h[i]!);
  return out;
}
