// Scaled-dot-product attention, the definition: materialise every score, softmax in float64, weight the values.
// q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]; query head h reads kv head floor(h / (Hq / Hkv)).
// Query row i sits at absolute position qOffset + i; with `causal` it attends keys j <= qOffset + i; keyMask
// [B, Tk] (nonzero = attend) removes padded keys. A row with no key to attend to gives zeros and lse = -Infinity.
import type { AttentionOptions, Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import { make, outDType, read } from './util.js';

interface Problem {
  B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; Dv: number; G: number;
  allowed: (b: number, i: number, j: number) => boolean;
  scale: number;
}

function problem(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Problem {
  const [B, Hq, Tq, D] = q.shape;
  const [, Hkv, Tk] = k.shape;
  const Dv = v.shape[3];
  const off = o.qOffset ?? Tk - Tq;
  const mask = o.keyMask ? read(o.keyMask) : null;
  const allowed = (b: number, i: number, j: number) =>
    (!o.causal || j <= off + i) && (!mask || mask[b * Tk + j] !== 0);
  return { B, Hq, Hkv, Tq, Tk, D, Dv, G: Hq / Hkv, allowed, scale: o.scale };
}

/** Softmax probabilities of one query row over its keys (0 for keys it may not attend), and the row's lse. */
function rowProbs(p: Problem, Q: number[], K: number[], b: number, h: number, i: number): { P: Float64Array; lse: number } {
  const { Hq, Hkv, Tq, Tk, D, G } = p;
  const kh = Math.floor(h / G);
  const qBase = ((b * Hq + h) * Tq + i) * D;
  const s = new Float64Array(Tk).fill(-Infinity);
  let m = -Infinity;
  for (let j = 0; j < Tk; j++) {
    if (!p.allowed(b, i, j)) continue;
    const kBase = ((b * Hkv + kh) * Tk + j) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += Q[qBase + d] * K[kBase + d];
    s[j] = dot * p.scale;
    if (s[j] > m) m = s[j];
  }
  const P = new Float64Array(Tk);
  if (m === -Infinity) return { P, lse: -Infinity };
  let sum = 0;
  for (let j = 0; j < Tk; j++) if (s[j] !== -Infinity) sum += (P[j] = Math.exp(s[j] - m));
  for (let j = 0; j < Tk; j++) P[j] /= sum;
  return { P, lse: m + Math.log(sum) };
}

export const attentionKernels: Pick<Backend, 'attention' | 'attentionBackward'> = {
  attention(q, k, v, o) {
    const p = problem(q, k, v, o);
    const { B, Hq, Hkv, Tq, Tk, Dv, G } = p;
    const Q = read(q), K = read(k), V = read(v);
    const out = new Float64Array(B * Hq * Tq * Dv);
    const lse = new Float64Array(B * Hq * Tq);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / G);
        for (let i = 0; i < Tq; i++) {
          const row = (b * Hq + h) * Tq + i;
          const r = rowProbs(p, Q, K, b, h, i);
          lse[row] = r.lse;
          for (let j = 0; j < Tk; j++) {
            if (r.P[j] === 0) continue;
            const vBase = ((b * Hkv + kh) * Tk + j) * Dv;
            for (let e = 0; e < Dv; e++) out[row * Dv + e] += r.P[j] * V[vBase + e];
          }
        }
      }
    const dt = outDType(q, k, v);
    return { out: make(q, [B, Hq, Tq, Dv], out, dt), lse: make(q, [B, Hq, Tq], lse, dt) };
  },

  // The gradient from its definition: P recomputed from scratch (not from the saved lse), dS = P * (dP - rowsum(P dP)).
  attentionBackward(q, k, v, _out, _lse, gout, o) {
    const p = problem(q, k, v, o);
    const { B, Hq, Hkv, Tq, Tk, D, Dv, G } = p;
    const Q = read(q), K = read(k), V = read(v), GO = read(gout);
    const gq = new Float64Array(Q.length), gk = new Float64Array(K.length), gv = new Float64Array(V.length);
    const dP = new Float64Array(Tk);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / G);
        for (let i = 0; i < Tq; i++) {
          const row = (b * Hq + h) * Tq + i;
          const { P } = rowProbs(p, Q, K, b, h, i);
          let Di = 0;
          for (let j = 0; j < Tk; j++) {
            dP[j] = 0;
            if (P[j] === 0) continue;
            const vBase = ((b * Hkv + kh) * Tk + j) * Dv;
            let dot = 0;
            for (let e = 0; e < Dv; e++) {
              dot += GO[row * Dv + e] * V[vBase + e];
              gv[vBase + e] += P[j] * GO[row * Dv + e];
            }
            dP[j] = dot;
            Di += P[j] * dot;
          }
          for (let j = 0; j < Tk; j++) {
            if (P[j] === 0) continue;
            const dS = P[j] * (dP[j] - Di) * p.scale;
            const kBase = ((b * Hkv + kh) * Tk + j) * D;
            for (let d = 0; d < D; d++) {
              gq[row * D + d] += dS * K[kBase + d];
              gk[kBase + d] += dS * Q[row * D + d];
            }
          }
        }
      }
    const dt = outDType(q, k, v);
    return { gq: make(q, q.shape, gq, dt), gk: make(q, k.shape, gk, dt), gv: make(q, v.shape, gv, dt) };
  },
};
