// Rotary position embedding (Llama's rotate-half convention) and the inverse frequencies it rotates by.
import { record } from '../autograd.js';
import { defaultBackend } from '../backend/registry.js';
import type { Backend } from '../backend/backend.js';
import { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Rotates x [B, H, T, D] by angle positions[b, t] * invFreq[i] in the pairs (i, i + D/2), as transformers'
 * apply_rotary_pos_emb does with LlamaRotaryEmbedding's cos/sin (computed in float32 the way transformers does).
 * positions [B, T] (i32/i64), invFreq [D/2] f32. The gradient rotates back.
 */
export function rope(x: Tensor, positions: Tensor, invFreq: Tensor): Tensor {
  const shapes = `x ${fmt(x.shape)}, positions ${fmt(positions.shape)}, invFreq ${fmt(invFreq.shape)}`;
  if (x.rank !== 4) throw new ShapeError(`rope: x must be [B, H, T, D], got ${shapes}`);
  const [B, , T, D] = x.shape;
  if (D % 2 !== 0) throw new ShapeError(`rope: the head dim must be even, got ${shapes}`);
  if (positions.rank !== 2 || positions.shape[0] !== B || positions.shape[1] !== T)
    throw new ShapeError(`rope: positions must be [B, T] = [${B}, ${T}], got ${shapes}`);
  if (positions.dtype !== 'i32' && positions.dtype !== 'i64')
    throw new ShapeError(`rope: positions must be i32 or i64, got ${positions.dtype}`);
  if (invFreq.rank !== 1 || invFreq.shape[0] !== D / 2) throw new ShapeError(`rope: invFreq must be [D/2] = [${D / 2}], got ${shapes}`);
  if (!x.isFloat || !invFreq.isFloat) throw new ShapeError(`rope: x and invFreq must be float, got ${x.dtype} and ${invFreq.dtype}`);
  if (positions.backend !== x.backend || invFreq.backend !== x.backend)
    throw new ShapeError(`rope: x, positions and invFreq live on different backends`);
  const out = x.backend.rope(x, positions, invFreq, false);
  return record(out, 'rope', [x], (g) => [g.backend.rope(g, positions, invFreq, true)], [positions, invFreq]);
}

/**
 * The default rotary inverse frequencies, in float32 as transformers computes them:
 * 1.0 / (theta ** (arange(0, dim, 2, dtype=int64).float() / dim)).
 */
export function ropeInvFreq(headDim: number, theta: number, o: { backend?: Backend } = {}): Tensor {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0)
    throw new ShapeError(`ropeInvFreq: the head dim must be a positive even integer, got ${headDim}`);
  const f = Math.fround;
  const half = headDim / 2;
  const t = Tensor.empty(o.backend ?? defaultBackend(), [half], 'f32');
  const d = t.data as Float32Array;
  const thetaF = f(theta);
  for (let i = 0; i < half; i++) {
    const e = f(f(2 * i) / f(headDim)); // f32 division
    d[i] = f(1 / f(Math.pow(thetaF, e)));
  }
  return t;
}
