// What the contrastive families (CLIP, SigLIP) share: their image processor (transformers' CLIPImageProcessor and
// SiglipImageProcessor, PIL path: one resize, an optional center crop, rescale, normalize), their text encoding
// (the tokenizer, padded as each family was trained), the check that tokenizer and model belong together, the
// weight loading from a spec list, and the embedding / score arithmetic.
import { join } from 'node:path';
import { type Tensor, div, fromRaw, matmul, mul, add, randn, sqrt, sum, square, tensor, transpose } from '../engine/index.js';
import type { DType } from '../engine/dtype.js';
import { FileFormatError, VlmkitError } from '../errors.js';
import { Checkpoint, type Json, ModelDir } from '../io/model-dir.js';
import { type DecodeOptions, type RgbImage, loadImage } from '../processing/decode.js';
import { cropRgb, resizePil } from '../processing/resample.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { tidyGraph } from './common.js';

// ---------------------------------------------------------------- image processor

export interface ContrastiveImageConfig {
  doResize: boolean;
  /** size.shortest_edge (CLIP): the short side becomes this, the long side int(size · long / short) */
  shortestEdge: number | null;
  /** size.height / size.width (SigLIP, some CLIP checkpoints): a fixed output size */
  height: number;
  width: number;
  /** PIL resample code (3 = BICUBIC) */
  resample: number;
  doCenterCrop: boolean;
  cropHeight: number;
  cropWidth: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/**
 * The image processor config from preprocessor_config.json (transformers 4.x, flat) or processor_config.json's
 * "image_processor" (5.x); keys it leaves out take the family's defaults. A checkpoint with neither file (the
 * tiny test models) gets the defaults at the vision tower's image size.
 */
export function loadContrastiveImageConfig(md: ModelDir, defaults: ContrastiveImageConfig): ContrastiveImageConfig {
  const proc = md.json('processor_config.json');
  const nested = proc?.image_processor;
  if (nested && typeof nested === 'object' && !Array.isArray(nested)) return contrastiveImageConfigFromJson(nested as Json, defaults, md.path('processor_config.json'));
  const pre = md.json('preprocessor_config.json');
  return pre ? contrastiveImageConfigFromJson(pre, defaults, md.path('preprocessor_config.json')) : { ...defaults };
}

export function contrastiveImageConfigFromJson(j: Json, d: ContrastiveImageConfig, source: string): ContrastiveImageConfig {
  const bad = (key: string, want: string): never => {
    throw new FileFormatError(`${source}: "${key}" must be ${want}, got ${JSON.stringify(j[key])}; fix the image processor config`);
  };
  const bool = (key: string, def: boolean) => (j[key] === undefined || j[key] === null ? def : typeof j[key] === 'boolean' ? (j[key] as boolean) : bad(key, 'true or false'));
  const num = (key: string, def: number) => (j[key] === undefined || j[key] === null ? def : typeof j[key] === 'number' && Number.isFinite(j[key]) ? (j[key] as number) : bad(key, 'a number'));
  const side = (o: Record<string, unknown>, key: string, k: string): number => {
    const v = o[k];
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65536 ? v : bad(key, `an object with an integer "${k}" from 1 to 65536`);
  };
  const triple = (key: string, def: [number, number, number]): [number, number, number] => {
    const v = j[key];
    if (v === undefined || v === null) return [...def];
    if (typeof v === 'number') return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return [v[0], v[1], v[2]];
    return bad(key, 'a number or a list of 3 numbers');
  };
  const out: ContrastiveImageConfig = { ...d, imageMean: triple('image_mean', d.imageMean), imageStd: triple('image_std', d.imageStd) };
  const size = j.size;
  if (typeof size === 'number') {
    // an old-style int size: CLIP's processor reads it as the shortest edge, SigLIP's as a square
    if (!Number.isInteger(size) || size < 1) bad('size', 'a positive integer or an object');
    if (d.shortestEdge !== null) out.shortestEdge = size;
    else out.height = out.width = size;
  } else if (size && typeof size === 'object' && !Array.isArray(size)) {
    const o = size as Record<string, unknown>;
    if (o.shortest_edge !== undefined) out.shortestEdge = side(o, 'size', 'shortest_edge');
    else {
      out.shortestEdge = null;
      out.height = side(o, 'size', 'height');
      out.width = side(o, 'size', 'width');
    }
  } else if (size !== undefined && size !== null) bad('size', 'an object {"shortest_edge": n} or {"height": h, "width": w}');
  const crop = j.crop_size;
  if (typeof crop === 'number' && Number.isInteger(crop) && crop >= 1) out.cropHeight = out.cropWidth = crop;
  else if (crop && typeof crop === 'object' && !Array.isArray(crop)) {
    out.cropHeight = side(crop as Record<string, unknown>, 'crop_size', 'height');
    out.cropWidth = side(crop as Record<string, unknown>, 'crop_size', 'width');
  } else if (crop !== undefined && crop !== null) bad('crop_size', 'an object {"height": h, "width": w}');
  const r = num('resample', d.resample);
  out.resample = Number.isInteger(r) && r >= 0 && r <= 5 ? r : bad('resample', 'a PIL filter code 0..5 (3 = BICUBIC)');
  out.doResize = bool('do_resize', d.doResize);
  out.doCenterCrop = bool('do_center_crop', d.doCenterCrop);
  out.doRescale = bool('do_rescale', d.doRescale);
  out.rescaleFactor = num('rescale_factor', d.rescaleFactor);
  out.doNormalize = bool('do_normalize', d.doNormalize);
  if (out.imageStd.some((s) => s === 0)) bad('image_std', 'nonzero');
  return out;
}

/** get_resize_output_image_size(default_to_square=False): [height, width] with the short side = `edge`. */
export function shortestEdgeSize(height: number, width: number, edge: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((edge * long) / short);
  return width <= height ? [newLong, edge] : [edge, newLong];
}

/**
 * transformers' center_crop on a uint8 image: the window starts at floor((size - crop) / 2) on each axis; where
 * it reaches past the image (a crop larger than the image) the pixels are zero, as its padding makes them.
 */
export function centerCrop(img: RgbImage, h: number, w: number): RgbImage {
  const top = Math.floor((img.height - h) / 2), left = Math.floor((img.width - w) / 2);
  if (top >= 0 && left >= 0) return cropRgb(img, left, top, w, h);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < w; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const s = (sy * img.width + sx) * 3, o = (y * w + x) * 3;
      out[o] = img.data[s]!;
      out[o + 1] = img.data[s + 1]!;
      out[o + 2] = img.data[s + 2]!;
    }
  }
  return { width: w, height: h, data: out };
}

