// JPEG decoding with the pixels PIL gives. Pillow decodes with libjpeg-turbo at its defaults (the "islow" integer
// IDCT, "fancy" triangular upsampling of subsampled chroma); so does mozjpeg's decoder (a libjpeg-turbo fork),
// which @jsquash/jpeg ships as wasm: on baseline and progressive files, 4:4:4, 4:2:2, 4:2:0 and greyscale, its
// pixels equal Pillow's byte for byte (test/fixtures/decode). jpeg-js, a pure-JS decoder, replicates chroma
// samples instead and was up to 124 levels off on 4:2:0 photos (most cameras' and encoders' default).
// CMYK/YCCK files, which this build of mozjpeg cannot convert, go through jpeg-js, whose IDCT and upsampling are
// not libjpeg's: within 1 level of PIL's CMYK -> RGB on Pillow-saved CMYK (the fixture, and 3 larger files tried),
// but up to 3 levels off on CMYK/YCCK files from other encoders (issue 9): close, not equal. Rarer layouts: 4:4:0 (vertical-only subsampling, made by cjpeg -sample 1x2) came
// within 2 levels of PIL's, 4:1:1 and restart intervals equal; arithmetic-coded files are refused. Like PIL, a file whose data ends before the image does is refused, and so is an
// image over PIL's decompression-bomb limit (which also keeps the decoder inside its 2 GB wasm heap).
import jpegJs from 'jpeg-js';
import { jsquashDecoder, ownBuffer } from './bytes.js';
import { MAX_PIXELS, tooManyPixels } from './size.js';

/** A reason a JPEG cannot be decoded, worded to follow "cannot decode image NAME: ". */
export class JpegError extends Error {}

export interface JpegFrame {
  width: number;
  height: number;
  /** colour components: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK */
  components: number;
  /** bits per sample */
  precision: number;
  /** offset of the first start-of-scan marker (entropy-coded data follows its header) */
  scanAt: number;
  /** the SOFn marker: C0/C1 baseline/extended, C2 progressive, C3 lossless, C9-CF arithmetic-coded variants */
  sof: number;
}

// SOFn markers: C0-C3, C5-C7, C9-CB, CD-CF (C4 = DHT, C8 = JPG, CC = DAC are not frames)
const isSof = (m: number): boolean => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** The frame header (the first SOFn before the first scan), or null when the marker structure is broken. */
export function readJpegFrame(b: Uint8Array): JpegFrame | null {
  let frame: Omit<JpegFrame, 'scanAt'> | null = null;
  let p = 2; // after SOI
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) { p++; continue; } // junk between segments: PIL and libjpeg skip to the next marker
    const m = b[p + 1]!;
    if (m === 0xff) { p++; continue; } // fill byte
    if (m === 0) { p += 2; continue; } // FF 00 outside a scan is junk too
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; } // markers without a length
    if (m === 0xd9) return null; // end of image before any scan
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (len < 2) return null;
    if (m === 0xda) return frame ? { ...frame, scanAt: p } : null;
    if (isSof(m) && !frame) {
      if (len < 8 || p + 10 > b.length) return null;
      frame = { sof: m, precision: b[p + 4]!, height: (b[p + 5]! << 8) | b[p + 6]!, width: (b[p + 7]! << 8) | b[p + 8]!, components: b[p + 9]! };
    }
    p += 2 + len;
  }
  return null;
}

/**
 * Whether an end-of-image marker (FF D9) follows the scans. Entropy-coded data never holds FF D9 (an FF data
 * byte is stuffed as FF 00, and the only markers inside scans are RSTn), so its absence means the file was cut.
 */
export function hasEndOfImage(b: Uint8Array, from: number): boolean {
  for (let i = b.indexOf(0xd9, from + 1); i !== -1; i = b.indexOf(0xd9, i + 1)) if (b[i - 1] === 0xff) return true;
  return false;
}

type MozjpegDecode = (b: ArrayBuffer, opts: { preserveOrientation: boolean }) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
const getMozjpeg = jsquashDecoder<MozjpegDecode>('@jsquash/jpeg/decode.js', '@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm');

/** Decodes JPEG bytes to RGBA (EXIF orientation not applied); throws JpegError with the reason. */
export async function decodeJpegRgba(bytes: Uint8Array, maxPixels = MAX_PIXELS): Promise<{ width: number; height: number; data: Uint8Array | Uint8ClampedArray }> {
  const frame = readJpegFrame(bytes);
  if (!frame || frame.width === 0 || frame.height === 0) throw new JpegError('corrupt or truncated JPEG (no readable frame header)');
  const big = tooManyPixels(frame.width, frame.height, maxPixels);
  if (big) throw new JpegError(big);
  // (PIL's libjpeg-turbo 2.x reads neither lossless JPEG; this mozjpeg build has no arithmetic decoder)
  if (frame.sof === 0xc3 || frame.sof === 0xc7 || frame.sof === 0xcb || frame.sof === 0xcf)
    throw new JpegError('lossless JPEG is not supported (PIL cannot read it either); re-save it as a baseline JPEG or PNG');
  if (frame.sof >= 0xc9) throw new JpegError('arithmetic-coded JPEG is not supported; re-save it as a baseline (Huffman-coded) JPEG or PNG');
  if (frame.precision !== 8) throw new JpegError(`${frame.precision}-bit JPEG samples are not supported (PIL reads 8-bit only); re-save it as an 8-bit JPEG or PNG`);
  if (!hasEndOfImage(bytes, frame.scanAt)) throw new JpegError('truncated JPEG (its data ends before the image does); download or export it again');
  if (frame.components === 4) {
    try {
      return jpegJs.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 2048, maxResolutionInMP: MAX_PIXELS / 1e6 });
    } catch (e) {
      throw new JpegError(`corrupt CMYK JPEG (${(e as Error).message}); re-save it as an RGB JPEG or PNG`);
    }
  }
  const decode = await getMozjpeg();
  try {
    return await decode(ownBuffer(bytes), { preserveOrientation: false });
  } catch {
    throw new JpegError('corrupt or unsupported JPEG (libjpeg could not decode it); re-save it as a baseline JPEG or PNG');
  }
}
