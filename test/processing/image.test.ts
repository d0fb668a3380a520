// Image processor tests: pixel_values / pixel_attention_mask against the transformers 5.17 reference fixtures, the
// decoders on images built here, PIL resize rules derived by hand from Resample.c / Geometry.c, and config loading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { GifWriter } from 'omggif';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { VlmkitError } from '../../src/errors.js';
import { decodeImage, loadImage, type RgbImage } from '../../src/processing/decode.js';
import { resizePil, Resampling } from '../../src/processing/resample.js';
import {
  loadImageProcessorConfig, imageProcessorConfigFromJson, processImages, imageToTiles, longestEdgeSize, visionEncoderSize,
} from '../../src/models/idefics3/image.js';
import { applyOrientation, readJpegOrientation } from '../../src/processing/exif.js';

const REF = new URL('../fixtures/reference/', import.meta.url).pathname;

// ---------------------------------------------------------------- reference fixtures

const caseNames = readdirSync(join(REF, 'cases'))
  .filter((f) => f.endsWith('.json') && /(_single_|_nosplit_|_batch_leftpad)/.test(f))
  .map((f) => f.slice(0, -5))
  .sort();

test('fixture list covers single, nosplit and batch cases of both models', () => {
  assert.ok(caseNames.length >= 16, `found ${caseNames.length} cases`);
});

for (const name of caseNames) {
  test(`pixel_values and pixel_attention_mask match transformers: ${name}`, async (t) => {
    const meta = JSON.parse(readFileSync(join(REF, 'cases', name + '.json'), 'utf8')) as {
      image?: string; images?: string[][]; do_image_splitting?: boolean;
    };
    const cfg = loadImageProcessorConfig(join(REF, name.startsWith('idefics3') ? 'tiny-idefics3' : 'tiny-smolvlm'));
    if (meta.do_image_splitting === false) cfg.doImageSplitting = false;
    const lists = meta.images ?? [[meta.image!]];
    const samples = await Promise.all(lists.map((l) => Promise.all(l.map((f) => loadImage(join(REF, 'images', f))))));
    const out = processImages(samples, cfg);

    const st = SafetensorsFile.open(join(REF, 'cases', name + '.safetensors'));
    const pv = st.read('pixel_values');
    const pm = st.read('pixel_attention_mask');
    st.close();
    assert.deepEqual(out.pixelValuesShape, pv.shape);
    assert.deepEqual(out.pixelAttentionMaskShape, pm.shape);
    const ref = pv.data as Float32Array;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(ref[i]! - out.pixelValues[i]!);
      sum += d;
      if (d > max) max = d;
    }
    const mean = sum / ref.length;
    const refMask = pm.data as BigInt64Array;
    let maskDiff = 0;
    for (let i = 0; i < refMask.length; i++) if (Number(refMask[i]) !== out.pixelAttentionMask[i]) maskDiff++;
    t.diagnostic(`${name}: shape [${out.pixelValuesShape}] grids ${JSON.stringify(out.grids)} max|diff| ${max.toExponential(3)} mean|diff| ${mean.toExponential(3)} mask mismatches ${maskDiff}`);
    assert.equal(maskDiff, 0, 'pixel_attention_mask differs');
    assert.ok(mean <= 1e-3, `mean |diff| ${mean}`);
    assert.ok(max <= 0.02, `max |diff| ${max}`);
  });
}

test('batch layout: tiles of a sample are concatenated, samples padded with zero tiles and zero masks', async () => {
  const cfg = loadImageProcessorConfig(join(REF, 'tiny-idefics3'));
  const sq = await loadImage(join(REF, 'images', 'square_64x64.png'));
  const out = processImages([[], [sq]], cfg);
  assert.deepEqual(out.pixelValuesShape, [2, 17, 3, 32, 32]);
  assert.deepEqual(out.tileCounts, [0, 17]);
  assert.deepEqual(out.grids, [[], [{ rows: 4, cols: 4 }]]);
  assert.ok(out.pixelValues.subarray(0, 17 * 3 * 32 * 32).every((v) => v === 0));
  assert.ok(out.pixelAttentionMask.subarray(0, 17 * 32 * 32).every((v) => v === 0));
  assert.ok(out.pixelAttentionMask.subarray(17 * 32 * 32).every((v) => v === 1));
});

test('an image no larger than one tile is not split (rows = cols = 0)', () => {
  const cfg = { ...loadImageProcessorConfig(join(REF, 'tiny-idefics3')), doResize: false };
  const img = solid(20, 10, [9, 9, 9]);
  const r = imageToTiles(img, cfg);
  assert.equal(r.rows, 0);
  assert.equal(r.cols, 0);
  assert.equal(r.tiles.length, 1);
  assert.equal(r.tiles[0]!.width, 32); // resized up to one multiple of the tile side
});

