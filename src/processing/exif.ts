// EXIF orientation for JPEG: transformers' load_image runs PIL's ImageOps.exif_transpose, so a photo taken
// sideways reaches the model upright. Only the Orientation tag (0x0112) of IFD0 matters, so we read it from the
// APP1 segment ourselves instead of parsing all of EXIF.
import type { RgbImage } from './decode.js';

/** Orientation 1..8 from a JPEG's APP1/Exif segment; 1 when absent or unreadable. */
export function readJpegOrientation(b: Uint8Array): number {
  let p = 2; // after SOI
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return 1;
    const marker = b[p + 1]!;
    if (marker === 0xff) { p++; continue; } // fill byte
    if (marker === 0xda || marker === 0xd9) return 1; // start of scan / end: no more metadata
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (marker === 0xe1 && len >= 8 && String.fromCharCode(...b.subarray(p + 4, p + 10)) === 'Exif\0\0') {
      return tiffOrientation(b.subarray(p + 10, p + 2 + len));
    }
    p += 2 + len;
  }
  return 1;
}

function tiffOrientation(t: Uint8Array): number {
  if (t.length < 8) return 1;
  const le = t[0] === 0x49 && t[1] === 0x49; // "II" little-endian, "MM" big-endian
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  const u16 = (o: number): number => (le ? t[o]! | (t[o + 1]! << 8) : (t[o]! << 8) | t[o + 1]!);
  const u32 = (o: number): number => (le ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
  const ifd = u32(4);
  if (ifd + 2 > t.length) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > t.length) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8); // SHORT value sits in the first two bytes of the value field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * The transpose exif_transpose applies for each orientation (2 mirror, 3 rotate 180, 4 flip, 5 transpose,
 * 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise). Returns the image unchanged for 1.
 */
export function applyOrientation(img: RgbImage, orientation: number): RgbImage {
  if (orientation < 2 || orientation > 8) return img;
  const W = img.width;
  const H = img.height;
  const swap = orientation >= 5;
  const ow = swap ? H : W;
  const oh = swap ? W : H;
  // source pixel (x, y) for output pixel (u, v)
  const src: (u: number, v: number) => [number, number] = {
    2: (u: number, v: number): [number, number] => [W - 1 - u, v],
    3: (u: number, v: number): [number, number] => [W - 1 - u, H - 1 - v],
    4: (u: number, v: number): [number, number] => [u, H - 1 - v],
    5: (u: number, v: number): [number, number] => [v, u],
    6: (u: number, v: number): [number, number] => [v, H - 1 - u],
    7: (u: number, v: number): [number, number] => [W - 1 - v, H - 1 - u],
    8: (u: number, v: number): [number, number] => [W - 1 - v, u],
  }[orientation]!;
  const out = new Uint8Array(ow * oh * 3);
  for (let v = 0; v < oh; v++) {
    for (let u = 0; u < ow; u++) {
      const [x, y] = src(u, v);
      const s = (y * W + x) * 3;
      const o = (v * ow + u) * 3;
      out[o] = img.data[s]!;
      out[o + 1] = img.data[s + 1]!;
      out[o + 2] = img.data[s + 2]!;
    }
  }
  return { width: ow, height: oh, data: out };
}