/** The uint8 part: resize (shortest edge or fixed size), then the center crop. */
export function resizeAndCrop(image: RgbImage, cfg: ContrastiveImageConfig): RgbImage {
  let img = image;
  if (cfg.doResize) {
    const [h, w] = cfg.shortestEdge !== null ? shortestEdgeSize(img.height, img.width, cfg.shortestEdge) : [cfg.height, cfg.width];
    img = resizePil(img, w, h, cfg.resample);
  }
  if (cfg.doCenterCrop) img = centerCrop(img, cfg.cropHeight, cfg.cropWidth);
  return img;
}

/** The side lengths the processor makes, when they do not depend on the image; null when they do. */
export function outputSize(cfg: ContrastiveImageConfig): [number, number] | null {
  if (cfg.doCenterCrop) return [cfg.cropHeight, cfg.cropWidth];
  if (cfg.doResize && cfg.shortestEdge === null) return [cfg.height, cfg.width];
  return null;
}

/**
 * Pixel values [N, 3, H, W] of images, in transformers' float order: float64(x) · factor cast to float32, then
 * (x - mean) / std in float32. Every image must come out at `size` (the vision tower's input).
 */
export function contrastivePixelValues(images: readonly RgbImage[], cfg: ContrastiveImageConfig, size: number): { data: Float32Array; shape: [number, number, number, number] } {
  const f32 = Math.fround;
  const mean = cfg.imageMean.map(f32), std = cfg.imageStd.map(f32);
  const plane = size * size;
  const data = new Float32Array(images.length * 3 * plane);
  images.forEach((image, i) => {
    const img = resizeAndCrop(image, cfg);
    if (img.height !== size || img.width !== size)
      throw new VlmkitError('E_IMAGE', `image ${i + 1} (${image.width}x${image.height}) became ${img.width}x${img.height} pixels, but the vision tower takes ${size}x${size}: ` +
        'the image processor config (size / crop_size) does not match vision_config.image_size; fix preprocessor_config.json');
    for (let c = 0; c < 3; c++) {
      const m = mean[c]!, s = std[c]!, base = (i * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        let v = img.data[p * 3 + c]!;
        if (cfg.doRescale) v = f32(v * cfg.rescaleFactor);
        if (cfg.doNormalize) v = f32(f32(v - m) / s);
        data[base + p] = v;
      }
    }
  });
  return { data, shape: [images.length, 3, size, size] };
}