// ---------------------------------------------------------------- sizes and PIL resize rules

test('longest-edge size: truncation then even rounding, as transformers computes it', () => {
  assert.deepEqual(longestEdgeSize(300, 410, 128), [94, 128]); // int(128 / (410/300)) = 93 -> 94
  assert.deepEqual(longestEdgeSize(200, 70, 128), [128, 44]); // int(128 * 0.35) = 44
  assert.deepEqual(longestEdgeSize(20, 24, 128), [106, 128]); // upscales; int(106.66) = 106, already even
  assert.deepEqual(longestEdgeSize(33, 47, 128), [90, 128]); // int(89.87) = 89 -> 90
  assert.deepEqual(longestEdgeSize(1, 10000, 8000), [1, 4096]); // capped at 4096
  assert.deepEqual(visionEncoderSize(94, 128, 32), [96, 128]);
  assert.deepEqual(visionEncoderSize(128, 44, 32), [128, 64]);
});

test('PIL bilinear 2x upscale of [0, 255] gives [0, 64, 191, 255] (coefficients 1, .75/.25, .25/.75, 1)', () => {
  const img: RgbImage = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 255, 255, 255]) };
  const out = resizePil(img, 4, 1, Resampling.BILINEAR);
  assert.deepEqual([...out.data].filter((_, i) => i % 3 === 0), [0, 64, 191, 255]);
});

test('PIL nearest samples pixel centres: halving a row keeps indices 1 and 3', () => {
  const img: RgbImage = { width: 4, height: 1, data: new Uint8Array([10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]) };
  const out = resizePil(img, 2, 1, Resampling.NEAREST);
  assert.deepEqual([...out.data], [20, 20, 20, 40, 40, 40]);
});

test('every filter keeps a constant image constant and an unchanged size is a copy', () => {
  const img = solid(7, 5, [12, 200, 99]);
  for (const r of [0, 1, 2, 3, 4, 5]) {
    for (const [w, h] of [[3, 2], [13, 11], [7, 9]] as const) {
      const out = resizePil(img, w, h, r);
      assert.equal(out.width, w);
      assert.equal(out.height, h);
      for (let i = 0; i < out.data.length; i += 3) assert.deepEqual([...out.data.subarray(i, i + 3)], [12, 200, 99], `filter ${r} ${w}x${h}`);
    }
  }
  const same = resizePil(img, 7, 5, Resampling.LANCZOS);
  assert.deepEqual(same.data, img.data);
  assert.notEqual(same.data, img.data);
});

// ---------------------------------------------------------------- decoders

test('PNG RGBA: alpha dropped by default (transformers 5.x), composited on white on request (4.x)', async () => {
  const png = makePng(3, 1, 6, [[255, 0, 0, 255, 0, 0, 0, 0, 200, 100, 50, 128]]);
  const drop = await decodeImage(png, 'rgba.png');
  assert.deepEqual([drop.width, drop.height], [3, 1]);
  assert.deepEqual([...drop.data], [255, 0, 0, 0, 0, 0, 200, 100, 50]);
  const white = await decodeImage(png, 'rgba.png', { alpha: 'white' });
  // PIL alpha_composite: 200*128/255 + 127 = 227.4 -> 227, 177.2 -> 177, 152.1 -> 152 (integer formula)
  assert.deepEqual([...white.data], [255, 0, 0, 255, 255, 255, 227, 177, 152]);
});

test('PNG grayscale (8-bit and 4-bit) expands to equal RGB channels', async () => {
  const g8 = await decodeImage(makePng(2, 2, 0, [[0, 77], [200, 255]]), 'g.png');
  assert.deepEqual([...g8.data], [0, 0, 0, 77, 77, 77, 200, 200, 200, 255, 255, 255]);
  const g4 = await decodeImage(makePng(2, 1, 0, [[0x3f]], 4), 'g4.png'); // samples 3 and 15 -> 51, 255
  assert.deepEqual([...g4.data], [51, 51, 51, 255, 255, 255]);
});

test('PNG palette with tRNS: palette colours, transparent entry per alpha mode', async () => {
  const plte = [10, 20, 30, 40, 50, 60];
  const png = makePng(2, 1, 3, [[0, 1]], 8, { PLTE: plte, tRNS: [255, 0] });
  assert.deepEqual([...(await decodeImage(png, 'p.png')).data], [10, 20, 30, 40, 50, 60]);
  assert.deepEqual([...(await decodeImage(png, 'p.png', { alpha: 'white' })).data], [10, 20, 30, 255, 255, 255]);
});

