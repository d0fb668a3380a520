// SmolVLM2's video processor settings and its per-frame pipeline. Each frame is resized so its longest edge is
// `size.longest_edge` (even rounding, as for images), then to the max_image_size square; frames are never split,
// so each is one global-image block in the prompt. transformers' SmolVLMVideoProcessor resizes torch tensors and
// swaps LANCZOS for BICUBIC there (with antialiasing: the PIL bicubic filter); the reference pixel values agree
// with PIL's BICUBIC to the last bit, so that is what a LANCZOS config gets here too.
import { ModelDir, readJsonIfExists } from '../io/model-dir.js';
import { FileFormatError } from '../errors.js';
import { imageProcessorConfigFromJson, longestEdgeSize, processImages, type ImageProcessorConfig, type ProcessedImages } from '../models/index.js';
import { Resampling, resizePil } from '../processing/resample.js';
import type { RgbImage } from '../processing/decode.js';
import type { VideoSampling } from './sample.js';

export interface VideoProcessorConfig {
  /** resize, rescale and normalize settings (longestEdge = size.longest_edge, maxImageSize = the frame side) */
  image: ImageProcessorConfig;
  sampling: VideoSampling;
}

/** transformers' SmolVLM2 defaults (video_sampling of the released checkpoints) for keys a config leaves out. */
export const DEFAULT_VIDEO_SAMPLING: Readonly<VideoSampling> = Object.freeze({ fps: 1, maxFrames: 64 });

function obj(x: unknown): Record<string, unknown> | null {
  return x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
}

/**
 * The video settings of a checkpoint: transformers 5.x nests them under "video_processor" in processor_config.json;
 * 4.x writes video_preprocessor_config.json, and the released SmolVLM2 checkpoints keep `video_sampling` (fps,
 * max_frames, video_size) in preprocessor_config.json, which overrides the rest as transformers' __init__ does.
 * A checkpoint without any falls back to its image processor's settings (SmolVLM v1: frames are images there).
 */
export function loadVideoProcessorConfig(dir: string | ModelDir): VideoProcessorConfig {
  const md = ModelDir.of(dir);
  const proc = md.json('processor_config.json') ?? {};
  const pre = md.json('preprocessor_config.json') ?? {};
  const vpre = readJsonIfExists(md.path('video_preprocessor_config.json'), 'video processor config') ?? {};
  const vp = obj(proc.video_processor) ?? (Object.keys(vpre).length ? vpre : null) ?? obj(proc.image_processor) ?? pre;
  const source = obj(proc.video_processor) ? md.path('processor_config.json') : md.path('video_preprocessor_config.json');
  const image = { ...imageProcessorConfigFromJson(vp, proc, source), doImageSplitting: false };
  let fps = typeof vp.fps === 'number' ? vp.fps : DEFAULT_VIDEO_SAMPLING.fps;
  let maxFrames = typeof vp.num_frames === 'number' ? vp.num_frames : DEFAULT_VIDEO_SAMPLING.maxFrames;
  const vs = obj(vp.video_sampling) ?? obj(pre.video_sampling);
  if (vs) {
    const bad = (k: string) => new FileFormatError(`${source}: video_sampling.${k} must be a positive number, got ${JSON.stringify(vs[k])}; fix the checkpoint's video_sampling`);
    if (vs.fps !== undefined) { if (!(typeof vs.fps === 'number' && vs.fps > 0)) throw bad('fps'); fps = vs.fps; }
    if (vs.max_frames !== undefined) { if (!(typeof vs.max_frames === 'number' && Number.isInteger(vs.max_frames) && vs.max_frames > 0)) throw bad('max_frames'); maxFrames = vs.max_frames; }
    const size = obj(vs.video_size);
    if (size) { const e = size.longest_edge ?? size.height; if (!(typeof e === 'number' && Number.isInteger(e) && e > 0)) throw bad('video_size'); image.longestEdge = e; }
  }
  return { image, sampling: { fps, maxFrames } };
}

/** PIL's filter for the config's resample code, LANCZOS swapped for BICUBIC as transformers' video processor does. */
function videoResample(code: number): number {
  return code === Resampling.LANCZOS ? Resampling.BICUBIC : code;
}

/** One frame as the model sees it: uint8 RGB, maxImageSize square (before rescale/normalize). */
export function videoFrameToSquare(frame: RgbImage, cfg: ImageProcessorConfig): RgbImage {
  const r = videoResample(cfg.resample);
  let img = frame;
  if (cfg.doResize) {
    const [h, w] = longestEdgeSize(img.height, img.width, cfg.longestEdge);
    img = resizePil(img, w, h, r);
  }
  const m = cfg.maxImageSize;
  return resizePil(img, m, m, r);
}

/**
 * Rescaled, normalized pixel values of square frames, [B, N, 3, S, S] with a pixel mask, as the image batch
 * (the frames are already square: nothing is resized or split again here). Samples with fewer frames are padded
 * with all-zero frames (mask 0), as transformers pads videos.
 */
export function processVideoFrames(samples: RgbImage[][], cfg: ImageProcessorConfig): ProcessedImages {
  return processImages(samples, { ...cfg, doResize: false, doImageSplitting: false });
}
