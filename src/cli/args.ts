// Command-line arguments -> typed options (node:util parseArgs). A bad flag or value is a VlmkitError ('E_ARGS')
// that names the flag and says what it takes.
import { VlmkitError } from '../errors.js';
import { builtinModelDir, type VlmGenerateOptions } from '../api.js';
import type { QuantFormat } from '../engine/index.js';
import { checkQuantFormat } from '../models/index.js';

export function argError(message: string): VlmkitError {
  return new VlmkitError('E_ARGS', message);
}

/** Runs a parseArgs call, turning its errors into ours with `usage` appended. */
export function parsing<T>(usage: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    // node's messages may put the fix on a second line ("... is ambiguous.\nTo specify ... use '--x=-1'"): keep
    // it on the first, the one line a user error prints
    throw argError(`${(e as Error).message.replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')}\n${usage}`);
  }
}

function num(flag: string, v: string | undefined, ok: (x: number) => boolean, want: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || !ok(x)) throw argError(`--${flag} takes ${want}, got ${JSON.stringify(v)}`);
  return x;
}

export const GENERATION_FLAGS = {
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  'repetition-penalty': { type: 'string' },
  stop: { type: 'string', multiple: true },
  'no-split': { type: 'boolean' },
  'longest-edge': { type: 'string' },
  'max-image-pixels': { type: 'string' },
} as const;

export const GENERATION_USAGE = `generation options:
  --max-new-tokens N        answer length limit (default: generation_config.json's, else 256)
  --temperature T           0 = greedy (default); > 0 samples
  --top-k K                 keep the K most likely tokens when sampling (default 50; 0 = off)
  --top-p P                 nucleus sampling mass in (0, 1] (1 = off)
  --repetition-penalty R    > 1 discourages repeating tokens (1 = off)
  --seed S                  sampling seed (default 0)
  --stop TEXT               stop when the answer contains TEXT (repeatable)
  --no-split                do not split images into tiles (fewer tokens, less detail)
  --longest-edge PX         resize images to this long edge first (default: the checkpoint's, 2048 for
                            SmolVLM-256M: 4x4 tiles); 1024 makes 2x2 tiles: a ~3x faster prompt, less detail
  --max-image-pixels N      refuse images whose header declares more than N pixels, before decoding them
                            (default 178956970, the limit PIL refuses past)`;

export interface GenerationFlagValues {
  'max-new-tokens'?: string;
  temperature?: string;
  'top-p'?: string;
  'top-k'?: string;
  seed?: string;
  'repetition-penalty'?: string;
  stop?: string[];
  'no-split'?: boolean;
  'longest-edge'?: string;
  'max-image-pixels'?: string;
}

export function generationOptions(v: GenerationFlagValues): VlmGenerateOptions {
  const o: VlmGenerateOptions = {};
  const set = <K extends keyof VlmGenerateOptions>(k: K, x: VlmGenerateOptions[K] | undefined) => {
    if (x !== undefined) o[k] = x;
  };
  set('maxNewTokens', num('max-new-tokens', v['max-new-tokens'], (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1'));
  set('temperature', num('temperature', v.temperature, (x) => x >= 0, 'a number >= 0'));
  set('topP', num('top-p', v['top-p'], (x) => x > 0 && x <= 1, 'a number in (0, 1]'));
  set('topK', num('top-k', v['top-k'], (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0'));
  set('seed', num('seed', v.seed, (x) => Number.isInteger(x), 'an integer'));
  set('repetitionPenalty', num('repetition-penalty', v['repetition-penalty'], (x) => x > 0, 'a number > 0'));
  if (v.stop?.length) o.stopStrings = v.stop;
  if (v['no-split']) o.doImageSplitting = false;
  set('longestEdge', num('longest-edge', v['longest-edge'], (x) => Number.isInteger(x) && x >= 1, 'a whole number of pixels, e.g. 1024'));
  set('maxImagePixels', num('max-image-pixels', v['max-image-pixels'], (x) => Number.isSafeInteger(x) && x >= 1, 'a whole number of pixels >= 1, e.g. 50000000'));
  return o;
}

/** The video flags of ask and chat. */
export const VIDEO_FLAGS = {
  video: { type: 'string', multiple: true },
  fps: { type: 'string' },
  'max-frames': { type: 'string' },
} as const;

export const VIDEO_USAGE = `video options:
  --video PATH              a video file (any format the system's ffmpeg reads; repeatable); its frames are sampled
                            as the checkpoint's video_sampling says (SmolVLM2), else 1 per second, at most 64
  --fps F                   frames per second to sample (overrides the checkpoint's)
  --max-frames N            at most N frames per video (overrides the checkpoint's)`;

/** --fps and --max-frames as video options. */
export function videoOptions(v: { fps?: string; 'max-frames'?: string }): { fps?: number; maxFrames?: number } {
  const o: { fps?: number; maxFrames?: number } = {};
  const fps = num('fps', v.fps, (x) => x > 0, 'a number of frames per second > 0, e.g. 1');
  const maxFrames = num('max-frames', v['max-frames'], (x) => Number.isInteger(x) && x >= 1, 'a whole number >= 1, e.g. 16');
  if (fps !== undefined) o.fps = fps;
  if (maxFrames !== undefined) o.maxFrames = maxFrames;
  return o;
}

/** "640x480" -> [640, 480] */
export function parseSize(s: string): [number, number] {
  const m = /^(\d+)\s*[xX×]\s*(\d+)$/.exec(s.trim());
  const w = m ? Number(m[1]) : NaN;
  const h = m ? Number(m[2]) : NaN;
  if (!m || w < 1 || h < 1) throw argError(`--size takes WIDTHxHEIGHT in pixels, e.g. 1024x768; got ${JSON.stringify(s)}`);
  return [w, h];
}

/** What --model defaults to, for the usage texts. */
export const MODEL_FLAG_USAGE = `  --model DIR               a SmolVLM / Idefics3 checkpoint directory (default: the built-in model vlmkit-shapes,
                            models/vlmkit-shapes in the vlmkit package, trained on vlmkit's shapes scenes only)`;

/** The model directory from --model; the built-in model's when the flag is left out. */
export function modelDir(v: { model?: string }): string {
  if (v.model === undefined) return builtinModelDir();
  if (!v.model.trim()) throw argError('--model takes the folder of a SmolVLM / Idefics3 checkpoint; leave it out for the built-in model');
  return v.model;
}

export const QUANT_FLAG_USAGE = `  --quant FORMAT            quantize the linears at load time: q8_0, q4_0 or nf4 (less memory, faster answers,
                            slightly different ones; a folder written by vlmkit quantize loads without it); nf4
                            also holds the token embeddings and lm_head in q8_0 (docs/quantization.md)`;

/** --quant FORMAT, checked before anything loads; one line listing the formats otherwise. */
export function quantOption(v: { quant?: string }): QuantFormat | undefined {
  return v.quant === undefined ? undefined : checkQuantFormat(v.quant, '--quant');
}
