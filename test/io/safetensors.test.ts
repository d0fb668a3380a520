// The safetensors reader refuses what the reference reader (huggingface/safetensors) refuses: overlapping,
// shifted or gapped data_offsets, duplicate keys, a data section longer or shorter than the tensors, sizes that
// do not match shape x dtype, unknown dtypes, non-string metadata. And the writer never leaves a half-written file.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFormatError, VlmkitError } from '../../src/errors.js';
import { Checkpoint } from '../../src/io/model-dir.js';
import { SafetensorsFile, duplicateJsonKey } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A file from raw header text (padded with spaces to 8 bytes) and data bytes. */
function rawFile(path: string, headerText: string, data: Uint8Array, lengthDelta = 0): void {
  let h = Buffer.from(headerText, 'utf8');
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length + lengthDelta));
  writeFileSync(path, Buffer.concat([len, h, data]));
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 255);

/** Opens `path` expecting a FileFormatError whose one-line message names the file and matches `re`. */
function refuses(path: string, re: RegExp): void {
  assert.throws(() => SafetensorsFile.open(path), (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${e}`);
    assert.ok(e.message.includes(path), `message does not name the file: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

function header(entries: [string, unknown][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
}

describe('safetensors reader', () => {
  const p = join(tmp, 'x.safetensors');
  const t = (dtype: string, shape: number[], b: number, e: number) => ({ dtype, shape, data_offsets: [b, e] });

  it('reads a valid file (offsets in any header order, zero-size tensors, metadata)', () => {
    const data = bytes(24);
    rawFile(p, header([['b', t('F32', [2], 16, 24)], ['__metadata__', { format: 'pt' }], ['a', t('F32', [2, 2], 0, 16)], ['z', t('U8', [0], 24, 24)]]), data);
    const f = SafetensorsFile.open(p);
    try {
      assert.deepEqual(f.names().sort(), ['a', 'b', 'z']);
      assert.deepEqual(f.metadata, { format: 'pt' });
      assert.deepEqual([...f.readBytes('a')], [...data.subarray(0, 16)]);
      assert.deepEqual([...f.readBytes('b')], [...data.subarray(16, 24)]);
      assert.equal(f.read('z').data.length, 0);
    } finally {
      f.close();
    }
  });

  it('refuses overlapping byte ranges', () => {
    // both tensors claim bytes 0..16: a loader would hand the same weights to two modules
    rawFile(p, header([['a', t('F32', [4], 0, 16)], ['b', t('F32', [4], 0, 16)]]), bytes(32));
    refuses(p, /overlap/);
    rawFile(p, header([['a', t('F32', [4], 0, 16)], ['b', t('F32', [4], 8, 24)]]), bytes(24));
    refuses(p, /"b".*overlap/);
  });

  it('refuses shifted ranges, gaps and a data section of the wrong length', () => {
    rawFile(p, header([['a', t('F32', [4], 4, 20)]]), bytes(20));
    refuses(p, /gap/);
    rawFile(p, header([['a', t('F32', [2], 0, 8)], ['b', t('F32', [2], 12, 20)]]), bytes(20));
    refuses(p, /"b".*gap after byte 8/);
    rawFile(p, header([['a', t('F32', [4], 0, 16)]]), bytes(20));
    refuses(p, /cover 16 bytes but the data section holds 20/);
    rawFile(p, header([['a', t('F32', [4], 0, 16)]]), bytes(12));
    refuses(p, /truncated/);
    rawFile(p, header([['a', t('F32', [4], 0, 16)]]), bytes(16), -8); // header length field cut short
    refuses(p, /not valid JSON/);
  });

  it('refuses duplicate keys, which JSON.parse would silently resolve to the last', () => {
    const a = t('F32', [2], 0, 8);
    rawFile(p, header([['a', a], ['b', t('F32', [2], 8, 16)], ['a', t('F32', [2], 8, 16)]]), bytes(16));
    refuses(p, /tensor "a" is listed twice/);
    // the same key spelled with an escape
    rawFile(p, `{"a":${JSON.stringify(a)},"\\u0061":${JSON.stringify(a)}}`, bytes(8));
    refuses(p, /tensor "a" is listed twice/);
    rawFile(p, `{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16],"data_offsets":[0,8]}}`, bytes(8));
    refuses(p, /key "data_offsets" appears twice in "a"/);
    rawFile(p, `{"__metadata__":{"k":"1","k":"2"},"a":${JSON.stringify(a)}}`, bytes(8));
    refuses(p, /key "k" appears twice in "__metadata__"/);
    rawFile(p, `{"__metadata__":{},"__metadata__":{},"a":${JSON.stringify(a)}}`, bytes(8));
    refuses(p, /"__metadata__" is listed twice/);
  });

  it('refuses sizes that do not match shape x dtype, bad shapes and offsets, unknown dtypes', () => {
    rawFile(p, header([['a', t('F16', [4], 0, 16)]]), bytes(16));
    refuses(p, /has 16 bytes but shape \[4\] of F16 needs 8/);
    rawFile(p, header([['a', t('F32', [2, -2], 0, 16)]]), bytes(16));
    refuses(p, /invalid shape/);
    rawFile(p, header([['a', t('F32', [1.5], 0, 16)]]), bytes(16));
    refuses(p, /invalid shape/);
    rawFile(p, header([['a', t('F32', [2 ** 40, 2 ** 40], 0, 16)]]), bytes(16));
    refuses(p, /too large/);
    rawFile(p, header([['a', { dtype: 'F32', shape: [4], data_offsets: [0, 16, 32] }]]), bytes(16));
    refuses(p, /invalid data_offsets/);
    rawFile(p, header([['a', { dtype: 'F32', shape: [4], data_offsets: ['0', '16'] }]]), bytes(16));
    refuses(p, /invalid data_offsets/);
    rawFile(p, header([['a', { dtype: 'F32', shape: [4] }]]), bytes(16));
    refuses(p, /invalid data_offsets/);
    rawFile(p, header([['a', t('F32', [0], 8, 0)]]), bytes(8));
    refuses(p, /end before they start/);
    rawFile(p, header([['a', t('F33', [4], 0, 16)]]), bytes(16));
    refuses(p, /unknown dtype "F33"/);
    rawFile(p, header([['a', t('constructor', [4], 0, 16)]]), bytes(16));
    refuses(p, /unknown dtype "constructor"/);
    rawFile(p, header([['a', t('F8_E4M3', [4], 0, 4)]]), bytes(4));
    refuses(p, /dtype F8_E4M3, which vlmkit does not read/);
  });

  it('refuses a bad header: too long, not UTF-8, not an object, entries not objects, non-string metadata', () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(100_000_008n);
    writeFileSync(p, Buffer.concat([len, Buffer.from('{}      ')]));
    refuses(p, /header length 100000008 is implausible/);
    writeFileSync(p, Buffer.alloc(5));
    refuses(p, /shorter than the 8-byte header length/);
    rawFile(p, '{"a\xff":1}', bytes(0));
    const raw = readFileSync(p);
    raw[11] = 0xff; // inside the key
    writeFileSync(p, raw);
    refuses(p, /not valid UTF-8/);
    rawFile(p, '[1, 2]', bytes(0));
    refuses(p, /not a JSON object/);
    rawFile(p, '{"a": 5}', bytes(0));
    refuses(p, /entry "a" is not an object/);
    rawFile(p, '{"__metadata__": {"k": 1}}', bytes(0));
    refuses(p, /"__metadata__" value "k" is 1, not a string/);
    rawFile(p, '{"__metadata__": ["k"]}', bytes(0));
    refuses(p, /"__metadata__" is not an object of strings/);
  });

  it('finds duplicate keys at any depth, and none in nested values or strings that look like keys', () => {
    assert.equal(duplicateJsonKey('{"a":{"x":[{"y":1},{"y":2}]},"b":"\\"a\\":","c":["a","a"]}'), null);
    assert.deepEqual(duplicateJsonKey('{"a":[{"y":1,"y":2}]}'), { key: 'y', within: 'a' });
    assert.deepEqual(duplicateJsonKey('{"a\\\\":1,"a\\u005c":2}'), { key: 'a\\', within: null });
    // deep nesting: no stack overflow
    const deep = '{"a":' + '['.repeat(200_000) + ']'.repeat(200_000) + ',"a":1}';
    assert.deepEqual(duplicateJsonKey(deep), { key: 'a', within: null });
  });
});

describe('safetensors writer', () => {
  it('round-trips through the reader, "__proto__" included', () => {
    const p = join(tmp, 'w.safetensors');
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const b = new Uint16Array([7, 8, 9]);
    writeSafetensors(p, [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
      { name: '__proto__', dtype: 'BF16', shape: [3], data: b },
      { name: 'e', dtype: 'I64', shape: [0, 4], data: new BigInt64Array(0) },
    ], { format: 'pt' });
    const f = SafetensorsFile.open(p);
    try {
      assert.deepEqual(f.names().sort(), ['__proto__', 'a', 'e']);
      assert.deepEqual([...(f.read('a').data as Float32Array)], [...a]);
      assert.deepEqual([...(f.read('__proto__').data as Uint16Array)], [...b]);
      assert.deepEqual(f.metadata, { format: 'pt' });
    } finally {
      f.close();
    }
  });

  it('leaves neither a half-written file nor a temporary one when writing fails midway', () => {
    const dir = mkdtempSync(join(tmp, 'fail-'));
    const p = join(dir, 'model.safetensors');
    const entries = (fail: boolean) => [
      { name: 'a', dtype: 'F32' as const, shape: [1024], data: new Float32Array(1024).fill(1) },
      { name: 'b', dtype: 'F32' as const, shape: [4], data: () => { if (fail) throw new Error('out of memory'); return new Float32Array(4); } },
      { name: 'c', dtype: 'F32' as const, shape: [4], data: new Float32Array(3) }, // wrong length
    ];
    assert.throws(() => writeSafetensors(p, entries(true)), /out of memory/);
    assert.deepEqual(readdirSync(dir), []);
    assert.throws(() => writeSafetensors(p, entries(false)), (e: unknown) => e instanceof VlmkitError && /"c" .* needs 16 bytes, its data has 12/.test(e.message));
    assert.deepEqual(readdirSync(dir), []);
    // an existing file is kept whole when its replacement fails
    writeSafetensors(p, [{ name: 'old', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }]);
    const before = readFileSync(p);
    assert.throws(() => writeSafetensors(p, entries(true)), /out of memory/);
    assert.deepEqual(readFileSync(p), before);
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assert.ok(existsSync(p));
  });
});

describe('safetensors in a model directory', () => {
  it('names a model.safetensors that is a directory', () => {
    const d = mkdtempSync(join(tmp, 'dir-'));
    writeFileSync(join(d, 'config.json'), '{"model_type": "smolvlm"}');
    mkdirSync(join(d, 'model.safetensors'));
    assert.throws(() => Checkpoint.open(d), (e: unknown) => e instanceof FileFormatError &&
      e.message.includes(join(d, 'model.safetensors')) && /is a directory or a device, not a file/.test(e.message));
  });
});