// ---------------------------------------------------------------- text

/** What a family's text tower needs from the tokenizer side. */
export interface ContrastiveTextSpec {
  family: string;
  vocabSize: number;
  maxLength: number;
  /** 'longest': pad to the longest text (CLIP); 'max_length': pad every text to maxLength (SigLIP was trained so) */
  padding: 'longest' | 'max_length';
  /** config.json's pad_token_id, used when the tokenizer names no pad token */
  padTokenId: number | null;
  /** ids the model looks for (CLIP's eos_token_id): each must exist in the tokenizer */
  requiredIds: readonly { id: number; field: string }[];
}

export interface EncodedTexts {
  /** [B, T] right-padded */
  ids: number[][];
  mask: number[][];
}

/** A contrastive model's processor: its tokenizer, text padding rule and image processor. */
export class ContrastiveProcessor {
  constructor(
    readonly tokenizer: Tokenizer,
    readonly text: ContrastiveTextSpec,
    readonly imageConfig: ContrastiveImageConfig,
    readonly imageSize: number,
    private readonly tokenizerPath: string,
  ) {
    // a tokenizer from another model is caught here, before any text reaches an embedding table
    if (tokenizer.vocabSize > text.vocabSize)
      throw new VlmkitError('E_TOKENIZER', `${tokenizerPath} has ${tokenizer.vocabSize} token ids but the ${text.family} model's text_config.vocab_size is ${text.vocabSize}: ` +
        'the tokenizer does not belong to this model; put the checkpoint\'s own tokenizer.json next to its config.json');
    for (const { id, field } of text.requiredIds)
      if (tokenizer.idToToken(id) === undefined)
        throw new VlmkitError('E_TOKENIZER', `config.json's ${field} ${id} is not a token of ${tokenizerPath}: the tokenizer does not belong to this ${text.family} model; use the checkpoint's own tokenizer.json`);
  }

  static fromDir(md: ModelDir, text: ContrastiveTextSpec, imageDefaults: ContrastiveImageConfig, imageSize: number): ContrastiveProcessor {
    return new ContrastiveProcessor(Tokenizer.fromDir(md), text, loadContrastiveImageConfig(md, imageDefaults), imageSize, md.path('tokenizer.json'));
  }

