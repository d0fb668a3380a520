// SmolVLM2's frame sampling against transformers' sample_frames rule, case by case. Every expected list is worked
// out by hand from the rule (desired = max(1, min(round_half_even(fps * duration), max_frames)); one second
// skipped at each end when duration - 2 > max_frames * fps; numpy.linspace(start, end, desired) truncated to
// integers; duplicates removed), not taken from our code.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { linspaceInt, pythonRound, sampleFrameIndices } from '../../src/video/sample.js';
import { VlmkitError } from '../../src/errors.js';

interface Case { what: string; frameCount: number; videoFps: number; duration: number; fps: number; maxFrames: number; want: number[] }

const CASES: Case[] = [
  // the reference case's clip: 3 frames wanted, linspace(0, 5, 3) = 0, 2.5, 5
  { what: '3 s at 2 fps', frameCount: 6, videoFps: 2, duration: 3, fps: 1, maxFrames: 64, want: [0, 2, 5] },
  // under two seconds: round(1.5) = 2 frames, the first and the last
  { what: '1.5 s clip', frameCount: 15, videoFps: 10, duration: 1.5, fps: 1, maxFrames: 64, want: [0, 14] },
  // round(0.5) = 0, raised to one frame
  { what: 'half-second clip', frameCount: 12, videoFps: 24, duration: 0.5, fps: 1, maxFrames: 64, want: [0] },
  // Python rounds 2.5 to 2 (half to even), not 3
  { what: '2.5 s, half to even', frameCount: 62, videoFps: 25, duration: 2.5, fps: 1, maxFrames: 64, want: [0, 61] },
  // 10 wanted, no skip (8 s left is not > 64): step 249/9 = 27.67
  { what: '10 s at 25 fps', frameCount: 250, videoFps: 25, duration: 10, fps: 1, maxFrames: 64, want: [0, 27, 55, 83, 110, 138, 166, 193, 221, 249] },
  // more frames than max_frames: 8 of 100, skip applies (98 > 8): start 30, end 3000 - 30, step 2940/7 = 420
  { what: '100 s capped at 8', frameCount: 3000, videoFps: 30, duration: 100, fps: 1, maxFrames: 8, want: [30, 450, 870, 1290, 1710, 2130, 2550, 2970] },
  // 10 s - 2 = 8 is not > 8 * 1: no skip
  { what: 'skip boundary, not skipped', frameCount: 300, videoFps: 30, duration: 10, fps: 1, maxFrames: 8, want: [0, 42, 85, 128, 170, 213, 256, 299] },
  // 10.5 s - 2 = 8.5 > 8: start 30, end int(315 - 30) = 285, step 255/7 = 36.43
  { what: 'skip boundary, skipped', frameCount: 315, videoFps: 30, duration: 10.5, fps: 1, maxFrames: 8, want: [30, 66, 102, 139, 175, 212, 248, 285] },
  // 29.97 fps: start int(29.97) = 29, end int(17982 - 29.97) = 17952, step 17923/3 = 5974.33
  { what: '10 min at 29.97 fps, 4 frames', frameCount: 17982, videoFps: 29.97, duration: 600, fps: 1, maxFrames: 4, want: [29, 6003, 11977, 17952] },
  // more wanted (6) than there are frames (3): linspace(0, 2, 6) = 0, .4, .8, 1.2, 1.6, 2 -> duplicates removed
  { what: 'fewer frames than wanted', frameCount: 3, videoFps: 1, duration: 3, fps: 2, maxFrames: 64, want: [0, 1, 2] },
  // a single-frame video: start == end falls back to the whole (one-frame) range
  { what: 'one frame', frameCount: 1, videoFps: 25, duration: 0.04, fps: 1, maxFrames: 64, want: [0] },
];

describe('SmolVLM2 frame sampling (transformers sample_frames)', () => {
  for (const c of CASES) {
    it(`${c.what}: ${c.frameCount} frames, ${c.videoFps} fps, ${c.duration} s, sampling ${c.fps} fps, max ${c.maxFrames}`, () => {
      const got = sampleFrameIndices({ frameCount: c.frameCount, fps: c.videoFps, duration: c.duration }, { fps: c.fps, maxFrames: c.maxFrames });
      assert.deepEqual(got, c.want);
    });
  }

  it('round half to even and numpy-style linspace', () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6].map(pythonRound), [0, 2, 2, 4, 2, 3]);
    assert.deepEqual(linspaceInt(0, 5, 3), [0, 2, 5]);
    assert.deepEqual(linspaceInt(7, 7, 1), [7]);
  });

  it('bad settings are one clear error each', () => {
    const meta = { frameCount: 10, fps: 10, duration: 1 };
    assert.throws(() => sampleFrameIndices(meta, { fps: 0, maxFrames: 8 }), (e: unknown) => e instanceof VlmkitError && /sampling fps/.test(e.message));
    assert.throws(() => sampleFrameIndices(meta, { fps: 1, maxFrames: 0 }), (e: unknown) => e instanceof VlmkitError && /max frames/.test(e.message));
    assert.throws(() => sampleFrameIndices({ ...meta, frameCount: 0 }, { fps: 1, maxFrames: 8 }), (e: unknown) => e instanceof VlmkitError && /0 frames/.test(e.message));
  });
});
