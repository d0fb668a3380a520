// The explicit map from Hugging Face tensor names to our modules, and the loader that fills it from a checkpoint.
// transformers (4.x and 5.x) saves Idefics3ForConditionalGeneration / SmolVLMForConditionalGeneration as
//   model.vision_model.*, model.connector.*, model.text_model.*, lm_head.weight
// and a bare Idefics3Model as vision_model.*, connector.*, text_model.* (no lm_head): both are read. lm_head is
// tied to embed_tokens when the config says so or when the checkpoint has no lm_head.weight.
import type { Backend } from '../../engine/backend/backend.js';
import type { DType } from '../../engine/dtype.js';
import { QuantizedWeight, type Tensor, fromRaw } from '../../engine/index.js';
import { join } from 'node:path';
import { FileFormatError } from '../../errors.js';
import type { Checkpoint } from '../../io/model-dir.js';
import { type QuantEntry, quantEntry } from '../quantized-file.js';
import type { Linear } from '../common.js';

export type { Linear } from '../common.js';
import type { Idefics3Config } from './config.js';
import type { Norm, VisionWeights } from '../siglip/weights.js';

export type { Norm, VisionLayerWeights, VisionWeights } from '../siglip/weights.js';

/**
 * How a tensor is stored after loading. 'matrix': weights of a linear (and the patch conv [D, C, p, p]);
 * kept in their stored dtype (f32/bf16/f16) unless dtype 'f32' is asked. 'table': the token embedding, read by
 * row; same rule (a tied lm_head reads it as a matrix). 'vector': norms, biases, position embeddings: always f32.
 */
export type WeightKind = 'matrix' | 'table' | 'vector';

export interface WeightSpec {
  /** our module path, e.g. "text.layers.3.q.w" */
  key: string;
  /** the HF name inside the model (without the "model." prefix a ForConditionalGeneration adds) */
  hf: string;
  /** expected shape as stored */
  shape: number[];
  kind: WeightKind;
}

export interface ConnectorWeights {
  /** [text hidden, vision hidden · scale²], no bias (block-quantized in a quantized model) */
  proj: Tensor | QuantizedWeight;
  /** the same weight as a Linear (listed by linears(), where adapters attach) */
  linear: Linear;
}
export interface TextLayerWeights {
  inputNorm: Tensor;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  postNorm: Tensor;
  gate: Linear;
  up: Linear;
  down: Linear;
}
export interface TextWeights {
  /** the token embeddings: Q8_0 under an NF4 base (Idefics3Model.quantize), else a tensor */
  embed: Tensor | QuantizedWeight;
  layers: TextLayerWeights[];
  norm: Tensor;
  /** the same weight as embed when tied */
  lmHead: Tensor | QuantizedWeight;
  tied: boolean;
}
export interface Idefics3Weights {
  vision: VisionWeights;
  connector: ConnectorWeights;
  text: TextWeights;
}

