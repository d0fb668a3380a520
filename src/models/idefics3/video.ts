// SmolVLM2's video processor settings and its per-frame pipeline. Each frame is resized so its longest edge is
// `size.longest_edge` (even rounding, as for images), then to the max_image_size square; frames are never split,
// so each is one global-image block in the prompt. transformers' SmolVLMVideoProcessor resizes torch tensors and
// swaps LANCZOS for BICUBIC there (with antialiasing: the PIL bicubic filter); the reference pixel values agree
// with PIL's BICUBIC to the last bit, so that is what a LANCZOS config gets here too.
import { ModelDir, readJsonIfExists } from '../../io/model-dir.js';
import { FileFormatError } from '../../errors.js';
import { imageProcessorConfigFromJson, longestEdgeSize, processImages, type ImageProcessorConfig, type ProcessedImages } from './image.js';
import { Resampling, resizePil } from '../../processing/resample.js';
import type { RgbImage } from '../../processing/decode.js';
import type { VideoSampling } from '../../video/sample.js';
import { loadVideo, planVideo } from '../../video/load.js';
import { VlmkitError } from '../../errors.js';
import type { ChatMessage, ContentPart } from '../../processing/chat-template.js';
import { IMAGE_TOKEN, VIDEO_TOKEN } from '../../processing/tokenizer.js';
import { countToken } from './prompt.js';

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

/** A video: a file path (decoded with ffmpeg, frames sampled as the checkpoint says), or frames given directly. */
export type VideoInput = string | VideoFrames;

/** Frames already taken from a video, with the time of each (seconds) and the video's length. */
export interface VideoFrames {
  frames: readonly RgbImage[];
  /** seconds, one per frame */
  timestamps: readonly number[];
  /** seconds (default: the last timestamp) */
  duration?: number;
}

/** Per-call video settings (`vlmkit ask --fps --max-frames`). */
export interface VideoOptions {
  /** frames per second to sample (overrides the checkpoint's video_sampling.fps) */
  fps?: number;
  /** most frames to sample (overrides video_sampling.max_frames) */
  maxFrames?: number;
  /** progress: frames decoded so far of a video file */
  onVideoFrame?: (done: number, total: number, path: string) => void;
  /**
   * Plan only (ffprobe, no decoding): each frame of a video file is a size-only stand-in (its width and height,
   * empty data). For counting a row's tokens when a data set loads; such frames never reach pixel code.
   */
  sizesOnly?: boolean;
}

/** The text before a video's frames on a checkpoint without a video prompt (SmolVLM v1), as the course does it. */
export const FRAMES_INTRO = 'Following are the frames of a video in temporal order.';

/** Checks frames given directly: at least one, one timestamp each, RGB data that fits. */
export function checkVideoFrames(v: VideoFrames, name: string): void {
  if (!Array.isArray(v.frames) || v.frames.length === 0) throw new VlmkitError('E_VIDEO', `${name}: no frames given; pass {frames: [...], timestamps: [...]} with at least one frame, or a video file path`);
  if (!Array.isArray(v.timestamps) || v.timestamps.length !== v.frames.length)
    throw new VlmkitError('E_VIDEO', `${name}: ${v.frames.length} frames but ${Array.isArray(v.timestamps) ? v.timestamps.length : 'no'} timestamps; give one timestamp (seconds) per frame`);
  v.timestamps.forEach((t, i) => {
    if (!(Number.isFinite(t) && t >= 0)) throw new VlmkitError('E_VIDEO', `${name}: timestamp ${i} is ${t}; timestamps are seconds >= 0`);
  });
  v.frames.forEach((f, i) => {
    if (!(f && Number.isInteger(f.width) && Number.isInteger(f.height) && f.width > 0 && f.height > 0 && f.data?.length === f.width * f.height * 3))
      throw new VlmkitError('E_VIDEO', `${name}: frame ${i} is not an RGB image {width, height, data of width*height*3 bytes}`);
  });
  if (v.duration !== undefined && !(Number.isFinite(v.duration) && v.duration >= 0)) throw new VlmkitError('E_VIDEO', `${name}: duration ${v.duration} must be seconds >= 0`);
}

/**
 * A video's frames as the checkpoint takes them: sampled by its video_sampling (fps, max_frames; the options
 * override them) and, for a SmolVLM2 checkpoint (`square` given), shrunk to the frame square while decoding.
 */
