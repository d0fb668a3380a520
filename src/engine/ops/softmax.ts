// Softmax, log-softmax and cross-entropy (torch's semantics), with their gradient rules.
import { record } from '../autograd.js';
import { Tensor, contiguousStrides } from '../tensor.js';
import { isInt } from '../dtype.js';
import { int8ActivationsNow } from '../quant/activations.js';
import { QuantizedWeight } from '../quant/weight.js';
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

/** Per-row losses -> as they are, their sum, or their mean over `count` counted targets; frees what no graph holds. */
function reduceLosses(perRow: Tensor, reduction: 'mean' | 'sum' | 'none', count: number): Tensor {
  if (reduction === 'none') return perRow;
  let out: Tensor;
  if (reduction === 'sum') out = sum(perRow);
  else {
    const s = sum(perRow);
    out = div(s, count);
    if (!out.requiresGrad) s.dispose();
  }
  if (!out.requiresGrad) perRow.dispose();
  return out;
}

/** Checks that every target is a class in [0, V) or the ignore index; returns how many take part. */
function countTargets(op: string, targets: Tensor, V: number, ignore: number): number {
  const tv = indexValues(targets);
  let count = 0;
  for (let i = 0; i < tv.length; i++) {
    const t = tv[i];
    if (t === ignore) continue;
    if (!(t >= 0 && t < V))
      throw new VlmkitError('E_INDEX', `${op}: target ${t} at position ${i} is out of range for ${V} classes (targets must be in [0, ${V}) or the ignore index ${ignore})`);
    count++;
  }
  return count;
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
  const count = countTargets('crossEntropy', targets, V, ignore);

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
  if (!perRow.requiresGrad) for (const t of [l2, t1, lse]) t.dispose();
  if (reduction !== 'none') return reduceLosses(perRow, reduction, count);
  const out = reshape(perRow, targets.shape);
  if (!out.requiresGrad) perRow.dispose();
  return out;
}

export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  /**
   * bytes of logits made at once (default 32 MiB): rows are taken in chunks of max(1, chunkBytes / (4 V)). Each
   * chunk reads the whole head (three times: forward, the backward's recomputation, its product): small chunks
   * make a bf16 49,152 x 576 head cost 140 ms more a step at 8 MiB, 56 ms at one chunk (84 targets, against the
   * unfused pair's 200 ms, on the 2-core machine)
   */
  chunkBytes?: number;
}

/** Rows [r0, r1) of a contiguous [N, ...] tensor, as a view. */
function rowsOf(t: Tensor, r0: number, r1: number): Tensor {
  const inner = t.rank > 1 ? t.shape.slice(1) : [];
  const per = inner.reduce((a, d) => a * d, 1);
  const shape = [r1 - r0, ...inner];
  return t.view(shape, contiguousStrides(shape), t.offset + r0 * per);
}

/**
 * crossEntropy(linear(x, w), targets, o) for x [N, K] and a frozen w [V, K] (a language model's head), without
 * holding the [N, V] logits past the op: they are made a chunk of rows at a time (o.chunkBytes) for the losses and
 * their log-sum-exp, and made again, chunk by chunk, in the backward, which needs only x, the targets and the
 * log-sum-exp. The unfused pair keeps the logits (and later their gradient, as large) alive from the forward to
 * the end of the step, while the whole model's backward runs: 16 MB each for 84 targets of a 49,152-word
 * vocabulary. The numbers are those of the pair chunk for chunk (the same kernels on the same rows); one chunk
 * (N · V · 4 <= chunkBytes) gives the pair's bits. The gradient flows to x only: a w that requires grad is refused.
 * w may be block-quantized (an NF4 base keeps its tied embeddings / lm_head in Q8_0): the chunks' products read
 * its blocks directly, as linear does, never a dequantized copy of the head.
 */