/** Every tensor of the model (lm_head last, marked by key "lmHead"), with its HF name and expected shape. */
export function idefics3WeightSpecs(cfg: Idefics3Config): WeightSpec[] {
  const v = cfg.vision, t = cfg.text;
  const out: WeightSpec[] = [];
  const D = v.hiddenSize, p = v.patchSize, C = v.numChannels;
  out.push({ key: 'vision.patch.w', hf: 'vision_model.embeddings.patch_embedding.weight', shape: [D, C, p, p], kind: 'matrix' });
  out.push({ key: 'vision.patch.b', hf: 'vision_model.embeddings.patch_embedding.bias', shape: [D], kind: 'vector' });
  out.push({ key: 'vision.posEmbed', hf: 'vision_model.embeddings.position_embedding.weight', shape: [v.patchesPerSide ** 2, D], kind: 'vector' });
  for (let i = 0; i < v.numHiddenLayers; i++) {
    const h = `vision_model.encoder.layers.${i}`, k = `vision.layers.${i}`;
    const lin = (name: string, hfName: string, n: number, kk: number) => {
      out.push({ key: `${k}.${name}.w`, hf: `${h}.${hfName}.weight`, shape: [n, kk], kind: 'matrix' });
      out.push({ key: `${k}.${name}.b`, hf: `${h}.${hfName}.bias`, shape: [n], kind: 'vector' });
    };
    const norm = (name: string, hfName: string) => {
      out.push({ key: `${k}.${name}.w`, hf: `${h}.${hfName}.weight`, shape: [D], kind: 'vector' });
      out.push({ key: `${k}.${name}.b`, hf: `${h}.${hfName}.bias`, shape: [D], kind: 'vector' });
    };
    norm('ln1', 'layer_norm1');
    lin('q', 'self_attn.q_proj', D, D);
    lin('k', 'self_attn.k_proj', D, D);
    lin('v', 'self_attn.v_proj', D, D);
    lin('out', 'self_attn.out_proj', D, D);
    norm('ln2', 'layer_norm2');
    lin('fc1', 'mlp.fc1', v.intermediateSize, D);
    lin('fc2', 'mlp.fc2', D, v.intermediateSize);
  }
  out.push({ key: 'vision.post.w', hf: 'vision_model.post_layernorm.weight', shape: [D], kind: 'vector' });
  out.push({ key: 'vision.post.b', hf: 'vision_model.post_layernorm.bias', shape: [D], kind: 'vector' });
  const H = t.hiddenSize, r2 = cfg.scaleFactor * cfg.scaleFactor;
  out.push({ key: 'connector.proj', hf: 'connector.modality_projection.proj.weight', shape: [H, D * r2], kind: 'matrix' });
  out.push({ key: 'text.embed', hf: 'text_model.embed_tokens.weight', shape: [t.vocabSize, H], kind: 'table' });
  const qd = t.numAttentionHeads * t.headDim, kvd = t.numKeyValueHeads * t.headDim;
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const h = `text_model.layers.${i}`, k = `text.layers.${i}`;
    const lin = (name: string, hfName: string, n: number, kk: number, bias: boolean) => {
      out.push({ key: `${k}.${name}.w`, hf: `${h}.${hfName}.weight`, shape: [n, kk], kind: 'matrix' });
      if (bias) out.push({ key: `${k}.${name}.b`, hf: `${h}.${hfName}.bias`, shape: [n], kind: 'vector' });
    };
    out.push({ key: `${k}.inputNorm`, hf: `${h}.input_layernorm.weight`, shape: [H], kind: 'vector' });
    lin('q', 'self_attn.q_proj', qd, H, t.attentionBias);
    lin('k', 'self_attn.k_proj', kvd, H, t.attentionBias);
    lin('v', 'self_attn.v_proj', kvd, H, t.attentionBias);
    lin('o', 'self_attn.o_proj', H, qd, t.attentionBias);
    out.push({ key: `${k}.postNorm`, hf: `${h}.post_attention_layernorm.weight`, shape: [H], kind: 'vector' });
    lin('gate', 'mlp.gate_proj', t.intermediateSize, H, t.mlpBias);
    lin('up', 'mlp.up_proj', t.intermediateSize, H, t.mlpBias);
    lin('down', 'mlp.down_proj', H, t.intermediateSize, t.mlpBias);
  }
  out.push({ key: 'text.norm', hf: 'text_model.norm.weight', shape: [H], kind: 'vector' });
  out.push({ key: 'lmHead', hf: 'lm_head.weight', shape: [t.vocabSize, H], kind: 'matrix' });
  return out;
}

/** The names a tensor may carry in a checkpoint, in the order they are tried. */
export function checkpointNames(spec: WeightSpec): string[] {
  if (spec.key === 'lmHead') return ['lm_head.weight', 'model.lm_head.weight'];
  return [`model.${spec.hf}`, spec.hf];
}

/** The canonical (transformers in-memory) name of a tensor: "model.<hf>" or "lm_head.weight". */
export function canonicalName(spec: WeightSpec): string {
  return spec.key === 'lmHead' ? 'lm_head.weight' : `model.${spec.hf}`;
}

