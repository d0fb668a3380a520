// Rotary position embedding in Llama's rotate-half convention, the definition. For x [B, H, T, D] and half = D/2:
//   out[i]        = x[i] cos - x[i + half] sin
//   out[i + half] = x[i + half] cos + x[i] sin,      angle = positions[b, t] * invFreq[i]
// The angle and its cos/sin are rounded to float32 exactly as transformers' LlamaRotaryEmbedding makes them
// (freqs = inv_freq.float() @ position_ids.float() in f32, then emb.cos()/sin() in f32), so that the model's
// logits match: angle = fround(fround(invFreq) * fround(pos)); cos = fround(cos(angle)), computed in f64.
// inverse rotates by -angle (the transpose: the gradient).
import type { Backend } from '../backend.js';
import { make, outDType, read } from './util.js';

/** cos and sin of one (position, frequency) pair, rounded like transformers' float32 rotary tables. */
export function ropeCosSin(pos: number, invFreq: number): [number, number] {
  const angle = Math.fround(Math.fround(invFreq) * Math.fround(pos));
  return [Math.fround(Math.cos(angle)), Math.fround(Math.sin(angle))];
}

export const ropeKernels: Pick<Backend, 'rope'> = {
  rope(x, positions, invFreq, inverse) {
    const [B, H, T, D] = x.shape;
    const half = D / 2;
    const X = read(x), P = read(positions), F = read(invFreq);
    const out = new Float64Array(X.length);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++) {
        const pos = P[b * T + t];
        for (let i = 0; i < half; i++) {
          const [c, s0] = ropeCosSin(pos, F[i]);
          const s = inverse ? -s0 : s0;
          for (let h = 0; h < H; h++) {
            const base = ((b * H + h) * T + t) * D;
            const x1 = X[base + i], x2 = X[base + i + half];
            out[base + i] = x1 * c - x2 * s;
            out[base + i + half] = x2 * c + x1 * s;
          }
        }
      }
    return make(x, x.shape, out, outDType(x));
  },
};
