// Fuzzes the safetensors reader with 3000 mutated files (deterministic seed). Each one either fails with a
// one-line FileFormatError naming the file, or opens and then honestly describes its bytes: unique names, the
// dtypes, shapes and offsets its header says, tensors that tile the data section exactly, each of numel x dtype
// bytes, and read() returning exactly those bytes of the file. Any other exception, or a dishonest success, fails.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFormatError } from '../../src/errors.js';
import { DTYPE_BYTES, SafetensorsFile, type SafetensorsDType } from '../../src/io/safetensors.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-st-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** mulberry32: a small deterministic PRNG */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A JSON object that may hold the same key twice (JSON.stringify cannot write one). */
class Obj {
  constructor(public pairs: [string, unknown][]) {}
}

/** Serializes, escaping keys listed in `escape` as \uXXXX; returns the text and whether any object repeats a key. */
function serialize(v: unknown, escape: Set<string>): { text: string; dup: boolean } {
  let dup = false;
  const key = (k: string) => (escape.has(k) ? `"${[...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(k));
  const go = (x: unknown): string => {
    if (x instanceof Obj) {
      const keys = x.pairs.map(([k]) => k);
      if (new Set(keys).size !== keys.length) dup = true;
      return `{${x.pairs.map(([k, y]) => `${key(k)}:${go(y)}`).join(',')}}`;
    }
    if (Array.isArray(x)) return `[${x.map(go).join(',')}]`;
    return JSON.stringify(x) ?? 'null';
  };
  return { text: go(v), dup };
}

const DTYPES = Object.keys(DTYPE_BYTES) as SafetensorsDType[];
const NAMES = ['a', 'b', 'w.0', 'model.layers.1.q_proj.weight', 'x', '__proto__', 'é'];
const JUNK: unknown[] = [-1, 1.5, 2 ** 53, 1e20, '3', null, true, [], {}, -0];

interface Case {
  top: Obj | unknown;
  data: Uint8Array;
  lengthDelta: number;
  flips: number;
  escape: Set<string>;
}

/** A valid file: 1-5 tensors of random dtypes and shapes, offsets in order, maybe metadata. */
function validCase(r: () => number): Case {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const names = [...new Set(Array.from({ length: 1 + Math.floor(r() * 5) }, () => pick(NAMES)))];
  const pairs: [string, unknown][] = [];
  let off = 0;
  for (const name of names) {
    const dtype = pick(DTYPES);
    const shape = Array.from({ length: Math.floor(r() * 3) }, () => Math.floor(r() * 4));
    const n = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    pairs.push([name, new Obj([['dtype', dtype], ['shape', shape], ['data_offsets', [off, off + n]]])]);
    off += n;
  }
  if (r() < 0.3) pairs.splice(Math.floor(r() * (pairs.length + 1)), 0, ['__metadata__', new Obj([['format', 'pt']])]);
  const data = Uint8Array.from({ length: off }, () => Math.floor(r() * 256));
  return { top: new Obj(pairs), data, lengthDelta: 0, flips: 0, escape: new Set() };
}

function mutate(c: Case, r: () => number): void {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const top = c.top instanceof Obj ? c.top : null;
  const tensors = top ? top.pairs.filter(([k, v]) => k !== '__metadata__' && v instanceof Obj) : [];
  const field = (e: unknown, f: string): [string, unknown] | undefined => (e instanceof Obj ? e.pairs.find(([k]) => k === f) : undefined);
  const someTensor = () => (tensors.length ? pick(tensors)[1] : undefined);
  const small = () => pick([-8, -4, -2, -1, 1, 2, 4, 8]);
  switch (Math.floor(r() * 17)) {
    case 0: { // shift one offset
      const f = field(someTensor(), 'data_offsets');
      if (Array.isArray(f?.[1])) (f[1] as number[])[Math.floor(r() * 2)]! += small();
      break;
    }
    case 1: { // shift both offsets (the tensor moves onto its neighbour's bytes)
      const f = field(someTensor(), 'data_offsets');
      if (Array.isArray(f?.[1])) {
        const d = small();
        f[1] = (f[1] as number[]).map((x) => x + d);
      }
      break;
    }
    case 2: { // junk offsets
      const f = field(someTensor(), 'data_offsets');
      if (f) f[1] = r() < 0.5 ? pick(JUNK) : [pick(JUNK), pick(JUNK)];
      break;
    }
    case 3: { // swap two tensors' offsets
      const a = field(someTensor(), 'data_offsets'), b = field(someTensor(), 'data_offsets');
      if (a && b) [a[1], b[1]] = [b[1], a[1]];
      break;
    }
    case 4: { // change, add or drop a dim
      const f = field(someTensor(), 'shape');
      if (Array.isArray(f?.[1])) {
        const s = f[1] as unknown[];
        const k = r();
        if (k < 0.4 && s.length) s[Math.floor(r() * s.length)] = (s[0] as number) + small();
        else if (k < 0.6 && s.length) s[Math.floor(r() * s.length)] = pick(JUNK);
        else if (k < 0.8) s.push(pick([0, 1, 2]));
        else s.pop();
      } else if (f) f[1] = pick(JUNK);
      break;
    }
    case 5: { // another dtype, known, unknown or not a string
      const f = field(someTensor(), 'dtype');
      if (f) f[1] = pick([...DTYPES, 'F8_E4M3', 'U16', 'F4', 'X', 'constructor', 'toString', 5, null]);
      break;
    }
    case 6: { // the same tensor listed twice, the copy maybe pointing elsewhere
      if (top && tensors.length) {
        const [k, v] = pick(tensors);
        const copy = new Obj((v as Obj).pairs.map(([a, b]) => [a, Array.isArray(b) ? [...b] : b]));
        if (r() < 0.5) {
          const f = field(copy, 'data_offsets');
          const g = field(someTensor(), 'data_offsets');
          if (f && g) f[1] = Array.isArray(g[1]) ? [...(g[1] as unknown[])] : g[1];
        }
        top.pairs.splice(Math.floor(r() * (top.pairs.length + 1)), 0, [k, copy]);
      }
      break;
    }
    case 7: // rename a tensor (maybe to another's name)
      if (tensors.length) pick(tensors)[0] = pick(NAMES);
      break;
    case 8: // drop a tensor
      if (top && top.pairs.length) top.pairs.splice(Math.floor(r() * top.pairs.length), 1);
      break;
    case 9: { // drop a field, repeat a field, or add an unknown one
      const e = someTensor();
      if (e instanceof Obj && e.pairs.length) {
        const k = r();
        if (k < 0.4) e.pairs.splice(Math.floor(r() * e.pairs.length), 1);
        else if (k < 0.8) { const p = pick(e.pairs); e.pairs.push([p[0], Array.isArray(p[1]) ? (p[1] as number[]).map((x) => x + small()) : p[1]]); }
        else e.pairs.push(['extra', pick(JUNK)]);
      }
      break;
    }
    case 10: { // metadata: non-string value, repeated key, not an object
      if (!top) break;
      const m = pick([new Obj([['k', pick(JUNK)]]), new Obj([['k', 'a'], ['k', 'b']]), pick(JUNK), new Obj([])]);
      top.pairs.splice(Math.floor(r() * (top.pairs.length + 1)), 0, ['__metadata__', m]);
      break;
    }
    case 11: { // extra or missing data bytes
      const d = small();
      c.data = d > 0 ? new Uint8Array([...c.data, ...new Uint8Array(d)]) : c.data.subarray(0, Math.max(0, c.data.length + d));
      break;
    }
    case 12: // the header length field off by a little
      c.lengthDelta += small();
      break;
    case 13: // random bytes of the header changed
      c.flips += 1 + Math.floor(r() * 3);
      break;
    case 14: // a key written with escapes (the same key)
      if (tensors.length) c.escape.add(pick(tensors)[0]);
      break;
    case 15: // an entry that is not an object
      if (tensors.length) pick(tensors)[1] = pick(JUNK);
      break;
    case 16: // a header that is not an object
      if (r() < 0.2) c.top = pick([[1, 2], 'x', 5, null]);
      break;
  }
}

/** The file's bytes: [n][header padded to 8][data], with `flips` random header bytes changed. */
function build(c: Case, r: () => number): { file: Buffer; dup: boolean; text: string } {
  const { text, dup } = serialize(c.top, c.escape);
  let h = Buffer.from(text, 'utf8');
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  for (let i = 0; i < c.flips; i++) h[Math.floor(r() * h.length)] = Math.floor(r() * 256);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Math.max(0, h.length + c.lengthDelta)));
  return { file: Buffer.concat([len, h, c.data]), dup, text: h.toString('latin1').slice(0, 300) };
}

/** On a successful open: does the reader describe exactly what the file holds? Returns what is wrong, or null. */
function dishonesty(f: SafetensorsFile, file: Buffer, dup: boolean, flipped: boolean): string | null {
  if (dup) return 'opened a header that repeats a key';
  const n = Number(file.readBigUInt64LE(0));
  const text = file.subarray(8, 8 + n).toString('utf8');
  const header = JSON.parse(text) as Record<string, unknown>;
  const keys = Object.keys(header).filter((k) => k !== '__metadata__');
  // with random header bytes the builder's duplicate flag is unknown: every tensor entry has one data_offsets
  if (flipped && (text.match(/"data_offsets"/g) ?? []).length !== keys.length) return 'opened a header whose entries do not match its keys';
  const names = f.names();
  if (names.length !== keys.length || !keys.every((k) => f.has(k))) return `names ${JSON.stringify(names)} are not the header's keys ${JSON.stringify(keys)}`;
  for (const v of Object.values(f.metadata)) if (typeof v !== 'string') return 'metadata holds a non-string';
  const infos = names.map((k) => f.info(k)).sort((a, b) => a.start - b.start || a.byteLength - b.byteLength);
  let at = 8 + n;
  for (const i of infos) {
    const e = header[i.name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (i.dtype !== e.dtype || JSON.stringify(i.shape) !== JSON.stringify(e.shape)) return `"${i.name}" dtype/shape differ from the header`;
    if (i.start !== 8 + n + e.data_offsets[0] || i.byteLength !== e.data_offsets[1] - e.data_offsets[0]) return `"${i.name}" offsets differ from the header`;
    if (i.byteLength !== i.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[i.dtype]) return `"${i.name}" size is not numel x dtype`;
    if (i.start !== at) return `"${i.name}" starts at ${i.start}, not where the previous tensor ends (${at})`;
    at += i.byteLength;
    if (!Buffer.from(f.readBytes(i.name)).equals(file.subarray(i.start, i.start + i.byteLength))) return `"${i.name}" bytes differ from the file`;
  }
  if (at !== file.length) return `tensors end at ${at}, the file at ${file.length}`;
  return null;
}

describe('safetensors reader fuzz', () => {
  it('3000 mutated files: a one-line FileFormatError naming the file, or an honest read', () => {
    const r = prng(20240917);
    const p = join(tmp, 'fuzz.safetensors');
    let opened = 0, refused = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const c = validCase(r);
      const mutations = iter % 10 === 0 ? 0 : 1 + Math.floor(r() * 3); // every 10th stays valid
      for (let m = 0; m < mutations; m++) mutate(c, r);
      const { file, dup, text } = build(c, r);
      writeFileSync(p, file);
      let f: SafetensorsFile | null = null;
      try {
        f = SafetensorsFile.open(p);
      } catch (e) {
        const ok = e instanceof FileFormatError && e.message.includes(p) && !e.message.includes('\n');
        if (!ok) assert.fail(`case ${iter}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : e} for header ${text}`);
        refused++;
        if (mutations === 0) assert.fail(`case ${iter}: refused a valid file: ${(e as Error).message}`);
        continue;
      }
      try {
        const why = dishonesty(f, readFileSync(p), dup, c.flips > 0);
        if (why) assert.fail(`case ${iter}: ${why}; header ${text}`);
        opened++;
      } finally {
        f.close();
      }
    }
    // both outcomes were exercised (a fuzz that never opens or never refuses tests nothing)
    assert.ok(opened >= 300 && refused >= 1500, `opened ${opened}, refused ${refused}`);
  });
});
