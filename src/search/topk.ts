// The query side of search: one dot product per stored embedding, then the k best without sorting them all.
// The scores are one engine linear ([1, D] x [N, D]ᵀ), the stored matrix wrapped without a copy: on the native
// backend that is the threaded one-row GEMV, bound by reading the N x D floats once. The selection keeps a
// k-entry min-heap (O(N log k)), so 100k scores cost far less than the GEMV.
import { Tensor, defaultBackend, linear, noGrad } from '../engine/index.js';
import { VlmkitError } from '../errors.js';

export interface Hit {
  /** the row of the stored matrix */
  index: number;
  score: number;
}

/** q · row for each of the `n` rows of `matrix` ([n, dim], row-major). */
export function dotRows(matrix: Float32Array, n: number, dim: number, q: Float32Array): Float32Array {
  if (q.length !== dim) throw new VlmkitError('E_SHAPE', `search: the query has ${q.length} values but the index holds vectors of ${dim}; embed the query with the index's model`);
  if (matrix.length < n * dim) throw new VlmkitError('E_SHAPE', `search: ${matrix.length} stored values do not hold ${n} rows of ${dim}`);
  if (n === 0) return new Float32Array(0);
  const be = defaultBackend();
  const m = Tensor.wrap(be, matrix.subarray(0, n * dim), [n, dim], 'f32');
  const x = Tensor.wrap(be, q, [1, dim], 'f32');
  try {
    return noGrad(() => {
      const s = linear(x, m);
      try {
        return s.toFloat32Array();
      } finally {
        s.dispose();
      }
    });
  } finally {
    m.dispose();
    x.dispose();
  }
}

/** a before b in the results: higher score first, the lower row on ties (so the order is reproducible) */
const better = (sa: number, ia: number, sb: number, ib: number): boolean => sa > sb || (sa === sb && ia < ib);

/**
 * The k best of `scores`, best first (NaN scores never selected). Equal to sorting every (score, index) pair by
 * score descending, index ascending, and taking the first k.
 */
export function topK(scores: Float32Array, k: number): Hit[] {
  if (!Number.isInteger(k) || k < 1) throw new VlmkitError('E_ARGS', `top k must be an integer >= 1, got ${k}`);
  const cap = Math.min(k, scores.length);
  // heap[0] is the worst of the kept ones: a new score only enters when it beats it
  const hs = new Float64Array(cap), hi = new Int32Array(cap);
  let size = 0;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < size && better(hs[w]!, hi[w]!, hs[l]!, hi[l]!)) w = l;
      if (r < size && better(hs[w]!, hi[w]!, hs[r]!, hi[r]!)) w = r;
      if (w === i) return;
      const ts = hs[i]!, ti = hi[i]!;
      hs[i] = hs[w]!; hi[i] = hi[w]!; hs[w] = ts; hi[w] = ti;
      i = w;
    }
  };
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (s !== s) continue; // NaN
    if (size < cap) {
      // sift up
      let j = size++;
      hs[j] = s; hi[j] = i;
      while (j > 0) {
        const p = (j - 1) >> 1;
        if (!better(hs[p]!, hi[p]!, hs[j]!, hi[j]!)) break;
        const ts = hs[p]!, ti = hi[p]!;
        hs[p] = hs[j]!; hi[p] = hi[j]!; hs[j] = ts; hi[j] = ti;
        j = p;
      }
    } else if (cap > 0 && better(s, i, hs[0]!, hi[0]!)) {
      hs[0] = s; hi[0] = i;
      down(0);
    }
  }
  const out: Hit[] = [];
  for (let i = 0; i < size; i++) out.push({ index: hi[i]!, score: hs[i]! });
  return out.sort((a, b) => (better(a.score, a.index, b.score, b.index) ? -1 : 1));
}
