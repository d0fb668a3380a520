// Video decoding with the system's ffmpeg: ffprobe's JSON gives the stream's size, frame rate, duration, frame
// count and rotation; ffmpeg decodes only the frames asked for (its select filter drops the rest before they are
// converted) and writes them as raw RGB24 to a pipe, read one frame at a time, so a long video is never held in
// memory whole. ffmpeg's autorotate applies the rotation metadata, as transformers' decoders (PyAV/torchcodec) do.
// Every child process has a time limit.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { VlmkitError } from '../errors.js';
import type { RgbImage } from '../processing/decode.js';
import type { VideoMeta } from './sample.js';

const INSTALL_HINT = 'install it (Debian/Ubuntu: apt-get install ffmpeg, macOS: brew install ffmpeg) or set VLMKIT_FFMPEG=/path/to/ffmpeg';

export interface VideoInfo extends VideoMeta {
  path: string;
  /** size of the decoded (rotated) frames */
  width: number;
  height: number;
  /** degrees the frames are turned by the rotation metadata (0, 90, 180, 270) */
  rotation: number;
}

export interface DecodedFrame {
  /** frame index in the video */
  index: number;
  /** seconds: index / fps, as transformers' VideoMetadata timestamps */
  timestamp: number;
  image: RgbImage;
}

/** An executable named `name` in a PATH directory, or null (a lookup, not a run: cheap, and fine on a busy machine). */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** The ffmpeg (and the ffprobe beside it) to run: VLMKIT_FFMPEG, else PATH. Missing -> one line saying how to install. */
export function findFfmpeg(): { ffmpeg: string; ffprobe: string } {
  const env = process.env.VLMKIT_FFMPEG;
  if (env) {
    if (!existsSync(env)) throw new VlmkitError('E_FFMPEG', `VLMKIT_FFMPEG=${env} does not exist; point it at an ffmpeg binary or ${INSTALL_HINT}`);
    const probe = join(dirname(env), basename(env).replace(/ffmpeg/, 'ffprobe'));
    if (!existsSync(probe)) throw new VlmkitError('E_FFMPEG', `no ffprobe next to VLMKIT_FFMPEG=${env} (looked for ${probe}); ffmpeg's install has both`);
    return { ffmpeg: env, ffprobe: probe };
  }
  const ffmpeg = onPath('ffmpeg');
  const ffprobe = onPath('ffprobe');
  if (!ffmpeg || !ffprobe) throw new VlmkitError('E_FFMPEG', `video needs ffmpeg and ffprobe, which are not on PATH; ${INSTALL_HINT}`);
  return { ffmpeg, ffprobe };
}

/** Runs a command to its end with a time limit; stdout and the last of stderr. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    // ffprobe's JSON for one stream is a few KB; cap what we keep so a strange file cannot grow it without end
    child.stdout.on('data', (d: Buffer) => { if (stdout.length < 1 << 20) stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') reject(new VlmkitError('E_VIDEO', `${cmd} took longer than ${timeoutMs / 1000} s and was stopped`));
      else resolve({ code, stdout, stderr });
    });
  });
}

function firstLine(s: string): string {
  return s.trim().split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? 'no message';
}

function rate(s: unknown): number {
  if (typeof s !== 'string') return NaN;
  const [n, d] = s.split('/').map(Number);
  return d === undefined ? n! : d ? n! / d : NaN;
}

/** Checks the file, then asks ffprobe for its first video stream. Bad input -> one line naming the file. */
export async function probeVideo(path: string, opts: { timeoutMs?: number } = {}): Promise<VideoInfo> {
  if (!existsSync(path)) throw new VlmkitError('E_FILE', `video ${path} does not exist; check the path`);
  const st = statSync(path);
  if (!st.isFile()) throw new VlmkitError('E_FILE', `video ${path} is not a file`);
  if (st.size === 0) throw new VlmkitError('E_VIDEO', `video ${path} is empty (0 bytes); pass a video file`);
  const { ffprobe } = findFfmpeg();
  const args = ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-select_streams', 'v:0', path];
  const r = await run(ffprobe, args, opts.timeoutMs ?? 30_000);
  if (r.code !== 0) throw new VlmkitError('E_VIDEO', `ffmpeg cannot read ${path} (${firstLine(r.stderr)}); pass a video file ffmpeg can play`);
  let j: { streams?: Record<string, unknown>[]; format?: Record<string, unknown> };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new VlmkitError('E_VIDEO', `ffprobe gave no readable description of ${path}; pass a video file ffmpeg can play`);
  }
  const s = j.streams?.[0];
  if (!s) throw new VlmkitError('E_VIDEO', `${path} has no video stream (audio only?); pass a file with video`);
  const w = Number(s.width);
  const h = Number(s.height);
  let fps = rate(s.avg_frame_rate);
  if (!(fps > 0)) fps = rate(s.r_frame_rate);
  const duration = Number(s.duration ?? j.format?.duration);
  if (!(w > 0 && h > 0) || !(fps > 0) || !(duration > 0)) {
    throw new VlmkitError('E_VIDEO', `${path}: its video stream has no usable size, frame rate or duration (${w}x${h}, ${fps} fps, ${duration} s); re-encode it (ffmpeg -i in out.mp4)`);
  }
  const nb = Number(s.nb_frames);
  const frameCount = Number.isInteger(nb) && nb > 0 ? nb : Math.max(1, Math.round(duration * fps));
  const rotation = streamRotation(s);
  const turned = rotation === 90 || rotation === 270;
  return { path, width: turned ? h : w, height: turned ? w : h, fps, duration, frameCount, rotation };
}

