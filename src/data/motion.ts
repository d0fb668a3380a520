// "motion" clips: short synthetic videos of one shape on a plain background that moves left, right, up or down,
// appears, disappears or changes colour, written as real video files with the system's ffmpeg (lossless H.264 in
// yuv444p, so colours survive), with a question about what happens and its answer. Deterministic by seed: clip i of
// split s draws from mixSeed(seed, s, i), as the shapes generator does.
//
// What happens is visible in any two sampled frames that include the first and the last (the sampling of a short
// clip always does): the shape starts and ends on opposite sides of its path, is absent at the start (appears) or
// at the end (disappears), or ends in another colour.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VlmkitError } from '../errors.js';
import { writeDirAtomic } from '../io/safetensors-write.js';
import { findFfmpeg } from '../video/ffmpeg.js';
import { Canvas, type Rgb, type Shape } from './raster.js';
import { mixSeed, Rng } from './rng.js';
import { SHAPE_COLORS, SHAPE_KINDS, objectShape, type ShapeKind, type ShapeObject } from './shapes.js';

export const MOTION_EVENTS = ['left', 'right', 'up', 'down', 'appears', 'disappears', 'color'] as const;
export type MotionEvent = (typeof MOTION_EVENTS)[number];

const BACKGROUND: Rgb = [248, 248, 248];

export interface MotionClip {
  kind: ShapeKind;
  color: string;
  event: MotionEvent;
  /** the colour it turns to (event 'color') */
  toColor?: string;
  question: string;
  answer: string;
  /** frames in order, size x size RGB */
  frames: Uint8Array[];
}

export interface MotionOptions {
  /** frame side in pixels (default 64) */
  size?: number;
  /** frames per clip (default 8) */
  frames?: number;
  /** frames per second (default 4: 8 frames make a 2 s clip) */
  fps?: number;
}

function rgbOf(name: string): Rgb {
  return SHAPE_COLORS.find((c) => c.name === name)!.rgb;
}

function answerFor(c: { kind: string; color: string; event: MotionEvent; toColor?: string }): string {
  const it = `The ${c.color} ${c.kind}`;
  switch (c.event) {
    case 'left':
    case 'right':
      return `${it} moves to the ${c.event}.`;
    case 'up':
    case 'down':
      return `${it} moves ${c.event}.`;
    case 'appears':
      return `${it} appears.`;
    case 'disappears':
      return `${it} disappears.`;
    case 'color':
      return `${it} turns ${c.toColor}.`;
  }
}

/** One clip from its own random stream. */
export function makeMotionClip(rng: Rng, o: MotionOptions = {}): MotionClip {
  const size = o.size ?? 64;
  const n = o.frames ?? 8;
  const kind = rng.pick(SHAPE_KINDS);
  const [first, second] = rng.sample(SHAPE_COLORS, 2).map((c) => c.name);
  const event = rng.pick(MOTION_EVENTS);
  const r = size * rng.float(0.12, 0.18);
  const lo = r + 2;
  const hi = size - r - 2;
  const mid = rng.float(lo + (hi - lo) * 0.3, lo + (hi - lo) * 0.7);
  const rot = kind === 'circle' ? 0 : rng.float(-0.2, 0.2);
  const frames: Uint8Array[] = [];
  for (let f = 0; f < n; f++) {
    const t = n === 1 ? 1 : f / (n - 1);
    let cx = mid, cy = mid;
    if (event === 'left') cx = hi - (hi - lo) * t;
    if (event === 'right') cx = lo + (hi - lo) * t;
    if (event === 'up') cy = hi - (hi - lo) * t;
    if (event === 'down') cy = lo + (hi - lo) * t;
    // present in the later half (appears) or the earlier half (disappears)
    const shown = event === 'appears' ? f >= n / 2 : event === 'disappears' ? f < n / 2 : true;
    const color = event === 'color' && f >= n / 2 ? second! : first!;
    const canvas = new Canvas(size, size);
    canvas.clear(BACKGROUND);
    if (shown) {
      const obj: ShapeObject = { kind, color, rgb: rgbOf(color), cx, cy, r, rot };
      canvas.fill(objectShape(obj) as Shape, obj.rgb);
    }
    frames.push(canvas.data);
  }
  const clip = { kind, color: first!, event, ...(event === 'color' && { toColor: second! }) };
  return { ...clip, question: 'What happens in the video?', answer: answerFor(clip), frames };
}

