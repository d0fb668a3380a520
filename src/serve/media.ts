// The bytes of a request's image_url: a data: URL (base64), an http(s) URL (downloaded with a size cap and a
// time-out, as llama.cpp's server and vLLM do), or a file:// URL inside --media-path (only there: a client must
// not read the server's files). Each image is sniffed and its header's size checked before anything decodes it.
import { open, realpath } from 'node:fs/promises';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { predictImageSize, sniffFormat } from '../processing/decode.js';
import { ApiError, badRequest } from './errors.js';
import type { ImageRef, ServeLimits } from './request.js';

export interface MediaOptions {
  /** the folder file:// URLs may read from (none: file URLs are refused) */
  mediaPath?: string;
  limits: ServeLimits;
}

const mib = (n: number) => (n < 2 ** 20 ? `${n} bytes` : `${(n / 2 ** 20).toFixed(1)} MiB`);

function tooBig(ref: ImageRef, limit: number): never {
  throw badRequest(ref.param, `${ref.param}: the image is over this server's limit of ${mib(limit)} (--max-image-bytes)`, 'image_too_large');
}

function fromDataUrl(ref: ImageRef, limit: number): Uint8Array {
  const comma = ref.url.indexOf(',');
  const head = comma < 0 ? '' : ref.url.slice(5, comma);
  if (comma < 0 || !/;base64$/i.test(head)) {
    throw badRequest(ref.param, `${ref.param}: a data: URL must be base64, as data:image/png;base64,...`);
  }
  const b64 = ref.url.slice(comma + 1).replace(/\s+/g, '');
  // the decoded size is known before decoding: 3 bytes per 4 characters
  if (Math.floor((b64.length * 3) / 4) > limit + 2) tooBig(ref, limit);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64)) throw badRequest(ref.param, `${ref.param}: the data: URL is not valid base64`);
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length > limit) tooBig(ref, limit);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

async function fromHttp(ref: ImageRef, o: MediaOptions, signal: AbortSignal): Promise<Uint8Array> {
  const { maxImageBytes: limit, fetchTimeoutMs } = o.limits;
  const where = `${ref.param} (${ref.url.slice(0, 200)})`;
  let res: Response;
  const sig = AbortSignal.any([signal, AbortSignal.timeout(fetchTimeoutMs)]);
  try {
    res = await fetch(ref.url, { signal: sig, redirect: 'follow' });
  } catch (e) {
    const why = sig.aborted && !signal.aborted ? `no answer within ${fetchTimeoutMs / 1000} s (--fetch-timeout)` : (e as Error).message;
    throw badRequest(ref.param, `${where}: the image could not be downloaded: ${why}`, 'image_fetch_failed');
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw badRequest(ref.param, `${where}: the image download answered HTTP ${res.status}`, 'image_fetch_failed');
  }
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    tooBig(ref, limit);
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > limit) tooBig(ref, limit); // a server that lies about (or leaves out) its length is cut off here
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    const why = sig.aborted && !signal.aborted ? `not finished within ${fetchTimeoutMs / 1000} s (--fetch-timeout)` : (e as Error).message;
    throw badRequest(ref.param, `${where}: the image could not be downloaded: ${why}`, 'image_fetch_failed');
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks, n);
}

async function fromFile(ref: ImageRef, o: MediaOptions): Promise<Uint8Array> {
  if (!o.mediaPath) {
    throw badRequest(ref.param, `${ref.param}: local files are off; start the server with --media-path DIR to allow file:// URLs under DIR`, 'local_files_disabled');
  }
  let path: string;
  try {
    path = await realpath(fileURLToPath(ref.url));
  } catch {
    throw badRequest(ref.param, `${ref.param}: no such file ${ref.url}`, 'image_not_found');
  }
  // the real path, so a symlink inside the folder cannot lead out of it
  const root = await realpath(o.mediaPath);
  if (!path.startsWith(root.endsWith(sep) ? root : root + sep)) {
    throw badRequest(ref.param, `${ref.param}: ${ref.url} is outside the --media-path folder`, 'image_not_allowed');
  }
  const f = await open(path, 'r').catch(() => null);
  if (!f) throw badRequest(ref.param, `${ref.param}: cannot read ${ref.url}`, 'image_not_found');
  try {
    const st = await f.stat();
    if (!st.isFile()) throw badRequest(ref.param, `${ref.param}: ${ref.url} is not a file`, 'image_not_found');
    if (st.size > o.limits.maxImageBytes) tooBig(ref, o.limits.maxImageBytes);
    return new Uint8Array(await f.readFile());
  } finally {
    await f.close();
  }
}

/** The image's bytes, checked to be PNG / JPEG / GIF / WebP within the pixel limit (not decoded yet). */
export async function fetchImage(ref: ImageRef, o: MediaOptions, signal: AbortSignal): Promise<Uint8Array> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(ref.url)?.[1]?.toLowerCase();
  let bytes: Uint8Array;
  if (scheme === 'data') bytes = fromDataUrl(ref, o.limits.maxImageBytes);
  else if (scheme === 'http' || scheme === 'https') bytes = await fromHttp(ref, o, signal);
  else if (scheme === 'file') bytes = await fromFile(ref, o);
  else throw badRequest(ref.param, `${ref.param}: use a data: URL (data:image/png;base64,...), an http(s) URL, or a file:// URL under --media-path`);
  if (!sniffFormat(bytes)) throw badRequest(ref.param, `${ref.param}: not a PNG, JPEG, GIF or WebP image`, 'invalid_image');
  const size = predictImageSize(bytes);
  if (!size) throw badRequest(ref.param, `${ref.param}: the image's header has no valid size`, 'invalid_image');
  if (size[0] * size[1] > o.limits.maxImagePixels) {
    throw badRequest(ref.param, `${ref.param}: the image is ${size[0]}x${size[1]}, over this server's limit of ${o.limits.maxImagePixels} pixels (--max-image-pixels)`, 'image_too_large');
  }
  return bytes;
}
