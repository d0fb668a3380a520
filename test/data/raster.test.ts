// The rasterizer: exact colour where a shape covers a pixel fully, coverage-weighted blends on edges, and the
// coverage of a shape summing to its area (so antialiasing neither grows nor shrinks objects).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Canvas, Ellipse, Polygon, rect } from '../../src/data/raster.js';
import { drawText, textWidth } from '../../src/data/font.js';

function inkSum(c: Canvas): number {
  // background 0, ink 255 in the red channel: the sum / 255 is the covered area
  let s = 0;
  for (let i = 0; i < c.data.length; i += 3) s += c.data[i]!;
  return s / 255;
}

describe('rasterizer', () => {
  it('fills whole pixels exactly and blends a half-covered column', () => {
    const c = new Canvas(8, 8);
    c.clear([0, 0, 0]);
    c.fill(rect(2, 2, 5.5, 6), [200, 100, 50]);
    assert.deepEqual(c.pixel(3, 3), [200, 100, 50]);
    assert.deepEqual(c.pixel(5, 3), [100, 50, 25]);
    assert.deepEqual(c.pixel(6, 3), [0, 0, 0]);
    assert.deepEqual(c.pixel(3, 6), [0, 0, 0]);
  });

  it('covers a circle and a star by their area', () => {
    const c = new Canvas(64, 64);
    c.clear([0, 0, 0]);
    const e = new Ellipse(31.3, 30.7, 17.2, 17.2);
    c.fill(e, [255, 255, 255]);
    const got = inkSum(c);
    assert.ok(Number.isFinite(got) && Math.abs(got - e.area()) / e.area() < 0.01, `${got} vs ${e.area()}`);
    const s = new Canvas(64, 64);
    s.clear([0, 0, 0]);
    const pts: [number, number][] = [];
    for (let k = 0; k < 10; k++) {
      const a = -Math.PI / 2 + (k * Math.PI) / 5;
      const r = k % 2 ? 9 : 20;
      pts.push([32 + r * Math.cos(a), 33 + r * Math.sin(a)]);
    }
    const star = new Polygon(pts);
    s.fill(star, [255, 255, 255]);
    const area = inkSum(s);
    assert.ok(Number.isFinite(area) && Math.abs(area - star.area()) / star.area() < 0.01, `${area} vs ${star.area()}`);
  });

  it('draws font text within its measured width', () => {
    const c = new Canvas(80, 12);
    c.clear([0, 0, 0]);
    drawText(c, 'AB 12%', 1, 1, 1, [255, 255, 255]);
    let maxX = -1;
    for (let y = 0; y < 12; y++) for (let x = 0; x < 80; x++) if (c.pixel(x, y)[0]) maxX = Math.max(maxX, x);
    assert.ok(maxX > 1 && maxX < 1 + textWidth('AB 12%', 1), `ink up to x=${maxX}`);
    assert.throws(() => drawText(c, 'é', 0, 0, 1, [255, 255, 255]), /no glyph/);
  });
});
