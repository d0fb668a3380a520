// Elementwise kernels: the mathematical definitions, in float64 arithmetic.
import type { Backend, BinaryOp, UnaryOp } from '../backend.js';
import { Tensor, broadcastShape } from '../../tensor.js';
import { make, outDType, read } from './util.js';

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

// erfc for z >= 0 with ~1e-15 relative accuracy: 1 - (Maclaurin series of erf) below 2.5 (erfc(2.5) = 4e-4, so
// the subtraction keeps ~12 digits), the continued fraction (Lentz) beyond. JS has no Math.erf/erfc.
function erfcPos(z: number): number {
  if (z < 2.5) {
    // erf(z) = 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1))
    let term = z, sum = z;
    for (let n = 1; n < 80; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (z === Infinity) return 0;
  let f = z, C = z, D = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    D = z + a * D; D = 1 / D;
    C = z + a / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** erfc(x) = 1 - erf(x), relatively accurate in both tails. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  return x >= 0 ? erfcPos(x) : 2 - erfcPos(-x);
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) < 0.5) {
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  return x > 0 ? 1 - erfcPos(x) : erfcPos(-x) - 1;
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
    // 0.5 x (1 + erf(x/sqrt2)) written as 0.5 x erfc(-x/sqrt2), which keeps its digits for x << 0
    case 'gelu': return (x) => 0.5 * x * erfc(-x * SQRT1_2);
    // 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), stable for x << 0
    case 'gelu_tanh': return (x) => x * sigmoid(2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    case 'logsigmoid': return (x) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
    case 'relu': return (x) => (x <= 0 ? 0 : x); // NaN stays NaN, as in torch
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
    case 'tanh': return (x) => { const t = Math.tanh(x); return (1 - t) * (1 + t); };
    case 'sigmoid': return (x) => sigmoid(x) * sigmoid(-x);
    case 'silu': return (x) => sigmoid(x) * (1 + x * sigmoid(-x));
    case 'gelu': return (x) => 0.5 * erfc(-x * SQRT1_2) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'gelu_tanh': return (x) => {
      // d/dx x s(2u) = s + 2 x s (1 - s) u', s(1-s) from both sides without cancellation
      const u2 = 2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const s = sigmoid(u2), oms = sigmoid(-u2);
      return s + 2 * x * s * oms * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    };
    case 'logsigmoid': return (x) => sigmoid(-x);
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
    const shape = broadcastShape(a.shape, b.shape)!; // checked by the op
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
