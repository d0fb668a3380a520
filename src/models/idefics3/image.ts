// The Idefics3 / SmolVLM image processor, step for step as transformers' Idefics3ImageProcessorPil (and its
// SmolVLM twin) computes it: resize the longest edge to size.longest_edge (even rounding), then either
// resize up to multiples of max_image_size and cut row-major tiles plus a global image, or resize to one
// max_image_size square; rescale, normalize, pad every sample to the batch's largest tile count.
// All resizes are PIL resizes of uint8 images (see resample.ts), so intermediate results are rounded to uint8
// exactly where transformers rounds them. Pure functions; output is plain typed arrays.
import { FileFormatError } from '../../errors.js';
import { ModelDir } from '../../io/model-dir.js';
import { cropRgb, resizePil } from '../../processing/resample.js';
import type { RgbImage } from '../../processing/decode.js';


export interface ImageProcessorConfig {
  doConvertRgb: boolean;
  doResize: boolean;
  /** size.longest_edge: the image's longest edge is resized to this first */
  longestEdge: number;
  /** max_image_size.longest_edge: the tile side (and the vision encoder's input side) */
  maxImageSize: number;
  /** PIL resample code (1 = LANCZOS) */
  resample: number;
  doImageSplitting: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  doPad: boolean;
  /** image tokens per tile (processor_config.json `image_seq_len`), for prompt expansion; null when absent */
  imageSeqLen: number | null;
}

/** transformers' class defaults for Idefics3ImageProcessor, used for keys a config file leaves out. */
export const DEFAULT_IMAGE_PROCESSOR_CONFIG: Readonly<ImageProcessorConfig> = Object.freeze({
  doConvertRgb: true,
  doResize: true,
  longestEdge: 4 * 364,
  maxImageSize: 364,
  resample: 1,
  doImageSplitting: true,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: [0.5, 0.5, 0.5] as [number, number, number],
  imageStd: [0.5, 0.5, 0.5] as [number, number, number],
  doPad: true,
  imageSeqLen: null,
});

/** Upper bound transformers applies after the longest-edge resize (4k). */
const MAX_IMAGE_SIZE = 4096;

/**
 * Builds the config from parsed JSON: the image-processor object (4.x preprocessor_config.json, flat) and,
 * optionally, the processor object (5.x processor_config.json, whose "image_processor" key holds the former and
 * which carries image_seq_len in both versions). Unknown keys are ignored.
 */
export function imageProcessorConfigFromJson(imageProcessor: Record<string, unknown>, processor: Record<string, unknown> = {}, source = 'config'): ImageProcessorConfig {
  const d = DEFAULT_IMAGE_PROCESSOR_CONFIG;
  const bad = (key: string, want: string): never => {
    throw new FileFormatError(`${source}: "${key}" must be ${want}, got ${JSON.stringify(imageProcessor[key])}; fix the image processor config`);
  };
  const bool = (key: string, def: boolean): boolean => {
    const v = imageProcessor[key];
    if (v === undefined || v === null) return def;
    return typeof v === 'boolean' ? v : bad(key, 'true or false');
  };
  const num = (v: unknown, key: string, def: number): number => {
    if (v === undefined || v === null) return def;
    return typeof v === 'number' && Number.isFinite(v) ? v : bad(key, 'a number');
  };
  const edge = (key: string, def: number): number => {
    const v = imageProcessor[key];
    if (v === undefined || v === null) return def;
    const o = v as Record<string, unknown>;
    // {"longest_edge": n}; a square {"height": n, "width": n} also names the tile side
    const n = typeof o === 'object' ? (o.longest_edge ?? o.height) : undefined;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return bad(key, '{"longest_edge": <positive integer>}');
    return n;
  };
  const triple = (key: string, def: [number, number, number]): [number, number, number] => {
    const v = imageProcessor[key];
    if (v === undefined || v === null) return [...def];
    if (typeof v === 'number') return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number')) return [v[0], v[1], v[2]];
    return bad(key, 'a number or a list of 3 numbers');
  };
  const resampleCode = (): number => {
    const r = num(imageProcessor.resample, 'resample', d.resample);
    return Number.isInteger(r) && r >= 0 && r <= 5 ? r : bad('resample', 'a PIL filter code 0..5 (1 = LANCZOS)');
  };
  const seq = processor.image_seq_len ?? imageProcessor.image_seq_len;
  return {
    doConvertRgb: bool('do_convert_rgb', d.doConvertRgb),
    doResize: bool('do_resize', d.doResize),
    longestEdge: edge('size', d.longestEdge),
    maxImageSize: edge('max_image_size', d.maxImageSize),
    resample: resampleCode(),
    doImageSplitting: bool('do_image_splitting', d.doImageSplitting),
    doRescale: bool('do_rescale', d.doRescale),
    rescaleFactor: num(imageProcessor.rescale_factor, 'rescale_factor', d.rescaleFactor),
    doNormalize: bool('do_normalize', d.doNormalize),
    imageMean: triple('image_mean', d.imageMean),
    imageStd: triple('image_std', d.imageStd),
    doPad: bool('do_pad', d.doPad),
    imageSeqLen: typeof seq === 'number' ? seq : null,
  };
}


