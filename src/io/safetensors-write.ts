// safetensors writing, atomically: the file is written under a temporary name in the target's own directory,
// fsync'ed, then renamed over the target (and the directory fsync'ed), so a crash or an error never leaves a
// half-written file under the real name. Tensors are written one at a time (a data callback is called only when
// its turn comes), so a multi-GB checkpoint is never assembled in memory.
// Layout (as the safetensors library writes it): 8-byte little-endian header length N, N bytes of JSON padded
// with spaces to a multiple of 8, then the data section. Tensors are ordered by element size (largest first),
// then by name, so that every tensor starts at an offset aligned to its element size.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VlmkitError } from '../errors.js';
import { DTYPE_BYTES, type SafetensorsDType } from './safetensors.js';

/** dtypes the writer accepts */
export type WritableDType = 'F64' | 'F32' | 'BF16' | 'F16' | 'I64' | 'I32' | 'U8' | 'BOOL';
const WRITABLE = new Set<string>(['F64', 'F32', 'BF16', 'F16', 'I64', 'I32', 'U8', 'BOOL']);

export interface SafetensorsEntry {
  name: string;
  dtype: WritableDType;
  shape: readonly number[];
  /**
   * The tensor's bytes in row-major order, little-endian (any typed array or byte view of the right length), or
   * a function returning them, called once when the tensor is written.
   */
  data: ArrayBufferView | (() => ArrayBufferView);
}

function writeError(path: string, e: unknown): VlmkitError {
  const code = (e as NodeJS.ErrnoException)?.code;
  return new VlmkitError('E_WRITE', `cannot write ${path}: ${code ?? (e as Error)?.message ?? e}; check that the directory exists, is writable and has free space`);
}

/** A temporary name beside `path` (same directory, so the final rename stays on one filesystem). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** fsync a directory so a rename inside it is durable (best effort: some filesystems refuse). */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported here: the rename itself is still atomic
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const n = writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}

/**
 * Writes `path` atomically through a temporary file: `fill(fd)` writes the content, then the file is fsync'ed and
 * renamed over `path`. On any error the temporary file is removed and `path` is left as it was.
 */
export function writeFileAtomic(path: string, fill: (fd: number) => void): void {
  const tmp = tempPathFor(path);
  let fd: number | null = null;
  try {
    try {
      fd = openSync(tmp, 'wx', 0o644);
    } catch (e) {
      throw writeError(path, e);
    }
    try {
      fill(fd);
      fsyncSync(fd);
    } catch (e) {
      throw e instanceof VlmkitError ? e : writeError(path, e);
    }
    closeSync(fd);
    fd = null;
    try {
      renameSync(tmp, path);
    } catch (e) {
      throw writeError(path, e);
    }
    fsyncDir(dirname(path));
  } catch (e) {
    if (fd !== null) {
      try { closeSync(fd); } catch { /* already failing */ }
    }
    try { unlinkSync(tmp); } catch { /* never created or already renamed */ }
    throw e;
  }
}

/**
 * Creates or replaces the directory `dir` as a whole: `fill(tmp)` writes every file into a temporary sibling
 * directory, which is then renamed to `dir` (an existing `dir` is moved aside first and removed afterwards). On
 * error the temporary directory is removed and `dir` is left as it was.
 */
export function writeDirAtomic(dir: string, fill: (tmp: string) => void): void {
  const tmp = tempPathFor(dir);
  try {
    try {
      mkdirSync(dirname(dir), { recursive: true }); // an output folder's parents are made, as `mkdir -p` would
      mkdirSync(tmp);
    } catch (e) {
      throw writeError(dir, e);
    }
    fill(tmp);
    fsyncDir(tmp);
    const old = existsSync(dir) ? tempPathFor(dir) : null;
    try {
      if (old) renameSync(dir, old);
      renameSync(tmp, dir);
    } catch (e) {
      if (old && !existsSync(dir)) renameSync(old, dir);
      throw writeError(dir, e);
    }
    fsyncDir(dirname(dir));
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    // best effort: a cleanup that fails too (the parent is a file) must not hide the error that says why
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {}
    throw e;
  }
}

/** Writes a text file atomically (JSON configs and the like). */
export function writeTextFileAtomic(path: string, text: string): void {
  writeFileAtomic(path, (fd) => writeAll(fd, new Uint8Array(Buffer.from(text, 'utf8'))));
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Writes a safetensors file atomically. Names must be unique and not "__metadata__"; each entry's data must hold
 * exactly numel(shape) elements of its dtype. `metadata` goes to the header's "__metadata__" (string values).
 */
export function writeSafetensors(path: string, entries: readonly SafetensorsEntry[], metadata?: Record<string, string>): void {
  const bad = (why: string) => new VlmkitError('E_SAFETENSORS_WRITE', `cannot write ${path}: ${why}`);
  const seen = new Set<string>();
  for (const e of entries) {
    if (!e.name || e.name === '__metadata__') throw bad(`invalid tensor name ${JSON.stringify(e.name)}`);
    if (seen.has(e.name)) throw bad(`tensor name "${e.name}" appears twice`);
    seen.add(e.name);
    if (!WRITABLE.has(e.dtype)) throw bad(`tensor "${e.name}" has dtype ${e.dtype}; the writer supports ${[...WRITABLE].join(', ')}`);
    if (!e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor "${e.name}" has an invalid shape [${e.shape}]`);
  }
  if (metadata) for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw bad(`metadata "${k}" must be a string, got ${typeof v}`);
  const ordered = [...entries].sort((a, b) =>
    DTYPE_BYTES[b.dtype as SafetensorsDType] - DTYPE_BYTES[a.dtype as SafetensorsDType] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // no prototype: a tensor named "__proto__" must become a key, not replace the prototype
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const sizes: number[] = [];
  let offset = 0;
  for (const e of ordered) {
    const n = e.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[e.dtype as SafetensorsDType];
    header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + n] };
    sizes.push(n);
    offset += n;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + raw) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  if (hb.byteLength > 100_000_000) throw bad(`the header would be ${hb.byteLength} bytes, more than the 100,000,000 safetensors readers accept`);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.byteLength));
  writeFileAtomic(path, (fd) => {
    writeAll(fd, new Uint8Array(lenBuf));
    writeAll(fd, new Uint8Array(hb));
    ordered.forEach((e, i) => {
      const view = typeof e.data === 'function' ? e.data() : e.data;
      const b = bytesOf(view);
      if (b.byteLength !== sizes[i])
        throw bad(`tensor "${e.name}" ${e.dtype} [${e.shape}] needs ${sizes[i]} bytes, its data has ${b.byteLength}`);
      writeAll(fd, b);
    });
  });
}