export interface LoadWeightsOptions {
  /** 'f32' converts every tensor to f32 (training, parity); default keeps matrices in their stored dtype */
  dtype?: 'f32';
  backend?: Backend;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** How many layers the checkpoint holds under `prefix` (e.g. "text_model.layers."): its highest index + 1. */
function layersHeld(ckpt: Checkpoint, prefix: string): number {
  let n = 0;
  for (const name of ckpt.names()) {
    const rest = name.startsWith(`model.${prefix}`) ? name.slice(6 + prefix.length) : name.startsWith(prefix) ? name.slice(prefix.length) : null;
    const m = rest === null ? null : /^(\d+)\./.exec(rest);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/** Which config.json fields a tensor's expected shape comes from (for the error when it does not match). */
function shapeSource(spec: WeightSpec): string {
  const k = spec.key;
  if (k === 'text.embed' || k === 'lmHead') return 'text_config vocab_size x hidden_size';
  if (k === 'connector.proj') return 'text_config hidden_size, vision_config hidden_size x scale_factor²';
  if (k === 'vision.posEmbed') return 'vision_config (image_size / patch_size)² x hidden_size';
  if (k === 'vision.patch.w') return 'vision_config hidden_size, num_channels, patch_size';
  if (/^text\.layers\.\d+\.(q|k|v|o)\./.test(k)) return 'text_config hidden_size, num_attention_heads, num_key_value_heads, head_dim';
  if (/^text\.layers\.\d+\.(gate|up|down)\./.test(k)) return 'text_config hidden_size, intermediate_size';
  if (/^vision\.layers\.\d+\.fc/.test(k)) return 'vision_config hidden_size, intermediate_size';
  return k.startsWith('text') ? 'text_config hidden_size' : 'vision_config hidden_size';
}

/**
 * Checks config.json against the checkpoint before anything is allocated: the layer counts first (from the tensor
 * names alone, so an absurd count fails at once), then every tensor's presence, shape and dtype. Returns the
 * checkpoint name of each spec (null: a tied lm_head, read from the embedding).
 */
function resolveIdefics3Tensors(ckpt: Checkpoint, cfg: Idefics3Config, specs: readonly WeightSpec[], tied: boolean): (string | null)[] {
  const cfgPath = join(ckpt.dir, 'config.json');
  const layers = (section: string, prefix: string, want: number) => {
    const held = layersHeld(ckpt, prefix);
    if (held !== want)
      throw new FileFormatError(`${cfgPath}: ${section}.num_hidden_layers is ${want} but the checkpoint in ${ckpt.dir} holds ${held} ` +
        `(${held ? `tensors "${prefix}0.*" to "${prefix}${held - 1}.*"` : `no "${prefix}<i>.*" tensors`}); ` +
        'fix num_hidden_layers or use the weights this config.json belongs to');
  };
  layers('vision_config', 'vision_model.encoder.layers.', cfg.vision.numHiddenLayers);
  layers('text_config', 'text_model.layers.', cfg.text.numHiddenLayers);
  return specs.map((spec) => {
    if (spec.key === 'lmHead' && tied) return null;
    const names = checkpointNames(spec);
    const name = ckpt.find(names);
    if (!name)
      throw new FileFormatError(`checkpoint ${ckpt.dir} is missing tensor "${names[0]}"` +
        (names.length > 1 ? ` (also looked for "${names.slice(1).join('", "')}")` : '') +
        `, expected shape ${fmt(spec.shape)} in ${ckpt.files.join(', ')}; the checkpoint does not match its config.json`);
    const info = ckpt.info(name);
    // a packed block-quantized weight (vlmkit quantize) is a U8 tensor whose [out, in] is in its file's metadata
    const q = info.dtype === 'U8' && (spec.kind === 'matrix' || spec.key === 'text.embed') ? quantEntry(ckpt.metadataOf(name), name, info.file) : null;
    const shape = q ? q.shape : info.shape;
    if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i]))
      throw new FileFormatError(`tensor "${name}" in ${info.file} has ${q ? `${q.format} weights of shape` : 'shape'} ${fmt(shape)}, expected ${fmt(spec.shape)} from ${cfgPath} ` +
        `(${shapeSource(spec)}); ${q ? 'it was quantized from a model of another shape: quantize this model\'s own weights' : 'fix config.json or use the weights it belongs to'}`);
    if (!q && !['F32', 'BF16', 'F16', 'F64'].includes(info.dtype))
      throw new FileFormatError(`tensor "${name}" in ${info.file} has dtype ${info.dtype}; vlmkit reads F32, BF16 or F16 weights, or packed weights written by vlmkit quantize`);
    return name;
  });
}

/** Loads every tensor of the spec list from the checkpoint, after checking every name, shape and dtype. */
export function loadIdefics3Weights(ckpt: Checkpoint, cfg: Idefics3Config, o: LoadWeightsOptions = {}): AssembledWeights {
  const specs = idefics3WeightSpecs(cfg);
  const flat = new Map<string, Tensor>();
  const packed = new Map<string, QuantizedWeight>();
  const lmSpec = specs[specs.length - 1];
  const lmName = ckpt.find(checkpointNames(lmSpec));
  const tied = cfg.tieWordEmbeddings || lmName === null;
  const found = resolveIdefics3Tensors(ckpt, cfg, specs, tied);
  try {
    specs.forEach((spec, i) => {
      const name = found[i];
      if (name === null || name === undefined) return;
      const info = ckpt.info(name);
      if (info.dtype === 'U8') {
        const q = quantEntry(ckpt.metadataOf(name), name, info.file) as QuantEntry;
        const w = QuantizedWeight.fromBytes(q.format, q.shape, ckpt.read(name).data as Uint8Array,
          { backend: o.backend, what: `tensor "${name}" in ${info.file}`, doubleQuant: q.doubleQuant });
        w.name = canonicalName(spec);
        packed.set(spec.key, w);
        return;
      }
      const stored: DType = info.dtype === 'BF16' ? 'bf16' : info.dtype === 'F16' ? 'f16' : 'f32';
      const want: DType = o.dtype === 'f32' || spec.kind === 'vector' ? 'f32' : stored;
      const t = fromRaw(ckpt.read(name), { backend: o.backend, dtype: want });
      t.name = canonicalName(spec);
      flat.set(spec.key, t);
    });
  } catch (e) {
    for (const t of flat.values()) t.dispose();
    for (const w of packed.values()) w.dispose();
    throw e;
  }
  return assembleIdefics3Weights(cfg, flat, tied, packed);
}

