// Small real video files for the tests, made with the system's ffmpeg in a temporary folder.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { findFfmpeg } from '../../src/video/index.js';

export function ffmpeg(args: string[]): void {
  const r = spawnSync(findFfmpeg().ffmpeg, ['-v', 'error', '-y', ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

/** A red 8x8 square moving 2 px per frame on black, 80x48, 10 fps, `seconds` long, lossless. */
export function movingSquare(out: string, seconds = 3): void {
  ffmpeg(['-f', 'lavfi', '-i', `color=c=black:s=80x48:r=10:d=${seconds}`, '-f', 'lavfi', '-i', `color=c=red:s=8x8:r=10:d=${seconds}`,
    '-filter_complex', "[0][1]overlay=x='20*t':y=20:eval=frame", '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', out]);
}

/** One second of a sine tone with no video stream. */
export function audioOnly(out: string): void {
  ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', out]);
}