/**
 * Loads the image processor config of a checkpoint directory: transformers 5.x keeps it nested under
 * "image_processor" in processor_config.json; 4.x keeps it flat in preprocessor_config.json (and only
 * image_seq_len in processor_config.json).
 */
export function loadImageProcessorConfig(dir: string | ModelDir): ImageProcessorConfig {
  const md = ModelDir.of(dir);
  const procPath = md.path('processor_config.json');
  const prePath = md.path('preprocessor_config.json');
  const proc = md.json('processor_config.json') ?? {};
  const nested = proc.image_processor;
  if (nested && typeof nested === 'object' && !Array.isArray(nested)) {
    return imageProcessorConfigFromJson(nested as Record<string, unknown>, proc, procPath);
  }
  const pre = md.json('preprocessor_config.json');
  if (pre) return imageProcessorConfigFromJson(pre, proc, prePath);
  throw new FileFormatError(`no image processor config in ${md.dir}: expected processor_config.json with "image_processor" or preprocessor_config.json; point to a SmolVLM/Idefics3 checkpoint directory`);
}

// ---------------------------------------------------------------- output sizes (pure integer/float logic)

/**
 * `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound`: the longest edge
 * becomes maxLen, the other edge is truncated and bumped to the next even number. Returns [height, width].
 */
export function longestEdgeSize(height: number, width: number, maxLen: number): [number, number] {
  const aspect = width / height;
  let h: number;
  let w: number;
  if (width >= height) {
    w = maxLen;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = maxLen;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  // scale below the 4k upper bound (no even rounding here)
  const aspect2 = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / aspect2);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * aspect2);
  }
  return [Math.max(h, 1), Math.max(w, 1)];
}

/** `resize_for_vision_encoder`: both edges up to multiples of the tile side, keeping the aspect. [height, width] */
export function visionEncoderSize(height: number, width: number, tile: number): [number, number] {
  const aspect = width / height;
  let h = height;
  let w = width;
  if (width >= height) {
    w = Math.ceil(width / tile) * tile;
    h = Math.trunc(w / aspect);
    h = Math.ceil(h / tile) * tile;
  } else {
    h = Math.ceil(height / tile) * tile;
    w = Math.trunc(h * aspect);
    w = Math.ceil(w / tile) * tile;
  }
  return [h, w];
}

// ---------------------------------------------------------------- per-image pipeline

/** One image's tiles (uint8 RGB, before rescale/normalize) and its grid; rows = cols = 0 means one tile only. */
export interface ImageTiles {
  tiles: RgbImage[];
  rows: number;
  cols: number;
}

const resize = (img: RgbImage, h: number, w: number, cfg: ImageProcessorConfig): RgbImage => resizePil(img, w, h, cfg.resample);

