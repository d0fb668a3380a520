// KVCache.gather (continuous batching): rows prefilled alone, then gathered into one cache right-aligned (the
// shorter prompt behind left padding the mask hides), decode in one batched step as each does alone. The batched
// step's GEMMs sum in another order than one row's, so logits agree to a tolerance (documented in
// docs/serving.md) and the greedy tokens are equal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { loadVlm } from '../../src/api.js';
import { argmax, tensor, type Tensor } from '../../src/engine/index.js';
import type { KVCache } from '../../src/models/idefics3/text.js';
import type { Idefics3Model } from '../../src/models/idefics3/model.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
/** the largest |batched - alone| logit allowed, relative to the row's largest |logit| */
const TOL = 1e-4;

interface Row {
  ids: number[];
  cache: KVCache;
  first: number;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe('KVCache.gather: rows of different lengths decode together as alone', () => {
  it('two prompts (one with an image) gathered, then batched steps = each one alone', async (t) => {
    const vlm = await loadVlm(join(FIX, 'tiny-smolvlm'));
    const m = vlm.model as unknown as Idefics3Model;
    const png = readFileSync(join(FIX, 'images', 'wide_90x150.png'));
    const samples = [
      { messages: [{ role: 'user' as const, content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is this?' }] }], images: [png] },
      { messages: [{ role: 'user' as const, content: 'a short one' }], images: [] },
    ];
    const STEPS = 6;
    {
      const rows: Row[] = [];
      const alone: Float32Array[][] = [];
      for (const s of samples) {
        const enc = await vlm.processor.encodeBatch([s]);
        const ids = enc.inputIds.toArray();
        const T = ids.length;
        const prefill = () => {
          const cache = m.createCache(1, T + STEPS);
          const positionIds = tensor(Array.from({ length: T }, (_, i) => i), [1, T], { dtype: 'i32' });
          const l = m.prefill({ ...enc, positionIds }, cache);
          const first = argmax(l, 1).toArray()[0]!;
          l.dispose();
          positionIds.dispose();
          return { cache, first };
        };
        // the reference: this row alone, greedy, step by step
        const ref = prefill();
        const logits: Float32Array[] = [];
        let tok = ref.first;
        for (let k = 0; k < STEPS; k++) {
          const len = T + k + 1;
          const l = m.step({
            inputIds: tensor([tok], [1, 1], { dtype: 'i32' }),
            positionIds: tensor([T + k], [1, 1], { dtype: 'i32' }),
            attentionMask: tensor(new Array(len).fill(1), [1, len], { dtype: 'i32' }),
          }, ref.cache);
          logits.push(l.toFloat32Array());
          tok = argmax(l, 1).toArray()[0]!;
          l.dispose();
        }
        ref.cache.dispose();
        alone.push(logits);
        const p = prefill();
        rows.push({ ids, cache: p.cache, first: p.first });
        enc.dispose();
      }
      assert.ok(rows[0]!.ids.length > rows[1]!.ids.length + 10, 'the prompts differ in length');
      // gathered: row 1 right-aligned behind left padding; extra columns of padding on both to show they are hidden
      const L = Math.max(...rows.map((r) => r.ids.length)) + 3;
      const batch = m.gatherCache(rows.map((r) => ({ cache: r.cache, row: 0, from: 0, to: r.ids.length })), L, L + STEPS);
      for (const r of rows) r.cache.dispose();
      assert.equal(batch.batch, 2);
      assert.equal(batch.length, L);
      const toks = rows.map((r) => r.first);
      let worst = 0;
      for (let k = 0; k < STEPS; k++) {
        const past = batch.length;
        const mask = new Int32Array(2 * (past + 1));
        rows.forEach((r, j) => mask.fill(1, j * (past + 1) + (L - r.ids.length), (j + 1) * (past + 1)));
        const l: Tensor = m.step({
          inputIds: tensor(toks, [2, 1], { dtype: 'i32' }),
          positionIds: tensor(rows.map((r) => r.ids.length + k), [2, 1], { dtype: 'i32' }),
          attentionMask: tensor(mask, [2, past + 1], { dtype: 'i32' }),
        }, batch);
        const all = l.toFloat32Array();
        const V = l.shape[1]!;
        rows.forEach((_, j) => {
          const d = maxRelDiff(all.subarray(j * V, (j + 1) * V), alone[j]![k]!);
          assert.ok(Number.isFinite(d) && d <= TOL, `row ${j} step ${k}: logits differ by ${d} (relative) from the row alone`);
          worst = Math.max(worst, d);
        });
        const picked = argmax(l, 1).toArray();
        l.dispose();
        rows.forEach((_, j) => {
          assert.equal(picked[j], argmaxOf(alone[j]![k]!), `row ${j} step ${k}: the greedy token`);
          toks[j] = picked[j]!;
        });
      }
      batch.dispose();
      t.diagnostic(`largest relative logit difference batched vs alone: ${worst.toExponential(2)}`);
    }
  });

  it('refuses spans that do not fit', async () => {
    const vlm = await loadVlm(join(FIX, 'tiny-smolvlm'));
    const m = vlm.model as unknown as Idefics3Model;
    const c = m.createCache(1, 4);
    assert.throws(() => m.gatherCache([{ cache: c, row: 0, from: 0, to: 3 }], 2, 8), /do not fit/);
    assert.throws(() => m.gatherCache([], 2, 8), /no rows/);
    c.dispose();
  });
});

function argmaxOf(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
