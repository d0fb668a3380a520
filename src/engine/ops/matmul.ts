// Matrix products with their gradient rules.
//   matmul(a, b): op(a)[..., M, K] · op(b)[..., K, N], batch axes broadcast; b may be bf16/f16 (frozen weights).
//   linear(x, w, bias): x[..., K] · w[N, K]ᵀ + bias[N], as torch.nn.functional.linear; w may be bf16/f16 or a
//   block-quantized QuantizedWeight, in which case it never takes a gradient but gx still flows.
// Gradients (g = dL/dout):  d op(a) = g · op(b)ᵀ,  d op(b) = op(a)ᵀ · g, summed over broadcast batch axes;
// linear: gx = g · W, gW = gᵀ · x summed over all leading axes (one product over the folded rows), gb = Σ rows g.
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { int8ActivationsNow } from '../quant/activations.js';
import { QuantizedWeight } from '../quant/weight.js';
import { ShapeError } from '../../errors.js';
import { reshape, sumTo } from './shape.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const isHalf = (t: Tensor) => t.dtype === 'bf16' || t.dtype === 'f16';

export interface MatmulOptions {
  /** use aᵀ (the last two axes of a swapped) */
  transA?: boolean;
  /** use bᵀ (the last two axes of b swapped) */
  transB?: boolean;
}

/** f32/f64 activations against f32/f64 (same dtype) or bf16/f16 weights, on one backend. */
function checkOperands(op: string, a: Tensor, b: Tensor, aName: string, bName: string): void {
  if (a.dtype !== 'f32' && a.dtype !== 'f64')
    throw new ShapeError(`${op}: ${aName} must be f32 or f64, got ${a.dtype} ${fmt(a.shape)}`);
  if (!isHalf(b) && b.dtype !== a.dtype)
    throw new ShapeError(`${op}: ${bName} must be ${a.dtype}, bf16 or f16 to go with ${aName} ${a.dtype} ${fmt(a.shape)}, got ${b.dtype} ${fmt(b.shape)}`);
  if (a.backend !== b.backend)
    throw new ShapeError(`${op}: tensors live on different backends (${a.backend.name}, ${b.backend.name})`);
}

/** Sums `full` over the axes that broadcasting added to reach `shape`, disposing `full`. */
function reduceTo(full: Tensor, shape: readonly number[]): Tensor {
  const r = sumTo(full, shape);
  full.dispose();
  return r;
}

/** t as a 2-D [rows, last] tensor (a view when t is contiguous). */
function rows2d(t: Tensor): Tensor {
  const last = t.shape[t.rank - 1] ?? 1;
  return reshape(t, [last === 0 ? 0 : t.size / last, last]);
}