export async function videoFrames(v: VideoInput, i: number, sampling: VideoSampling, opts: VideoOptions, square?: ImageProcessorConfig): Promise<{ frames: RgbImage[]; timestamps: number[]; duration: number }> {
  if (typeof v === 'string' && opts.sizesOnly) {
    const plan = await planVideo(v, { sampling, fps: opts.fps, maxFrames: opts.maxFrames });
    const [w, h] = square ? [square.maxImageSize, square.maxImageSize] : [plan.info.width, plan.info.height];
    const stub: RgbImage = { width: w, height: h, data: new Uint8Array(0) };
    return { frames: plan.indices.map(() => stub), timestamps: plan.timestamps, duration: plan.duration };
  }
  if (typeof v === 'string') {
    const got = await loadVideo(v, {
      sampling, fps: opts.fps, maxFrames: opts.maxFrames,
      mapFrame: square ? (f) => videoFrameToSquare(f, square) : undefined,
      onFrame: opts.onVideoFrame ? (d, t) => opts.onVideoFrame!(d, t, v) : undefined,
    });
    return { frames: got.frames, timestamps: got.timestamps, duration: got.duration };
  }
  if (!v || typeof v !== 'object') throw new VlmkitError('E_VIDEO', `video ${i} is neither a file path nor {frames, timestamps}; pass a video file path`);
  checkVideoFrames(v, `video ${i}`);
  const frames = square ? v.frames.map((f) => videoFrameToSquare(f, square)) : [...v.frames];
  return { frames, timestamps: [...v.timestamps], duration: v.duration ?? v.timestamps[v.timestamps.length - 1]! };
}

/**
 * The v1 recipe (checkpoints without a video prompt): every video part of the conversation becomes a text part
 * with FRAMES_INTRO and one image part per frame; the frames join the images where the video stood.
 */
export function framesAsImages<I>(messages: readonly ChatMessage[], images: readonly I[], videos: readonly (readonly I[])[]): { messages: ChatMessage[]; images: I[] } {
  let im = 0;
  let vi = 0;
  const outImages: I[] = [];
  const out = messages.map((m): ChatMessage => {
    if (!Array.isArray(m.content)) {
      const n = countToken(m.content as string, IMAGE_TOKEN);
      outImages.push(...images.slice(im, im + n));
      im += n;
      return m;
    }
    const content: ContentPart[] = [];
    for (const p of m.content) {
      if (p.type === 'video') {
        const frames = videos[vi++] ?? [];
        content.push({ type: 'text', text: FRAMES_INTRO });
        for (const f of frames) { content.push({ type: 'image' }); outImages.push(f); }
        continue;
      }
      if (p.type === 'image') outImages.push(images[im++]!);
      else if (p.type === 'text') {
        const n = countToken((p as { text: string }).text, IMAGE_TOKEN);
        outImages.push(...images.slice(im, im + n));
        im += n;
      }
      content.push(p);
    }
    return { ...m, content };
  });
  return { messages: out, images: outImages };
}

/** A rendered prompt's `<video>` markers as the v1 recipe: the intro and one `<image>` per frame. */
export function framesAsImagesText<I>(text: string, images: readonly I[], videos: readonly (readonly I[])[]): { text: string; images: I[] } {
  const outImages: I[] = [];
  let im = 0;
  let vi = 0;
  const re = new RegExp(`${escape(IMAGE_TOKEN)}|${escape(VIDEO_TOKEN)}`, 'g');
  const out = text.replace(re, (tok) => {
    if (tok === IMAGE_TOKEN) { if (im < images.length) outImages.push(images[im++]!); return tok; }
    const frames = videos[vi++] ?? [];
    outImages.push(...frames);
    return FRAMES_INTRO + IMAGE_TOKEN.repeat(frames.length);
  });
  outImages.push(...images.slice(im));
  return { text: out, images: outImages };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The order of `<image>` and `<video>` markers in a rendered (unexpanded) prompt: the order of their pixels. */
export function mediaOrder(prompt: string): ('image' | 'video')[] {
  const re = new RegExp(`${escape(IMAGE_TOKEN)}|${escape(VIDEO_TOKEN)}`, 'g');
  return [...prompt.matchAll(re)].map((m) => (m[0] === IMAGE_TOKEN ? 'image' : 'video'));
}
