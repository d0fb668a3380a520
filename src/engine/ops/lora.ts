// LoRA's linear as one op: y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ for x [..., K], W [N, K] (frozen: f32/bf16/f16 or a
// block-quantized QuantizedWeight), A [r, K], B [N, r]. The unfused composition leaves the base product, the
// up-projection and its scaled copy alive until the layer's scope ends (a 17-tile vision layer: 9 such [17·1024,
// 768] tensors); here they are freed inside the op. It saves x and the r-wide x·Aᵀ (r/N of the output).
// The forward runs the same kernels in the same order as linear + linear + linear + mul + add, so the output is
// the same bit for bit. Gradients (g = dL/dy, gl = scale·g):
//   gB = glᵀ·(x·Aᵀ),  g(xA) = gl·B,  gA = g(xA)ᵀ·x,  gx = g·W + g(xA)·A,  gbias = Σ rows g.
// W never takes a gradient (it is frozen under LoRA); a W that requires one is refused.
import { record } from '../autograd.js';
import { int8ActivationsNow } from '../quant/activations.js';
import { QuantizedWeight } from '../quant/weight.js';
import { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { reshape } from './shape.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function scalar(like: Tensor, v: number): Tensor {
  const t = Tensor.empty(like.backend, [], like.dtype === 'f64' ? 'f64' : 'f32');
  like.backend.fill(t, v);
  return t;
}

/** t as [rows, last] (a view of a contiguous t, else a copy); the caller disposes it. */
function rows2d(t: Tensor): Tensor {
  const last = t.shape[t.rank - 1] ?? 1;
  return reshape(t, [last === 0 ? 0 : t.size / last, last]);
}

export function loraLinear(x: Tensor, w: Tensor | QuantizedWeight, bias: Tensor | null, a: Tensor, b: Tensor, scale: number): Tensor {
  const desc = () => `x ${fmt(x.shape)}, w ${fmt(w.shape)}, A ${fmt(a.shape)}, B ${fmt(b.shape)}`;
  if (x.rank < 1 || w.rank !== 2 || a.rank !== 2 || b.rank !== 2) throw new ShapeError(`loraLinear: needs x [..., K], w [N, K], A [r, K], B [N, r]; got ${desc()}`);
  const K = x.shape[x.rank - 1], [N, Kw] = w.shape, [r, Ka] = a.shape;
  if (Kw !== K || Ka !== K || b.shape[0] !== N || b.shape[1] !== r) throw new ShapeError(`loraLinear: shapes do not fit (K ${K}, N ${N}, r ${r}): ${desc()}`);
  if ((x.dtype !== 'f32' && x.dtype !== 'f64') || a.dtype !== x.dtype || b.dtype !== x.dtype)
    throw new ShapeError(`loraLinear: x, A and B must share one dtype, f32 or f64; got ${x.dtype}, ${a.dtype}, ${b.dtype}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N || bias.dtype !== x.dtype)) throw new ShapeError(`loraLinear: bias ${fmt(bias.shape)} must be [${N}] ${x.dtype}`);
  if (w.requiresGrad) throw new ShapeError(`loraLinear: the base weight ${fmt(w.shape)} must be frozen (it requires grad); use linear() for a trained weight`);
  const be = x.backend;
  if (w.backend !== be || a.backend !== be || b.backend !== be || (bias && bias.backend !== be))
    throw new ShapeError('loraLinear: tensors live on different backends');
  if (w instanceof QuantizedWeight) w.assertLive();
  const base = w instanceof QuantizedWeight ? be.quantLinear(x, w, bias, int8ActivationsNow()) : be.linear(x, w, bias);
  const xa = be.linear(x, a, null);
  let low = be.linear(xa, b, null);
  const s = scalar(x, scale);
  if (scale !== 1) {
    const scaled = be.binary('mul', low, s);
    low.dispose();
    low = scaled;
  }
  const out = be.binary('add', base, low);
  base.dispose();
  low.dispose();
  const inputs = bias ? [x, a, b, bias] : [x, a, b];
  const res = record(out, 'loraLinear', inputs, (g) => {
    const B = g.backend;
    const g2 = rows2d(g); // [M, N]
    const gl = scale === 1 ? g2 : B.binary('mul', g2, s);
    const xa2 = rows2d(xa); // [M, r]
    const gb = b.requiresGrad ? B.matmul(gl, xa2, true, false) : null; // [N, r]
    let gx: Tensor | null = null, ga: Tensor | null = null;
    if (a.requiresGrad || x.requiresGrad) {
      const gxa = B.matmul(gl, b, false, false); // [M, r]
      if (a.requiresGrad) {
        const x2 = rows2d(x);
        ga = B.matmul(gxa, x2, true, false); // [r, K]
        x2.dispose();
      }
      if (x.requiresGrad) {
        const viaBase = w instanceof QuantizedWeight ? B.quantLinearGradInput(g2, w) : B.matmul(g2, w, false, false);
        const viaA = B.matmul(gxa, a, false, false);
        const sum = B.binary('add', viaBase, viaA);
        viaBase.dispose();
        viaA.dispose();
        gx = reshape(sum, x.shape);
        sum.dispose();
      }
      gxa.dispose();
    }
    const gbias = bias?.requiresGrad ? B.reduce('sum', g2, 0, false) : null;
    if (gl !== g2) gl.dispose();
    g2.dispose();
    xa2.dispose();
    return bias ? [gx, ga, gb, gbias] : [gx, ga, gb];
  }, [x, xa, a, b, s], [xa, s]);
  if (!res.requiresGrad) {
    xa.dispose();
    s.dispose();
  }
  return res;
}
