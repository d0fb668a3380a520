// Layer norm and RMS norm over the last axis: the definitions, in float64 arithmetic.
//   layerNorm: y = (x - mean) * rstd * w + b, rstd = 1/sqrt(var + eps), var the biased variance (torch).
//   rmsNorm:   y = x * rstd * w, rstd = 1/sqrt(mean(x²) + eps) (transformers' LlamaRMSNorm).
// Backward, with xhat = (x - mean) * rstd (layer) or x * rstd (rms) and gh = gy * w:
//   layer: gx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat));  rms: gx = rstd * (gh - xhat * mean(gh * xhat))
//   gw = sum over rows of gy * xhat, gb = sum over rows of gy.
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { make, outDType, read } from './util.js';

function rowsOf(x: Tensor): [number, number] {
  const D = x.shape[x.rank - 1];
  return [D === 0 ? 0 : x.size / D, D];
}

function backwardRows(
  x: Tensor, w: Tensor | null, mean: Tensor | null, rstd: Tensor, gy: Tensor, needW: boolean, centered: boolean,
): { gx: Tensor; gw: Tensor | null; gb: Tensor | null } {
  const [R, D] = rowsOf(x);
  const xv = read(x), gv = read(gy), wv = w ? read(w) : null, mv = mean ? read(mean) : null, rv = read(rstd);
  const gx = new Float64Array(R * D);
  const gw = new Float64Array(D), gb = new Float64Array(D);
  const gh = new Float64Array(D), xh = new Float64Array(D);
  for (let r = 0; r < R; r++) {
    const m = mv ? mv[r] : 0, s = rv[r];
    let sumGh = 0, sumGhXh = 0;
    for (let j = 0; j < D; j++) {
      xh[j] = (xv[r * D + j] - m) * s;
      gh[j] = gv[r * D + j] * (wv ? wv[j] : 1);
      sumGh += gh[j];
      sumGhXh += gh[j] * xh[j];
      gw[j] += gv[r * D + j] * xh[j];
      gb[j] += gv[r * D + j];
    }
    const a = centered ? sumGh / D : 0, c = sumGhXh / D;
    for (let j = 0; j < D; j++) gx[r * D + j] = s * (gh[j] - a - xh[j] * c);
  }
  const dt = outDType(x, gy);
  return {
    gx: make(x, x.shape, gx, dt),
    gw: needW && w ? make(x, [D], gw, dt) : null,
    gb: needW && centered ? make(x, [D], gb, dt) : null,
  };
}

export const normKernels: Pick<Backend, 'layerNorm' | 'layerNormBackward' | 'rmsNorm' | 'rmsNormBackward'> = {
  layerNorm(x, w, b, eps) {
    const [R, D] = rowsOf(x);
    const xv = read(x), wv = w ? read(w) : null, bv = b ? read(b) : null;
    const y = new Float64Array(R * D), mean = new Float64Array(R), rstd = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += xv[r * D + j];
      const m = s / D;
      let v = 0;
      for (let j = 0; j < D; j++) v += (xv[r * D + j] - m) ** 2;
      const rs = 1 / Math.sqrt(v / D + eps);
      mean[r] = m;
      rstd[r] = rs;
      for (let j = 0; j < D; j++) y[r * D + j] = (xv[r * D + j] - m) * rs * (wv ? wv[j] : 1) + (bv ? bv[j] : 0);
    }
    const dt = outDType(x);
    const stats = x.shape.slice(0, -1);
    return { y: make(x, x.shape, y, dt), mean: make(x, stats, mean, dt), rstd: make(x, stats, rstd, dt) };
  },
  layerNormBackward(x, w, mean, rstd, gy, needWB) {
    return backwardRows(x, w, mean, rstd, gy, needWB, true);
  },
  rmsNorm(x, w, eps) {
    const [R, D] = rowsOf(x);
    const xv = read(x), wv = w ? read(w) : null;
    const y = new Float64Array(R * D), rstd = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += xv[r * D + j] ** 2;
      const rs = 1 / Math.sqrt(s / D + eps);
      rstd[r] = rs;
      for (let j = 0; j < D; j++) y[r * D + j] = xv[r * D + j] * rs * (wv ? wv[j] : 1);
    }
    const dt = outDType(x);
    return { y: make(x, x.shape, y, dt), rstd: make(x, x.shape.slice(0, -1), rstd, dt) };
  },
  rmsNormBackward(x, w, rstd, gy, needW) {
    const { gx, gw } = backwardRows(x, w, null, rstd, gy, needW, false);
    return { gx, gw };
  },
};