/** What the model is built from: the weight structs, the tensors by transformers name, the linears by module path. */
export interface AssembledWeights {
  weights: Idefics3Weights;
  /** canonical HF name -> tensor (a tied lm_head is listed once, as the embedding) */
  named: Map<string, Tensor>;
  /** HF module path ("model.text_model.layers.0.self_attn.q_proj") -> its Linear (where adapters attach) */
  linears: Map<string, Linear>;
}

/**
 * Builds the model's weight structs from tensors by spec key (idefics3WeightSpecs: "text.layers.0.q.w", ...):
 * every key of the specs must be there, except "lmHead" when tied. Shared by the checkpoint loader and the random
 * initialisation (init.ts).
 */
export function assembleIdefics3Weights(cfg: Idefics3Config, flat: Map<string, Tensor>, tied: boolean,
  packed: ReadonlyMap<string, QuantizedWeight> = new Map()): AssembledWeights {
  const specs = idefics3WeightSpecs(cfg);
  const named = new Map<string, Tensor>();
  for (const spec of specs) {
    const t = flat.get(spec.key);
    if (t) named.set(canonicalName(spec), t);
  }
  const g = (k: string): Tensor => {
    const t = flat.get(k);
    if (!t) throw new Error(`vlmkit internal: weight ${k} was not loaded`);
    return t;
  };
  const opt = (k: string): Tensor | null => flat.get(k) ?? null;
  const linears = new Map<string, Linear>();
  const hfOfKey = new Map(specs.map((sp) => [sp.key, sp.hf]));
  // a linear's weight: a tensor, or (a quantized checkpoint) a packed block-quantized weight
  const wOf = (k: string): Tensor | QuantizedWeight => packed.get(k) ?? g(k);
  const lin = (k: string): Linear => {
    const l: Linear = { w: wOf(`${k}.w`), b: opt(`${k}.b`) };
    const hf = hfOfKey.get(`${k}.w`)!;
    linears.set(`model.${hf.slice(0, -'.weight'.length)}`, l);
    return l;
  };
  const norm = (k: string): Norm => ({ w: g(`${k}.w`), b: opt(`${k}.b`) });
  const patch: Linear<Tensor> = { w: g('vision.patch.w'), b: opt('vision.patch.b') };
  linears.set('model.vision_model.embeddings.patch_embedding', patch);
  const vision: VisionWeights = {
    patch,
    posEmbed: g('vision.posEmbed'),
    layers: Array.from({ length: cfg.vision.numHiddenLayers }, (_, i) => {
      const k = `vision.layers.${i}`;
      return {
        ln1: norm(`${k}.ln1`), q: lin(`${k}.q`), k: lin(`${k}.k`), v: lin(`${k}.v`), out: lin(`${k}.out`),
        ln2: norm(`${k}.ln2`), fc1: lin(`${k}.fc1`), fc2: lin(`${k}.fc2`),
      };
    }),
    post: norm('vision.post'),
  };
  const embed = wOf('text.embed');
  const text: TextWeights = {
    embed,
    layers: Array.from({ length: cfg.text.numHiddenLayers }, (_, i) => {
      const k = `text.layers.${i}`;
      return {
        inputNorm: g(`${k}.inputNorm`), q: lin(`${k}.q`), k: lin(`${k}.k`), v: lin(`${k}.v`), o: lin(`${k}.o`),
        postNorm: g(`${k}.postNorm`), gate: lin(`${k}.gate`), up: lin(`${k}.up`), down: lin(`${k}.down`),
      };
    }),
    norm: g('text.norm'),
    lmHead: tied ? embed : wOf('lmHead'),
    tied,
  };
  const proj = wOf('connector.proj');
  const projLinear: Linear = { w: proj, b: null };
  linears.set('model.connector.modality_projection.proj', projLinear);
  return { weights: { vision, connector: { proj, linear: projLinear }, text }, named, linears };
}
