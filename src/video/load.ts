// A video file to sampled frames: probe it, pick SmolVLM2's frames, decode only those, and hand each to the
// caller's mapFrame as soon as it arrives (a model family shrinks it there, so only the small frames are kept).
import type { RgbImage } from '../processing/decode.js';
import { decodeFrames, probeVideo, type VideoInfo } from './ffmpeg.js';
import { sampleFrameIndices, type VideoSampling } from './sample.js';

export interface LoadVideoOptions {
  /** the checkpoint's sampling (its fps and max_frames), overridden by fps / maxFrames */
  sampling: VideoSampling;
  fps?: number;
  maxFrames?: number;
  /** turns each decoded frame into what is kept (e.g. the model's square); without it frames are kept as decoded */
  mapFrame?: (frame: RgbImage) => RgbImage;
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

/** What decoding would give, from ffprobe alone: the frames it would take and their timestamps. */
export interface VideoPlan {
  info: VideoInfo;
  indices: number[];
  timestamps: number[];
  duration: number;
}

/**
 * The frames loadVideo would take, without decoding any (one ffprobe run): for counting a row's tokens when a
 * data set is loaded. loadVideo gives the same indices and timestamps unless the stream decodes fewer frames than
 * its header reports; whoever plans with this must check the decoded count later (the SFT collator does).
 */
export async function planVideo(path: string, opts: Pick<LoadVideoOptions, 'sampling' | 'fps' | 'maxFrames' | 'timeoutMs'>): Promise<VideoPlan> {
  const info = await probeVideo(path, { timeoutMs: opts.timeoutMs });
  const sampling = { ...opts.sampling, ...(opts.fps !== undefined && { fps: opts.fps }), ...(opts.maxFrames !== undefined && { maxFrames: opts.maxFrames }) };
  const indices = sampleFrameIndices(info, sampling);
  // decodeFrames stamps each frame index / fps
  return { info, indices, timestamps: indices.map((i) => i / info.fps), duration: info.duration };
}

export async function loadVideo(path: string, opts: LoadVideoOptions): Promise<LoadedVideo> {
  const { info, indices: wanted } = await planVideo(path, opts);
  const indices: number[] = [];
  const timestamps: number[] = [];
  const frames: RgbImage[] = [];
  for await (const f of decodeFrames(info, wanted, { timeoutMs: opts.timeoutMs })) {
    indices.push(f.index);
    timestamps.push(f.timestamp);
    frames.push(opts.mapFrame ? opts.mapFrame(f.image) : f.image);
    opts.onFrame?.(frames.length, wanted.length);
  }
  return { info, indices, timestamps, duration: info.duration, frames };
}
