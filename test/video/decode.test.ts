// Real video files made with ffmpeg (a red 8x8 square moving 2 px per frame on black, 10 fps, 3 s, lossless), then
// probed, sampled and decoded by src/video: the sampled frames' indices and timestamps, the square's colour and
// position in each, the rotation metadata applied, the frames through SmolVLM2's video processor, and one clear
// error for each bad input (missing, empty, not a video, no video stream, no ffmpeg).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VlmkitError } from '../../src/errors.js';
import { findFfmpeg, loadVideo, probeVideo } from '../../src/video/index.js';
import { loadVideoProcessorConfig, videoFrameToSquare } from '../../src/models/index.js';
import type { RgbImage } from '../../src/processing/decode.js';

const SMOLVLM = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference', 'tiny-smolvlm');
const dir = mkdtempSync(join(tmpdir(), 'vlmkit-video-'));
const clip = join(dir, 'square.mp4');
const rotated = join(dir, 'rotated.mp4');

function ffmpeg(args: string[]): void {
  const r = spawnSync(findFfmpeg().ffmpeg, ['-v', 'error', '-y', ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

/** The bounding box of the reddish pixels (R > 128, G and B < 64). */
function redBox(f: RgbImage): { x0: number; x1: number; y0: number; y1: number; n: number } {
  let x0 = Infinity, x1 = -1, y0 = Infinity, y1 = -1, n = 0;
  for (let y = 0; y < f.height; y++) for (let x = 0; x < f.width; x++) {
    const i = (y * f.width + x) * 3;
    if (f.data[i]! > 128 && f.data[i + 1]! < 64 && f.data[i + 2]! < 64) {
      n++; x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
  }
  return { x0, x1, y0, y1, n };
}

const expectNoFail = (what: RegExp) => (e: unknown) => e instanceof VlmkitError && what.test(e.message) && !e.message.includes('\n');

describe('video decoding with ffmpeg', () => {
  before(() => {
    // overlay x = 20 px/s * t: frame n (t = n / 10) has the square at x = 2n, y = 20
    ffmpeg(['-f', 'lavfi', '-i', 'color=c=black:s=80x48:r=10:d=3', '-f', 'lavfi', '-i', 'color=c=red:s=8x8:r=10:d=3',
      '-filter_complex', "[0][1]overlay=x='20*t':y=20:eval=frame", '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', clip]);
    ffmpeg(['-i', clip, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('probes size, frame rate, duration and frame count', async () => {
    const info = await probeVideo(clip);
    assert.deepEqual({ w: info.width, h: info.height, fps: info.fps, d: info.duration, n: info.frameCount, r: info.rotation }, { w: 80, h: 48, fps: 10, d: 3, n: 30, r: 0 });
  });

  it('decodes only the sampled frames: indices, timestamps and the square in each', async () => {
    const progress: number[] = [];
    // 3 s at sampling fps 1: 3 frames, linspace(0, 29, 3) = 0, 14.5, 29 -> 0, 14, 29
    const v = await loadVideo(clip, { sampling: { fps: 1, maxFrames: 64 }, onFrame: (d) => progress.push(d) });
    assert.deepEqual(v.indices, [0, 14, 29]);
    assert.deepEqual(v.timestamps, [0, 1.4, 2.9]);
    assert.deepEqual(progress, [1, 2, 3]);
    v.frames.forEach((f, k) => {
      const n = v.indices[k]!;
      assert.equal(f.width, 80);
      assert.equal(f.height, 48);
      assert.deepEqual(redBox(f), { x0: 2 * n, x1: 2 * n + 7, y0: 20, y1: 27, n: 64 }, `frame ${n}`);
      const at = (24 * 80 + 2 * n + 4) * 3; // the square's centre (its edges blend a little in YUV)
      assert.ok(f.data[at]! >= 250 && f.data[at + 1]! <= 5 && f.data[at + 2]! <= 5, `frame ${n} square colour ${Array.from(f.data.subarray(at, at + 3))}`);
    });
  });

  it('--fps / --max-frames override the checkpoint sampling', async () => {
    const v = await loadVideo(clip, { sampling: { fps: 1, maxFrames: 64 }, fps: 2, maxFrames: 4 });
    // min(round(6), 4) = 4 frames, linspace(0, 29, 4) = 0, 9.67, 19.33, 29
    assert.deepEqual(v.indices, [0, 9, 19, 29]);
  });

  it('applies the rotation metadata: the frames come out turned a quarter', async () => {
    const plain = await loadVideo(clip, { sampling: { fps: 1, maxFrames: 1 } });
    const turned = await loadVideo(rotated, { sampling: { fps: 1, maxFrames: 1 } });
    assert.equal(turned.info.rotation, 90);
    const a = plain.frames[0]!;
    const b = turned.frames[0]!;
    assert.deepEqual([b.width, b.height], [48, 80]);
    // b is a turned by 90 degrees one way: b(x, y) = a(W-1-y, x) or a(y, H-1-x)
    const same = (map: (x: number, y: number) => [number, number]) => {
      for (let y = 0; y < b.height; y++) for (let x = 0; x < b.width; x++) {
        const [ax, ay] = map(x, y);
        for (let c = 0; c < 3; c++) if (b.data[(y * b.width + x) * 3 + c] !== a.data[(ay * a.width + ax) * 3 + c]) return false;
      }
      return true;
    };
    assert.ok(same((x, y) => [a.width - 1 - y, x]) || same((x, y) => [y, a.height - 1 - x]), 'the rotated file decodes to the plain frame turned 90 degrees');
  });

  it('through the checkpoint video processor: max_image_size squares', async () => {
    const vcfg = loadVideoProcessorConfig(SMOLVLM);
    assert.deepEqual(vcfg.sampling, { fps: 1, maxFrames: 6 });
    const v = await loadVideo(clip, { sampling: vcfg.sampling, mapFrame: (f) => videoFrameToSquare(f, vcfg.image) });
    for (const f of v.frames) assert.deepEqual([f.width, f.height], [32, 32]);
  });

  describe('bad input: one clear line each', () => {
    it('a missing file', async () => {
      await assert.rejects(probeVideo(join(dir, 'nope.mp4')), expectNoFail(/nope\.mp4 does not exist/));
    });
    it('a zero-length file', async () => {
      const p = join(dir, 'empty.mp4');
      writeFileSync(p, '');
      await assert.rejects(probeVideo(p), expectNoFail(/empty\.mp4 is empty \(0 bytes\)/));
    });
    it('a file ffmpeg cannot read', async () => {
      const p = join(dir, 'text.mp4');
      writeFileSync(p, 'this is not a video\n'.repeat(50));
      await assert.rejects(probeVideo(p), expectNoFail(/ffmpeg cannot read .*text\.mp4/));
    });
    it('a file with no video stream', async () => {
      const p = join(dir, 'tone.wav');
      ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', p]);
      await assert.rejects(probeVideo(p), expectNoFail(/tone\.wav has no video stream/));
    });
    it('no ffmpeg', async () => {
      const saved = { path: process.env.PATH, ff: process.env.VLMKIT_FFMPEG };
      try {
        delete process.env.VLMKIT_FFMPEG;
        process.env.PATH = dir;
        await assert.rejects(probeVideo(clip), expectNoFail(/not on PATH; install it .*apt-get install ffmpeg/));
        process.env.VLMKIT_FFMPEG = join(dir, 'no-ffmpeg');
        await assert.rejects(probeVideo(clip), expectNoFail(/VLMKIT_FFMPEG=.*no-ffmpeg does not exist/));
      } finally {
        process.env.PATH = saved.path;
        if (saved.ff === undefined) delete process.env.VLMKIT_FFMPEG;
        else process.env.VLMKIT_FFMPEG = saved.ff;
      }
    });
  });
});
