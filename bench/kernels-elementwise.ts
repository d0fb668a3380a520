// Elementwise, softmax and cross-entropy throughput against memcpy of the same number of bytes, measured in the
// same run. Bandwidths count bytes moved (inputs read + outputs written). Every figure is checked against the
// reference backend (f64) on a slice of its output before it is timed. Called by bench/engine.ts; runs alone as
// `node --import tsx bench/kernels-elementwise.ts`.
import * as vk from '../src/engine/index.js';
import '../src/engine/backend/native/index.js';
import type { Tensor } from '../src/engine/index.js';
import { loadAddon } from '../src/engine/backend/native/addon.js';
import { median } from './ceilings.js';

type Emit = (row: object) => void;
/** memcpy bandwidth (bytes moved per second / 1e9) for a given number of bytes moved, or one figure for all */
type Ceiling = ((bytesMoved: number) => number) | number;

const r3 = (v: number) => Math.round(v * 1000) / 1000;

const copyBuffers = new Map<number, { src: Buffer; dst: Buffer }>();

/**
 * Median seconds of fn and of a memcpy moving the same number of bytes (pool memcpy and Buffer.copy, the better
 * one), measured alternately so that load from other processes drifts both the same way.
 */
function timeAgainstMemcpy(fn: () => void, bytesMoved: number, minMs = 400, minRuns = 9): { t: number; copyGBs: number; via: string } {
  const addon = loadAddon();
  const n = Math.round(bytesMoved / 2);
  let bufs = copyBuffers.get(n);
  if (!bufs) copyBuffers.set(n, (bufs = { src: Buffer.alloc(n, 1), dst: Buffer.alloc(n) }));
  const { src, dst } = bufs;
  const tk: number[] = [], tp: number[] = [], tb: number[] = [];
  const clock = (f: () => void, into: number[]) => {
    const t0 = performance.now();
    f();
    into.push((performance.now() - t0) / 1e3);
  };
  fn(); fn(); addon.memcpyPool(dst, src); src.copy(dst);
  const start = performance.now();
  while (tk.length < minRuns || performance.now() - start < minMs) {
    clock(fn, tk);
    clock(() => addon.memcpyPool(dst, src), tp);
    clock(() => src.copy(dst), tb);
  }
  const p = median(tp), b = median(tb);
  return { t: median(tk), copyGBs: bytesMoved / Math.min(p, b) / 1e9, via: p <= b ? 'pool memcpy' : 'Buffer.copy' };
}

/** Seeded N(0, 1) fill (activations look like this; the GELU's slow tail path is taken below x = -2). */
function randn(shape: number[], seed: number, scale = 1): Tensor {
  const t = vk.empty(shape, { backend: vk.getBackend('native') });
  const d = t.data as Float32Array;
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  for (let i = 0; i < d.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), a = 2 * Math.PI * u();
    d[i] = r * Math.cos(a) * scale;
    if (i + 1 < d.length) d[i + 1] = r * Math.sin(a) * scale;
  }
  return t;
}

/** The first `n` elements of t as a reference-backend tensor with the same trailing shape. */
function head(t: Tensor, rows: number): Tensor {
  const D = t.shape[t.rank - 1];
  const shape = t.rank === 1 ? [Math.min(rows, t.size)] : [rows, D];
  return vk.tensor((t.data as Float32Array).subarray(0, shape.reduce((a, b) => a * b, 1)), shape, { backend: vk.referenceBackend });
}

function check(name: string, got: Tensor, want: Tensor, tol = 1e-5): void {
  const g = got.data as Float32Array, w = want.toArray();
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < w.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(w[i]));
    maxDiff = Math.max(maxDiff, Math.abs(w[i] - g[i]));
  }
  if (!(maxDiff <= tol * maxRef)) throw new Error(`${name}: differs from the reference by ${maxDiff} (max |ref| ${maxRef})`);
}

/** Times fn and emits its bandwidth against the ceiling: the caller's function if given, else an interleaved
 *  memcpy of the same bytes (the caller's single figure is kept as `ceiling96MB` for reference). */
function row(emit: Emit, ceiling: Ceiling, base: Record<string, unknown>, bytes: number, fn: () => void): void {
  const m = timeAgainstMemcpy(fn, bytes);
  const gbs = bytes / m.t / 1e9;
  const c = typeof ceiling === 'function' ? { gbs: ceiling(bytes), via: 'caller' } : { gbs: m.copyGBs, via: `${m.via}, interleaved` };
  emit({
    ...base, dtype: 'f32', value: r3(gbs), unit: 'GB/s', bytes, ms: r3(m.t * 1e3), ceiling: r3(c.gbs), ceilingVia: c.via,
    ratio: r3(gbs / c.gbs), ...(typeof ceiling === 'number' && ceiling > 0 ? { ceiling96MB: r3(ceiling) } : {}),
  });
}