  /**
   * Token ids and attention masks of texts, right-padded by the family's rule (as transformers' processor), or
   * padded to the longest text when asked (a reference made with padding=True).
   */
  encodeTexts(texts: readonly string[], o: { padding?: 'longest' | 'max_length' } = {}): EncodedTexts {
    if (texts.length === 0) throw new VlmkitError('E_ARGS', 'no texts to encode: give at least one text (label)');
    const { maxLength } = this.text;
    const padding = o.padding ?? this.text.padding;
    const rows = texts.map((t, i) => {
      const ids = this.tokenizer.encode(t);
      if (ids.length === 0) throw new VlmkitError('E_ARGS', `text ${i + 1} (${JSON.stringify(t)}) makes no tokens; give a non-empty text`);
      if (ids.length > maxLength)
        throw new VlmkitError('E_ARGS', `text ${i + 1} (${JSON.stringify(t.slice(0, 60))}) is ${ids.length} tokens; the ${this.text.family} text tower takes at most ${maxLength}: shorten it`);
      return ids;
    });
    const T = padding === 'max_length' ? maxLength : Math.max(...rows.map((r) => r.length));
    const pad = this.tokenizer.padId(this.text.padTokenId);
    // a tokenizer whose model_input_names leave out attention_mask (SigLIP's SentencePiece tokenizer in some
    // releases) gives the model no mask: padding is then attended to, as in transformers
    const names = this.tokenizer.config.model_input_names;
    const masks = !Array.isArray(names) || names.includes('attention_mask');
    return {
      ids: rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(pad)]),
      mask: rows.map((r) => [...new Array<number>(r.length).fill(1), ...new Array<number>(T - r.length).fill(masks ? 0 : 1)]),
    };
  }

  async loadImages(paths: readonly string[], o: DecodeOptions = {}): Promise<RgbImage[]> {
    const out: RgbImage[] = [];
    for (const p of paths) out.push(await loadImage(p, o));
    return out;
  }

  /** Pixel values [N, 3, S, S] of decoded images. */
  pixelValues(images: readonly RgbImage[]): { data: Float32Array; shape: [number, number, number, number] } {
    return contrastivePixelValues(images, this.imageConfig, this.imageSize);
  }
}

// ---------------------------------------------------------------- weights

export interface TensorSpec {
  /** the HF name */
  hf: string;
  shape: readonly number[];
  /** which config.json fields the shape comes from (for the error) */
  from: string;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Reads every spec'd tensor, after checking that each is present with its shape and a float dtype (the errors name
 * the tensor, the file and the config fields). Weights are converted to f32 or kept in their stored dtype.
 */
