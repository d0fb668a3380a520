// The search index file (docs/search-index.md): the embeddings of a folder's images with what each came from, so
// a search re-embeds only what changed. Layout, little-endian:
//   0   8 bytes  magic "VLMKSIDX"
//   8   u32      format version (1)
//   12  u32      header length H
//   16  H bytes  header: UTF-8 JSON {format, model: {family, id}, dim, count, files: [{path, mtimeMs, size}]},
//                padded with spaces so the embeddings start at a multiple of 64
//   ..  count x dim f32 embeddings, row i belonging to files[i]
//   end u32      CRC-32 of every byte before it
// Written whole under a temporary name and renamed into place; read back with every length, field and the CRC
// checked, so a truncated, corrupt or foreign file is one clear error, never a wrong result.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { FileFormatError, VlmkitError } from '../errors.js';
import { writeFileAtomic } from '../io/safetensors-write.js';
import { type Hit, dotRows, topK } from './topk.js';

export const INDEX_MAGIC = 'VLMKSIDX';
export const INDEX_VERSION = 1;
const PREFIX = 16;
const ALIGN = 64;

/** Which model made the embeddings: vectors of another model (or of a changed one) are not comparable. */
export interface ModelIdentity {
  family: string;
  /** sha256 of the checkpoint's configs and a sample of its weights (model-id.ts) */
  id: string;
}

/** One indexed image: its path relative to the folder ('/'-separated) and the file's state when embedded. */
export interface IndexedFile {
  path: string;
  mtimeMs: number;
  size: number;
}

export interface SearchHit {
  /** the path relative to the indexed folder */
  path: string;
  /** cosine similarity of the image's and the query's embeddings (both unit length) */
  score: number;
}

const fixHint = 'delete it or run the search with --rebuild';

export class SearchIndex {
  constructor(
    readonly model: ModelIdentity,
    readonly dim: number,
    readonly files: readonly IndexedFile[],
    /** [files.length, dim] row-major */
    readonly embeddings: Float32Array,
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new VlmkitError('E_ARGS', `search index: dimension ${dim} must be an integer >= 1`);
    if (embeddings.length !== files.length * dim) throw new VlmkitError('E_SHAPE', `search index: ${embeddings.length} values are not ${files.length} rows of ${dim}`);
  }

  get count(): number {
    return this.files.length;
  }

  /** The embedding of row i (a view, no copy). */
  row(i: number): Float32Array {
    return this.embeddings.subarray(i * this.dim, (i + 1) * this.dim);
  }

  /** The k files most similar to the query embedding, best first. */
  search(query: Float32Array, k: number): SearchHit[] {
    return this.topRows(query, k).map((h) => ({ path: this.files[h.index]!.path, score: h.score }));
  }

  /** The k best rows (index, score), best first. */
  topRows(query: Float32Array, k: number): Hit[] {
    return topK(dotRows(this.embeddings, this.count, this.dim, query), k);
  }

  /** Writes the index to `path` atomically. */
  write(path: string): void {
    const header = JSON.stringify({
      format: 'vlmkit-search-index', model: this.model, dim: this.dim, count: this.count,
      files: this.files.map((f) => ({ path: f.path, mtimeMs: f.mtimeMs, size: f.size })),
    });
    let hbytes = Buffer.from(header, 'utf8');
    const padded = Math.ceil((PREFIX + hbytes.length) / ALIGN) * ALIGN - PREFIX;
    hbytes = Buffer.concat([hbytes, Buffer.alloc(padded - hbytes.length, 0x20)]);
    const prefix = Buffer.alloc(PREFIX);
    prefix.write(INDEX_MAGIC, 0, 'latin1');
    prefix.writeUInt32LE(INDEX_VERSION, 8);
    prefix.writeUInt32LE(hbytes.length, 12);
    const data = new Uint8Array(this.embeddings.buffer, this.embeddings.byteOffset, this.embeddings.byteLength);
    let crc = crc32(prefix);
    crc = crc32(hbytes, crc);
    crc = crc32(data, crc);
    const tail = Buffer.alloc(4);
    tail.writeUInt32LE(crc >>> 0, 0);
    writeFileAtomic(path, (fd) => {
      for (const b of [prefix, hbytes, data, tail]) writeAll(fd, b);
    });
  }

