// SFT rows with a video (TRL's conversational form, the path relative to the JSONL) on both tiny fixtures: the
// training row's prompt ids and frame pixels are exactly the inference prompt's (SmolVLM2's video prompt on
// tiny-smolvlm, the frames as images after the intro line on tiny-idefics3); a max length that would cut into the
// frames' blocks makes the row bad with a clear reason (an error, or a counted skip).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Processor } from '../../src/models/index.js';
import { SftDataset, loadExampleMedia } from '../../src/train/data.js';
import { SftCollator } from '../../src/train/collate.js';
import { makeMotionClip, motionRow, writeClip } from '../../src/data/motion.js';
import { Rng } from '../../src/data/rng.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-video-sft-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
mkdirSync(join(tmp, 'clips'));
const clip = makeMotionClip(new Rng(7), { size: 48, frames: 8 });
writeClip(join(tmp, 'clips', 'a.mp4'), clip.frames, 48, 4);
const data = join(tmp, 'train.jsonl');
const textRow = { messages: [{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi.' }] };
writeFileSync(data, JSON.stringify(motionRow(clip, 'clips/a.mp4')) + '\n' + JSON.stringify(textRow) + '\n');

for (const name of ['tiny-smolvlm', 'tiny-idefics3']) {
  describe(`SFT rows with a video (${name})`, () => {
    const proc = Processor.fromDir(join(REF, name));

    it('the training row expands the video exactly as inference: prompt ids and frame pixels', async () => {
      const ds = await SftDataset.load(data, proc);
      const ex = ds.examples[0]!;
      assert.deepEqual(ex.videos, [join(tmp, 'clips', 'a.mp4')]);
      const enc = await proc.encode({ messages: [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: clip.question }] }], videos: [ex.videos[0]!] });
      try {
        const promptIds = enc.prompts[0]!.inputIds;
        assert.ok(ex.assistantSpans.length === 1, 'one trained reply');
        assert.deepEqual(ex.inputIds.slice(0, ex.assistantSpans[0]![0]), promptIds);
        // 2 s at 1 fps: two frames (the first and the last)
        assert.ok(enc.prompts[0]!.text.includes(name === 'tiny-smolvlm' ? 'series of two frames' : 'Following are the frames of a video in temporal order.'));
        const media = await loadExampleMedia(proc, [ex]);
        const batch = new SftCollator(proc).collate([ex], media.images, media.configs);
        try {
          assert.deepEqual(batch.pixelValues!.shape, enc.pixelValues!.shape);
          assert.deepEqual(batch.pixelValues!.toFloat32Array(), enc.pixelValues!.toFloat32Array());
        } finally {
          batch.dispose();
        }
      } finally {
        enc.dispose();
      }
    });

    it('a max length inside the frames is a bad row with a clear reason (error, or a counted skip)', async () => {
      const full = (await SftDataset.load(data, proc)).examples[0]!;
      const img = proc.tokenizer.specialIds.image!;
      const lastImage = full.inputIds.lastIndexOf(img);
      assert.ok(lastImage > 0);
      await assert.rejects(SftDataset.load(data, proc, { maxLength: lastImage }), /train\.jsonl:1: too long: .*split an image's token block/);
      const ds = await SftDataset.load(data, proc, { maxLength: lastImage, skipBadRows: true });
      assert.equal(ds.skipped.length, 1);
      assert.equal(ds.length, 1);
      assert.match(ds.skipped[0]!.reason, /split an image's token block/);
    });
  });
}

describe('SFT video rows: bad input', () => {
  it('a clip that decodes to fewer frames than planned at load is a one-line row error, not a wrong batch', async () => {
    // the data set counts frames from ffprobe alone; here the clip is replaced by a shorter one (one sampled frame
    // instead of two) between loading and decoding, as a stream whose header over-reports its frames would do
    mkdirSync(join(tmp, 'swap'), { recursive: true });
    writeClip(join(tmp, 'swap', 'a.mp4'), clip.frames, 48, 4);
    const rows = join(tmp, 'swap', 'train.jsonl');
    writeFileSync(rows, JSON.stringify(motionRow(clip, 'a.mp4')) + '\n');
    const proc = Processor.fromDir(join(REF, 'tiny-idefics3'));
    const ex = (await SftDataset.load(rows, proc)).examples[0]!;
    assert.equal(ex.pixelBlocks, 2);
    writeClip(join(tmp, 'swap', 'a.mp4'), clip.frames.slice(0, 1), 48, 4);
    await assert.rejects(loadExampleMedia(proc, [ex]), (e: Error) => /train\.jsonl:1: .*number 1 now, 2 when the data set loaded.*re-encode/.test(e.message) && !e.message.includes('\n'));
  });

  it('a missing video is a one-line row error naming file:line', async () => {
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, JSON.stringify(motionRow(clip, 'clips/missing.mp4')) + '\n');
    await assert.rejects(SftDataset.load(bad, Processor.fromDir(join(REF, 'tiny-idefics3'))), (e: Error) => /bad\.jsonl:1: video .*missing\.mp4 does not exist/.test(e.message) && !e.message.includes('\n'));
  });
});
