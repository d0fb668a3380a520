// Small PNG pictures for the batch tests, every one different.
import { PNG } from 'pngjs';

/** A 24x24 picture: a background and a rectangle, both from the index (every picture differs). */
export function picture(i: number): Buffer {
  const png = new PNG({ width: 24, height: 24 });
  const x0 = i % 12;
  const y0 = Math.floor(i / 12) % 12;
  for (let y = 0; y < 24; y++) {
    for (let x = 0; x < 24; x++) {
      const inside = x >= x0 && x < x0 + 10 && y >= y0 && y < y0 + 8;
      const o = (y * 24 + x) * 4;
      png.data[o] = inside ? (i * 37) % 256 : 240;
      png.data[o + 1] = inside ? (i * 91) % 256 : 240 - (i % 50);
      png.data[o + 2] = inside ? (i * 13) % 256 : 200;
      png.data[o + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}
