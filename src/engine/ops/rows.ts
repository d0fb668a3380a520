// Row ops: embedding lookup, indexSelect, scatterRows (put rows of src into a copy of x), with gradients.
// Indices are validated here: an out-of-range one is a user error naming the index and the table size.
import { record } from '../autograd.js';
import { Tensor, contiguousStrides } from '../tensor.js';
import { isInt } from '../dtype.js';
import { QuantizedWeight } from '../quant/weight.js';
import { ShapeError, VlmkitError } from '../../errors.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Reads integer indices (i32/i64/u8, any layout) as numbers in logical order. */
export function indexValues(t: Tensor): ArrayLike<number> {
  if (t.isContiguous() && t.dtype === 'i32') return t.data as Int32Array;
  if (t.isContiguous() && t.dtype === 'u8') return t.data as Uint8Array;
  if (t.isContiguous() && t.dtype === 'i64') {
    const d = t.data as BigInt64Array;
    const out = new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
    return out;
  }
  return t.toArray();
}

function checkIndices(op: string, what: string, idx: Tensor, limit: number, table: string): ArrayLike<number> {
  if (!isInt(idx.dtype)) throw new ShapeError(`${op}: ${what}s must be an integer tensor (i32/i64), got ${idx.dtype} ${fmt(idx.shape)}`);
  const v = indexValues(idx);
  for (let i = 0; i < v.length; i++)
    if (!(v[i] >= 0 && v[i] < limit))
      throw new VlmkitError('E_INDEX', `${op}: ${what} ${v[i]} at position ${i} is out of range for ${table} of ${limit} (valid: 0..${limit - 1})`);
  return v;
}

/** A view with another shape over x's elements (x contiguous) or over a contiguous copy; caller disposes it. */
function flatView(x: Tensor, shape: readonly number[]): Tensor {
  if (x.isContiguous()) return x.view(shape, contiguousStrides(shape), x.offset);
  const c = x.backend.contiguous(x);
  const v = c.view(shape, contiguousStrides(shape), 0);
  c.dispose();
  return v;
}

/** A fresh tensor re-viewed with shape (the fresh one is released; the view holds the storage). */
function reshaped(t: Tensor, shape: readonly number[]): Tensor {
  const v = t.view(shape, contiguousStrides(shape), t.offset);
  t.dispose();
  return v;
}

/**
 * Embedding lookup: weight [V, D] (f32/bf16/f16), ids of any shape (i32/i64) -> [...ids.shape, D] in f32.
 * The gradient to the weight is a deterministic scatter-add. A block-quantized table (Q8_0/Q4_0: an NF4 base's
 * token embeddings) is frozen: each looked-up row is dequantized from its own blocks (never the whole table) and
 * nothing is recorded.
 */
export function embedding(weight: Tensor | QuantizedWeight, ids: Tensor): Tensor {
  if (weight instanceof QuantizedWeight) {
    if (weight.backend !== ids.backend) throw new ShapeError('embedding: weight and ids live on different backends');
    const [V, D] = weight.shape;
    const v = checkIndices('embedding', 'id', ids, V, 'a vocabulary');
    const out = Tensor.empty(weight.backend, [...ids.shape, D], 'f32');
    weight.dequantizeRows(v, out.data as Float32Array);
    return out;
  }
  if (weight.rank !== 2 || !weight.isFloat)
    throw new ShapeError(`embedding: weight must be a float [vocab, dim] matrix, got ${weight.dtype} ${fmt(weight.shape)} (ids ${fmt(ids.shape)})`);
  if (weight.backend !== ids.backend) throw new ShapeError('embedding: weight and ids live on different backends');
  const V = weight.shape[0];
  checkIndices('embedding', 'id', ids, V, 'a vocabulary');
  const out = weight.backend.embedding(weight, ids);
  return record(out, 'embedding', [weight], (g) => [g.backend.embeddingBackward(ids, g, V)], [ids]);
}

