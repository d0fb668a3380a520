// Image dimensions from a file's header, read before decoding: like PIL's Image.open, an image over twice
// Image.MAX_IMAGE_PIXELS is refused (DecompressionBombError) instead of decoded. A 1 MB PNG of zeros can claim
// 20000x20000 pixels: decoding it took 28 s and 5 GB here, and a larger one would exhaust memory.
import { VlmkitError } from '../errors.js';
import { ascii, u16le, u24le, u32be, u32le } from './bytes.js';
import type { ImageFormat } from './decode.js';
import { readGifLayout } from './gif.js';

/** PIL's Image.MAX_IMAGE_PIXELS (89,478,485) x 2: beyond it Image.open raises DecompressionBombError. */
export const MAX_PIXELS = 2 * 89_478_485;

/**
 * Why an image of this size is refused, or null when it is not (worded to follow "cannot decode image NAME: ").
 * `limit` is the caller's maxImagePixels (default PIL's).
 */
export function tooManyPixels(width: number, height: number, limit = MAX_PIXELS): string | null {
  const pixels = width * height;
  if (pixels <= limit) return null;
  const what = `${width}x${height} = ${pixels.toLocaleString('en-US')} pixels`;
  if (limit === MAX_PIXELS) return `${what}, over the ${MAX_PIXELS.toLocaleString('en-US')} PIL also refuses (a decompression-bomb guard); downscale it`;
  return `${what}, over the maxImagePixels limit of ${limit.toLocaleString('en-US')} (--max-image-pixels); downscale it or raise the limit`;
}

/** A maxImagePixels option checked (E_OPTION when it is not a whole number >= 1); the default when undefined. */
export function pixelLimit(v: number | undefined): number {
  if (v === undefined) return MAX_PIXELS;
  if (!Number.isSafeInteger(v) || v < 1) throw new VlmkitError('E_OPTION', `maxImagePixels must be a whole number of pixels >= 1 (e.g. 50000000), got ${v}`);
  return v;
}


/** [width, height] from a PNG, GIF or WebP header (the size PIL reports), or null when the header is unreadable. */
export function headerSize(b: Uint8Array, format: Exclude<ImageFormat, 'jpeg'>): [number, number] | null {
  if (format === 'png') return b.length >= 24 && ascii(b, 12, 4) === 'IHDR' ? [u32be(b, 16), u32be(b, 20)] : null;
  if (format === 'gif') {
    // the logical screen, grown to hold the first frame as PIL grows it
    try {
      const g = readGifLayout(b);
      return [g.width, g.height];
    } catch {
      return null;
    }
  }
  // WebP: the first chunk says: VP8X (extended: canvas), VP8L (lossless), VP8 (lossy key frame)
  if (b.length < 30) return null;
  const kind = ascii(b, 12, 4);
  if (kind === 'VP8X') return [u24le(b, 24) + 1, u24le(b, 27) + 1];
  if (kind === 'VP8L') {
    if (b[20] !== 0x2f) return null;
    const bits = u32le(b, 21);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (kind === 'VP8 ') return b[23] === 0x9d && b[24] === 0x01 && b[25] === 0x2a ? [u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff] : null;
  return null;
}