  /** Reads and checks an index file; any damage is a FileFormatError naming the file and the fix. */
  static read(path: string): SearchIndex {
    const bytes = readWhole(path);
    const bad = (what: string) => new FileFormatError(`${path}: ${what}; the search index is damaged or not one: ${fixHint}`);
    if (bytes.length < PREFIX + 4 || bytes.toString('latin1', 0, 8) !== INDEX_MAGIC) throw bad(`it does not start with "${INDEX_MAGIC}"`);
    const version = bytes.readUInt32LE(8);
    if (version !== INDEX_VERSION) throw new FileFormatError(`${path}: search index format version ${version}, this vlmkit reads version ${INDEX_VERSION}; ${fixHint}`);
    const hlen = bytes.readUInt32LE(12);
    if (PREFIX + hlen + 4 > bytes.length) throw bad(`its header claims ${hlen} bytes but the file has ${bytes.length} (truncated?)`);
    const stored = bytes.readUInt32LE(bytes.length - 4);
    if ((crc32(bytes.subarray(0, bytes.length - 4)) >>> 0) !== stored) throw bad('its checksum does not match its content (truncated or corrupt)');
    let h: unknown;
    try {
      h = JSON.parse(bytes.toString('utf8', PREFIX, PREFIX + hlen));
    } catch {
      throw bad('its header is not JSON');
    }
    const hd = h as { format?: unknown; model?: { family?: unknown; id?: unknown }; dim?: unknown; count?: unknown; files?: unknown };
    if (!hd || typeof hd !== 'object' || hd.format !== 'vlmkit-search-index') throw bad('its header does not say format "vlmkit-search-index"');
    if (!hd.model || typeof hd.model.family !== 'string' || typeof hd.model.id !== 'string') throw bad('its header has no model {family, id}');
    const dim = hd.dim, count = hd.count;
    if (!Number.isInteger(dim) || (dim as number) < 1 || !Number.isInteger(count) || (count as number) < 0) throw bad(`its header's dim ${JSON.stringify(dim)} / count ${JSON.stringify(count)} are not integers`);
    if (!Array.isArray(hd.files) || hd.files.length !== count) throw bad(`its header lists ${Array.isArray(hd.files) ? hd.files.length : 'no'} files for count ${count}`);
    const seen = new Set<string>();
    const files: IndexedFile[] = hd.files.map((f: unknown, i: number) => {
      const x = f as { path?: unknown; mtimeMs?: unknown; size?: unknown };
      if (!x || typeof x.path !== 'string' || x.path === '' || typeof x.mtimeMs !== 'number' || !Number.isFinite(x.mtimeMs) || !Number.isInteger(x.size) || (x.size as number) < 0) throw bad(`file entry ${i} is not {path, mtimeMs, size}`);
      // one row per file: the incremental update maps each path to one stored row
      if (seen.has(x.path)) throw bad(`it lists ${JSON.stringify(x.path)} twice`);
      seen.add(x.path);
      return { path: x.path, mtimeMs: x.mtimeMs, size: x.size as number };
    });
    const want = PREFIX + hlen + (count as number) * (dim as number) * 4 + 4;
    if (bytes.length !== want) throw bad(`it has ${bytes.length} bytes, its header (${count} x ${dim} embeddings) needs ${want}`);
    // a copy into a fresh buffer: aligned for Float32Array whatever the read buffer's offset
    const start = PREFIX + hlen;
    const emb = new Float32Array((count as number) * (dim as number));
    new Uint8Array(emb.buffer).set(bytes.subarray(start, start + emb.byteLength));
    return new SearchIndex({ family: hd.model.family, id: hd.model.id }, dim as number, files, emb);
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.byteLength) {
    const n = writeSync(fd, b, done, Math.min(b.byteLength - done, 1 << 30));
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += n;
  }
}

/** The whole file, read to its size at open time (a file growing meanwhile is not followed). */
function readWhole(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new FileFormatError(`cannot read the search index ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check the path or run with --rebuild`);
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, Math.min(size - done, 1 << 30), done);
      if (n <= 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}