/** Rows of x [N, ...] picked by idx [M] (i32/i64) -> [M, ...]; gradient scattered back into x. */
export function indexSelect(x: Tensor, idx: Tensor): Tensor {
  if (x.rank < 1 || !x.isFloat) throw new ShapeError(`indexSelect: x must be a float tensor with at least one axis, got ${x.dtype} ${fmt(x.shape)}`);
  if (idx.rank !== 1) throw new ShapeError(`indexSelect: idx must be 1-D, got ${fmt(idx.shape)} (x ${fmt(x.shape)})`);
  if (x.backend !== idx.backend) throw new ShapeError('indexSelect: x and idx live on different backends');
  const N = x.shape[0], rest = x.shape.slice(1), D = rest.reduce((a, d) => a * d, 1), M = idx.shape[0];
  checkIndices('indexSelect', 'index', idx, N, 'an axis');
  const x2 = flatView(x, [N, D]);
  const out = reshaped(x.backend.embedding(x2, idx), [M, ...rest]);
  x2.dispose();
  return record(out, 'indexSelect', [x], (g) => {
    const g2 = flatView(g, [M, D]);
    const gx = g.backend.embeddingBackward(idx, g2, N);
    g2.dispose();
    return [reshaped(gx, x.shape)];
  }, [idx]);
}

/**
 * A new tensor equal to x [N, ...] with rows idx [M] replaced by src [M, ...] (the masked row scatter that puts
 * image features into text embeddings). Indices must be distinct. Gradients: to x, g with those rows zeroed;
 * to src, the rows of g at idx.
 */
export function scatterRows(x: Tensor, idx: Tensor, src: Tensor): Tensor {
  if (x.rank < 1 || !x.isFloat || !src.isFloat)
    throw new ShapeError(`scatterRows: x and src must be float tensors, got x ${x.dtype} ${fmt(x.shape)}, src ${src.dtype} ${fmt(src.shape)}`);
  if (idx.rank !== 1 || src.rank !== x.rank || src.shape[0] !== idx.shape[0] || src.shape.some((d, i) => i > 0 && d !== x.shape[i]))
    throw new ShapeError(
      `scatterRows: x ${fmt(x.shape)}, idx ${fmt(idx.shape)} and src ${fmt(src.shape)} do not fit (need x [N, ...], idx [M], src [M, ...] with the same trailing dims)`,
    );
  if (x.dtype !== src.dtype) throw new ShapeError(`scatterRows: x is ${x.dtype} ${fmt(x.shape)} but src is ${src.dtype} ${fmt(src.shape)}; cast one first`);
  if (x.backend !== idx.backend || x.backend !== src.backend) throw new ShapeError('scatterRows: tensors live on different backends');
  const N = x.shape[0], rest = x.shape.slice(1), D = rest.reduce((a, d) => a * d, 1), M = idx.shape[0];
  const v = checkIndices('scatterRows', 'index', idx, N, 'an axis');
  const seen = new Uint8Array(N);
  for (let i = 0; i < v.length; i++) {
    if (seen[v[i]]) throw new VlmkitError('E_INDEX', `scatterRows: index ${v[i]} appears twice (at position ${i}); indices must be distinct`);
    seen[v[i]] = 1;
  }
  const B = x.backend;
  const out = B.contiguous(x);
  const o2 = out.view([N, D], [D, 1], 0);
  const s2 = flatView(src, [M, D]);
  B.indexCopy(o2, idx, s2);
  o2.dispose();
  s2.dispose();
  return record(out, 'scatterRows', [x, src], (g) => {
    const gB = g.backend;
    let gx: Tensor | null = null, gs: Tensor | null = null;
    if (x.requiresGrad) {
      gx = gB.contiguous(g);
      const zeros = Tensor.empty(gB, [M, D], gx.dtype, true);
      const gx2 = gx.view([N, D], [D, 1], 0);
      gB.indexCopy(gx2, idx, zeros);
      gx2.dispose();
      zeros.dispose();
    }
    if (src.requiresGrad) {
      const g2 = flatView(g, [N, D]);
      gs = reshaped(gB.embedding(g2, idx), src.shape);
      g2.dispose();
    }
    return [gx, gs];
  }, [idx]);
}
