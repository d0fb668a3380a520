// Softmax family over the last axis, in float64 arithmetic: the definitions the native kernels are checked
// against. A row holding NaN gives NaN; a row of -Infinity gives NaN (0/0), as in torch.
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { make, outDType, read } from './util.js';

function lastDim(x: Tensor): number {
  return x.rank ? x.shape[x.rank - 1] : 1;
}

/** max of a row, NaN winning (the reduce rule) */
function rowMax(v: number[], o: number, d: number): number {
  let m = -Infinity;
  for (let j = 0; j < d; j++) {
    const e = v[o + j];
    if (e > m || Number.isNaN(e)) m = e;
    if (Number.isNaN(m)) break;
  }
  return m;
}

/** log sum exp of a row */
function rowLse(v: number[], o: number, d: number): number {
  const m = rowMax(v, o, d);
  let s = 0;
  for (let j = 0; j < d; j++) s += Math.exp(v[o + j] - m);
  return m + Math.log(s);
}

export function targetsOf(t: Tensor): number[] {
  return read(t);
}

function checkTarget(t: number, v: number, ignore: number, row: number): void {
  if (t !== ignore && !(t >= 0 && t < v))
    throw new Error(`vlmkit reference crossEntropy: target ${t} at row ${row} is out of range for ${v} classes (ignore index ${ignore})`);
}

export const softmaxKernels: Pick<Backend, 'softmax' | 'logSoftmax' | 'softmaxBackward' | 'logSoftmaxBackward' | 'crossEntropy' | 'crossEntropyBackward'> = {
  softmax(x) {
    const v = read(x), d = lastDim(x), out = new Array<number>(v.length);
    for (let o = 0; o < v.length; o += d) {
      const m = rowMax(v, o, d);
      let s = 0;
      for (let j = 0; j < d; j++) s += out[o + j] = Math.exp(v[o + j] - m);
      for (let j = 0; j < d; j++) out[o + j] /= s;
    }
    return make(x, x.shape, out);
  },
  logSoftmax(x) {
    const v = read(x), d = lastDim(x), out = new Array<number>(v.length);
    for (let o = 0; o < v.length; o += d) {
      const l = rowLse(v, o, d);
      for (let j = 0; j < d; j++) out[o + j] = v[o + j] - l;
    }
    return make(x, x.shape, out);
  },
  softmaxBackward(y, gy) {
    const yv = read(y), gv = read(gy), d = lastDim(y), out = new Array<number>(yv.length);
    for (let o = 0; o < yv.length; o += d) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += gv[o + j] * yv[o + j];
      for (let j = 0; j < d; j++) out[o + j] = yv[o + j] * (gv[o + j] - dot);
    }
    return make(y, y.shape, out, outDType(y, gy));
  },
  logSoftmaxBackward(y, gy) {
    const yv = read(y), gv = read(gy), d = lastDim(y), out = new Array<number>(yv.length);
    for (let o = 0; o < yv.length; o += d) {
      let s = 0;
      for (let j = 0; j < d; j++) s += gv[o + j];
      for (let j = 0; j < d; j++) out[o + j] = gv[o + j] - Math.exp(yv[o + j]) * s;
    }
    return make(y, y.shape, out, outDType(y, gy));
  },
  crossEntropy(logits, targets, ignoreIndex) {
    const [n, v] = logits.shape;
    const x = read(logits), t = targetsOf(targets);
    const losses = new Array<number>(n), lse = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      checkTarget(t[i], v, ignoreIndex, i);
      lse[i] = rowLse(x, i * v, v);
      losses[i] = t[i] === ignoreIndex ? 0 : lse[i] - x[i * v + t[i]];
    }
    return { losses: make(logits, [n], losses), lse: make(logits, [n], lse) };
  },
  crossEntropyBackward(logits, targets, lse, gRow, ignoreIndex) {
    const [n, v] = logits.shape;
    const x = read(logits), t = targetsOf(targets), l = read(lse), g = read(gRow);
    const out = new Array<number>(n * v).fill(0);
    for (let i = 0; i < n; i++) {
      checkTarget(t[i], v, ignoreIndex, i);
      if (t[i] === ignoreIndex) continue;
      for (let j = 0; j < v; j++) out[i * v + j] = g[i] * (Math.exp(x[i * v + j] - l[i]) - (j === t[i] ? 1 : 0));
    }
    return make(logits, [n, v], out, outDType(logits, gRow));
  },
};
