// SmolVLM2's frame sampling, as transformers' SmolVLMVideoProcessor.sample_frames computes it: how many frames
// (fps x duration, capped by max_frames, at least one), from where (one second skipped at each end when the clip
// is long enough) and which (evenly spaced integer indices, truncated as numpy's linspace(dtype=int) does, then
// deduplicated). Pure integer/float logic so that a table of cases can check it.
import { VlmkitError } from '../errors.js';

/** What sampling needs to know about a video (from ffprobe, or given with frames). */
export interface VideoMeta {
  /** frames in the video */
  frameCount: number;
  /** the video's own frame rate */
  fps: number;
  /** seconds */
  duration: number;
}

/** The checkpoint's video_sampling: frames per second to take, and the most frames to take. */
export interface VideoSampling {
  fps: number;
  maxFrames: number;
  /** seconds skipped at each end of a long clip (transformers' skip_secs, default 1) */
  skipSecs?: number;
}

/** Python's round(): halves go to the even neighbour (round(2.5) == 2), as int(round(fps * duration)) does. */
export function pythonRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/**
 * numpy.linspace(start, end, n, dtype=int): start + i * step in float64, the last one exactly `end`, each
 * truncated toward zero.
 */
export function linspaceInt(start: number, end: number, n: number): number[] {
  if (n === 1) return [Math.trunc(start)];
  const step = (end - start) / (n - 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.trunc(i === n - 1 ? end : i * step + start));
  return out;
}

/** The indices of the frames SmolVLM2 takes from a video, ascending and distinct. */
export function sampleFrameIndices(meta: VideoMeta, sampling: VideoSampling): number[] {
  const { frameCount: total, fps: videoFps, duration } = meta;
  const { fps, maxFrames } = sampling;
  const skip = sampling.skipSecs ?? 1;
  if (!(Number.isInteger(total) && total >= 1)) throw new VlmkitError('E_VIDEO', `the video has ${total} frames; it needs at least one to sample from`);
  if (!(videoFps > 0) || !(duration >= 0)) throw new VlmkitError('E_VIDEO', `video fps ${videoFps} and duration ${duration} s must be positive numbers`);
  if (!(fps > 0)) throw new VlmkitError('E_OPTION', `sampling fps must be a positive number (e.g. 1), got ${fps}`);
  if (!(Number.isInteger(maxFrames) && maxFrames >= 1)) throw new VlmkitError('E_OPTION', `max frames must be a whole number >= 1 (e.g. 64), got ${maxFrames}`);
  const desired = Math.max(1, Math.min(pythonRound(fps * duration), maxFrames));
  let start = 0;
  let end = total - 1;
  // transformers compares the clip less the skipped ends with max_frames * fps (not with the desired count)
  if (skip > 0 && duration - 2 * skip > maxFrames * fps) {
    start = Math.trunc(skip * videoFps);
    end = Math.trunc(total - skip * videoFps);
  }
  start = Math.max(0, start);
  end = Math.min(end, total - 1);
  if (start >= end) [start, end] = [0, total - 1];
  return [...new Set(linspaceInt(start, end, desired))].sort((a, b) => a - b);
}
