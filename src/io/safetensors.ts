// safetensors reading: the header is parsed and validated up front; tensor bytes are read lazily, one tensor at a
// time with positioned reads, so a multi-GB checkpoint is never read whole. Writing lives in safetensors-write.ts.
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]}, ...,
// "__metadata__"?: {str: str}}, then the data section; offsets are relative to the data section.
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

const MAX_HEADER = 100 * 1024 * 1024;

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
      const { infos, metadata } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, infos, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
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

function parseHeader(path: string, fd: number): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const size = fstatSync(fd).size;
  const bad = (why: string) => new FileFormatError(`${path} is not a valid safetensors file: ${why}`);
  if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readSync(fd, lenBuf, 0, 8, 0);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER) || n < 2n) throw bad(`header length ${n} is implausible (bad magic or not a safetensors file)`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw bad(`header length ${headerLen} runs past the end of the ${size}-byte file (truncated?)`);
  const hb = Buffer.alloc(headerLen);
  readSync(fd, hb, 0, headerLen, 8);
  let header: unknown;
  try {
    header = JSON.parse(hb.toString('utf8'));
  } catch {
    throw bad('header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const infos = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor "${name}" has an invalid shape`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor "${name}" has invalid data_offsets`);
    const [b, end] = off as [number, number];
    if (end < b || end > dataLen) throw bad(`tensor "${name}" has data_offsets [${b}, ${end}] outside the ${dataLen}-byte data section (truncated file?)`);
    const expected = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    if (end - b !== expected) throw bad(`tensor "${name}" has ${end - b} bytes but shape [${shape}] of ${dtype} needs ${expected}`);
    infos.set(name, { name, dtype, shape, start: dataStart + b, byteLength: end - b });
  }
  return { infos, metadata };
}
