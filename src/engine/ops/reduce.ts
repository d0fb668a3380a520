// Reductions over one axis (or all), with their gradient rules.
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { ShapeError } from '../../errors.js';
import { expand, normAxis, reshape } from './shape.js';

function reduceAxis(op: 'sum' | 'mean', x: Tensor, axis: number | undefined, keepDims: boolean): Tensor {
  if (!x.isFloat) throw new ShapeError(`${op}: needs a float tensor, got ${x.dtype}`);
  if (axis === undefined) {
    const flat = reshape(x, [x.size]);
    const r = reduceAxis(op, flat, 0, false);
    return keepDims ? reshape(r, x.shape.map(() => 1)) : r;
  }
  const a = normAxis(op, x, axis);
  const out = x.backend.reduce(op, x, a, keepDims);
  return record(out, op, [x], (g) => {
    const kept = keepDims ? g : reshape(g, x.shape.map((d, i) => (i === a ? 1 : d)));
    const e = expand(kept, x.shape);
    let gx = g.backend.contiguous(e);
    e.dispose();
    if (kept !== g) kept.dispose();
    if (op === 'mean') {
      const s = g.backend.binary('mul', gx, scalarLike(gx, 1 / x.shape[a]));
      gx.dispose();
      gx = s;
    }
    return [gx];
  }, []);
}

function scalarLike(x: Tensor, v: number): Tensor {
  const t = Tensor.empty(x.backend, [], x.dtype);
  x.backend.fill(t, v);
  return t;
}

/** Sum over `axis` (all elements when omitted). */
export const sum = (x: Tensor, axis?: number, keepDims = false) => reduceAxis('sum', x, axis, keepDims);
export const mean = (x: Tensor, axis?: number, keepDims = false) => reduceAxis('mean', x, axis, keepDims);

/** Max over an axis. Its gradient is not defined here (no model needs it); use it on no-grad paths. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  return x.backend.reduce('max', x, normAxis('max', x, axis), keepDims);
}

/** Index of the max over an axis (i32). */
export function argmax(x: Tensor, axis: number, keepDims = false): Tensor {
  return x.backend.reduce('argmax', x, normAxis('argmax', x, axis), keepDims);
}