export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const tA = !!o.transA, tB = !!o.transB;
  const desc = () => `${fmt(a.shape)}${tA ? 'ᵀ' : ''} x ${fmt(b.shape)}${tB ? 'ᵀ' : ''}`;
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: both operands need at least 2 axes, got ${desc()}`);
  checkOperands('matmul', a, b, 'a', 'b');
  const ra = a.rank, rb = b.rank;
  const Ka = tA ? a.shape[ra - 2] : a.shape[ra - 1];
  const Kb = tB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (Ka !== Kb) throw new ShapeError(`matmul: inner dimensions differ (${Ka} vs ${Kb}) in ${desc()}`);
  const ab = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  for (let i = 1; i <= Math.min(ab.length, bb.length); i++) {
    const da = ab[ab.length - i], db = bb[bb.length - i];
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`matmul: batch axes do not broadcast in ${desc()}`);
  }
  const out = a.backend.matmul(a, b, tA, tB);
  return record(out, 'matmul', [a, b], (g) => {
    const B = g.backend;
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      if (!tA) ga = reduceTo(B.matmul(g, b, false, !tB), a.shape); // g · op(b)ᵀ
      else {
        // d a = (g · op(b)ᵀ)ᵀ = op(b) · gᵀ: b takes the first slot, which must be f32/f64
        const bf = isHalf(b) ? B.cast(b, g.dtype) : b;
        ga = reduceTo(B.matmul(bf, g, tB, true), a.shape);
        if (bf !== b) bf.dispose();
      }
    }
    if (b.requiresGrad) {
      if (rb === 2 && ra > 2 && !tA) {
        // b shared by every matrix of a: fold the batch into rows, one product sums over it
        const a2 = rows2d(a), g2 = rows2d(g);
        gb = tB ? B.matmul(g2, a2, true, false) : B.matmul(a2, g2, true, false);
        a2.dispose();
        g2.dispose();
      } else if (!tB) gb = reduceTo(B.matmul(a, g, !tA, false), b.shape); // op(a)ᵀ · g
      else gb = reduceTo(B.matmul(g, a, true, tA), b.shape); // (op(a)ᵀ · g)ᵀ = gᵀ · op(a)
    }
    return [ga, gb];
  }, [a.requiresGrad && b, b.requiresGrad && a]);
}

export function linear(x: Tensor, w: Tensor | QuantizedWeight, bias?: Tensor | null): Tensor {
  if (w instanceof QuantizedWeight) return quantLinear(x, w, bias ?? null);
  const bs = bias ? ` + ${fmt(bias.shape)}` : '';
  const desc = () => `${fmt(x.shape)} x ${fmt(w.shape)}ᵀ${bs}`;
  if (x.rank < 1 || w.rank !== 2) throw new ShapeError(`linear: needs x [..., K] and w [N, K], got ${desc()}`);
  checkOperands('linear', x, w, 'x', 'w');
  const K = x.shape[x.rank - 1], N = w.shape[0];
  if (w.shape[1] !== K) throw new ShapeError(`linear: w ${fmt(w.shape)} has ${w.shape[1]} inputs, x ${fmt(x.shape)} has ${K}`);
  checkBias(x, N, bias, desc);
  const out = x.backend.linear(x, w, bias ?? null);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(out, 'linear', inputs, (g) => {
    const B = g.backend;
    const g2 = rows2d(g); // [M, N]
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      const p = B.matmul(g2, w, false, false); // [M, K]
      gx = reshape(p, x.shape);
      p.dispose();
    }
    if (w.requiresGrad) {
      const x2 = rows2d(x);
      gw = B.matmul(g2, x2, true, false); // [N, K]
      x2.dispose();
    }
    if (bias?.requiresGrad) gb = B.reduce('sum', g2, 0, false);
    g2.dispose();
    return bias ? [gx, gw, gb] : [gx, gw];
  }, [x.requiresGrad && w, w.requiresGrad && x]);
}

function checkBias(x: Tensor, N: number, bias: Tensor | null | undefined, desc: () => string): void {
  if (!bias) return;
  if (bias.rank !== 1 || bias.shape[0] !== N) throw new ShapeError(`linear: bias must be [${N}] for ${desc()}`);
  if (bias.dtype !== x.dtype) throw new ShapeError(`linear: bias ${bias.dtype} ${fmt(bias.shape)} must be ${x.dtype} like x ${fmt(x.shape)}`);
  if (bias.backend !== x.backend) throw new ShapeError('linear: bias lives on another backend');
}

/** linear with a block-quantized weight: the weight is frozen (no gradient); gx = g · deq(w) flows. */
function quantLinear(x: Tensor, w: QuantizedWeight, bias: Tensor | null): Tensor {
  const bs = bias ? ` + ${fmt(bias.shape)}` : '';
  const desc = () => `${fmt(x.shape)} x ${w.format} ${fmt(w.shape)}ᵀ${bs}`;
  w.assertLive();
  if (x.rank < 1) throw new ShapeError(`linear: needs x [..., K], got ${desc()}`);
  if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new ShapeError(`linear: x must be f32 or f64, got ${x.dtype} in ${desc()}`);
  if (x.backend !== w.backend)
    throw new ShapeError(`linear: x and the ${w.format} weight live on different backends (${x.backend.name}, ${w.backend.name})`);
  const [N, K] = w.shape;
  if (x.shape[x.rank - 1] !== K) throw new ShapeError(`linear: w ${w.format} ${fmt(w.shape)} has ${K} inputs, x ${fmt(x.shape)} has ${x.shape[x.rank - 1]}`);
  checkBias(x, N, bias, desc);
  const out = x.backend.quantLinear(x, w, bias, int8ActivationsNow());
  const inputs = bias ? [x, bias] : [x];
  return record(out, 'linear', inputs, (g) => {
    const B = g.backend;
    const g2 = rows2d(g); // [M, N]
    let gx: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      const p = B.quantLinearGradInput(g2, w); // [M, K]
      gx = reshape(p, x.shape);
      p.dispose();
    }
    if (bias?.requiresGrad) gb = B.reduce('sum', g2, 0, false);
    g2.dispose();
    return bias ? [gx, gb] : [gx];
  }, []); // the quantized weight is no tensor of any scope
}
