// Elementwise kernels: the mathematical definitions, in float64 arithmetic.
import type { Backend, BinaryOp, UnaryOp } from '../backend.js';
import { Tensor } from '../../tensor.js';
import { make, outDType, read } from './util.js';

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

// erf with ~1e-15 accuracy (series for small |x|, continued fraction tail otherwise): JS has no Math.erf.
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for large |x|
  const z = ax;
  let f = z, C = z, D = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    D = z + a * D; D = 1 / D;
    C = z + a / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg': return (x) => -x;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (x) => 1 / Math.sqrt(x);
    case 'tanh': return Math.tanh;
    case 'sigmoid': return sigmoid;
    case 'silu': return (x) => x * sigmoid(x);
    case 'gelu': return (x) => 0.5 * x * (1 + erf(x * SQRT1_2));
    case 'gelu_tanh': return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 'logsigmoid': return (x) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
    case 'relu': return (x) => (x > 0 ? x : 0);
    case 'abs': return Math.abs;
    case 'square': return (x) => x * x;
  }
}

/** f'(x) */
export function unaryDeriv(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg': return () => -1;
    case 'exp': return Math.exp;
    case 'log': return (x) => 1 / x;
    case 'sqrt': return (x) => 0.5 / Math.sqrt(x);
    case 'rsqrt': return (x) => -0.5 * Math.pow(x, -1.5);
    case 'tanh': return (x) => 1 - Math.tanh(x) ** 2;
    case 'sigmoid': return (x) => sigmoid(x) * (1 - sigmoid(x));
    case 'silu': return (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x)));
    case 'gelu': return (x) => 0.5 * (1 + erf(x * SQRT1_2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'gelu_tanh': return (x) => {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    };
    case 'logsigmoid': return (x) => 1 - sigmoid(x);
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    case 'abs': return (x) => Math.sign(x);
    case 'square': return (x) => 2 * x;
  }
}

export function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return Math.pow;
    case 'maximum': return Math.max;
    case 'minimum': return Math.min;
  }
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export const elementwiseKernels: Pick<Backend, 'unary' | 'unaryBackward' | 'binary'> = {
  unary(op, x) {
    const f = unaryFn(op);
    return make(x, x.shape, read(x).map(f));
  },
  unaryBackward(op, x, gy) {
    const f = unaryDeriv(op);
    const xv = read(x), gv = read(gy);
    return make(x, x.shape, xv.map((v, i) => gv[i] * f(v)), outDType(x, gy));
  },
  binary(op, a: Tensor, b: Tensor) {
    const f = binaryFn(op);
    const shape = broadcastShape(a.shape, b.shape);
    const av = read(a), bv = read(b);
    const n = shape.reduce((p, d) => p * d, 1);
    const out = new Array<number>(n);
    const idx = new Array<number>(shape.length).fill(0);
    const offA = shape.length - a.rank, offB = shape.length - b.rank;
    for (let i = 0; i < n; i++) {
      let ia = 0, ib = 0;
      for (let d = 0; d < shape.length; d++) {
        if (d >= offA) ia = ia * a.shape[d - offA] + (a.shape[d - offA] === 1 ? 0 : idx[d]);
        if (d >= offB) ib = ib * b.shape[d - offB] + (b.shape[d - offB] === 1 ? 0 : idx[d]);
      }
      out[i] = f(av[ia], bv[ib]);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
    return make(a, shape, out, outDType(a, b));
  },
};