test('PNG RGB with a tRNS colour key keeps its colours by default (PIL convert("RGB") ignores the key)', async () => {
  const png = makePng(2, 1, 2, [[1, 2, 3, 9, 9, 9]], 8, { tRNS: [0, 9, 0, 9, 0, 9] });
  assert.deepEqual([...(await decodeImage(png, 'k.png')).data], [1, 2, 3, 9, 9, 9]);
  assert.deepEqual([...(await decodeImage(png, 'k.png', { alpha: 'white' })).data], [1, 2, 3, 255, 255, 255]);
});

test('JPEG with EXIF orientation 6 is rotated upright (90 degrees clockwise)', async () => {
  // 16x8: left half red, right half blue. Rotated clockwise the left column becomes the top row.
  const w = 16;
  const h = 8;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba.set(x < 8 ? [255, 0, 0, 255] : [0, 0, 255, 255], (y * w + x) * 4);
  const plain = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 100).data);
  const withExif = insertExifOrientation(plain, 6);
  assert.equal(readJpegOrientation(withExif), 6);
  assert.equal(readJpegOrientation(plain), 1);
  const img = await decodeImage(withExif, 'photo.jpg');
  assert.deepEqual([img.width, img.height], [8, 16]);
  const px = (x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
  const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) <= 40);
  assert.ok(near(px(4, 2), [255, 0, 0]), `top should be red, got ${px(4, 2)}`);
  assert.ok(near(px(4, 13), [0, 0, 255]), `bottom should be blue, got ${px(4, 13)}`);
});

test('EXIF orientations 2..8 map pixels as PIL exif_transpose does', () => {
  // 3x2 image with pixel values 0..5 (row-major); expected outputs written out by hand
  const img: RgbImage = { width: 3, height: 2, data: new Uint8Array([0, 1, 2, 3, 4, 5].flatMap((v) => [v, v, v])) };
  const vals = (o: number) => {
    const r = applyOrientation(img, o);
    return [r.width, r.height, ...[...r.data].filter((_, i) => i % 3 === 0)];
  };
  assert.deepEqual(vals(1), [3, 2, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(vals(2), [3, 2, 2, 1, 0, 5, 4, 3]); // mirror
  assert.deepEqual(vals(3), [3, 2, 5, 4, 3, 2, 1, 0]); // rotate 180
  assert.deepEqual(vals(4), [3, 2, 3, 4, 5, 0, 1, 2]); // flip vertical
  assert.deepEqual(vals(5), [2, 3, 0, 3, 1, 4, 2, 5]); // transpose
  assert.deepEqual(vals(6), [2, 3, 3, 0, 4, 1, 5, 2]); // rotate 90 clockwise
  assert.deepEqual(vals(7), [2, 3, 5, 2, 4, 1, 3, 0]); // transverse
  assert.deepEqual(vals(8), [2, 3, 2, 5, 1, 4, 0, 3]); // rotate 90 counter-clockwise
});

test('GIF first frame, transparent index per alpha mode', async () => {
  const buf = new Uint8Array(1024);
  const gw = new GifWriter(buf, 2, 2, { palette: [0xff0000, 0x00ff00, 0x0000ff, 0x000000] });
  gw.addFrame(0, 0, 2, 2, [0, 1, 2, 3], { transparent: 3 });
  gw.addFrame(0, 0, 2, 2, [3, 3, 3, 3]); // a second frame must be ignored
  const gif = buf.slice(0, gw.end());
  const drop = await decodeImage(gif, 'a.gif');
  assert.deepEqual([...drop.data], [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0]);
  const white = await decodeImage(gif, 'a.gif', { alpha: 'white' });
  assert.deepEqual([...white.data].slice(9), [255, 255, 255]);
});

test('WebP (lossless, with alpha) decodes through the wasm codec', async () => {
  // 3x2: red, green, blue / white, black, (200,100,50, alpha 128), made with @jsquash/webp's encoder (exact)
  const webp = Buffer.from('UklGRj4AAABXRUJQVlA4TDIAAAAvAkAAEC8gECCI9Z9gQyCQ5G821QIBgib/bQQERdctF2BscmxVUJC2AYu7p2QR/Y+rAw==', 'base64');
  const img = await decodeImage(webp, 'a.webp');
  assert.deepEqual([img.width, img.height], [3, 2]);
  assert.deepEqual([...img.data], [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 200, 100, 50]);
  const white = await decodeImage(webp, 'a.webp', { alpha: 'white' });
  assert.deepEqual([...white.data].slice(15), [227, 177, 152]);
});

test('undecodable input throws E_IMAGE naming the file and the fix', async () => {
  const expectErr = async (bytes: Uint8Array, name: string, re: RegExp) => {
    await assert.rejects(decodeImage(bytes, name), (e: unknown) => {
      assert.ok(e instanceof VlmkitError);
      assert.equal(e.code, 'E_IMAGE');
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  };
  await expectErr(new TextEncoder().encode('BM this is not a supported image'), 'foo.bmp',
    /^cannot decode image foo\.bmp: unsupported format \(use PNG, JPEG, WebP or GIF\)$/);
  const png = makePng(4, 4, 2, Array.from({ length: 4 }, () => new Array(12).fill(7)));
  await expectErr(png.subarray(0, 40), 'cut.png', /^cannot decode image cut\.png: corrupt or truncated PNG/);
  await expectErr(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2, 0xff]), 'bad.jpg', /^cannot decode image bad\.jpg: corrupt/);
  await expectErr(new Uint8Array([...new TextEncoder().encode('RIFF'), 0, 0, 0, 0, ...new TextEncoder().encode('WEBPVP8 '), 1, 2]), 'bad.webp', /^cannot decode image bad\.webp: corrupt/);
  await expectErr(new Uint8Array(0), 'empty.png', /^cannot decode image empty\.png: the file is empty/);
  await assert.rejects(loadImage('/nonexistent/dir/x.png'), /cannot read image \/nonexistent\/dir\/x\.png: ENOENT; check the path/);
});

// ---------------------------------------------------------------- config

test('config from transformers 5.x processor_config.json (nested) and 4.x preprocessor_config.json (flat)', () => {
  const c5 = loadImageProcessorConfig(join(REF, 'tiny-smolvlm'));
  assert.equal(c5.longestEdge, 128);
  assert.equal(c5.maxImageSize, 32);
  assert.equal(c5.resample, 1);
  assert.equal(c5.imageSeqLen, 4);
  assert.deepEqual(c5.imageMean, [0.5, 0.5, 0.5]);
  assert.equal(c5.doImageSplitting, true);

  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-ipc-'));
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_seq_len: 64, processor_class: 'Idefics3Processor' }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({
    do_convert_rgb: true, do_image_splitting: true, do_normalize: true, do_pad: true, do_rescale: true, do_resize: true,
    image_mean: [0.5, 0.5, 0.5], image_processor_type: 'Idefics3ImageProcessor', image_std: [0.5, 0.5, 0.5],
    max_image_size: { longest_edge: 512 }, processor_class: 'Idefics3Processor', resample: 1,
    rescale_factor: 0.00392156862745098, size: { longest_edge: 2048 }, some_future_key: { x: 1 },
  }));
  const c4 = loadImageProcessorConfig(dir);
  assert.equal(c4.longestEdge, 2048);
  assert.equal(c4.maxImageSize, 512);
  assert.equal(c4.imageSeqLen, 64);
  assert.equal(c4.rescaleFactor, 1 / 255);

  assert.throws(() => imageProcessorConfigFromJson({ size: { longest_edge: 'big' } }), /"size" must be/);
  assert.throws(() => loadImageProcessorConfig(mkdtempSync(join(tmpdir(), 'vlmkit-empty-'))), /no image processor config/);
});

