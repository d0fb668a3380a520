// Boxes from location tokens back to the original image's pixels, checked through the real Idefics3 image
// pipeline: a rectangle drawn on a non-square image is found in what the processor makes of it (the tiles put
// back together, or the single squashed tile), written as location tokens there, and read back in the original.
// Then the drawing of boxes onto an image, and the removal of location tokens from streamed text.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boxToLocTokens, type PixelBox } from '../../src/data/loc.js';
import { BOX_COLOURS, drawBoxes, writePng } from '../../src/eval/draw.js';
import { answerBoxes, locStripper, stripLocTokens } from '../../src/eval/grounding.js';
import { imageToTiles, loadImageProcessorConfig } from '../../src/models/idefics3/image.js';
import { loadImage, type RgbImage } from '../../src/processing/decode.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm'); // longest edge 128, tiles of 32
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-ground-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** White image with a red rectangle at `box` (whole pixels). */
function picture(width: number, height: number, box: PixelBox): RgbImage {
  const data = new Uint8Array(width * height * 3).fill(255);
  for (let y = box.y0; y < box.y1; y++)
    for (let x = box.x0; x < box.x1; x++) data.set([220, 0, 0], (y * width + x) * 3);
  return { width, height, data };
}

/** The red rectangle's extent in an image (pixels that are clearly red). */
function redBox(img: RgbImage): PixelBox {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 3;
      if (img.data[i]! > 150 && img.data[i + 1]! < 110) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + 1); y1 = Math.max(y1, y + 1);
      }
    }
  assert.ok(Number.isFinite(x0), 'the rectangle is visible in the processed image');
  return { x0, y0, x1, y1 };
}

/** The tiles of a split image put back into one picture. */
function untile(tiles: RgbImage[], rows: number, cols: number): RgbImage {
  const m = tiles[0]!.width;
  const out: RgbImage = { width: cols * m, height: rows * m, data: new Uint8Array(cols * m * rows * m * 3) };
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const t = tiles[r * cols + c]!;
      for (let y = 0; y < m; y++) out.data.set(t.data.subarray(y * m * 3, (y + 1) * m * 3), ((r * m + y) * out.width + c * m) * 3);
    }
  return out;
}

const near = (got: PixelBox, want: PixelBox, tol: number) => {
  for (const k of ['x0', 'y0', 'x1', 'y1'] as const) assert.ok(Number.isFinite(got[k]) && Math.abs(got[k] - want[k]) <= tol, `${k}: ${got[k]} vs ${want[k]} (±${tol})`);
};

describe('location tokens map back to the original pixels', () => {
  const cfg = loadImageProcessorConfig(MODEL);
  for (const [w, h] of [[150, 90], [70, 200], [333, 101]] as const) {
    const box = { x0: Math.round(w * 0.2), y0: Math.round(h * 0.3), x1: Math.round(w * 0.65), y1: Math.round(h * 0.8) };
    it(`${w}x${h}, split into tiles: the tiled view's box is the original's`, () => {
      const { tiles, rows, cols } = imageToTiles(picture(w, h, box), cfg);
      assert.ok(rows * cols > 1, `split (${rows}x${cols})`);
      const view = untile(tiles, rows, cols);
      const seen = redBox(view);
      const answer = `${boxToLocTokens(seen, view.width, view.height)} thing`;
      const [b] = answerBoxes(answer, w, h).boxes;
      // one pixel of the processed image, plus resampling blur, in original pixels
      near(b!, box, 1.5 * Math.max(w / view.width, h / view.height) + 1);
      assert.equal(b!.label, 'thing');
    });
    it(`${w}x${h}, no splitting: the squashed square's box is the original's`, () => {
      const { tiles } = imageToTiles(picture(w, h, box), { ...cfg, doImageSplitting: false });
      assert.equal(tiles.length, 1);
      const view = tiles[0]!;
      assert.equal(view.width, view.height);
      const seen = redBox(view);
      const [b] = answerBoxes(boxToLocTokens(seen, view.width, view.height), w, h).boxes;
      near(b!, box, 1.5 * Math.max(w / view.width, h / view.height) + 1);
    });
  }

  it('the text keeps everything but the tokens', () => {
    const a = '<loc0100><loc0200><loc0300><loc0400> red circle ; <loc0000><loc0000><loc1023><loc1023> square';
    const r = answerBoxes(a, 1023, 1023);
    assert.equal(r.text, 'red circle ; square');
    assert.deepEqual(r.boxes[1], { label: 'square', x0: 0, y0: 0, x1: 1023, y1: 1023 });
    assert.deepEqual(r.boxes[0], { label: 'red circle', x0: 200, y0: 100, x1: 400, y1: 300 });
    assert.equal(stripLocTokens(' two lines\nof text '), 'two lines\nof text');
  });

  it('streamed pieces lose their tokens, even cut across pieces', () => {
    const strip = locStripper();
    const pieces = ['It is <lo', 'c0012><loc0013', '><loc0014><loc0015> here <', '3 and <loc', '0001'];
    const out = pieces.map((p) => strip(p)).join('') + strip();
    assert.equal(out, 'It is  here <3 and <loc0001');
  });
});

describe('drawing boxes', () => {
  it('the PNG has the box colour along the box edges, the inside untouched, and is written whole', async () => {
    const w = 100;
    const h = 60;
    const img: RgbImage = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(128) };
    const box = { x0: 10, y0: 20, x1: 60, y1: 50, label: 'circle' };
    const other = { x0: 70, y0: 5, x1: 95, y1: 55, label: 'ü' };
    const out = join(tmp, 'sub', 'boxes.png');
    writePng(out, drawBoxes(img, [box, other]));
    assert.deepEqual(readdirSync(join(tmp, 'sub')), ['boxes.png'], 'no temporary file left');
    const png = await loadImage(out);
    assert.equal(png.width, w);
    assert.equal(png.height, h);
    const px = (x: number, y: number) => [...png.data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];
    const c0 = [...BOX_COLOURS[0]!];
    for (let x = box.x0; x < box.x1; x++) {
      assert.deepEqual(px(x, box.y0), c0, `top edge at x=${x}`);
      assert.deepEqual(px(x, box.y1 - 1), c0, `bottom edge at x=${x}`);
    }
    for (let y = box.y0; y < box.y1; y++) {
      assert.deepEqual(px(box.x0, y), c0, `left edge at y=${y}`);
      assert.deepEqual(px(box.x1 - 1, y), c0, `right edge at y=${y}`);
    }
    assert.deepEqual(px(35, 35), [128, 128, 128], 'inside the box');
    assert.deepEqual(px(5, 55), [128, 128, 128], 'outside every box');
    // the label tab sits above the box, in its colour, with white text
    const tab = [...Array(box.y0 - 1).keys()].map((y) => px(box.x0 + 1, y + 1));
    assert.ok(tab.some((p) => p.join() === c0.join()), 'label tab above the box');
    let white = 0;
    for (let y = 0; y < box.y0; y++) for (let x = box.x0; x < box.x1; x++) if (px(x, y).join() === '255,255,255') white++;
    assert.ok(white > 10, `label text drawn (${white} white pixels)`);
    // the second box has the second colour; a label the font lacks does not fail
    assert.deepEqual(px(other.x0, 30), [...BOX_COLOURS[1]!]);
    assert.ok(existsSync(out));
  });
});
