// A transformer MLP with frozen weights as one op: fc2(act(fc1(x))), the activation and fc2 (and in the backward
// every product after fc1's) taken a chunk of rows at a time. The unfused chain holds fc1's output, the
// activation's output and, in the backward, the gradients of both at once, each [rows, I] (I = 4 D in a ViT):
// a SigLIP layer of one 1024-patch tile holds 4 x 12 MB, of which only fc1's output is needed for the gradient.
// Here fc1's output is the only [rows, I] tensor held (saved for the activation's derivative); the activation's
// output and the two [rows, I] gradients exist a chunk at a time. No product is recomputed.
//
//   forward   h = x·W1ᵀ + b1 (whole);  per chunk: y_c = act(h_c)·W2ᵀ + b2
//   backward  per chunk: g_a = g_c·W2,  g_h = act'(h_c) ⊙ g_a,  gx_c = g_h·W1,  gb1 += Σ rows g_h;  gb2 = Σ rows g
//
// The kernels are those of linear, the activation and their gradient rules, run on fewer rows; W1 and W2 are
// frozen (f32/bf16/f16 tensors that do not require grad, or block-quantized weights), the biases may train.
import { record } from '../autograd.js';
import type { UnaryOp } from '../backend/backend.js';
import { int8ActivationsNow } from '../quant/activations.js';
import { QuantizedWeight } from '../quant/weight.js';
import { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** The activations mlp() takes (elementwise ops with a backend gradient rule). */
export type MlpActivation = Extract<UnaryOp, 'gelu' | 'gelu_tanh' | 'silu' | 'relu'>;

export interface MlpLinear {
  w: Tensor | QuantizedWeight;
  b: Tensor | null;
}

export interface MlpOptions {
  /** bytes of a [rows, I] chunk (default 4 MiB): rows are taken max(1, chunkBytes / (4 I)) at a time */
  chunkBytes?: number;
}

function product(x: Tensor, w: Tensor | QuantizedWeight, b: Tensor | null): Tensor {
  return w instanceof QuantizedWeight ? x.backend.quantLinear(x, w, b, int8ActivationsNow()) : x.backend.linear(x, w, b);
}

function gradInput(g: Tensor, w: Tensor | QuantizedWeight): Tensor {
  return w instanceof QuantizedWeight ? g.backend.quantLinearGradInput(g, w) : g.backend.matmul(g, w, false, false);
}

/** t as a [M, N] view (of t, or of a contiguous copy); the caller disposes it. */
function matrix(t: Tensor, M: number, N: number): Tensor {
  if (t.isContiguous()) return t.view([M, N], [N, 1], t.offset);
  const c = t.backend.contiguous(t);
  const v = c.view([M, N], [N, 1], 0);
  c.dispose();
  return v;
}

/** Rows [r0, r1) of a contiguous [M, N] tensor, as a view. */
function rowsOf(t: Tensor, r0: number, r1: number): Tensor {
  const n = t.shape[1];
  return t.view([r1 - r0, n], [n, 1], t.offset + r0 * n);
}

function checkLinear(name: string, l: MlpLinear, K: number, x: Tensor): void {
  const [N, Kw] = l.w.shape;
  if (l.w.rank !== 2 || Kw !== K) throw new ShapeError(`mlp: ${name} weight ${fmt(l.w.shape)} must be [N, ${K}]`);
  if (l.w.requiresGrad) throw new ShapeError(`mlp: ${name} weight ${fmt(l.w.shape)} requires grad; the fused MLP takes frozen weights (use linear() for trained ones)`);
  if (l.w.backend !== x.backend || (l.b && l.b.backend !== x.backend)) throw new ShapeError(`mlp: ${name} lives on another backend than x`);
  if (l.w instanceof QuantizedWeight) l.w.assertLive();
  else if (l.w.dtype !== 'f32' && l.w.dtype !== 'bf16' && l.w.dtype !== 'f16') throw new ShapeError(`mlp: ${name} weight must be f32, bf16 or f16, got ${l.w.dtype}`);
  if (l.b && (l.b.rank !== 1 || l.b.shape[0] !== N || l.b.dtype !== x.dtype)) throw new ShapeError(`mlp: ${name} bias ${fmt(l.b.shape)} must be [${N}] ${x.dtype}`);
}

/** fc2(act(fc1(x))) for x [..., D] (f32), fc1 [I, D], fc2 [D2, I] frozen: see the top of this file. */
export function mlp(x: Tensor, fc1: MlpLinear, act: MlpActivation, fc2: MlpLinear, o: MlpOptions = {}): Tensor {
  if (x.rank < 1 || x.dtype !== 'f32') throw new ShapeError(`mlp: x must be f32 [..., D], got ${x.dtype} ${fmt(x.shape)}`);
  const D = x.shape[x.rank - 1];
  checkLinear('fc1', fc1, D, x);
  const I = fc1.w.shape[0];
  checkLinear('fc2', fc2, I, x);
  const D2 = fc2.w.shape[0];
  const M = D === 0 ? 0 : x.size / D;
  const B = x.backend;
  const rows = Math.max(1, Math.floor((o.chunkBytes ?? 4 << 20) / (4 * Math.max(I, 1))));
  const x2 = matrix(x, M, D);
  const h = product(x2, fc1.w, fc1.b);
  x2.dispose();
  const outShape = [...x.shape.slice(0, -1), D2];
  const out = Tensor.empty(B, outShape, 'f32');
  for (let r0 = 0; r0 < M; r0 += rows) {
    const r1 = Math.min(M, r0 + rows);
    const hc = rowsOf(h, r0, r1);
    const a = B.unary(act, hc);
    hc.dispose();
    const y = product(a, fc2.w, fc2.b);
    a.dispose();
    (out.data as Float32Array).set(y.data as Float32Array, r0 * D2);
    y.dispose();
  }
  const inputs = [x, fc1.b, fc2.b].filter((t): t is Tensor => !!t);
  const res = record(out, 'mlp', inputs, (g) => {
    const G = g.backend;
    const gc = matrix(g, M, D2);
    const gx = x.requiresGrad ? Tensor.empty(G, x.shape, 'f32') : null;
    let gb1: Tensor | null = null;
    if (x.requiresGrad || fc1.b?.requiresGrad) {
      for (let r0 = 0; r0 < M; r0 += rows) {
        const r1 = Math.min(M, r0 + rows);
        const g_c = rowsOf(gc, r0, r1), hc = rowsOf(h, r0, r1);
        const ga = gradInput(g_c, fc2.w);
        const gh = G.unaryBackward(act, hc, ga);
        ga.dispose();
        if (gx) {
          const p = gradInput(gh, fc1.w);
          (gx.data as Float32Array).set(p.data as Float32Array, r0 * D);
          p.dispose();
        }
        if (fc1.b?.requiresGrad) {
          const s = G.reduce('sum', gh, 0, false);
          if (gb1) {
            const t = G.binary('add', gb1, s);
            gb1.dispose();
            s.dispose();
            gb1 = t;
          } else gb1 = s;
        }
        gh.dispose();
        g_c.dispose();
        hc.dispose();
      }
    }
    const gb2 = fc2.b?.requiresGrad ? G.reduce('sum', gc, 0, false) : null;
    gc.dispose();
    const grads: (Tensor | null)[] = [gx];
    if (fc1.b) grads.push(gb1);
    if (fc2.b) grads.push(gb2);
    return grads;
  }, [h], [h]);
  if (!res.requiresGrad) h.dispose();
  return res;
}
