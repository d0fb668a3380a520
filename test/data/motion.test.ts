// The motion clips generator: the same seed gives the same clip, each event shows in the first and last frames
// (what 2 s at 1 fps samples), and a written clip decodes back to its frames' colours (lossless yuv444p).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MOTION_EVENTS, makeMotionClip, writeClip } from '../../src/data/motion.js';
import { Rng, mixSeed } from '../../src/data/rng.js';
import { loadVideo } from '../../src/video/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-motion-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BG = [248, 248, 248];

/** Centre of the non-background pixels and their count. */
function blob(f: Uint8Array, size: number): { x: number; y: number; n: number; rgb: number[] } {
  let sx = 0, sy = 0, n = 0;
  const rgb = [0, 0, 0];
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
    const i = (y * size + x) * 3;
    if (Math.abs(f[i]! - BG[0]!) + Math.abs(f[i + 1]! - BG[1]!) + Math.abs(f[i + 2]! - BG[2]!) > 60) {
      sx += x; sy += y; n++;
      for (let k = 0; k < 3; k++) rgb[k]! += f[i + k]!;
    }
  }
  return { x: sx / n, y: sy / n, n, rgb: rgb.map((c) => c / Math.max(1, n)) };
}

describe('motion clips', () => {
  it('are deterministic by seed and show their event between the first and the last frame', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const a = makeMotionClip(new Rng(mixSeed(5, 0, i)), { size: 48 });
      const b = makeMotionClip(new Rng(mixSeed(5, 0, i)), { size: 48 });
      assert.deepEqual(b, a);
      seen.add(a.event);
      const f0 = blob(a.frames[0]!, 48), f1 = blob(a.frames[a.frames.length - 1]!, 48);
      const moved = { left: f1.x < f0.x - 10, right: f1.x > f0.x + 10, up: f1.y < f0.y - 10, down: f1.y > f0.y + 10 };
      if (a.event in moved) assert.ok(moved[a.event as keyof typeof moved], `${a.event}: ${JSON.stringify([f0, f1])}`);
      if (a.event === 'appears') assert.ok(f0.n === 0 && f1.n > 20);
      if (a.event === 'disappears') assert.ok(f0.n > 20 && f1.n === 0);
      if (a.event === 'color') assert.ok(f0.rgb.some((c, k) => Math.abs(c - f1.rgb[k]!) > 40), `${a.color} -> ${a.toColor}`);
      assert.match(a.answer, new RegExp(`^The ${a.color} ${a.kind} `));
    }
    assert.deepEqual([...seen].sort(), [...MOTION_EVENTS].sort());
  });

  it('writes a real clip that decodes back to its frames', async () => {
    const c = makeMotionClip(new Rng(3), { size: 48, frames: 8 });
    const path = join(tmp, 'c.mp4');
    writeClip(path, c.frames, 48, 4);
    const v = await loadVideo(path, { sampling: { fps: 1, maxFrames: 64 } });
    assert.deepEqual(v.indices, [0, 7]);
    assert.equal(v.duration, 2);
    v.frames.forEach((f, k) => {
      const want = c.frames[v.indices[k]!]!;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(f.data[i]! - want[i]!));
      assert.ok(worst <= 8, `frame ${v.indices[k]} differs by up to ${worst}`);
    });
  });
});
