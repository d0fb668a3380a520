// Decoding against Pillow: test/fixtures/decode holds JPEG, PNG and WebP files saved by Pillow 9.4 (libjpeg-turbo
// 2.1.5, libwebp 1.2.4), each with the RGB pixels Pillow decodes from it after exif_transpose, as transformers'
// load_image does (scripts/make-decode-fixtures.py). The pixels must be equal: chroma upsampling and the IDCT are
// what a pure-JS JPEG decoder got wrong by up to 124 levels on 4:2:0, and PNG/WebP carry EXIF orientation too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VlmkitError } from '../../src/errors.js';
import { decodeImage } from '../../src/processing/decode.js';
import { sniffFormat } from '../../src/processing/decode.js';
import { readJpegFrame } from '../../src/processing/jpeg.js';
import { MAX_PIXELS, headerSize } from '../../src/processing/size.js';

const DIR = new URL('../fixtures/decode/', import.meta.url).pathname;
const meta = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
  cases: Record<string, { file: string; stored: [number, number]; size: [number, number]; white?: boolean }>;
};
const names = Object.keys(meta.cases).sort();
const file = (name: string) => new Uint8Array(readFileSync(join(DIR, meta.cases[name]!.file)));

test('the fixtures cover 4:2:0, 4:2:2, 4:4:4, progressive, grey, EXIF orientations and CMYK; PNG and WebP orientation', () => {
  for (const n of ['baseline_420_q90', 'baseline_422_q75', 'baseline_444_q95', 'progressive_420_q85', 'gray_q90', 'exif6_420_q85', 'exif3_420_q85', 'cmyk_q90',
    'png_exif6', 'png_rawprofile8', 'webp_lossless_exif6', 'webp_lossy_exif5', 'webp_lossy_simple', 'webp_lossless_simple', 'gif_palette_trns',
    'gif_offset_frame', 'gif_offset_frame_trns2'])
    assert.ok(names.includes(n), n);
});

for (const name of names) {
  test(`pixels equal Pillow's: ${meta.cases[name]!.file}`, async () => {
    const got = await decodeImage(file(name), meta.cases[name]!.file);
    const want = await decodeImage(new Uint8Array(readFileSync(join(DIR, `${name}.rgb.png`))), `${name}.rgb.png`);
    assert.deepEqual([got.width, got.height], meta.cases[name]!.size);
    assert.deepEqual([got.width, got.height], [want.width, want.height]);
    let max = 0;
    for (let i = 0; i < want.data.length; i++) max = Math.max(max, Math.abs(got.data[i]! - want.data[i]!));
    // CMYK goes through jpeg-js (mozjpeg's build cannot convert it): its IDCT and rounding differ by a level
    assert.ok(max <= (name.startsWith('cmyk') ? 1 : 0), `max abs difference ${max}`);
    if (meta.cases[name]!.white) {
      // transformers 4.x: RGBA composited over white (the transparency index, inside the frame or filling the
      // screen around it, becomes white)
      const w = await decodeImage(file(name), meta.cases[name]!.file, { alpha: 'white' });
      const ww = await decodeImage(new Uint8Array(readFileSync(join(DIR, `${name}.white.png`))), `${name}.white.png`);
      assert.deepEqual(w.data, ww.data);
    }
  });
}

test('frame header: size, components, precision', () => {
  assert.deepEqual(
    (({ width, height, components, precision }) => ({ width, height, components, precision }))(readJpegFrame(file('baseline_420_q90'))!),
    { width: 61, height: 43, components: 3, precision: 8 });
  assert.equal(readJpegFrame(file('gray_q90'))!.components, 1);
  assert.equal(readJpegFrame(file('cmyk_q90'))!.components, 4);
  assert.equal(readJpegFrame(new Uint8Array([0xff, 0xd8, 0xff, 0xd9])), null);
});

