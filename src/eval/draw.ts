// Boxes and their labels drawn onto an image (the answer of a grounding question, `vlmkit ask --draw`), with the
// synthetic data's rasterizer and bitmap font, written as a PNG in one atomic step.
import { mkdirSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { encodePng } from '../data/dataset.js';
import { canDraw, drawText, textHeight, textWidth } from '../data/font.js';
import type { LabeledBox } from '../data/loc.js';
import { Canvas, rect, type Rgb } from '../data/raster.js';
import { writeFileAtomic } from '../io/safetensors-write.js';
import type { RgbImage } from '../processing/decode.js';

/** Box colours in turn: saturated and far from each other, so neighbouring boxes are told apart. */
export const BOX_COLOURS: readonly Rgb[] = [
  [255, 0, 255],
  [0, 200, 255],
  [255, 160, 0],
  [0, 220, 0],
  [255, 40, 40],
  [120, 80, 255],
];

const WHITE: Rgb = [255, 255, 255];

/** Stroke width for an image: thin on small images, thicker on large ones. */
export function strokeWidth(width: number, height: number): number {
  return Math.max(1, Math.round(Math.min(width, height) / 160));
}

/** The label as the font can draw it (characters it lacks become '?'). */
function drawable(label: string): string {
  return [...label.toUpperCase()].map((ch) => (canDraw(ch) ? ch : '?')).join('');
}

/** A copy of `image` with each box outlined (inside its edges) and its label on a tab above it (or inside). */
export function drawBoxes(image: RgbImage, boxes: readonly LabeledBox[]): Canvas {
  const { width: w, height: h } = image;
  const canvas = new Canvas(w, h);
  canvas.data.set(image.data.subarray(0, w * h * 3));
  const sw = strokeWidth(w, h);
  const scale = Math.max(1, Math.round(Math.min(w, h) / 256));
  boxes.forEach((b, i) => {
    const c = BOX_COLOURS[i % BOX_COLOURS.length]!;
    const x0 = Math.max(0, Math.min(w, b.x0));
    const x1 = Math.max(0, Math.min(w, b.x1));
    const y0 = Math.max(0, Math.min(h, b.y0));
    const y1 = Math.max(0, Math.min(h, b.y1));
    // the stroke lies inside the box, so its outer edge is the box edge
    const tx = Math.min(sw, (x1 - x0) / 2);
    const ty = Math.min(sw, (y1 - y0) / 2);
    if (x1 > x0 && y1 > y0) {
      canvas.fill(rect(x0, y0, x1, y0 + ty), c);
      canvas.fill(rect(x0, y1 - ty, x1, y1), c);
      canvas.fill(rect(x0, y0, x0 + tx, y1), c);
      canvas.fill(rect(x1 - tx, y0, x1, y1), c);
    }
    const label = drawable(b.label.trim());
    if (!label) return;
    const pad = scale;
    const lw = textWidth(label, scale) + 2 * pad;
    const lh = textHeight(scale) + 2 * pad;
    const lx = Math.round(Math.min(Math.max(0, x0), Math.max(0, w - lw)));
    const ly = Math.round(y0 - lh >= 0 ? y0 - lh : Math.min(y0 + ty, Math.max(0, h - lh)));
    canvas.block(lx, ly, lw, lh, c);
    drawText(canvas, label, lx + pad, ly + pad, scale, WHITE);
  });
  return canvas;
}

/** Writes the canvas as a PNG at `path`: complete or not at all. */
export function writePng(path: string, canvas: Canvas): void {
  writeBytesAtomic(path, encodePng(canvas));
}

/** Writes `bytes` at `path` through a temporary file (missing parent folders are made). */
export function writeBytesAtomic(path: string, bytes: Uint8Array): void {
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
  } catch {
    // writeFileAtomic reports the path and the reason
  }
  writeFileAtomic(path, (fd) => {
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done);
      if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      done += n;
    }
  });
}
