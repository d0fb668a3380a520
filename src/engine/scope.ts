// Deterministic memory: every tensor made inside tidy(fn) is disposed when fn returns, except what fn returns
// (moved to the enclosing scope) and what keep() marks. Tensors made outside any scope live until dispose().
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

export function track(t: Tensor): void {
  if (stack.length) stack[stack.length - 1].add(t);
}

/** Removes t from every scope so that it survives them; the caller now owns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(x: unknown, out: Set<Tensor>, depth = 0): void {
  if (x == null || depth > 4) return;
  if (typeof x === 'object' && 'storage' in (x as object) && 'shape' in (x as object)) {
    out.add(x as Tensor);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collect(v, out, depth + 1);
  else if (typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype)
    for (const v of Object.values(x as object)) collect(v, out, depth + 1);
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    stack.pop();
  }
  const kept = new Set<Tensor>();
  collect(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  if (stack.length) for (const t of kept) if (scope.has(t)) stack[stack.length - 1].add(t);
  return result;
}

/**
 * tidy(fn), except that when keepAll(result) holds, every tensor made inside fn moves to the enclosing scope
 * instead of being disposed: an autograd graph needs its intermediates and the side tensors its rules saved
 * (a norm's rstd, attention's lse) until backward(). Modules use it with keepAll = "the result requires grad".
 * The data of the intermediates that no rule saved (a frozen linear's output that only feeds an add, LoRA's
 * up-projection) is released at once (releaseUnsaved): a training step holds what its backward reads, not every
 * activation of the forward.
 */
export function tidyUnless<T>(fn: () => T, keepAll: (result: T) => boolean): T {
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  if (keepAll(result)) {
    const kept = new Set<Tensor>();
    collect(result, kept);
    releaseUnsaved(scope, kept);
    if (stack.length) for (const t of scope) stack[stack.length - 1].add(t);
    return result;
  }
  const kept = new Set<Tensor>();
  collect(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  if (stack.length) for (const t of kept) if (scope.has(t)) stack[stack.length - 1].add(t);
  return result;
}

/**
 * Releases the data of every tensor of `scope` that is not in `kept`, that no gradient rule of the scope saved and
 * that is not a leaf collecting a gradient. The tensors stay in the scope (their nodes still route gradients) and
 * are disposed with it. A node of the scope that does not list what it saved keeps everything: nothing is released.
 * Tensors made outside the scope (weights, the caller's inputs) are never touched; a tensor made inside and read
 * after the scope must be returned (or kept).
 */
export function releaseUnsaved(scope: ReadonlySet<Tensor>, kept: ReadonlySet<Tensor>): void {
  const saved = new Set<Tensor>();
  for (const t of scope) {
    const n = t.node;
    if (!n) continue;
    if (!n.saved || n.readsScope) return;
    for (const s of n.saved) saved.add(s);
  }
  for (const t of scope) if (!kept.has(t) && !saved.has(t) && !(t.requiresGrad && !t.node)) t.releaseData();
}

/** Async variant: the scope stays open across awaits (do not interleave two tidyAsync calls). */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: T;
  try {
    result = await fn();
  } finally {
    const i = stack.lastIndexOf(scope);
    if (i >= 0) stack.splice(i, 1);
  }
  const kept = new Set<Tensor>();
  collect(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  if (stack.length) for (const t of kept) if (scope.has(t)) stack[stack.length - 1].add(t);
  return result;
}