/** Writes frames as a lossless video file (yuv444p H.264, so the colours come back). */
export function writeClip(path: string, frames: readonly Uint8Array[], size: number, fps: number): void {
  const { ffmpeg } = findFfmpeg();
  const args = ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${size}x${size}`, '-r', String(fps), '-i', 'pipe:0',
    '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', path];
  const r = spawnSync(ffmpeg, args, { input: Buffer.concat(frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength))), encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new VlmkitError('E_FFMPEG', `cannot run ${ffmpeg} (${r.error.message}); install ffmpeg or set VLMKIT_FFMPEG`);
  if (r.status !== 0) throw new VlmkitError('E_VIDEO', `ffmpeg could not write ${path}: ${(r.stderr ?? '').trim().split('\n').pop()}`);
}

export interface MotionDatasetOptions extends MotionOptions {
  /** clips in all splits together */
  n: number;
  seed: number;
  /** fraction of n for the test split (default 0.2); train gets the rest */
  testFraction?: number;
  progress?: (done: number, total: number) => void;
}

export interface MotionSummary {
  generator: 'motion';
  seed: number;
  size: number;
  frames: number;
  fps: number;
  splits: Record<'train' | 'test', { clips: number; file: string; jsonl_sha256: string }>;
  events: Record<string, number>;
}

/** The JSONL row of a clip: TRL's conversational form with a video part (its path relative to the JSONL). */
export function motionRow(clip: Pick<MotionClip, 'question' | 'answer' | 'event'>, path: string): Record<string, unknown> {
  return {
    messages: [
      { role: 'user', content: [{ type: 'video', path }, { type: 'text', text: clip.question }] },
      { role: 'assistant', content: [{ type: 'text', text: clip.answer }] },
    ],
    category: clip.event,
    answer: clip.answer,
  };
}

/**
 * Writes clips/<split>-NNNNNN.mp4, train.jsonl, test.jsonl and dataset.json into `out`, built beside it and renamed
 * into place at the end (a killed run leaves nothing half-written). A non-empty `out` is replaced only with force.
 */
export function writeMotionDataset(out: string, o: MotionDatasetOptions, force = false): MotionSummary {
  const size = o.size ?? 64, frames = o.frames ?? 8, fps = o.fps ?? 4, tf = o.testFraction ?? 0.2;
  if (!Number.isInteger(o.n) || o.n < 1) throw new VlmkitError('E_ARGS', `--n takes a whole number of clips >= 1, got ${o.n}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new VlmkitError('E_ARGS', `--seed takes a whole number >= 0, got ${o.seed}`);
  if (!Number.isInteger(size) || size < 16 || size > 512 || size % 2) throw new VlmkitError('E_ARGS', `--size for motion takes an even 16 to 512 pixels, got ${size}`);
  if (existsSync(out) && readdirSync(out).length > 0 && !force)
    throw new VlmkitError('E_ARGS', `--out ${out} exists and is not empty; choose a new folder or pass --force to replace it`);
  findFfmpeg(); // no ffmpeg: one line before anything is made
  const test = Math.floor(o.n * tf);
  const counts = { train: o.n - test, test };
  const summary: MotionSummary = { generator: 'motion', seed: o.seed, size, frames, fps, splits: {} as MotionSummary['splits'], events: {} };
  let done = 0;
  writeDirAtomic(out, (tmp) => {
    mkdirSync(join(tmp, 'clips'));
    (['train', 'test'] as const).forEach((split, s) => {
      const lines: string[] = [];
      for (let i = 0; i < counts[split]; i++) {
        const clip = makeMotionClip(new Rng(mixSeed(o.seed, s, i)), { size, frames });
        const rel = `clips/${split}-${String(i).padStart(6, '0')}.mp4`;
        writeClip(join(tmp, rel), clip.frames, size, fps);
        lines.push(JSON.stringify(motionRow(clip, rel)));
        summary.events[clip.event] = (summary.events[clip.event] ?? 0) + 1;
        o.progress?.(++done, o.n);
      }
      const text = lines.map((l) => l + '\n').join('');
      writeFileSync(join(tmp, `${split}.jsonl`), text);
      summary.splits[split] = { clips: counts[split], file: `${split}.jsonl`, jsonl_sha256: createHash('sha256').update(text).digest('hex') };
    });
    writeFileSync(join(tmp, 'dataset.json'), JSON.stringify(summary, null, 2) + '\n');
  });
  return summary;
}
