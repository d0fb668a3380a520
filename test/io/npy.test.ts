// The .npy writer and `vlmkit embed --npy`: the file is parsed here from the format's own definition (NEP 1: magic,
// version, little-endian header length, a dict literal, the data), not with the writer's code.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { writeNpyRows } from '../../src/io/npy.js';
import { embed } from '../../src/cli/embed.js';

interface Npy { major: number; descr: string; fortran: string; shape: number[]; dataOffset: number; data: Float32Array }

function parseNpy(path: string): Npy {
  const b = readFileSync(path);
  assert.deepEqual([...b.subarray(0, 6)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], 'magic \\x93NUMPY');
  const major = b[6]!, minor = b[7]!;
  assert.equal(minor, 0);
  const hlen = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + hlen).toString('latin1');
  assert.ok(header.endsWith('\n'), 'header ends with a newline');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1] ?? '';
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  assert.ok(shapeText !== undefined, `no shape in ${header}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const dataOffset = 10 + hlen;
  const n = shape.reduce((a, d) => a * d, 1);
  assert.equal(b.length - dataOffset, n * 4, 'data section holds exactly the elements');
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(dataOffset + 4 * i);
  return { major, descr, fortran, shape, dataOffset, data };
}

describe('.npy', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-npy-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes format 1.0, <f4, C order, shape [N, D], 64-byte aligned data, the values in row order', () => {
    const rows = [new Float32Array([1, -2.5, 3e-8]), new Float32Array([0, Math.PI, -1e30])];
    const p = join(tmp, 'a.npy');
    writeNpyRows(p, rows);
    const f = parseNpy(p);
    assert.equal(f.major, 1);
    assert.equal(f.descr, '<f4');
    assert.equal(f.fortran, 'False');
    assert.deepEqual(f.shape, [2, 3]);
    assert.equal(f.dataOffset % 64, 0);
    assert.deepEqual([...f.data], [...rows[0]!, ...rows[1]!]);
  });

  it('refuses rows of different widths and writes nothing', () => {
    const p = join(tmp, 'bad.npy');
    assert.throws(() => writeNpyRows(p, [new Float32Array(3), new Float32Array(2)]), /row 1 has 2 values, row 0 has 3/);
    assert.ok(!existsSync(p));
  });

  it('vlmkit embed --npy: the same vectors as the JSON lines, whose rows it names', async () => {
    const REF = join(import.meta.dirname, '..', 'fixtures', 'reference');
    const img = join(REF, 'images', 'square_64x64.png');
    const run = async (extra: string[]) => {
      const io = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
      let out = '';
      io.stdout.on('data', (d) => (out += d));
      assert.equal(await embed(['--model', join(REF, 'tiny-clip'), '--text', 'red circle', '--text', 'blue square', img, ...extra], io), 0);
      return out.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; input: string; embedding?: number[]; row?: number });
    };
    const json = await run([]);
    const p = join(tmp, 'e.npy');
    const listed = await run(['--npy', p]);
    assert.deepEqual(listed, json.map((x, row) => ({ kind: x.kind, input: x.input, row })));
    const f = parseNpy(p);
    assert.deepEqual(f.shape, [3, 512]);
    json.forEach((x, i) => assert.deepEqual([...f.data.subarray(i * 512, (i + 1) * 512)], x.embedding));
  });
});
