// maxImagePixels: a caller's limit on the pixels an image's header may declare, checked before decoding (a 2 KB
// file can declare 30000x5000 and cost seconds and GBs to decode); default PIL's. Through decodeImage, the
// Processor (construction and per call), and the CLI flag --max-image-pixels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { VlmkitError } from '../../src/errors.js';
import { decodeImage } from '../../src/processing/decode.js';
import { Processor, userMessage } from '../../src/models/idefics3/processor.js';
import { MAX_PIXELS } from '../../src/processing/size.js';
import { generationOptions } from '../../src/cli/args.js';
import { tokens } from '../../src/cli/tokens.js';

const DIR = new URL('../fixtures/decode/', import.meta.url).pathname;
const REF = new URL('../fixtures/reference/', import.meta.url).pathname;
const MODEL = join(REF, 'tiny-smolvlm');
const read = (f: string) => new Uint8Array(readFileSync(join(DIR, f)));

const isErr = (code: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof VlmkitError, String(e));
  assert.equal(e.code, code);
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'), 'one line');
  return true;
};

test('every format: refused over the limit, from the header; decoded at it', async () => {
  // 61x43 = 2,623 pixels (the GIF: 6x5 = 30, its frame reaching past a 5x4 screen makes it 8x6 = 48)
  const files: [string, number, number][] = [['baseline_420_q90.jpg', 61, 43], ['png_xmp6.png', 61, 43], ['webp_lossy_simple.webp', 61, 43], ['gif_frame_past_screen.gif', 8, 6]];
  for (const [f, w, h] of files) {
    const limit = w * h - 1;
    await assert.rejects(decodeImage(read(f), f, { maxImagePixels: limit }),
      isErr('E_IMAGE', new RegExp(`^cannot decode image ${f.replace('.', '\\.')}: ${w}x${h} = ${(w * h).toLocaleString('en-US')} pixels, over the maxImagePixels limit of ${limit.toLocaleString('en-US')} \\(--max-image-pixels\\); downscale it or raise the limit$`)));
    const ok = await decodeImage(read(f), f, { maxImagePixels: w * h });
    assert.equal(ok.width * ok.height, w * h, f);
  }
});

test('the default is PIL\'s limit, and a bad limit is an E_OPTION error', async () => {
  assert.equal(MAX_PIXELS, 178_956_970);
  for (const bad of [0, -5, 1.5, NaN]) {
    await assert.rejects(decodeImage(read('png_xmp6.png'), 'x.png', { maxImagePixels: bad }), isErr('E_OPTION', /^maxImagePixels must be a whole number of pixels >= 1/));
  }
});

test('Processor: the limit from its options and per call', async () => {
  const image = join(REF, 'images', 'square_64x64.png'); // 4,096 pixels
  const sample = { messages: [userMessage('hi', 1)], images: [image] };
  const strict = Processor.fromDir(MODEL, { maxImagePixels: 4095 });
  await assert.rejects(strict.loadImages([image]), isErr('E_IMAGE', /64x64 = 4,096 pixels, over the maxImagePixels limit of 4,095/));
  await assert.rejects(strict.encode(sample), isErr('E_IMAGE', /over the maxImagePixels limit of 4,095/));
  (await strict.encode(sample, { maxImagePixels: 4096 })).dispose(); // a call's option over the processor's
  const plain = Processor.fromDir(MODEL);
  await assert.rejects(plain.encode(sample, { maxImagePixels: 100 }), isErr('E_IMAGE', /over the maxImagePixels limit of 100 /));
  (await plain.encode(sample)).dispose();
});

test('CLI: --max-image-pixels parses to maxImagePixels, refuses a bad value, and reaches the image decoder', async () => {
  assert.equal(generationOptions({ 'max-image-pixels': '50000000' }).maxImagePixels, 50_000_000);
  assert.equal(generationOptions({}).maxImagePixels, undefined);
  for (const v of ['0', '1.5', 'lots', ''])
    assert.throws(() => generationOptions({ 'max-image-pixels': v }), isErr('E_ARGS', /^--max-image-pixels takes a whole number of pixels >= 1/));
  const io = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
  const image = join(REF, 'images', 'square_64x64.png');
  await assert.rejects(tokens(['--model', MODEL, '--image', image, '--max-image-pixels', '1000', 'hi'], io), isErr('E_IMAGE', /over the maxImagePixels limit of 1,000/));
  assert.equal(await tokens(['--model', MODEL, '--image', image, '--max-image-pixels', '4096', '--json', 'hi'], io), 0);
});