export function loadSpecTensors(ckpt: Checkpoint, specs: readonly TensorSpec[], o: { dtype?: 'f32' } = {}): Map<string, Tensor> {
  const cfgPath = join(ckpt.dir, 'config.json');
  const names = specs.map((s) => {
    const name = ckpt.find([s.hf]);
    if (!name)
      throw new FileFormatError(`checkpoint ${ckpt.dir} is missing tensor "${s.hf}" (expected shape ${fmt(s.shape)} from ${s.from}); the weights do not match ${cfgPath}`);
    const info = ckpt.info(name);
    if (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape[i]))
      throw new FileFormatError(`tensor "${name}" in ${info.file} has shape ${fmt(info.shape)}, expected ${fmt(s.shape)} from ${cfgPath} (${s.from}); fix config.json or use the weights it belongs to`);
    if (!['F32', 'BF16', 'F16', 'F64'].includes(info.dtype))
      throw new FileFormatError(`tensor "${name}" in ${info.file} has dtype ${info.dtype}; vlmkit reads F32, BF16 or F16 weights`);
    return name;
  });
  const out = new Map<string, Tensor>();
  try {
    specs.forEach((s, i) => {
      const info = ckpt.info(names[i]!);
      const stored: DType = info.dtype === 'BF16' ? 'bf16' : info.dtype === 'F16' ? 'f16' : 'f32';
      // matrices may stay in bf16/f16; norms, biases, embeddings of positions and scalars are f32
      const want: DType = o.dtype === 'f32' || s.shape.length < 2 ? 'f32' : stored;
      const t = fromRaw(ckpt.read(names[i]!), { dtype: want });
      t.name = s.hf;
      out.set(s.hf, t);
    });
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/** How many layers a checkpoint holds under a prefix ("text_model.encoder.layers."). */
export function layersHeld(ckpt: Checkpoint, prefix: string): number {
  let n = 0;
  for (const name of ckpt.names()) {
    const m = name.startsWith(prefix) ? /^(\d+)\./.exec(name.slice(prefix.length)) : null;
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/** The layer count in config.json must be what the checkpoint holds (checked before anything is read). */
export function checkLayers(ckpt: Checkpoint, section: string, prefix: string, want: number): void {
  const held = layersHeld(ckpt, prefix);
  if (held !== want)
    throw new FileFormatError(`${join(ckpt.dir, 'config.json')}: ${section}.num_hidden_layers is ${want} but the checkpoint holds ${held} layers ("${prefix}<i>.*"); ` +
      'fix num_hidden_layers or use the weights this config.json belongs to');
}

/**
 * The weights of a two-tower checkpoint: both towers' layer counts checked against config.json first (a clear error
 * instead of a missing tensor), then every spec loaded; the checkpoint is closed whatever happens.
 */
export function loadTowerTensors(
  dir: string | ModelDir,
  layers: { vision: number; text: number },
  specs: readonly TensorSpec[],
  o: { dtype?: 'f32' } = {},
): Map<string, Tensor> {
  const ckpt = Checkpoint.open(ModelDir.of(dir));
  try {
    checkLayers(ckpt, 'vision_config', 'vision_model.encoder.layers.', layers.vision);
    checkLayers(ckpt, 'text_config', 'text_model.encoder.layers.', layers.text);
    return loadSpecTensors(ckpt, specs, o);
  } finally {
    ckpt.close();
  }
}

// ---------------------------------------------------------------- scores

/** x / ‖x‖ along the last axis (transformers: x / sum(x²)^0.5). */
export function l2Normalize(x: Tensor): Tensor {
  return tidyGraph([x], () => div(x, sqrt(sum(square(x), -1, true))));
}

/** logits_per_image [N, B] = scale · image · textᵀ (+ bias): transformers' logits_per_text, transposed. */
export function pairLogits(imageEmbeds: Tensor, textEmbeds: Tensor, scale: Tensor, bias: Tensor | null): Tensor {
  return tidyGraph([imageEmbeds, textEmbeds], () => {
    const l = mul(matmul(imageEmbeds, transpose(textEmbeds)), scale);
    return bias ? add(l, bias) : l;
  });
}

/** A host number as a 1-element f32 tensor (the logit scale / bias as a broadcastable factor). */
export function scalarTensor(v: number): Tensor {
  return tensor([v], [1], { dtype: 'f32' });
}

// ---------------------------------------------------------------- random initialisation

/**
 * Fresh weights for every spec'd tensor (`vlmkit train contrastive --init random`), seeded: matrices, embeddings
 * and the patch conv N(0, 0.02) as transformers' initializer_range; the projections and CLIP's class embedding
 * N(0, width^-0.5) as CLIPModel._init_weights; layer norms one, biases zero; logit_scale log(1 / 0.07) (CLIP's
 * logit_scale_init_value) and SigLIP's logit_bias -10 (the paper's init).
 */
export function randomSpecTensors(specs: readonly TensorSpec[], seed: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  specs.forEach((s, i) => {
    const n = s.hf;
    let t: Tensor;
    if (n === 'logit_scale') t = tensor(new Float32Array(Math.max(1, s.shape.length ? s.shape[0]! : 1)).fill(Math.log(1 / 0.07)), [...s.shape]);
    else if (n === 'logit_bias') t = tensor(new Float32Array(s.shape[0] ?? 1).fill(-10), [...s.shape]);
    else if (/norm[^.]*\.weight$|layrnorm\.weight$/.test(n)) t = tensor(new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(1), [...s.shape]);
    else if (n.endsWith('.bias') || n.endsWith('_bias')) t = tensor(new Float32Array(s.shape.reduce((a, b) => a * b, 1)), [...s.shape]);
    else {
      const wide = /projection\.weight$|class_embedding$/.test(n);
      const std = wide ? s.shape[s.shape.length - 1]! ** -0.5 : 0.02;
      t = randn([...s.shape], { seed: seed * 1_000_003 + i, std });
    }
    t.name = n;
    out.set(n, t);
  });
  return out;
}
