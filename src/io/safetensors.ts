// safetensors reading: the header is parsed and validated up front; tensor bytes are read lazily, one tensor at a
// time with positioned reads, so a multi-GB checkpoint is never read whole. Writing lives in safetensors-write.ts.
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, ...,
// "__metadata__"?: {str: str}}, then the data section; offsets are relative to the data section.
// Validation follows the reference reader (huggingface/safetensors, Rust): a header of at most 100,000,000 bytes
// that is UTF-8 JSON holding an object; unique keys (checked on the text: JSON.parse keeps the last of a duplicate
// silently); known dtypes; data_offsets that, sorted, tile the data section exactly from 0 to its end with no gap
// or overlap; each tensor's size equal to numel(shape) x dtype size; "__metadata__" string to string. Anything else
// is refused before any tensor data is read, so a crafted header can neither point two tensors at the same bytes
// nor shift one onto another's.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FileFormatError } from '../errors.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** absolute byte offset of the tensor's first byte in the file */
  start: number;
  byteLength: number;
}

/** Raw bytes of one tensor. `data` is a typed array matching dtype (Uint16Array for BF16/F16, BigInt64Array for I64). */
export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
}

/** the reference reader's limit */
const MAX_HEADER = 100_000_000;

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private readonly infos: Map<string, TensorInfo>;
  private fd: number | null;

  private constructor(path: string, fd: number, infos: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = path;
    this.fd = fd;
    this.infos = infos;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new FileFormatError(`cannot open safetensors file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
    }
    try {
      if (!fstatSync(fd).isFile()) throw new FileFormatError(`safetensors file ${path} is a directory or a device, not a file; give the path of a .safetensors file`);
      const { infos, metadata } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, infos, metadata);
    } catch (e) {
      closeSync(fd);
      if (e instanceof FileFormatError) throw e;
      throw new FileFormatError(`cannot read safetensors file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check the file`);
    }
  }

  names(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  info(name: string): TensorInfo {
    const i = this.infos.get(name);
    if (!i) throw new FileFormatError(`tensor "${name}" not found in ${this.path}`);
    return i;
  }

  /** Reads one tensor's bytes into `into` (which must be at least byteLength long) or a fresh buffer. */
  readBytes(name: string, into?: Uint8Array): Uint8Array {
    const i = this.info(name);
    if (this.fd === null) throw new FileFormatError(`safetensors file ${this.path} is closed`);
    const out = into ?? new Uint8Array(i.byteLength);
    if (out.byteLength < i.byteLength) throw new FileFormatError(`buffer too small for tensor "${name}" of ${this.path}`);
    let done = 0;
    while (done < i.byteLength) {
      const n = readSync(this.fd, out, done, Math.min(i.byteLength - done, 1 << 30), i.start + done);
      if (n <= 0) throw new FileFormatError(`safetensors file ${this.path} is truncated while reading "${name}"; re-download it`);
      done += n;
    }
    return out.byteLength === i.byteLength ? out : out.subarray(0, i.byteLength);
  }

  read(name: string): RawTensor {
    const i = this.info(name);
    const bytes = this.readBytes(name);
    return { dtype: i.dtype, shape: i.shape.slice(), data: typedView(i.dtype, bytes) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function typedView(dtype: SafetensorsDType, bytes: Uint8Array): RawTensor['data'] {
  // Copy when unaligned so that the typed array view is legal.
  const el = DTYPE_BYTES[dtype];
  if (bytes.byteOffset % el !== 0) bytes = bytes.slice();
  const { buffer, byteOffset, byteLength } = bytes;
  switch (dtype) {
    case 'F64': return new Float64Array(buffer, byteOffset, byteLength / 8);
    case 'F32': return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'F16': case 'BF16': return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'I64': return new BigInt64Array(buffer, byteOffset, byteLength / 8);
    case 'I32': return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'I16': return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'I8': return new Int8Array(buffer, byteOffset, byteLength);
    case 'U8': case 'BOOL': return new Uint8Array(buffer, byteOffset, byteLength);
  }
}

/** Every dtype the reference library knows, with its size in bits (vlmkit reads those of DTYPE_BYTES). */
const KNOWN_DTYPE_BITS: Record<string, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, I16: 16, U16: 16,
  F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

/**
 * The first key that appears twice in one object of `text` (which must be valid JSON), with the key whose value
 * holds that object (null at the top level); null when all keys are unique. Keys compare after unescaping, as
 * JSON.parse does ("a" and "\u0061" are the same key). Iterative, so no nesting depth can overflow the stack.
 */
export function duplicateJsonKey(text: string): { key: string; within: string | null } | null {
  // one frame per open object (keys: the keys seen) or array (keys: null); last: the latest key of an object
  const open: { keys: Set<string> | null; name: string | null; last: string | null }[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c) {
          escaped = true;
          j++;
        }
        j++;
      }
      const top = open[open.length - 1];
      if (expectKey && top?.keys) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { key, within: top.name };
        top.keys.add(key);
        top.last = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      const top = open[open.length - 1];
      const name = top ? (top.keys ? top.last : top.name) : null;
      open.push({ keys: c === 0x7b ? new Set() : null, name, last: null });
      expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = open[open.length - 1]?.keys != null;
    }
  }
  return null;
}

function readFully(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, position + done);
    if (n <= 0) break;
    done += n;
  }
  return done;
}

const isCount = (d: unknown): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0;

function parseHeader(path: string, fd: number): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const size = fstatSync(fd).size;
  const bad = (why: string) => new FileFormatError(`${path} is not a valid safetensors file: ${why}; re-download it or save it again`);
  if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  if (readFully(fd, lenBuf, 0) !== 8) throw bad('cannot read the 8-byte header length');
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER) || n < 2n) throw bad(`header length ${n} is implausible (bad magic or not a safetensors file)`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw bad(`header length ${headerLen} runs past the end of the ${size}-byte file (truncated?)`);
  const hb = Buffer.alloc(headerLen);
  if (readFully(fd, hb, 8) !== headerLen) throw bad('the file ended while reading the header (truncated?)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb);
  } catch {
    throw bad('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    throw bad('header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dup = duplicateJsonKey(text);
  if (dup) throw bad(dup.within === null ? `tensor "${dup.key}" is listed twice in the header` : `key "${dup.key}" appears twice in "${dup.within}"`);
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const infos = new Map<string, TensorInfo>();
  const ranges: { name: string; b: number; e: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v)) throw bad('"__metadata__" is not an object of strings');
      for (const [k, x] of Object.entries(v as Record<string, unknown>))
        if (typeof x !== 'string') throw bad(`"__metadata__" value "${k}" is ${JSON.stringify(x)}, not a string`);
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw bad(`entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !Object.hasOwn(KNOWN_DTYPE_BITS, e.dtype)) throw bad(`tensor "${name}" has unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Object.hasOwn(DTYPE_BYTES, e.dtype))
      throw bad(`tensor "${name}" has dtype ${e.dtype}, which vlmkit does not read (it reads ${Object.keys(DTYPE_BYTES).join(', ')})`);
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every(isCount)) throw bad(`tensor "${name}" has an invalid shape ${JSON.stringify(e.shape)}`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount)) throw bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    const [b, end] = off as [number, number];
    let expected = DTYPE_BYTES[dtype];
    for (const d of shape) {
      expected *= d;
      if (!Number.isSafeInteger(expected)) throw bad(`tensor "${name}" shape [${shape}] is too large`);
    }
    if (end < b) throw bad(`tensor "${name}" has data_offsets [${b}, ${end}] that end before they start`);
    if (end - b !== expected) throw bad(`tensor "${name}" has ${end - b} bytes but shape [${shape}] of ${dtype} needs ${expected}`);
    ranges.push({ name, b, e: end });
    infos.set(name, { name, dtype, shape, start: dataStart + b, byteLength: end - b });
  }
  // sorted by offsets, the tensors must cover the data section exactly: each starts where the previous one ended
  ranges.sort((x, y) => x.b - y.b || x.e - y.e);
  let at = 0;
  for (const r of ranges) {
    if (r.b !== at) {
      if (r.e > dataLen) throw bad(`tensor "${r.name}" has data_offsets [${r.b}, ${r.e}] past the ${dataLen}-byte data section (truncated file?)`);
      throw bad(r.b < at ? `tensor "${r.name}" data_offsets [${r.b}, ${r.e}] overlap the tensor before it (which ends at ${at})`
        : `tensor "${r.name}" data_offsets [${r.b}, ${r.e}] leave a gap after byte ${at} of the data section`);
    }
    at = r.e;
  }
  if (at > dataLen) throw bad(`the tensors need a ${at}-byte data section but the file holds ${dataLen} bytes after the header (truncated file?)`);
  if (at < dataLen) throw bad(`the tensors cover ${at} bytes but the data section holds ${dataLen} (extra bytes after the last tensor)`);
  return { infos, metadata };
}
