// Reverse-mode autograd over a tape of GradNodes. Ops call record() after computing their output; backward()
// walks the graph in reverse topological order, sums gradients per tensor and stores them in the .grad of
// leaves that require grad. The rules themselves sit beside each op in ops/.
import { keep } from './scope.js';
import { type GradNode, Tensor } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with graph recording on, even inside noGrad (used by gradient checkpointing's recomputation). */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Attaches a backward rule to out when grad mode is on and any input requires grad. Returns out. `saved` lists
 * every tensor whose data the rule reads (nulls allowed, for the ones it reads only under a condition that does
 * not hold); left out, the rule counts as reading anything, and its scope keeps every intermediate.
 */
export function record(
  out: Tensor, op: string, inputs: Tensor[], backward: GradNode['backward'],
  saved?: readonly (Tensor | null | false | undefined)[], owned?: readonly (Tensor | null | undefined)[],
): Tensor {
  if (!gradEnabled) return out;
  let any = false;
  for (const t of inputs) if (t.requiresGrad) { any = true; break; }
  if (!any) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward, saved: saved?.filter((t): t is Tensor => !!t), owned: owned?.filter((t): t is Tensor => !!t) };
  return out;
}

/** Sums two gradients with the backend's add directly (no graph, no op module to import or register). */
function accumulate(a: Tensor, b: Tensor): Tensor {
  return a.backend.binary('add', a, b);
}

/**
 * Backpropagates from `root` (a scalar unless `grad` is given). Gradients of leaves accumulate into .grad
 * (kept out of any tidy scope); intermediate gradients are disposed as soon as they are consumed, and the
 * graph is released afterwards unless retainGraph. With releaseSaved, the data of each graph intermediate is freed
 * as soon as the last rule that reads it has run, and each rule's side tensors right after it ran: a training
 * step's memory falls during its backward instead of at the end of the step. The caller must not read the
 * graph's intermediates (the root excepted) afterwards.
 */
export function backward(root: Tensor, grad?: Tensor, opts: { retainGraph?: boolean; releaseSaved?: boolean } = {}): void {
  if (!root.requiresGrad) throw new Error('vlmkit: backward() on a tensor that does not require grad');
  if (!grad && root.size !== 1) throw new Error(`vlmkit: backward() without a gradient needs a scalar, got [${root.shape}]`);
  // Topological order (iterative DFS: graphs of 30-layer models are deep).
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node ? t.node.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  const release = opts.releaseSaved && !opts.retainGraph ? readerCounts(order, root) : null;
  const grads = new Map<Tensor, Tensor>();
  noGradRun(() => {
    grads.set(root, grad ?? fullLike(root, 1));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      if (!t.node) {
        // leaf: accumulate into .grad
        grads.delete(t);
        if (t.grad) {
          const sum = accumulate(t.grad, g);
          t.grad.dispose();
          g.dispose();
          t.grad = keep(sum);
        } else {
          t.grad = keep(g === grad ? copyOf(g) : g);
        }
        continue;
      }
      const gin = t.node.backward(g);
      grads.delete(t);
      const inputs = t.node.inputs;
      const used = new Set<Tensor>([g]);
      for (let j = 0; j < inputs.length; j++) {
        let gi = gin[j];
        // A rule may hand back g itself or one tensor for two inputs: alias it so each owner disposes its own.
        if (gi && used.has(gi)) gi = gi.view(gi.shape, gi.strides, gi.offset);
        if (gi) used.add(gi);
        const x = inputs[j];
        if (!gi) continue;
        if (!x.requiresGrad) { gi.dispose(); continue; }
        if (gi.shape.length !== x.shape.length || gi.shape.some((d, q) => d !== x.shape[q]))
          throw new Error(`vlmkit internal: gradient of ${t.node.op} input ${j} has shape [${gi.shape}], expected [${x.shape}]`);
        const prev = grads.get(x);
        if (prev) {
          grads.set(x, accumulate(prev, gi));
          prev.dispose();
          gi.dispose();
        } else grads.set(x, gi);
      }
      if (g !== grad) g.dispose();
      if (release) releaseAfter(t.node, release);
      if (!opts.retainGraph) t.node = null;
    }
  });
}

/**
 * For each graph intermediate (an op's output other than the root), how many rules of the graph read it; null
 * when a rule does not list what it reads (nothing can be freed early then).
 */
function readerCounts(order: readonly Tensor[], root: Tensor): Map<Tensor, number> | null {
  const counts = new Map<Tensor, number>();
  for (const t of order) if (t.node && t !== root) counts.set(t, 0);
  for (const t of order) {
    const saved = t.node?.saved;
    if (t.node && !saved) return null;
    if (saved) for (const s of saved) {
      const c = counts.get(s);
      if (c !== undefined) counts.set(s, c + 1);
    }
  }
  return counts;
}

/** After `node`'s rule ran: frees its side tensors, and the intermediates it was the last reader of. */
function releaseAfter(node: GradNode, counts: Map<Tensor, number>): void {
  if (node.owned) for (const o of node.owned) o.releaseData();
  if (node.saved) for (const s of node.saved) {
    const c = counts.get(s);
    if (c === undefined) continue;
    if (c <= 1) {
      counts.delete(s);
      s.releaseData();
    } else counts.set(s, c - 1);
  }
}

function noGradRun(fn: () => void): void {
  noGrad(fn);
}

function fullLike(t: Tensor, v: number): Tensor {
  const out = Tensor.empty(t.backend, t.shape, t.dtype === 'f64' ? 'f64' : 'f32');
  t.backend.fill(out, v);
  return out;
}

function copyOf(t: Tensor): Tensor {
  return t.backend.contiguous(t);
}
