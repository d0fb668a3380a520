// Videos through the processor on the tiny fixtures: SmolVLM2 (tiny-smolvlm) expands its own video prompt with
// one unsplit block per sampled frame, and frames given directly with their timestamps encode exactly as the file;
// Idefics3 / SmolVLM v1 (tiny-idefics3) gets the frames as images after the course's intro line. Images and a
// video in one prompt keep their pixels in prompt order.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FRAMES_INTRO, Processor, hostInts, userMessage, type EncodedBatch } from '../../src/models/index.js';
import { loadVideo } from '../../src/video/index.js';
import type { RgbImage } from '../../src/processing/decode.js';
import { movingSquare } from './clip.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-pv-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const clip = join(tmp, 'square.mp4');
movingSquare(clip);

function pixels(e: EncodedBatch): Float32Array {
  return e.pixelValues!.toFloat32Array();
}

describe('video in the processor', () => {
  it('SmolVLM2: the video prompt, one unsplit block per sampled frame (3 s at 1 fps: frames 0, 14, 29)', async () => {
    const p = Processor.fromDir(join(REF, 'tiny-smolvlm'));
    const e = await p.encode({ messages: [userMessage('What happens?', 0, 1)], videos: [clip] });
    try {
      const text = e.prompts[0]!.text;
      assert.match(text, /You are provided the following series of three frames from a 0:00:03 \[H:MM:SS\] video\.\n/);
      assert.deepEqual([...text.matchAll(/Frame from (\d\d:\d\d):/g)].map((m) => m[1]), ['00:00', '00:01', '00:02']);
      assert.equal(text.split('<global-img>').length - 1, 3);
      assert.equal(e.tileCounts[0], 3);
      const S = p.videoConfig!.image.maxImageSize;
      assert.deepEqual(e.pixelValues!.shape, [1, 3, 3, S, S]);
      const img = p.tokenizer.specialIds.image!;
      assert.equal(hostInts(e.inputIds).filter((t) => t === img).length, 3 * p.imageSeqLen);
    } finally {
      e.dispose();
    }
  });

  it('SmolVLM2: frames given directly (with their timestamps) encode exactly as the file they came from', async () => {
    const p = Processor.fromDir(join(REF, 'tiny-smolvlm'));
    const v = await loadVideo(clip, { sampling: p.videoConfig!.sampling });
    const a = await p.encode({ messages: [userMessage('What happens?', 0, 1)], videos: [clip] });
    const b = await p.encode({ messages: [userMessage('What happens?', 0, 1)], videos: [{ frames: v.frames, timestamps: v.timestamps, duration: v.duration }] });
    try {
      assert.deepEqual(b.ids, a.ids);
      assert.deepEqual(pixels(b), pixels(a));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('Idefics3 / SmolVLM v1: the frames become images after the intro line, then the question', async () => {
    const p = Processor.fromDir(join(REF, 'tiny-idefics3'));
    assert.equal(p.videoConfig, null);
    const e = await p.encode({ messages: [userMessage('What happens?', 0, 1)], videos: [clip] }, { maxFrames: 2 });
    try {
      const prompt = e.prompts[0]!.prompt;
      assert.ok(prompt.includes(`${FRAMES_INTRO}<image><image>What happens?`), prompt);
      assert.equal(e.grids[0]!.length, 2);
      // the same frames passed as images in the same places give the same inputs
      const v = await loadVideo(clip, { sampling: { fps: 1, maxFrames: 2 } });
      const msg = { role: 'user', content: [{ type: 'text' as const, text: FRAMES_INTRO }, { type: 'image' as const }, { type: 'image' as const }, { type: 'text' as const, text: 'What happens?' }] };
      const same = await p.encode({ messages: [msg], images: v.frames });
      try {
        assert.deepEqual(same.ids, e.ids);
        assert.deepEqual(pixels(same), pixels(e));
      } finally {
        same.dispose();
      }
    } finally {
      e.dispose();
    }
  });

  it('SmolVLM2: an image before a video keeps its tiles before the frames', async () => {
    const p = Processor.fromDir(join(REF, 'tiny-smolvlm'));
    const S = p.videoConfig!.image.maxImageSize;
    const white: RgbImage = { width: S, height: S, data: new Uint8Array(S * S * 3).fill(255) };
    const msg = { role: 'user', content: [{ type: 'image' as const }, { type: 'video' as const }, { type: 'text' as const, text: 'Same?' }] };
    const e = await p.encode({ messages: [msg], images: [white], videos: [clip] }, { doImageSplitting: false });
    try {
      const px = pixels(e);
      assert.equal(e.tileCounts[0], 1 + 3);
      // tile 0 is the white image: every value (1 - 0.5) / 0.5 = 1
      const tile = 3 * S * S;
      assert.ok(px.subarray(0, tile).every((x) => x === 1), 'the first tile is the image');
      assert.ok(!px.subarray(tile, 2 * tile).every((x) => x === 1), 'the second tile is a frame');
    } finally {
      e.dispose();
    }
  });

  it('refuses a count mismatch and frames without timestamps, in one line', async () => {
    const p = Processor.fromDir(join(REF, 'tiny-smolvlm'));
    await assert.rejects(p.encode({ messages: [userMessage('What happens?', 0, 1)] }), /1 video placeholder .* but 0 videos were given/);
    const f: RgbImage = { width: 4, height: 4, data: new Uint8Array(48) };
    await assert.rejects(p.encode({ messages: [userMessage('What happens?', 0, 1)], videos: [{ frames: [f, f], timestamps: [0] }] }), /2 frames but 1 timestamps/);
  });
});
