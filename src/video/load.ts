// A video file to what the SmolVLM family's prompt and pixels need: probe it, pick SmolVLM2's frames, decode
// only those, and turn each into its square as soon as it arrives (so only the small squares are kept).
import type { ImageProcessorConfig } from '../models/index.js';
import type { RgbImage } from '../processing/decode.js';
import { decodeFrames, probeVideo, type VideoInfo } from './ffmpeg.js';
import { videoFrameToSquare } from './processor.js';
import { sampleFrameIndices, type VideoSampling } from './sample.js';

export interface LoadVideoOptions {
  /** the checkpoint's sampling (its fps and max_frames), overridden by fps / maxFrames */
  sampling: VideoSampling;
  fps?: number;
  maxFrames?: number;
  /** the video frame settings (size, max_image_size, resample); without it the frames are returned as decoded */
  frameConfig?: ImageProcessorConfig;
  /** called after each decoded frame */
  onFrame?: (done: number, total: number) => void;
  timeoutMs?: number;
}

export interface LoadedVideo {
  info: VideoInfo;
  /** the sampled frame indices, ascending */
  indices: number[];
  /** seconds, per frame */
  timestamps: number[];
  duration: number;
  frames: RgbImage[];
}

export async function loadVideo(path: string, opts: LoadVideoOptions): Promise<LoadedVideo> {
  const info = await probeVideo(path, { timeoutMs: opts.timeoutMs });
  const sampling = { ...opts.sampling, ...(opts.fps !== undefined && { fps: opts.fps }), ...(opts.maxFrames !== undefined && { maxFrames: opts.maxFrames }) };
  const wanted = sampleFrameIndices(info, sampling);
  const indices: number[] = [];
  const timestamps: number[] = [];
  const frames: RgbImage[] = [];
  for await (const f of decodeFrames(info, wanted, { timeoutMs: opts.timeoutMs })) {
    indices.push(f.index);
    timestamps.push(f.timestamp);
    frames.push(opts.frameConfig ? videoFrameToSquare(f.image, opts.frameConfig) : f.image);
    opts.onFrame?.(frames.length, wanted.length);
  }
  return { info, indices, timestamps, duration: info.duration, frames };
}
