// The processor (messages + images -> model inputs) on the tiny SmolVLM fixture: tensors and dtypes, batches with
// left/right padding, images given as paths/bytes/RGB, the split grid computed from a size alone, and the errors
// for a placeholder/image mismatch and a prompt longer than the context.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VlmkitError } from '../../src/errors.js';
import { Processor, checkMediaCount, imageGridForSize, userMessage } from '../../src/models/idefics3/processor.js';
import { decodeImage, loadImage, predictImageSize } from '../../src/processing/decode.js';
import { processImages } from '../../src/models/idefics3/image.js';
import { ParityCase } from '../../src/parity/case.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const MODEL = join(REF, 'tiny-smolvlm');
const img = (n: string) => join(REF, 'images', n);

describe('Processor', () => {
  const p = Processor.fromDir(MODEL);

  it('one sample: tensors with the reference values and the engine dtypes', async () => {
    const c = ParityCase.open(join(REF, 'cases', 'smolvlm_single_wide_90x150.safetensors'));
    const enc = await p.encode({ messages: [userMessage('What is in this image?', 1)], images: [img('wide_90x150.png')] });
    try {
      assert.equal(enc.inputIds.dtype, 'i32');
      assert.equal(enc.attentionMask.dtype, 'i32');
      assert.equal(enc.pixelValues!.dtype, 'f32');
      assert.equal(enc.pixelAttentionMask!.dtype, 'u8');
      assert.deepEqual(enc.inputIds.toArray(), c.ints('input_ids').values);
      assert.deepEqual([...enc.pixelValues!.shape], c.floats('pixel_values').shape);
      assert.deepEqual(enc.grids, [[{ rows: 3, cols: 4 }]]);
      assert.deepEqual(enc.tileCounts, [13]);
    } finally {
      enc.dispose();
      c.close();
    }
  });

  it('images as paths, bytes or decoded RGB give the same inputs', async () => {
    const path = img('tall_200x70.png');
    const forms = [path, new Uint8Array(readFileSync(path)), await loadImage(path)];
    const outs = [];
    for (const f of forms) {
      const enc = await p.encode({ messages: [userMessage('Describe.', 1)], images: [f] });
      outs.push({ ids: enc.inputIds.toArray(), px: Array.from(enc.pixelValues!.data as Float32Array) });
      enc.dispose();
    }
    assert.deepEqual(outs[1], outs[0]);
    assert.deepEqual(outs[2], outs[0]);
  });

  it('batches pad left for generation and right for training; text-only samples mix with image samples', async () => {
    const samples = [{ messages: [userMessage('Hi', 0)] }, { messages: [userMessage('Describe.', 1)], images: [img('square_64x64.png')] }];
    const left = await p.encodeBatch(samples);
    const right = await p.encodeBatch(samples, { padding: 'right' });
    try {
      const n0 = left.prompts[0]!.inputIds.length;
      const T = left.seqLen;
      assert.ok(n0 < T);
      assert.deepEqual(left.mask[0], [...new Array(T - n0).fill(0), ...new Array(n0).fill(1)]);
      assert.deepEqual(right.mask[0], [...new Array(n0).fill(1), ...new Array(T - n0).fill(0)]);
      assert.deepEqual(left.ids[0]!.slice(T - n0), left.prompts[0]!.inputIds);
      assert.equal(left.ids[0]![0], p.prompt.padId());
      // the text-only row has only padding tiles
      assert.deepEqual(left.tileCounts, [0, 17]);
      const pm = left.pixelAttentionMask!.data as Uint8Array;
      assert.ok(pm.subarray(0, pm.length / 2).every((v) => v === 0));
    } finally {
      left.dispose();
      right.dispose();
    }
  });

  it('<image> markers in the question place the images', () => {
    assert.deepEqual(userMessage('Compare <image> with <image>.', 2).content, [
      { type: 'text', text: 'Compare ' },
      { type: 'image' },
      { type: 'text', text: ' with ' },
      { type: 'image' },
      { type: 'text', text: '.' },
    ]);
    assert.deepEqual(userMessage('What?', 2).content, [{ type: 'image' }, { type: 'image' }, { type: 'text', text: 'What?' }]);
  });

  it('placeholder / image count mismatch is an E_PROMPT error naming both counts', async () => {
    const isMismatch = (e: unknown) => e instanceof VlmkitError && e.code === 'E_PROMPT' && /2 image placeholders .* 1 image was given/.test(e.message);
    assert.throws(() => checkMediaCount({ messages: [userMessage('x', 2)], images: [img('wide_90x150.png')] }), isMismatch);
    await assert.rejects(p.encode({ text: '<image><image>hi', images: [img('wide_90x150.png')] }), isMismatch);
    await assert.rejects(
      p.encodeBatch([{ messages: [userMessage('a', 0)] }, { messages: [userMessage('b', 1)] }]),
      (e: unknown) => e instanceof VlmkitError && /^batch sample 1: /.test(e.message),
    );
  });

  it('a prompt longer than the context is an E_CONTEXT error', async () => {
    const small = Processor.fromDir(MODEL, { maxLength: 50 });
    await assert.rejects(small.encode({ messages: [userMessage('Describe.', 1)], images: [img('big_300x410.png')] }), (e: unknown) =>
      e instanceof VlmkitError && e.code === 'E_CONTEXT' && /context is 50/.test(e.message) && /image tokens/.test(e.message));
    // without splitting the same image fits
    const enc = await small.encode({ messages: [userMessage('Describe.', 1)], images: [img('big_300x410.png')] }, { doImageSplitting: false });
    assert.ok(enc.seqLen <= 50);
    enc.dispose();
    // checked before any pixel is resized: 40 photos of 2048x2048 fail at once (resizing them takes seconds)
    const photo = { width: 2048, height: 2048, data: new Uint8Array(2048 * 2048 * 3).fill(90) };
    const t0 = performance.now();
    assert.throws(() => small.encodeDecoded([{ messages: [userMessage('Compare.', 40)], images: Array(40).fill(photo) }]), /context is 50/);
    assert.ok(performance.now() - t0 < 300, `${performance.now() - t0} ms`);
    // given as files, before any is decoded: the sizes come from their headers (this PNG's header claims
    // 2048x2048 and no longer matches its checksum, so decoding it would fail as corrupt)
    const png = new Uint8Array(readFileSync(img('wide_90x150.png')));
    png.set([0, 0, 8, 0, 0, 0, 8, 0], 16);
    await assert.rejects(small.encode({ messages: [userMessage('Compare.', 3)], images: [png, png, png] }), /context is 50/);
    await assert.rejects(p.encode({ messages: [userMessage('Compare.', 1)], images: [png] }), /corrupt or truncated PNG/);
  });

  it('predictImageSize reads from headers the size decoding gives, EXIF orientation included', async () => {
    const dirs = [join(REF, 'images'), join(REF, '..', 'decode')];
    let n = 0;
    for (const d of dirs) {
      for (const f of readdirSync(d).filter((f) => /\.(png|jpg|webp|gif)$/.test(f))) {
        const bytes = new Uint8Array(readFileSync(join(d, f)));
        const im = await decodeImage(bytes, f);
        assert.deepEqual(predictImageSize(bytes), [im.width, im.height], f);
        n++;
      }
    }
    assert.ok(n >= 30, `${n} files`);
    assert.equal(predictImageSize(new TextEncoder().encode('not an image')), null);
  });

  it('imageGridForSize agrees with the image processor for every fixture image and some sizes', async () => {
    for (const n of ['wide_90x150.png', 'tall_200x70.png', 'small_20x24.png', 'big_300x410.png', 'gray_33x47.png', 'square_64x64.png']) {
      const im = await loadImage(img(n));
      const want = processImages([[im]], p.imageConfig).grids[0]![0];
      assert.deepEqual(imageGridForSize(im.width, im.height, p.imageConfig), want, n);
    }
    const real = { ...p.imageConfig, longestEdge: 2048, maxImageSize: 512 };
    assert.deepEqual(imageGridForSize(2048, 2048, real), { rows: 4, cols: 4 });
    // every image is first resized to 2048 on its long edge (upscaled too), as transformers does
    assert.deepEqual(imageGridForSize(512, 512, real), { rows: 4, cols: 4 });
    assert.deepEqual(imageGridForSize(300, 200, real), { rows: 3, cols: 4 });
    assert.deepEqual(imageGridForSize(300, 200, { ...real, longestEdge: 512 }), { rows: 0, cols: 0 });
    assert.deepEqual(imageGridForSize(1920, 1080, { ...real, doImageSplitting: false }), { rows: 0, cols: 0 });
  });

  it('longestEdge overrides size.longest_edge, per processor or per call, as a checkpoint with that size would', async () => {
    const sample = { messages: [userMessage('Describe.', 1)], images: [img('big_300x410.png')] };
    const asConfig = new Processor(MODEL, p.prompt, { ...p.imageConfig, longestEdge: 64 }, {});
    const perCall = await p.encode(sample, { longestEdge: 64 });
    const perProcessor = await new Processor(MODEL, p.prompt, p.imageConfig, { longestEdge: 64 }).encode(sample);
    const want = await asConfig.encode(sample);
    const plain = await p.encode(sample);
    try {
      assert.deepEqual(want.grids, [[{ rows: 2, cols: 2 }]]); // 300x410 -> 47x64 -> tiles of 32: 2x2
      assert.deepEqual(plain.grids, [[{ rows: 3, cols: 4 }]]);
      for (const got of [perCall, perProcessor]) {
        assert.deepEqual(got.ids, want.ids);
        assert.deepEqual(got.pixelValues!.toArray(), want.pixelValues!.toArray());
      }
      assert.throws(() => p.imageConfigFor({ longestEdge: 0 }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_OPTION' && /longestEdge must be a whole number of pixels >= 1/.test(e.message));
      assert.equal(p.imageConfigFor(), p.imageConfig);
    } finally {
      for (const e of [perCall, perProcessor, want, plain]) e.dispose();
    }
  });
});