/** The rotation metadata (display matrix side data, or the older `rotate` tag) as 0/90/180/270. */
function streamRotation(s: Record<string, unknown>): number {
  let deg = 0;
  const side = s.side_data_list as { rotation?: unknown }[] | undefined;
  const fromSide = side?.find((d) => typeof d.rotation === 'number')?.rotation;
  const tag = (s.tags as Record<string, unknown> | undefined)?.rotate;
  if (typeof fromSide === 'number') deg = fromSide;
  else if (tag !== undefined) deg = Number(tag);
  if (!Number.isFinite(deg)) return 0;
  return ((Math.round(deg / 90) * 90) % 360 + 360) % 360;
}

/**
 * Decodes the given frame indices (ascending) as RGB, one at a time. `onFrame` reports progress. The decoder is
 * killed when the consumer stops early or the time limit passes.
 */
export async function* decodeFrames(info: VideoInfo, indices: readonly number[], opts: { timeoutMs?: number } = {}): AsyncGenerator<DecodedFrame> {
  if (indices.length === 0) return;
  const { ffmpeg } = findFfmpeg();
  const wanted = [...indices].sort((a, b) => a - b);
  const select = wanted.map((i) => `eq(n\\,${i})`).join('+');
  const args = ['-v', 'error', '-nostdin', '-i', info.path, '-map', '0:v:0', '-vf', `select='${select}'`, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
  const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const timeoutMs = opts.timeoutMs ?? Math.max(60_000, info.duration * 2_000);
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => child.on('error', resolve));
  const frameBytes = info.width * info.height * 3;
  let buf = Buffer.alloc(frameBytes);
  let filled = 0;
  let k = 0;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - at);
        chunk.copy(buf, filled, at, at + n);
        filled += n;
        at += n;
        if (filled === frameBytes) {
          if (k >= wanted.length) break;
          const index = wanted[k++]!;
          yield { index, timestamp: index / info.fps, image: { width: info.width, height: info.height, data: new Uint8Array(buf.buffer, buf.byteOffset, frameBytes) } };
          buf = Buffer.alloc(frameBytes);
          filled = 0;
        }
      }
    }
    const code = await Promise.race([exited, spawnError.then((e) => { throw new VlmkitError('E_FFMPEG', `cannot run ${ffmpeg} (${e.message}); ${INSTALL_HINT}`); })]);
    if (timedOut) throw new VlmkitError('E_VIDEO', `decoding ${info.path} took longer than ${timeoutMs / 1000} s and was stopped`);
    if (code !== 0) throw new VlmkitError('E_VIDEO', `ffmpeg failed to decode ${info.path} (${firstLine(stderr)}); check the file plays`);
    if (k === 0) throw new VlmkitError('E_VIDEO', `ffmpeg decoded no frames from ${info.path}; the file may be truncated, re-encode it (ffmpeg -i in out.mp4)`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