export async function benchElementwise(emit: Emit, memcpyGBs: Ceiling): Promise<void> {
  const nat = vk.getBackend('native'), ref = vk.referenceBackend;
  const N = 8 << 20;

  // ---- elementwise on 8M floats (32 MB per tensor)
  const a = randn([N], 1), b = randn([N], 2);
  const bin = (op: vk.BinaryOp) => {
    const want = ref.binary(op, head(a, 4096), head(b, 4096));
    const out = nat.binary(op, a, b);
    check(op, out, want);
    out.dispose();
    row(emit, memcpyGBs, { bench: 'elementwise', op, shape: [N] }, 3 * N * 4, () => nat.binary(op, a, b).dispose());
  };
  bin('add');
  bin('mul');
  for (const op of ['silu', 'gelu', 'gelu_tanh', 'exp'] as vk.UnaryOp[]) {
    const out = nat.unary(op, a);
    check(op, out, ref.unary(op, head(a, 4096)));
    out.dispose();
    row(emit, memcpyGBs, { bench: 'elementwise', op, shape: [N] }, 2 * N * 4, () => nat.unary(op, a).dispose());
  }
  // bias add: [8192, 1024] + [1024] (the row-broadcast path)
  {
    const x = a.view([8192, 1024], [1024, 1], 0), bias = randn([1024], 3);
    const out = nat.binary('add', x, bias);
    check('add bias', out, ref.binary('add', head(x, 4), vk.toBackend(bias, ref)));
    out.dispose();
    row(emit, memcpyGBs, { bench: 'elementwise', op: 'add', case: 'row broadcast', shape: [8192, 1024] }, (2 * N + 1024) * 4, () => nat.binary('add', x, bias).dispose());
    x.dispose();
    bias.dispose();
  }
  // silu backward (training)
  {
    const out = nat.unaryBackward('silu', a, b);
    check("silu'", out, ref.unaryBackward('silu', head(a, 4096), head(b, 4096)));
    out.dispose();
    row(emit, memcpyGBs, { bench: 'elementwise', op: 'silu_backward', shape: [N] }, 3 * N * 4, () => nat.unaryBackward('silu', a, b).dispose());
  }
  a.dispose();
  b.dispose();

  // ---- softmax: attention rows and lm_head rows
  const softmaxCase = (shape: number[], op: 'softmax' | 'logSoftmax', scale: number) => {
    const x = randn(shape, 4, scale);
    const out = nat[op](x);
    check(`${op} [${shape}]`, out, ref[op](head(x, 2)));
    out.dispose();
    row(emit, memcpyGBs, { bench: 'softmax', op, shape }, 2 * x.size * 4, () => nat[op](x).dispose());
    x.dispose();
  };
  softmaxCase([4096, 1024], 'softmax', 3); // e.g. 4 heads x 1024 queries of SigLIP-sized attention rows
  softmaxCase([64, 49280], 'softmax', 5); // lm_head rows
  softmaxCase([64, 49280], 'logSoftmax', 5);

  // ---- cross-entropy over the lm_head: 256 tokens x 49280 classes (50 MB of logits), a quarter ignored
  {
    const n = 256, V = 49280;
    const logits = randn([n, V], 5, 5);
    const tv = Array.from({ length: n }, (_, i) => (i % 4 === 3 ? -100 : (i * 7919) % V));
    const targets = vk.tensor(tv, [n], { backend: nat, dtype: 'i64' });
    const { losses, lse } = nat.crossEntropy(logits, targets, -100);
    const refOut = ref.crossEntropy(head(logits, 4), vk.tensor(tv.slice(0, 4), [4], { backend: ref, dtype: 'i64' }), -100);
    check('crossEntropy loss', losses, refOut.losses);
    check('crossEntropy lse', lse, refOut.lse);
    row(emit, memcpyGBs, { bench: 'softmax', op: 'crossEntropy', shape: [n, V] }, n * V * 4, () => {
      const r = nat.crossEntropy(logits, targets, -100);
      r.losses.dispose();
      r.lse.dispose();
    });
    const gRow = vk.full([n], 1 / n, { backend: nat });
    const gx = nat.crossEntropyBackward(logits, targets, lse, gRow, -100);
    const gRef = ref.crossEntropyBackward(head(logits, 4), vk.tensor(tv.slice(0, 4), [4], { backend: ref, dtype: 'i64' }), vk.toBackend(lse, ref).view([4], [1], 0), vk.full([4], 1 / n, { backend: ref }), -100);
    check('crossEntropyBackward', gx, gRef);
    gx.dispose();
    row(emit, memcpyGBs, { bench: 'softmax', op: 'crossEntropyBackward', shape: [n, V] }, 2 * n * V * 4, () => nat.crossEntropyBackward(logits, targets, lse, gRow, -100).dispose());
    for (const t of [logits, targets, losses, lse, gRow]) t.dispose();
  }
}

// Standalone: `node --import tsx bench/kernels-elementwise.ts`
if (import.meta.url === `file://${process.argv[1]}`) {
  await benchElementwise((r) => process.stdout.write(JSON.stringify(r) + '\n'), 0);
}