// ---------------------------------------------------------------- helpers

function solid(w: number, h: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
  return { width: w, height: h, data };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A minimal PNG: rows are raw sample bytes (already packed for bit depths < 8), filter 0 everywhere. */
function makePng(w: number, h: number, colorType: number, rows: number[][], depth = 8, extra: Record<string, number[]> = {}): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const body = new Uint8Array([...new TextEncoder().encode(type), ...data]);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, data.length);
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, crc32(body));
    return [...len, ...body, ...crc];
  };
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const raw = new Uint8Array(rows.flatMap((r) => [0, ...r]));
  const parts = [137, 80, 78, 71, 13, 10, 26, 10, ...chunk('IHDR', ihdr)];
  if (extra.PLTE) parts.push(...chunk('PLTE', new Uint8Array(extra.PLTE)));
  if (extra.tRNS) parts.push(...chunk('tRNS', new Uint8Array(extra.tRNS)));
  parts.push(...chunk('IDAT', deflateSync(raw)), ...chunk('IEND', new Uint8Array(0)));
  return new Uint8Array(parts);
}

/** Inserts an APP1/Exif segment (big-endian TIFF, IFD0 with only Orientation) right after the JPEG's SOI. */
function insertExifOrientation(jpg: Uint8Array, orientation: number): Uint8Array {
  const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0];
  const payload = [...new TextEncoder().encode('Exif'), 0, 0, ...tiff];
  const len = payload.length + 2;
  return new Uint8Array([0xff, 0xd8, 0xff, 0xe1, len >> 8, len & 0xff, ...payload, ...jpg.subarray(2)]);
}
