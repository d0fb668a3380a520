// Image decoding to 8-bit RGB, the way transformers sees an image it gets from PIL: EXIF orientation applied
// (transformers' load_image calls ImageOps.exif_transpose; JPEG, PNG and WebP carry it: see exif.ts), then
// `convert_to_rgb`. What convert_to_rgb does with alpha depends on the transformers version, so it is an option:
//  - 'drop' (default): transformers 5.x (Idefics3ImageProcessorPil -> image_transforms.convert_to_rgb) calls PIL's
//    `image.convert("RGB")`, which discards alpha and palette/colour-key transparency. The reference fixtures
//    (transformers 5.17) were made this way: compositing would miss their RGBA case by up to 1.0.
//  - 'white': transformers 4.x's Idefics3 convert_to_rgb converts to RGBA (honouring tRNS colour keys) and
//    alpha-composites over opaque white with PIL's integer formula (AlphaComposite.c), as SmolVLM was trained.
// PNG (pngjs), JPEG (mozjpeg via @jsquash/jpeg, wasm: see jpeg.ts), GIF first frame (gif.ts), WebP (libwebp via
// @jsquash/webp, wasm; the first frame of an animation: see webp.ts).
import { readFile } from 'node:fs/promises';
import { PNG } from 'pngjs';
import { VlmkitError } from '../errors.js';
import { ascii, pngChunks } from './bytes.js';
import { GifError, decodeGifRgba } from './gif.js';
import { applyOrientation, readJpegOrientation, readPngOrientation, readWebpOrientation } from './exif.js';
import { JpegError, decodeJpegRgba, readJpegFrame } from './jpeg.js';
import { pngForDecoder } from './png.js';
import { headerSize, pixelLimit, tooManyPixels } from './size.js';
import { WebpError, decodeWebpRgba } from './webp.js';
import { expandHome } from '../io/paths.js';

/** 8-bit RGB, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

/** How transparency becomes RGB: 'drop' = PIL convert("RGB") (transformers 5.x), 'white' = composite on white (4.x). */
export type AlphaMode = 'drop' | 'white';

export interface DecodeOptions {
  alpha?: AlphaMode;
  /**
   * refuse (E_IMAGE) an image whose header declares more pixels, before decoding it; default PIL's limit
   * (2 x Image.MAX_IMAGE_PIXELS = 178,956,970: a small file can declare a huge image and cost seconds and GBs)
   */
  maxImagePixels?: number;
}

const FIX = 'use PNG, JPEG, WebP or GIF';

function fail(name: string, why: string): VlmkitError {
  return new VlmkitError('E_IMAGE', `cannot decode image ${name}: ${why}`);
}

/** Sniffs the format from the magic bytes (file extensions lie). */
export function sniffFormat(b: Uint8Array): ImageFormat | null {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  return null;
}


/**
 * PIL's `Image.alpha_composite(white, rgba).convert("RGB")`: PIL's integer formula with 7 extra bits of
 * precision and rounded division by 255. With an opaque white destination it reduces to what follows.
 */
export function compositeOnWhite(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const PB = 7;
  const div255 = (a: number): number => ((a >>> 8) + a) >>> 8; // SHIFTFORDIV255
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3]!;
    if (a === 0) {
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = 255;
      continue;
    }
    const blend = 255 * (255 - a);
    const outa255 = a * 255 + blend;
    const coef1 = Math.floor((a * 255 * 255 * (1 << PB)) / outa255);
    const coef2 = 255 * (1 << PB) - coef1;
    for (let c = 0; c < 3; c++) {
      const t = rgba[i * 4 + c]! * coef1 + 255 * coef2;
      out[i * 3 + c] = div255(t + (0x80 << PB)) >>> PB;
    }
  }
  return { width, height, data: out };
}

/** Drops the alpha byte (for sources PIL reads as plain RGB). */
function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = rgba[i * 4]!;
    out[i * 3 + 1] = rgba[i * 4 + 1]!;
    out[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { width, height, data: out };
}

function toRgb(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, alpha: AlphaMode): RgbImage {
  return alpha === 'white' ? compositeOnWhite(rgba, width, height) : rgbaToRgb(rgba, width, height);
}

/** Removes every chunk of one type from a PNG byte stream. */
function stripPngChunk(b: Uint8Array, type: string): Uint8Array {
  return Buffer.concat([b.subarray(0, 8), ...pngChunks(b).filter((c) => c.type !== type).map((c) => c.bytes)]);
}

