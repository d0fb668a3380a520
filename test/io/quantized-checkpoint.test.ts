// A quantized checkpoint (packed U8 weights with their [out, in] in the file's "vlmkit.quant" metadata) loads back
// bit for bit, and one whose packed weight was made for another shape fails with an error naming the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type QuantFormat, tidy } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { FileFormatError } from '../../src/errors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { loadModel } from '../../src/models/idefics3/model.js';
import { QUANT_METADATA_KEY, quantMetadata } from '../../src/models/quantized-file.js';

const TINY = join(import.meta.dirname, '../fixtures/reference/tiny-idefics3');

function writeQuantized(dir: string, m: ReturnType<typeof loadModel>, shapeOf: (name: string, s: readonly number[]) => readonly number[]): void {
  const entries: SafetensorsEntry[] = [];
  // the model was loaded in f32: its 16-bit-kept tensors are written as F32
  for (const [name, t] of m.parameters()) entries.push({ name, dtype: 'F32', shape: t.shape, data: t.toFloat32Array() });
  const shapes = new Map<string, readonly number[]>(), formats = new Map<string, QuantFormat>();
  for (const [name, w] of m.quantizedWeights()) {
    entries.push({ name, dtype: 'U8', shape: [w.bytes.length], data: w.bytes });
    shapes.set(name, shapeOf(name, w.shape));
    formats.set(name, w.format);
  }
  writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt', [QUANT_METADATA_KEY]: quantMetadata('nf4', true, shapes, formats) });
  copyFileSync(join(TINY, 'config.json'), join(dir, 'config.json'));
}

test('a quantized checkpoint loads back bit for bit; one made for another shape names the tensor', () => {
  const m = loadModel(TINY, { dtype: 'f32', quant: 'nf4' });
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-q-'));
  try {
    const q = m.quantizedWeights();
    assert.ok(q.size > 0, 'the tiny model has linears NF4 can hold (input sizes multiples of 64)');
    // the token embeddings and the lm_head (untied here) go to Q8_0 under NF4 (Idefics3Model.quantize), listed
    // under the metadata's "formats"
    for (const [name, w] of q) assert.equal(w.format, name === 'model.text_model.embed_tokens.weight' || name === 'lm_head.weight' ? 'q8_0' : 'nf4', name);
    writeQuantized(dir, m, (_, s) => s);
    const back = loadModel(dir);
    const qb = back.quantizedWeights();
    assert.deepEqual([...qb.keys()].sort(), [...q.keys()].sort());
    for (const [name, w] of q) {
      assert.equal(qb.get(name)!.format, w.format, name);
      assert.equal(qb.get(name)!.doubleQuant, w.format === 'nf4', name);
      assert.deepEqual([...qb.get(name)!.bytes], [...w.bytes], name);
    }
    tidy(() => {
      for (const [name, t] of m.parameters()) assert.deepEqual(back.parameters().get(name)!.toArray(), t.toArray(), name);
    });
    back.dispose();
    // the metadata says the first packed weight is [out, 2 * in]: the loader refuses it by name
    const first = [...q.keys()][0];
    writeQuantized(dir, m, (name, s) => (name === first ? [s[0], 2 * s[1]] : s));
    assert.throws(() => loadModel(dir), (e: Error) => e instanceof FileFormatError && e.message.includes(`"${first}"`) && /quantized from a model of another shape/.test(e.message));
  } finally {
    m.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
