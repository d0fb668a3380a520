// Fused scaled-dot-product attention and its gradient rule (the kernel's backward, from the saved log-sum-exp).
import { record } from '../autograd.js';
import type { AttentionOptions } from '../backend/backend.js';
import type { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

export interface AttentionOpts {
  /** mask keys after each query's own position (default false) */
  causal?: boolean;
  /** multiplies q·k (default 1/sqrt(D)) */
  scale?: number;
  /** [B, Tk]: nonzero = attend, zero = padding */
  keyMask?: Tensor | null;
  /** absolute position of query row 0 among the keys, for the causal mask (default Tk - Tq: a cache) */
  qOffset?: number;
}

/**
 * softmax(q kᵀ · scale + mask) v for q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] -> [B, Hq, Tq, Dv].
 * Hq must be a multiple of Hkv (grouped-query attention: query head h reads kv head h / (Hq / Hkv)). Query rows
 * with no key left to attend to (left padding) give zeros. Inputs may be strided views (e.g. a [B, T, H, D]
 * projection permuted to [B, H, T, D]).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts = {}): Tensor {
  const shapes = `q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`;
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    throw new ShapeError(`attention: q, k, v must be [B, H, T, D]; got ${shapes}`);
  const [B, Hq, Tq, D] = q.shape;
  const [Bk, Hkv, Tk, Dk] = k.shape;
  const [Bv, Hv, Tv] = v.shape;
  if (Bk !== B || Bv !== B) throw new ShapeError(`attention: batch sizes differ: ${shapes}`);
  if (Dk !== D) throw new ShapeError(`attention: q and k head dims differ: ${shapes}`);
  if (Hv !== Hkv || Tv !== Tk) throw new ShapeError(`attention: k and v must have the same heads and length: ${shapes}`);
  if (Hkv === 0 || Hq % Hkv !== 0)
    throw new ShapeError(`attention: query heads (${Hq}) must be a multiple of kv heads (${Hkv}): ${shapes}`);
  if (!q.isFloat || q.dtype !== k.dtype || q.dtype !== v.dtype)
    throw new ShapeError(`attention: q, k, v must share one float dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  if (q.backend !== k.backend || q.backend !== v.backend)
    throw new ShapeError(`attention: q, k, v live on different backends (${q.backend.name}, ${k.backend.name}, ${v.backend.name})`);
  const mask = opts.keyMask ?? null;
  if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== Tk))
    throw new ShapeError(`attention: keyMask must be [B, Tk] = [${B}, ${Tk}], got ${fmt(mask.shape)} (${shapes})`);
  if (mask && mask.backend !== q.backend) throw new ShapeError(`attention: keyMask lives on another backend (${mask.backend.name})`);
  const qOffset = opts.qOffset ?? Tk - Tq;
  if (!Number.isInteger(qOffset)) throw new ShapeError(`attention: qOffset must be an integer, got ${opts.qOffset}`);
  const o: AttentionOptions = {
    causal: opts.causal ?? false,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    keyMask: mask,
    qOffset,
  };
  const { out, lse } = q.backend.attention(q, k, v, o);
  const res = record(out, 'attention', [q, k, v], (g) => {
    const { gq, gk, gv } = g.backend.attentionBackward(q, k, v, out, lse, g, o);
    const pick = (t: Tensor, x: Tensor) => {
      if (x.requiresGrad) return t;
      t.dispose();
      return null;
    };
    return [pick(gq, q), pick(gk, k), pick(gv, v)];
  }, [q, k, v, out, lse, mask], [lse]);
  // lse is saved for the backward only; it lives in the current scope like the graph's other intermediates.
  if (!res.requiresGrad) lse.dispose();
  return res;
}