/** A copy of the fixture with its frame header's fields patched (offsets after the SOF marker). */
function patchFrame(name: string, patch: (b: Uint8Array, sof: number) => void): Uint8Array {
  const b = file(name);
  let p = 2;
  while (!(b[p] === 0xff && b[p + 1]! >= 0xc0 && b[p + 1]! <= 0xc2)) p += 2 + ((b[p + 2]! << 8) | b[p + 3]!);
  patch(b, p);
  return b;
}

async function expectErr(bytes: Uint8Array, re: RegExp): Promise<void> {
  await assert.rejects(decodeImage(bytes, 'x.jpg'), (e: unknown) => {
    assert.ok(e instanceof VlmkitError);
    assert.equal(e.code, 'E_IMAGE');
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('refused like PIL refuses them: truncated data, decompression bombs, 12-bit samples; corrupt tables', async () => {
  const whole = file('baseline_420_q90');
  await expectErr(whole.subarray(0, Math.floor(whole.length * 0.6)), /^cannot decode image x\.jpg: truncated JPEG .*download or export it again$/);
  const side = Math.ceil(Math.sqrt(MAX_PIXELS)) + 1; // just over the limit
  const bomb = patchFrame('baseline_420_q90', (b, p) => {
    b[p + 5] = side >> 8; b[p + 6] = side & 255; b[p + 7] = side >> 8; b[p + 8] = side & 255;
  });
  const t0 = performance.now();
  await expectErr(bomb, /^cannot decode image x\.jpg: 13379x13379 = 178,997,641 pixels, over the 178,956,970 PIL also refuses .*; downscale it$/);
  assert.ok(performance.now() - t0 < 1000, 'refused from the header, without decoding');
  await expectErr(patchFrame('baseline_420_q90', (b, p) => void (b[p + 4] = 12)), /12-bit JPEG samples are not supported/);
  await expectErr(patchFrame('baseline_420_q90', (b, p) => void (b[p + 1] = 0xc9)), /arithmetic-coded JPEG is not supported; re-save it as a baseline/);
  await expectErr(patchFrame('baseline_420_q90', (b, p) => void (b[p + 1] = 0xc3)), /lossless JPEG is not supported/);
  // a Huffman table overwritten with garbage: libjpeg's error becomes a one-line message, and the decoder still works
  const bad = file('baseline_420_q90');
  const dht = bad.findIndex((v, i) => v === 0xff && bad[i + 1] === 0xc4);
  for (let i = dht + 5; i < dht + 2 + ((bad[dht + 2]! << 8) | bad[dht + 3]!); i++) bad[i] = 0xff;
  await expectErr(bad, /^cannot decode image x\.jpg: corrupt or unsupported JPEG/);
  assert.equal((await decodeImage(whole, 'ok.jpg')).width, 61);
});

test('PNG, GIF and WebP header sizes, read before decoding, are the sizes PIL reports', () => {
  for (const name of names) {
    const b = file(name);
    const format = sniffFormat(b);
    if (format === 'jpeg') continue;
    assert.deepEqual(headerSize(b, format!), meta.cases[name]!.stored, meta.cases[name]!.file);
  }
});

test('a PNG, GIF or WebP over PIL\'s pixel limit is refused from its header, before any decoding', async () => {
  const side = Math.ceil(Math.sqrt(MAX_PIXELS)) + 1;
  const png = file('png_exif6');
  for (const at of [16, 20]) png.set([0, 0, side >> 8, side & 255], at); // IHDR width, height (the CRC no longer matters)
  const gif = file('gif_palette_trns');
  gif.set([side & 255, side >> 8, side & 255, side >> 8], 6); // logical screen
  const webp = file('webp_lossy_exif5'); // VP8X: canvas width - 1, height - 1 (24-bit little-endian)
  webp.set([(side - 1) & 255, (side - 1) >> 8, 0, (side - 1) & 255, (side - 1) >> 8, 0], 24);
  for (const b of [png, gif, webp]) {
    const t0 = performance.now();
    await expectErr(b, new RegExp(`^cannot decode image x\\.jpg: ${side}x${side} = 178,997,641 pixels, over the 178,956,970 PIL also refuses`));
    assert.ok(performance.now() - t0 < 1000);
  }
});