function decodePng(bytes: Uint8Array, name: string, alpha: AlphaMode): RgbImage {
  // pngjs turns a grey/RGB colour key (tRNS) into all-zero pixels, losing the colour. PIL's convert("RGB")
  // ignores the key (so 'drop' strips the chunk); convert("RGBA") honours it, so 'white' keeps it.
  // IHDR colour type is byte 25: 0 grey, 2 RGB (3 palette keeps its colours in pngjs' output either way).
  const colorType = bytes.length > 25 ? bytes[25] : -1;
  const clean = pngForDecoder(bytes);
  const input = alpha === 'drop' && (colorType === 0 || colorType === 2) ? stripPngChunk(clean, 'tRNS') : clean;
  let png;
  try {
    // skipRescale keeps 16-bit samples so that we can take their high byte, as PIL's "RGB;16B" rawmode does for
    // 16-bit colour (PIL opens 16-bit grey as "I;16", which its RGB conversion clips; we take the high byte too)
    png = PNG.sync.read(Buffer.from(input.buffer, input.byteOffset, input.byteLength), { skipRescale: true });
  } catch (e) {
    throw fail(name, `corrupt or truncated PNG (${(e as Error).message}); re-export it as PNG or JPEG`);
  }
  const { width, height } = png;
  let rgba: Uint8Array;
  if (png.depth === 16) {
    const src = png.data as unknown as ArrayLike<number>;
    rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = src[i]! >> 8;
  } else if (png.depth < 8 && !png.palette) {
    // low bit-depth grey: PIL scales 1/2/4-bit samples to 0..255 (x255, x85, x17); pngjs left them (and the
    // opaque alpha, which it sets to the sample maximum) unscaled
    const max = (1 << png.depth) - 1;
    rgba = new Uint8Array(png.data.length);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (png.data[i]! * 255) / max;
  } else {
    rgba = png.data;
  }
  return applyOrientation(toRgb(rgba, width, height, alpha), readPngOrientation(bytes));
}

async function decodeJpeg(bytes: Uint8Array, name: string, maxPixels: number): Promise<RgbImage> {
  let img;
  try {
    img = await decodeJpegRgba(bytes, maxPixels);
  } catch (e) {
    if (e instanceof JpegError) throw fail(name, e.message);
    throw e;
  }
  return applyOrientation(rgbaToRgb(img.data, img.width, img.height), readJpegOrientation(bytes));
}

function decodeGif(bytes: Uint8Array, name: string, alpha: AlphaMode): RgbImage {
  let img;
  try {
    img = decodeGifRgba(bytes);
  } catch (e) {
    if (e instanceof GifError) throw fail(name, e.message);
    throw e;
  }
  // 'drop' is PIL's P -> RGB: the transparency index shows its palette colour
  return alpha === 'white' ? compositeOnWhite(img.data, img.width, img.height) : rgbaToRgb(img.data, img.width, img.height);
}

async function decodeWebp(bytes: Uint8Array, name: string, alpha: AlphaMode): Promise<RgbImage> {
  let img;
  try {
    img = await decodeWebpRgba(bytes);
  } catch (e) {
    if (e instanceof WebpError) throw fail(name, e.message);
    throw e;
  }
  return applyOrientation(toRgb(img.data, img.width, img.height, alpha), readWebpOrientation(bytes));
}

/** Decodes PNG / JPEG / GIF (first frame) / WebP bytes to RGB. `name` is used in error messages only. */
export async function decodeImage(bytes: Uint8Array, name: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  const alpha = opts.alpha ?? 'drop';
  const maxPixels = pixelLimit(opts.maxImagePixels);
  if (bytes.length === 0) throw fail(name, `the file is empty; ${FIX}`);
  const format = sniffFormat(bytes);
  if (format && format !== 'jpeg') {
    const size = headerSize(bytes, format); // (jpeg.ts reads the JPEG frame header itself)
    const big = size && tooManyPixels(size[0], size[1], maxPixels);
    if (big) throw fail(name, big);
  }
  switch (format) {
    case 'png': return decodePng(bytes, name, alpha);
    case 'jpeg': return decodeJpeg(bytes, name, maxPixels);
    case 'gif': return decodeGif(bytes, name, alpha);
    case 'webp': return decodeWebp(bytes, name, alpha);
    default: throw fail(name, `unsupported format (${FIX})`);
  }
}

/** Reads and decodes an image file. */
export async function loadImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  return decodeImage(await readImageFile(path), path, opts);
}

/** The bytes of an image file (E_IMAGE naming it when it cannot be read). */
export async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(expandHome(path));
  } catch (e) {
    throw new VlmkitError('E_IMAGE', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
  }
}

/** The [width, height] decodeImage will give (EXIF orientation applied), read from the header; null when unknown. */
export function predictImageSize(bytes: Uint8Array): [number, number] | null {
  const format = sniffFormat(bytes);
  if (!format) return null;
  let size: [number, number] | null;
  let orientation = 1;
  if (format === 'jpeg') {
    const f = readJpegFrame(bytes);
    size = f && f.width > 0 && f.height > 0 ? [f.width, f.height] : null;
    orientation = readJpegOrientation(bytes);
  } else {
    size = headerSize(bytes, format);
    if (format === 'png') orientation = readPngOrientation(bytes);
    if (format === 'webp') orientation = readWebpOrientation(bytes);
  }
  if (!size || size[0] < 1 || size[1] < 1) return null;
  return orientation >= 5 ? [size[1], size[0]] : size;
}
