// Files other decoders stumble on and Pillow 9.4 reads (issue 9), each beside the pixels Pillow decodes from it
// (test/fixtures/decode, "hard" in cases.json, made by scripts/make-decode-fixtures.py); and files that must end
// in a clear error, however they are corrupt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage } from '../../src/processing/decode.js';
import { sniffFormat } from '../../src/processing/decode.js';
import { headerSize } from '../../src/processing/size.js';

const DIR = new URL('../fixtures/decode/', import.meta.url).pathname;
const ROOT = new URL('../../', import.meta.url).pathname;
const hard = (JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
  hard: Record<string, { file: string; stored: [number, number]; size: [number, number] }>;
}).hard;
const names = Object.keys(hard).sort();
const read = (f: string) => new Uint8Array(readFileSync(join(DIR, f)));

test('the hard fixtures cover GIF palettes and layout, PNG stream tails and XMP orientation, JPEG junk', () => {
  for (const n of ['gif_no_palette', 'gif_short_palette', 'gif_appended', 'gif_frame_past_screen', 'png_xmp6', 'png_zlib_trailing',
    'png_extra_idat', 'png_after_iend', 'png_exif_bad_crc', 'jpeg_junk_between_markers'])
    assert.ok(names.includes(n), n);
});

for (const name of names) {
  test(`pixels equal Pillow's: ${hard[name]!.file}`, async () => {
    const got = await decodeImage(read(hard[name]!.file), hard[name]!.file);
    const want = await decodeImage(read(`${name}.rgb.png`), `${name}.rgb.png`);
    assert.deepEqual([got.width, got.height], hard[name]!.size);
    assert.deepEqual([want.width, want.height], hard[name]!.size);
    assert.equal(Buffer.compare(Buffer.from(got.data), Buffer.from(want.data)), 0, 'pixels differ');
    const b = read(hard[name]!.file);
    const format = sniffFormat(b);
    if (format !== 'jpeg') assert.deepEqual(headerSize(b, format!), hard[name]!.stored, 'header size');
  });
}

/** GIF bytes: an 8x8 screen, a 4-colour table, one 8x8 frame with LZW min code size 2 and these codes. */
function gif(codes: [number, number][]): Uint8Array {
  let bits = 0, n = 0;
  const data: number[] = [];
  for (const [code, size] of codes) {
    bits |= code << n;
    n += size;
    while (n >= 8) { data.push(bits & 255); bits >>>= 8; n -= 8; }
  }
  if (n) data.push(bits & 255);
  return new Uint8Array([...Buffer.from('GIF89a'), 8, 0, 8, 0, 0x81, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255,
    0x2c, 0, 0, 0, 0, 8, 0, 8, 0, 0, 2, data.length, ...data, 0, 0x3b]);
}

// omggif never returned on the first: code 7 before it exists, then an entry 7 that is its own prefix, then 7
const corruptGifs: Record<string, Uint8Array> = {
  'self-referencing LZW code': gif([[4, 3], [0, 3], [7, 3], [1, 3], [7, 4]]),
  'code not yet defined': gif([[4, 3], [0, 3], [7, 3]]),
  'end of data before the frame is full': gif([[4, 3], [0, 3], [1, 3], [5, 3]]),
  'no image': new Uint8Array([...Buffer.from('GIF89a'), 8, 0, 8, 0, 0, 0, 0, 0x3b]),
  'cut in the header': new Uint8Array([...Buffer.from('GIF89a'), 8, 0]),
};

test('corrupt GIFs end in a one-line E_IMAGE error, in a child process that must finish (omggif looped forever)', () => {
  const script = `import { decodeImage } from './src/processing/decode.ts';
    const cases = ${JSON.stringify(Object.fromEntries(Object.entries(corruptGifs).map(([k, v]) => [k, [...v]])))};
    const out = {};
    for (const [k, v] of Object.entries(cases)) {
      try { await decodeImage(new Uint8Array(v), 'bad.gif'); out[k] = 'decoded'; } catch (e) { out[k] = [e.code, e.message]; }
    }
    console.log(JSON.stringify(out));`;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `the decoder did not finish in 30 s (${performance.now() - t0} ms)`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, [string, string] | string>;
  for (const k of Object.keys(corruptGifs)) {
    const [code, message] = out[k] as [string, string];
    assert.equal(code, 'E_IMAGE', k);
    assert.match(message, /^cannot decode image bad\.gif: (corrupt|truncated) GIF .*(re-export it as PNG or JPEG|download or export it again)$/, k);
  }
});