/** The uint8 part of the pipeline for one image: resize, then split (tiles + global) or square resize. */
export function imageToTiles(image: RgbImage, cfg: ImageProcessorConfig): ImageTiles {
  let img = image;
  if (cfg.doResize) {
    const [h, w] = longestEdgeSize(img.height, img.width, cfg.longestEdge);
    img = resize(img, h, w, cfg);
  }
  const m = cfg.maxImageSize;
  if (!cfg.doImageSplitting) return { tiles: [resize(img, m, m, cfg)], rows: 0, cols: 0 };
  const [h, w] = visionEncoderSize(img.height, img.width, m);
  img = resize(img, h, w, cfg);
  if (img.height <= m && img.width <= m) return { tiles: [img], rows: 0, cols: 0 };
  const rows = Math.floor((img.height - m) / m) + 1;
  const cols = Math.floor((img.width - m) / m) + 1;
  const tiles: RgbImage[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tiles.push(cropRgb(img, c * m, r * m, m, m));
  tiles.push(resize(img, m, m, cfg)); // the global image comes last, resized from the tiled-size image
  return { tiles, rows, cols };
}

/**
 * Rescale then normalize, in transformers' float order: `(float64(x) * factor)` cast to float32, then
 * `(x - mean) / std` in float32. Writes channel-first [3, h, w] at `out[offset...]`.
 */
function writeNormalized(img: RgbImage, cfg: ImageProcessorConfig, out: Float32Array, offset: number, padH: number, padW: number): void {
  const f32 = Math.fround;
  const mean = cfg.imageMean.map(f32);
  const std = cfg.imageStd.map(f32);
  const plane = padH * padW;
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        let v = img.data[(y * img.width + x) * 3 + c]!;
        if (cfg.doRescale) v = f32(v * cfg.rescaleFactor);
        if (cfg.doNormalize) v = f32(f32(v - m) / s);
        out[offset + c * plane + y * padW + x] = v;
      }
    }
  }
}

// ---------------------------------------------------------------- batch

export interface ProcessedImages {
  /** [samples, maxTiles, 3, H, W], float32, padded tiles all zero */
  pixelValues: Float32Array;
  pixelValuesShape: [number, number, number, number, number];
  /** [samples, maxTiles, H, W], 1 = real pixel, 0 = padding */
  pixelAttentionMask: Uint8Array;
  pixelAttentionMaskShape: [number, number, number, number];
  /** per sample, per image: the tile grid (0, 0 when the image was not split) */
  grids: { rows: number; cols: number }[][];
  /** per sample: number of real tiles */
  tileCounts: number[];
}

/**
 * Processes a batch of samples, each with zero or more images (transformers' nested list). The tiles of all of a
 * sample's images are concatenated; every sample is padded with all-zero tiles (mask 0) to the largest tile count
 * in the batch, and every tile is padded at the bottom/right to the largest tile height/width.
 */
export function processImages(samples: RgbImage[][], cfg: ImageProcessorConfig, perImage?: (ImageProcessorConfig | undefined)[][]): ProcessedImages {
  // perImage: a config for some images (video frames: already square, never resized or split), cfg for the rest
  const perSample = samples.map((imgs, b) => imgs.map((im, i) => imageToTiles(im, perImage?.[b]?.[i] ?? cfg)));
  const tilesPerSample = perSample.map((s) => s.flatMap((t) => t.tiles));
  const maxTiles = Math.max(0, ...tilesPerSample.map((t) => t.length));
  let H = 0;
  let W = 0;
  for (const ts of tilesPerSample) for (const t of ts) { H = Math.max(H, t.height); W = Math.max(W, t.width); }
  if (maxTiles === 0) { H = cfg.maxImageSize; W = cfg.maxImageSize; }
  const B = samples.length;
  const pixelValues = new Float32Array(B * maxTiles * 3 * H * W);
  const mask = new Uint8Array(B * maxTiles * H * W);
  tilesPerSample.forEach((ts, b) => {
    ts.forEach((t, i) => {
      const slot = b * maxTiles + i;
      writeNormalized(t, cfg, pixelValues, slot * 3 * H * W, H, W);
      for (let y = 0; y < t.height; y++) mask.fill(1, slot * H * W + y * W, slot * H * W + y * W + t.width);
    });
  });
  return {
    pixelValues,
    pixelValuesShape: [B, maxTiles, 3, H, W],
    pixelAttentionMask: mask,
    pixelAttentionMaskShape: [B, maxTiles, H, W],
    grids: perSample.map((s) => s.map(({ rows, cols }) => ({ rows, cols }))),
    tileCounts: tilesPerSample.map((t) => t.length),
  };
}
