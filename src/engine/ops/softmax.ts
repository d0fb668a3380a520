// Softmax, log-softmax and cross-entropy (torch's semantics), with their gradient rules.
import { record } from '../autograd.js';
import { Tensor, contiguousStrides } from '../tensor.js';
import { isInt } from '../dtype.js';
import { ShapeError, VlmkitError } from '../../errors.js';
import { div } from './elementwise.js';
import { sum } from './reduce.js';
import { indexValues } from './rows.js';
import { normAxis, reshape, transpose } from './shape.js';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function checkFloat(op: string, x: Tensor): void {
  if (!x.isFloat) throw new ShapeError(`${op}: needs a float tensor, got ${x.dtype} ${fmt(x.shape)}`);
  if (x.rank === 0) throw new ShapeError(`${op}: needs at least one axis, got a scalar`);
}

function softmaxLike(op: 'softmax' | 'logSoftmax', x: Tensor, axis: number): Tensor {
  checkFloat(op, x);
  const a = normAxis(op, x, axis);
  if (a !== x.rank - 1) {
    // move the axis last (a view), normalise, move it back; the gradient flows through the transposes
    const t = transpose(x, a, -1);
    const y = softmaxLike(op, t, -1);
    return transpose(y, a, -1);
  }
  const B = x.backend;
  const out = op === 'softmax' ? B.softmax(x) : B.logSoftmax(x);
  return record(out, op, [x], (g) => [
    op === 'softmax' ? g.backend.softmaxBackward(out, g) : g.backend.logSoftmaxBackward(out, g),
  ], [out]);
}

/** exp(x) / sum(exp(x)) along `axis` (default: the last), computed stably (max-subtracted). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxLike('softmax', x, axis);
}

/** x - logsumexp(x) along `axis` (default: the last). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxLike('logSoftmax', x, axis);
}

export interface CrossEntropyOptions {
  /** targets equal to this are skipped (no loss, no gradient, not counted by 'mean'); default -100 */
  ignoreIndex?: number;
  /** 'mean' (default) over the counted targets, 'sum', or 'none' (per position, 0 where ignored) */
  reduction?: 'mean' | 'sum' | 'none';
}

/** A view of a contiguous tensor (or of a contiguous copy) with another shape; the caller disposes it. */
function flatView(x: Tensor, shape: number[]): Tensor {
  if (x.isContiguous()) return x.view(shape, contiguousStrides(shape), x.offset);
  const c = x.backend.contiguous(x);
  const v = c.view(shape, contiguousStrides(shape), 0);
  c.dispose();
  return v;
}

/**
 * Cross-entropy between logits [..., V] and integer class targets [...] (torch.nn.functional.cross_entropy
 * with class indices): loss_i = logsumexp(logits_i) - logits_i[target_i]. Targets equal to ignoreIndex are
 * skipped; 'mean' divides by the number of counted targets (NaN when there are none, as in torch).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const ignore = o.ignoreIndex ?? -100;
  const reduction = o.reduction ?? 'mean';
  checkFloat('crossEntropy', logits);
  if (!isInt(targets.dtype))
    throw new ShapeError(`crossEntropy: targets must be integer class indices (i32/i64), got ${targets.dtype} ${fmt(targets.shape)}`);
  const lead = logits.shape.slice(0, -1);
  if (targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i]))
    throw new ShapeError(
      `crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)} do not match (targets must have the logits' shape without its last axis)`,
    );
  if (targets.backend !== logits.backend) throw new ShapeError('crossEntropy: logits and targets live on different backends');
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new ShapeError(`crossEntropy: unknown reduction '${String(reduction)}' (use 'mean', 'sum' or 'none')`);
  const V = logits.shape[logits.rank - 1];
  const N = targets.size;
  // validate the targets and count the ones that take part
  const tv = indexValues(targets);
  let count = 0;
  for (let i = 0; i < tv.length; i++) {
    const t = tv[i];
    if (t === ignore) continue;
    if (!(t >= 0 && t < V))
      throw new VlmkitError('E_INDEX', `crossEntropy: target ${t} at position ${i} is out of range for ${V} classes (targets must be in [0, ${V}) or the ignore index ${ignore})`);
    count++;
  }

  const B = logits.backend;
  const l2 = flatView(logits, [N, V]);
  const t1 = flatView(targets, [N]);
  const { losses, lse } = B.crossEntropy(l2, t1, ignore);
  const perRow = record(losses, 'crossEntropy', [logits], (g) => {
    const gRow = g.isContiguous() ? g : g.backend.contiguous(g);
    const gx = g.backend.crossEntropyBackward(l2, t1, lse, gRow, ignore);
    if (gRow !== g) gRow.dispose();
    const v = gx.view(logits.shape, contiguousStrides(logits.shape), 0);
    gx.dispose();
    return [v];
  }, [l2, t1, lse], [l2, t1, lse]);
  if (!perRow.requiresGrad) {
    l2.dispose();
    t1.dispose();
    lse.dispose();
  }
  let out: Tensor;
  if (reduction === 'none') out = reshape(perRow, targets.shape);
  else if (reduction === 'sum') out = sum(perRow);
  else {
    const s = sum(perRow);
    out = div(s, count);
    if (!out.requiresGrad) s.dispose();
  }
  if (!out.requiresGrad && out !== perRow) perRow.dispose();
  return out;
}
