// The trainer is one loop for every objective: a toy objective that is not SFT (the mean of the logits at every
// position of plain token rows: no processor, no labels, no images) trains a tiny model through it, and the
// accumulation rule (num_items_in_batch) holds for it as for SFT.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, mean, mul, noGrad, sum, tensor, tidy } from '../../src/engine/index.js';
import { type TrainableModel, loadModelWeights, readModelConfig } from '../../src/models/index.js';
import { trainableParameters } from '../../src/train/params.js';
import { type MicroBatch, type Objective, Trainer } from '../../src/train/trainer.js';
import { TINY } from './fixtures.js';

interface Row {
  ids: number[];
}

interface ToyBatch extends MicroBatch {
  inputIds: Tensor;
  positions: number[];
}

/** Loss = Σ over positions of the mean logit, / denominator: pushes every logit down. */
class MeanLogit implements Objective<Row, ToyBatch> {
  length(r: Row): number {
    return r.ids.length;
  }
  countTargets(r: Row): number {
    return r.ids.length;
  }
  async prepare(rows: Row[]): Promise<ToyBatch> {
    const T = rows[0]!.ids.length;
    const inputIds = tensor(rows.flatMap((r) => r.ids), [rows.length, T], { dtype: 'i32' });
    const positions = Array.from({ length: rows.length * T }, (_, i) => i);
    return { inputIds, positions, batchSize: rows.length, numTokens: rows.length * T, numTargets: rows.length * T, dispose: () => inputIds.dispose() };
  }
  loss(model: TrainableModel, b: ToyBatch, denominator: number): Tensor {
    return mul(sum(mean(model.logitsAt({ inputIds: b.inputIds }, b.positions), 1)), 1 / denominator);
  }
}

const { config } = readModelConfig(TINY);
/** Rows of T token ids, none of them the image token (its embedding is replaced by image features). */
function rows(n: number, T: number): Row[] {
  const out: Row[] = [];
  let x = 7;
  for (let i = 0; i < n; i++) {
    const ids: number[] = [];
    while (ids.length < T) {
      x = (x * 1103515245 + 12345) % 2147483648;
      const id = 1 + (x % 90);
      if (id !== config.imageTokenId) ids.push(id);
    }
    out.push({ ids });
  }
  return out;
}

async function meanLogitNow(model: TrainableModel, data: Row[]): Promise<number> {
  const o = new MeanLogit();
  const b = await o.prepare(data);
  try {
    return noGrad(() => tidy(() => o.loss(model, b, b.numTargets).item()));
  } finally {
    b.dispose();
  }
}

describe('the generic trainer with a non-SFT objective', () => {
  it('trains a tiny model on the mean of its logits', async () => {
    const model = loadModelWeights(TINY, { dtype: 'f32' });
    try {
      const data = rows(4, 6);
      const before = await meanLogitNow(model, data);
      const params = trainableParameters(model, 'full');
      const tr = new Trainer({ model, objective: new MeanLogit(), train: { examples: data }, params, config: { batchSize: 4, maxSteps: 3, lr: 1e-2, clip: 0, schedule: 'constant' } });
      const losses: number[] = [];
      try {
        while (!tr.done) losses.push((await tr.step()).loss);
      } finally {
        tr.dispose();
      }
      assert.equal(tr.position.step, 3);
      assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
      // the first step's loss is the objective on the untouched model; every step lowers it
      assert.ok(Math.abs(losses[0]! - before) <= 1e-5 * Math.max(1, Math.abs(before)), `step 1 loss ${losses[0]} vs ${before}`);
      for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, `loss went ${losses[i - 1]} -> ${losses[i]}`);
      const after = await meanLogitNow(model, data);
      assert.ok(Number.isFinite(after) && after < losses[losses.length - 1]!, `after training ${after}, last step ${losses[losses.length - 1]}`);
    } finally {
      model.dispose();
    }
  });

  it('accumulating two micro-batches of 2 equals one batch of 4 (num_items_in_batch)', async () => {
    const data = rows(4, 5);
    const run = async (batchSize: number, gradAccum: number) => {
      const model = loadModelWeights(TINY, { dtype: 'f32' });
      try {
        const params = trainableParameters(model, 'full');
        const tr = new Trainer({ model, objective: new MeanLogit(), train: { examples: data }, params, config: { batchSize, gradAccum, maxSteps: 1, lr: 1e-3, clip: 0, schedule: 'constant' } });
        const r = await tr.step();
        tr.dispose();
        return { r, weights: new Map([...params].map(([n, p]) => [n, p.toFloat32Array()])) };
      } finally {
        model.dispose();
      }
    };
    const one = await run(4, 1), two = await run(2, 2);
    assert.equal(one.r.targets, 20);
    assert.equal(two.r.targets, 20);
    assert.ok(Math.abs(one.r.loss - two.r.loss) <= 1e-5 * Math.abs(one.r.loss), `loss ${one.r.loss} vs ${two.r.loss}`);
    assert.ok(Math.abs(one.r.gradNorm - two.r.gradNorm) <= 1e-4 * one.r.gradNorm, `grad norm ${one.r.gradNorm} vs ${two.r.gradNorm}`);
    assert.ok(one.weights.size > 0);
    for (const [n, w] of one.weights) {
      const v = two.weights.get(n)!;
      let d = 0, m = 0;
      for (let i = 0; i < w.length; i++) { d = Math.max(d, Math.abs(w[i]! - v[i]!)); m = Math.max(m, Math.abs(w[i]!)); }
      assert.ok(d <= 1e-5 * Math.max(m, 1e-3), `${n}: max diff ${d}`);
    }
  });
});
