// The contrastive losses (src/train/contrastive-loss.ts):
//   - values against a 2x2 batch worked out by hand and against the formulas evaluated here in float64 on a
//     random 5x5 batch (log-sum-exp per row and column for CLIP, log sigmoid per pair for SigLIP);
//   - the gradients with respect to the logits against central finite differences;
//   - a non-square logits matrix is a shape error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backward, noGrad, tensor, tidy } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { clipLoss, contrastiveLoss, siglipLoss } from '../../src/train/contrastive-loss.js';
import { ShapeError } from '../../src/errors.js';

function close(got: unknown, want: number, tol: number, what: string): void {
  assert.ok(typeof got === 'number' && Number.isFinite(got) && Math.abs(got - want) <= tol, `${what} = ${JSON.stringify(got)}, want ${want} ± ${tol}`);
}

// float64 references, written from the papers' definitions
function clipRef(l: number[][]): number {
  const n = l.length;
  const lse = (xs: number[]) => { const m = Math.max(...xs); return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0)); };
  let rows = 0, cols = 0;
  for (let i = 0; i < n; i++) {
    rows += lse(l[i]!) - l[i]![i]!;
    cols += lse(l.map((r) => r[i]!)) - l[i]![i]!;
  }
  return (rows / n + cols / n) / 2;
}
function siglipRef(l: number[][]): number {
  const n = l.length;
  const logSig = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s += logSig((i === j ? 1 : -1) * l[i]![j]!);
  return -s / n;
}

function lossOf(fn: (t: ReturnType<typeof tensor>) => ReturnType<typeof tensor>, l: number[][]): number {
  return noGrad(() => tidy(() => fn(tensor(l.flat(), [l.length, l.length])).item()));
}

function randomLogits(n: number, seed: number, scale: number): number[][] {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return Array.from({ length: n }, () => Array.from({ length: n }, () => rnd() * scale));
}

describe('contrastive losses', () => {
  it('match a 2x2 batch worked out by hand', () => {
    const l = [[2, 0], [0, 2]];
    // CLIP: every row and column is softmax([2, 0]) at the 2: log(1 + e^-2)
    close(lossOf(clipLoss, l), Math.log1p(Math.exp(-2)), 1e-6, 'clip loss');
    // SigLIP: -(2·log σ(2) + 2·log σ(-0)) / 2 = log(1 + e^-2) + log 2
    close(lossOf(siglipLoss, l), Math.log1p(Math.exp(-2)) + Math.LN2, 1e-6, 'siglip loss');
    // an asymmetric batch: the two directions differ, and the mean of both is taken
    const a = [[3, 1], [2, 0]];
    const rows = (Math.log(Math.exp(3) + Math.exp(1)) - 3 + Math.log(Math.exp(2) + 1) - 0) / 2;
    const cols = (Math.log(Math.exp(3) + Math.exp(2)) - 3 + Math.log(Math.exp(1) + 1) - 0) / 2;
    close(lossOf(clipLoss, a), (rows + cols) / 2, 1e-6, 'clip loss (asymmetric)');
  });

  it('match the formulas in float64 on a random 5x5 batch', () => {
    const l = randomLogits(5, 7, 6);
    close(lossOf(clipLoss, l), clipRef(l), 1e-5, 'clip loss');
    close(lossOf(siglipLoss, l), siglipRef(l), 1e-5, 'siglip loss');
    close(lossOf((t) => contrastiveLoss('siglip', t), l), siglipRef(l), 1e-5, 'contrastiveLoss("siglip")');
  });

  for (const [name, fn, ref] of [['clip', clipLoss, clipRef], ['siglip', siglipLoss, siglipRef]] as const) {
    it(`${name}: the gradient matches central finite differences`, () => {
      const l = randomLogits(4, 11, 3);
      const grad = tidy(() => {
        const x = tensor(l.flat(), [4, 4]).requireGrad(true);
        backward(fn(x));
        return x.grad!.toFloat32Array();
      });
      const h = 1e-4;
      let worst = 0;
      for (let k = 0; k < 16; k++) {
        const up = l.map((r) => r.slice()), down = l.map((r) => r.slice());
        up[Math.floor(k / 4)]![k % 4]! += h;
        down[Math.floor(k / 4)]![k % 4]! -= h;
        const fd = (ref(up) - ref(down)) / (2 * h);
        assert.ok(Number.isFinite(grad[k]), `grad[${k}] is ${grad[k]}`);
        worst = Math.max(worst, Math.abs(grad[k]! - fd));
      }
      close(worst, 0, 1e-5, `${name} max |grad - finite difference|`);
    });
  }

  it('refuses logits that are not [N, N]', () => {
    assert.throws(() => tidy(() => clipLoss(tensor([1, 2, 3, 4, 5, 6], [2, 3]))), ShapeError);
    assert.throws(() => tidy(() => siglipLoss(tensor([1, 2, 3], [3]))), ShapeError);
  });
});
