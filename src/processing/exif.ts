// EXIF orientation: transformers' load_image runs PIL's ImageOps.exif_transpose, so a photo taken sideways
// reaches the model upright. Only the Orientation tag (0x0112) of IFD0 matters, so we read it ourselves from where
// PIL's getexif() finds EXIF: a JPEG's APP1 segment, a PNG's eXIf chunk (or ImageMagick's "Raw profile type exif"
// text chunk, else an XMP tiff:Orientation in a text chunk), a WebP's EXIF chunk. (Pillow 9.4 reads XMP orientation
// from PNG only; later Pillows read it from JPEG and WebP XMP too.)
import { inflateSync } from 'node:zlib';
import { ascii, pngChunks, riffChunks } from './bytes.js';
import type { RgbImage } from './decode.js';


/** Orientation 1..8 from a JPEG's APP1/Exif segment; 1 when absent or unreadable. */
export function readJpegOrientation(b: Uint8Array): number {
  let p = 2; // after SOI
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) { p++; continue; } // junk between segments: skipped, as PIL and libjpeg do
    const marker = b[p + 1]!;
    if (marker === 0xff) { p++; continue; } // fill byte
    if (marker === 0) { p += 2; continue; } // FF 00 outside a scan is junk too
    if (marker === 0xda || marker === 0xd9) return 1; // start of scan / end: no more metadata
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (marker === 0xe1 && len >= 8 && String.fromCharCode(...b.subarray(p + 4, p + 10)) === 'Exif\0\0') {
      return tiffOrientation(b.subarray(p + 10, p + 2 + len)) ?? 1;
    }
    p += 2 + len;
  }
  return 1;
}

/** Orientation from an EXIF block as PIL's Exif.load reads it: an "Exif\0\0" header is skipped, then TIFF. */
function exifOrientation(t: Uint8Array): number | null {
  return tiffOrientation(t.length >= 6 && ascii(t, 0, 6) === 'Exif\0\0' ? t.subarray(6) : t);
}

/** The text of a PNG tEXt / zTXt / iTXt chunk whose keyword is `key`, or null. */
function pngText(type: string, d: Uint8Array, key: string): string | null {
  const z = d.indexOf(0);
  if (z < 0 || ascii(d, 0, z) !== key) return null;
  try {
    if (type === 'tEXt') return ascii(d, z + 1, d.length - z - 1);
    if (type === 'zTXt') return Buffer.from(inflateSync(d.subarray(z + 2))).toString('latin1');
    // iTXt: compression flag, method, language\0, translated keyword\0, text
    const flag = d[z + 1];
    const lang = d.indexOf(0, z + 3);
    const tr = lang < 0 ? -1 : d.indexOf(0, lang + 1);
    if (tr < 0) return null;
    const text = d.subarray(tr + 1);
    return Buffer.from(flag ? inflateSync(text) : text).toString('utf8');
  } catch {
    return null;
  }
}

/**
 * Orientation 1..8 from a PNG's eXIf chunk, else its "Raw profile type exif" text chunk, else (when neither has
 * the tag) a tiff:Orientation in its XMP text chunk (PIL 9.4's getexif reads XMP for PNG only); 1 when absent.
 */
export function readPngOrientation(b: Uint8Array): number {
  let raw: Uint8Array | null = null;
  let profile: string | null = null;
  let xmp: string | null = null;
  for (const { type, payload } of pngChunks(b)) {
    if (type === 'eXIf') raw = payload; // PIL keeps the last; it adds an Exif header that its loader strips again
    else if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
      profile = pngText(type, payload, 'Raw profile type exif') ?? profile;
      xmp = pngText(type, payload, 'XML:com.adobe.xmp') ?? xmp;
    } else if (type === 'IEND') break;
  }
  const exif = raw ? tiffOrientation(raw) : profile !== null ? profileOrientation(profile) : null;
  if (exif !== null) return exif;
  // PIL's pattern: one digit (0 and 9 mean no transpose, as any value outside 1..8 does)
  const m = xmp === null ? null : /tiff:Orientation(="|>)([0-9])/.exec(xmp);
  const v = m ? Number(m[2]) : 1;
  return v >= 1 && v <= 8 ? v : 1;
}

/** Orientation from ImageMagick's "Raw profile type exif" text; null when it has none. */
function profileOrientation(profile: string): number | null {
  // "\nexif\n    <length>\n<hex lines>": PIL joins the lines after the third and reads them as hex
  const hex = profile.split('\n').slice(3).join('').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) return null;
  return exifOrientation(Uint8Array.from(Buffer.from(hex, 'hex')));
}

/** Orientation 1..8 from a WebP's EXIF chunk (extended format); 1 when absent. */
export function readWebpOrientation(b: Uint8Array): number {
  const exif = riffChunks(b, 12).find((c) => c.type === 'EXIF');
  return exif ? exifOrientation(exif.payload) ?? 1 : 1;
}

/** The Orientation tag of IFD0 (values outside 1..8 read as 1); null when the block has no such tag. */
function tiffOrientation(t: Uint8Array): number | null {
  if (t.length < 8) return null;
  const le = t[0] === 0x49 && t[1] === 0x49; // "II" little-endian, "MM" big-endian
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return null;
  const u16 = (o: number): number => (le ? t[o]! | (t[o + 1]! << 8) : (t[o]! << 8) | t[o + 1]!);
  const u32 = (o: number): number => (le ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
  const ifd = u32(4);
  if (ifd + 2 > t.length) return null;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > t.length) return null;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8); // SHORT value sits in the first two bytes of the value field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return null;
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
