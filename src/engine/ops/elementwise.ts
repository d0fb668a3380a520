// Elementwise ops with numpy broadcasting, and their gradient rules.
import { record } from '../autograd.js';
import type { BinaryOp, UnaryOp } from '../backend/backend.js';
import { Tensor, broadcastShape } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { expand, sumTo } from './shape.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const out = broadcastShape(a, b);
  if (!out) throw new ShapeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
  return out;
}

function asTensor(v: Tensor | number, like: Tensor): Tensor {
  if (v instanceof Tensor) return v;
  const t = Tensor.empty(like.backend, [], like.dtype === 'f64' ? 'f64' : 'f32');
  like.backend.fill(t, v);
  return t;
}

function checkFloat(op: string, a: Tensor, b?: Tensor): void {
  if (!a.isFloat || (b && !b.isFloat)) throw new ShapeError(`${op}: needs float tensors, got ${a.dtype}${b ? ` and ${b.dtype}` : ''}`);
  if (b && a.dtype !== b.dtype) throw new ShapeError(`${op}: dtypes differ (${a.dtype} ${fmt(a.shape)} vs ${b.dtype} ${fmt(b.shape)}); cast one first`);
  if (b && a.backend !== b.backend) throw new ShapeError(`${op}: tensors live on different backends (${a.backend.name}, ${b.backend.name})`);
}

function unary(op: UnaryOp, x: Tensor): Tensor {
  checkFloat(op, x);
  const out = x.backend.unary(op, x);
  return record(out, op, [x], (g) => [g.backend.unaryBackward(op, x, g)], [x]);
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const silu = (x: Tensor) => unary('silu', x);
/** exact (erf) GELU */
export const gelu = (x: Tensor) => unary('gelu', x);
/** tanh-approximated GELU (transformers' gelu_pytorch_tanh) */
export const geluTanh = (x: Tensor) => unary('gelu_tanh', x);
export const logsigmoid = (x: Tensor) => unary('logsigmoid', x);
export const relu = (x: Tensor) => unary('relu', x);
export const abs = (x: Tensor) => unary('abs', x);
export const square = (x: Tensor) => unary('square', x);

function binary(op: BinaryOp, a0: Tensor | number, b0: Tensor | number): Tensor {
  if (!(a0 instanceof Tensor) && !(b0 instanceof Tensor)) throw new ShapeError(`${op}: needs at least one tensor`);
  const like = (a0 instanceof Tensor ? a0 : b0) as Tensor;
  const a = asTensor(a0, like), b = asTensor(b0, like);
  checkFloat(op, a, b);
  broadcastShapes(op, a.shape, b.shape);
  const out = a.backend.binary(op, a, b);
  // Scalars made here are owned by this op; their storage is released at once (not tracked for grad).
  const made = [a !== a0 ? a : null, b !== b0 ? b : null];
  const res = record(out, op, [a, b], (g) => binaryGrad(op, a, b, out, g), binarySaved(op, a, b, out));
  if (!res.requiresGrad) for (const m of made) m?.dispose();
  return res;
}

/** What binaryGrad reads for the inputs that take a gradient (add and sub read nothing). */
function binarySaved(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): (Tensor | false)[] {
  const ga = a.requiresGrad, gb = b.requiresGrad;
  switch (op) {
    case 'add':
    case 'sub':
      return [];
    case 'mul':
      return [ga && b, gb && a];
    case 'div':
      return [b, gb && out];
    default:
      return [a, b, out];
  }
}

function binaryGrad(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor, g: Tensor): (Tensor | null)[] {
  const B = g.backend;
  const red = (t: Tensor, shape: readonly number[]) => {
    const r = sumTo(t, shape);
    t.dispose();
    return r;
  };
  const ga = a.requiresGrad, gb = b.requiresGrad;
  switch (op) {
    case 'add':
      return [ga ? sumTo(g, a.shape) : null, gb ? sumTo(g, b.shape) : null];
    case 'sub':
      return [ga ? sumTo(g, a.shape) : null, gb ? red(B.unary('neg', g), b.shape) : null];
    case 'mul':
      return [ga ? red(B.binary('mul', g, b), a.shape) : null, gb ? red(B.binary('mul', g, a), b.shape) : null];
    case 'div': {
      const gA = ga ? red(B.binary('div', g, b), a.shape) : null;
      let gB: Tensor | null = null;
      if (gb) {
        // -g * a / b² = -g * out / b
        const t = B.binary('mul', g, out);
        const u = B.binary('div', t, b);
        t.dispose();
        const n = B.unary('neg', u);
        u.dispose();
        gB = red(n, b.shape);
      }
      return [gA, gB];
    }
    case 'pow': {
      // d/da a^b = b * a^(b-1) = b * out / a ; d/db = out * log(a)
      let gA: Tensor | null = null, gB: Tensor | null = null;
      if (ga) {
        const t = B.binary('mul', out, b);
        const u = B.binary('div', t, a);
        t.dispose();
        const w = B.binary('mul', g, u);
        u.dispose();
        gA = red(w, a.shape);
      }
      if (gb) {
        const la = B.unary('log', a);
        const t = B.binary('mul', out, la);
        la.dispose();
        const w = B.binary('mul', g, t);
        t.dispose();
        gB = red(w, b.shape);
      }
      return [gA, gB];
    }
    default:
      throw new Error(`vlmkit: ${op} has no gradient rule (it is not differentiable where the inputs tie)`);
  }
}

export const add = (a: Tensor | number, b: Tensor | number) => binary('add', a, b);
export const sub = (a: Tensor | number, b: Tensor | number) => binary('sub', a, b);
export const mul = (a: Tensor | number, b: Tensor | number) => binary('mul', a, b);
export const div = (a: Tensor | number, b: Tensor | number) => binary('div', a, b);
export const pow = (a: Tensor | number, b: Tensor | number) => binary('pow', a, b);
export const maximum = (a: Tensor | number, b: Tensor | number) => binary('maximum', a, b);
export const minimum = (a: Tensor | number, b: Tensor | number) => binary('minimum', a, b);

/** Broadcasts x to shape (a copy). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return expand(x, shape);
}
