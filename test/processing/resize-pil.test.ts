// PIL's resampling at real image sizes: the reference cases hold tiny images only, so scripts/make-decode-fixtures.py
// resized a 1500x1100 pattern (computed the same way here) with Pillow and recorded SHA-256 digests of the outputs
// (test/fixtures/decode/resize.json): LANCZOS and BICUBIC, up and down, as SmolVLM's processor uses them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resizePil } from '../../src/processing/resample.js';
import type { RgbImage } from '../../src/processing/decode.js';

const meta = JSON.parse(readFileSync(new URL('../fixtures/decode/resize.json', import.meta.url), 'utf8')) as {
  source: [number, number];
  cases: { width: number; height: number; resample: number; sha256: string }[];
};

/** The script's pattern: ((x*7 + y*13) ^ (x*y)) & 255, ((x*x + 3*y) >> 2) & 255, (x + 2*y + (x*y >> 5)) & 255. */
function pattern(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3; // (every product stays below 2^31, where JS's 32-bit ^ and >> are exact)
      data[o] = ((x * 7 + y * 13) ^ (x * y)) & 255;
      data[o + 1] = ((x * x + 3 * y) >> 2) & 255;
      data[o + 2] = (x + 2 * y + ((x * y) >> 5)) & 255;
    }
  return { width: w, height: h, data };
}

test('LANCZOS and BICUBIC resizes at real sizes are byte-equal to Pillow\'s', () => {
  const src = pattern(...meta.source);
  for (const c of meta.cases) {
    const out = resizePil(src, c.width, c.height, c.resample);
    const digest = createHash('sha256').update(out.data).digest('hex');
    assert.equal(digest, c.sha256, `${meta.source.join('x')} -> ${c.width}x${c.height}, resample ${c.resample}`);
  }
});