export function linearCrossEntropy(x: Tensor, w: Tensor | QuantizedWeight, targets: Tensor, o: LinearCrossEntropyOptions = {}): Tensor {
  const ignore = o.ignoreIndex ?? -100;
  const reduction = o.reduction ?? 'mean';
  checkFloat('linearCrossEntropy', x);
  if (x.rank !== 2 || w.rank !== 2 || w.shape[1] !== x.shape[1])
    throw new ShapeError(`linearCrossEntropy: needs x [N, K] and w [V, K], got x ${fmt(x.shape)}, w ${fmt(w.shape)}`);
  if (w.requiresGrad)
    throw new ShapeError(`linearCrossEntropy: w ${fmt(w.shape)} requires grad; the fused op takes a frozen head (use crossEntropy(linear(x, w), targets) to train it)`);
  if (!isInt(targets.dtype) || targets.rank !== 1 || targets.shape[0] !== x.shape[0])
    throw new ShapeError(`linearCrossEntropy: targets must be integer class indices [${x.shape[0]}], got ${targets.dtype} ${fmt(targets.shape)}`);
  if (w.backend !== x.backend || targets.backend !== x.backend) throw new ShapeError('linearCrossEntropy: x, w and targets live on different backends');
  if (w instanceof QuantizedWeight) w.assertLive();
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new ShapeError(`linearCrossEntropy: unknown reduction '${String(reduction)}' (use 'mean', 'sum' or 'none')`);
  const [N, K] = x.shape as [number, number];
  const V = w.shape[0];
  const count = countTargets('linearCrossEntropy', targets, V, ignore);

  const B = x.backend;
  // a quantized head: the forward's products as linear takes them now (8-bit activations only where no graph is
  // recorded, so never when a backward follows); the backward recomputes them exact, as the recorded forward was
  const head = (xr: Tensor, int8: boolean) => (w instanceof QuantizedWeight ? B.quantLinear(xr, w, null, int8) : B.linear(xr, w, null));
  const int8 = int8ActivationsNow();
  const rows = Math.max(1, Math.floor((o.chunkBytes ?? 32 << 20) / (4 * Math.max(V, 1))));
  const xc = x.isContiguous() ? x.view(x.shape, x.strides, x.offset) : B.contiguous(x);
  const t1 = flatView(targets, [N]);
  const losses = Tensor.empty(B, [N], x.dtype === 'f64' ? 'f64' : 'f32');
  const lse = Tensor.empty(B, [N], losses.dtype);
  for (let r0 = 0; r0 < N; r0 += rows) {
    const r1 = Math.min(N, r0 + rows);
    const xr = rowsOf(xc, r0, r1), tr = rowsOf(t1, r0, r1);
    const logits = head(xr, int8);
    const c = B.crossEntropy(logits, tr, ignore);
    losses.data.set(c.losses.data as never, r0);
    lse.data.set(c.lse.data as never, r0);
    for (const t of [xr, tr, logits, c.losses, c.lse]) t.dispose();
  }
  const perRow = record(losses, 'linearCrossEntropy', [x], (g) => {
    const gRow = g.isContiguous() ? g : g.backend.contiguous(g);
    const gx = Tensor.empty(g.backend, [N, K], x.dtype === 'f64' ? 'f64' : 'f32');
    for (let r0 = 0; r0 < N; r0 += rows) {
      const r1 = Math.min(N, r0 + rows);
      const xr = rowsOf(xc, r0, r1), tr = rowsOf(t1, r0, r1), lr = rowsOf(lse, r0, r1), gr = rowsOf(gRow, r0, r1);
      const logits = head(xr, false);
      const gl = B.crossEntropyBackward(logits, tr, lr, gr, ignore);
      logits.dispose();
      const p = w instanceof QuantizedWeight ? B.quantLinearGradInput(gl, w) : B.matmul(gl, w, false, false); // [rows, K], as linear's rule
      gl.dispose();
      gx.data.set(p.data as never, r0 * K);
      for (const t of [xr, tr, lr, gr, p]) t.dispose();
    }
    if (gRow !== g) gRow.dispose();
    return [gx];
  }, [xc, t1, lse], [xc, t1, lse]);
  if (!perRow.requiresGrad) for (const t of [xc, t1, lse]) t.dispose();
  return reduceLosses(perRow, reduction, count);
}
