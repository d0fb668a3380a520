// quantizeCheckpoint (`vlmkit quantize`): the written folder holds the packed weights bit for bit as quantizing at
// load makes them, the kept tensors in their source dtype and values, NF4 with or without double quantization;
// `info` counts a quantized folder's parameters as its source's; a failed write leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/engine/backend/native/index.js';
import { tidy } from '../../src/engine/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/models/idefics3/model.js';
import { describeModel, quantizeCheckpoint } from '../../src/models/index.js';

const TINY = join(import.meta.dirname, '../fixtures/reference/tiny-idefics3');

for (const [format, doubleQuant] of [['nf4', true], ['nf4', false], ['q8_0', false]] as const) {
  test(`${format}${format === 'nf4' ? (doubleQuant ? ' double-quantized' : ' plain absmax') : ''}: the folder equals quantizing at load`, () => {
    const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-qc-'));
    const out = join(tmp, 'out');
    const seen: number[] = [];
    try {
      const r = quantizeCheckpoint(TINY, out, format, { doubleQuant, onWeight: (_, done, total) => seen.push(done / total) });
      assert.ok(r.quantized > 0 && seen.length === r.quantized && seen[seen.length - 1] === 1, `progress ${seen}`);
      const atLoad = loadModel(TINY, { quant: format, doubleQuant });
      const fromFile = loadModel(out);
      try {
        const a = atLoad.quantizedWeights(), b = fromFile.quantizedWeights();
        assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
        assert.equal(a.has('model.text_model.embed_tokens.weight'), format === 'nf4', 'the embeddings are packed under nf4 only');
        assert.equal(a.has('lm_head.weight'), format === 'nf4', 'the untied lm_head is packed under nf4 only');
        for (const [n, w] of a) {
          // NF4 keeps the token embeddings and the lm_head (untied here) in Q8_0 (Idefics3Model.quantize); the rest
          // is the format
          const embed = format === 'nf4' && (n === 'model.text_model.embed_tokens.weight' || n === 'lm_head.weight');
          assert.equal(w.format, embed ? 'q8_0' : format, n);
          assert.equal(b.get(n)!.format, w.format, n);
          assert.equal(b.get(n)!.doubleQuant, embed ? false : doubleQuant, n);
          assert.ok(Buffer.from(b.get(n)!.bytes).equals(Buffer.from(w.bytes)), `${n}: packed bytes differ`);
        }
        tidy(() => {
          for (const [n, t] of atLoad.parameters()) assert.deepEqual(fromFile.parameters().get(n)!.toArray(), t.toArray(), n);
        });
      } finally {
        atLoad.dispose();
        fromFile.dispose();
      }
      // kept tensors keep their source dtype
      const src = SafetensorsFile.open(join(TINY, 'model.safetensors')), dst = SafetensorsFile.open(join(out, 'model.safetensors'));
      try {
        for (const n of dst.names()) if (dst.info(n).dtype !== 'U8') assert.equal(dst.info(n).dtype, src.info(n).dtype, n);
      } finally {
        src.close();
        dst.close();
      }
      const d0 = describeModel(TINY, { sizes: [] }).json as { parameters: Record<string, number>; dtypes: Record<string, number> };
      const d1 = describeModel(out, { sizes: [] }).json as { parameters: Record<string, number>; dtypes: Record<string, number> };
      assert.deepEqual(d1.parameters, d0.parameters, 'info counts the same parameters');
      assert.ok((d1.dtypes[format] ?? 0) > 0, JSON.stringify(d1.dtypes));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test('a write that fails leaves no folder and no temporary behind', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-qc-'));
  try {
    writeFileSync(join(tmp, 'file'), 'x');
    // the parent of --out is a file: the folder cannot be made
    assert.throws(() => quantizeCheckpoint(TINY, join(tmp, 'file', 'out'), 'q8_0'), /cannot write/);
    assert.deepEqual(readdirSync(tmp), ['file']);
    assert.ok(!existsSync(join(tmp, 'file', 'out')));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
