// Elementwise, softmax and cross-entropy throughput against the memory probe with the same traffic (as many arrays
// read and written, over the same bytes: bench/ceilings.ts), timed alternately with each kernel in the same run.
// Bandwidths count bytes moved (inputs read + outputs written). Every figure is checked against the reference
// backend (f64) on a slice of its output before it is timed. Called by bench/engine.ts; runs alone as
// `node --import tsx bench/kernels-elementwise.ts`.
import * as vk from '../src/engine/index.js';
import '../src/engine/backend/native/index.js';
import type { Tensor } from '../src/engine/index.js';
import { ratio, timeAgainstProbe, trafficLabel, type Traffic } from './ceilings.js';

type Emit = (row: object) => void;

const r3 = (v: number) => Math.round(v * 1000) / 1000;

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

/** Times fn and emits its bandwidth against the probe of the same traffic over the same bytes. */
function row(emit: Emit, traffic: Traffic, base: Record<string, unknown>, bytes: number, fn: () => void): void {
  const m = timeAgainstProbe(fn, traffic, bytes);
  const gbs = bytes / m.t / 1e9;
  emit({ ...base, dtype: 'f32', value: r3(gbs), unit: 'GB/s', bytes, ms: r3(m.t * 1e3), ceiling: r3(m.ceilingGBs), ceilingVia: `${trafficLabel(traffic)}: ${m.via}`, ratio: r3(ratio(gbs, m.ceilingGBs)) });
}

const R1W1: Traffic = { reads: 1, writes: 1 }, R2W1: Traffic = { reads: 2, writes: 1 }, R1: Traffic = { reads: 1, writes: 0 };

export async function benchElementwise(emit: Emit): Promise<void> {
  const nat = vk.getBackend('native'), ref = vk.referenceBackend;
  const N = 8 << 20;

  // ---- elementwise on 8M floats (32 MB per tensor)
  const a = randn([N], 1), b = randn([N], 2);
  const bin = (op: vk.BinaryOp) => {
    const want = ref.binary(op, head(a, 4096), head(b, 4096));
    const out = nat.binary(op, a, b);
    check(op, out, want);
    out.dispose();
    row(emit, R2W1, { bench: 'elementwise', op, shape: [N] }, 3 * N * 4, () => nat.binary(op, a, b).dispose());
  };
  bin('add');
  bin('mul');
  for (const op of ['silu', 'gelu', 'gelu_tanh', 'exp'] as vk.UnaryOp[]) {
    const out = nat.unary(op, a);
    check(op, out, ref.unary(op, head(a, 4096)));
    out.dispose();
    row(emit, R1W1, { bench: 'elementwise', op, shape: [N] }, 2 * N * 4, () => nat.unary(op, a).dispose());
  }
  // bias add: [8192, 1024] + [1024] (the row-broadcast path)
  {
    const x = a.view([8192, 1024], [1024, 1], 0), bias = randn([1024], 3);
    const out = nat.binary('add', x, bias);
    check('add bias', out, ref.binary('add', head(x, 4), vk.toBackend(bias, ref)));
    out.dispose();
    row(emit, R1W1, { bench: 'elementwise', op: 'add', case: 'row broadcast', shape: [8192, 1024] }, (2 * N + 1024) * 4, () => nat.binary('add', x, bias).dispose());
    x.dispose();
    bias.dispose();
  }
  // silu backward (training)
  {
    const out = nat.unaryBackward('silu', a, b);
    check("silu'", out, ref.unaryBackward('silu', head(a, 4096), head(b, 4096)));
    out.dispose();
    row(emit, R2W1, { bench: 'elementwise', op: 'silu_backward', shape: [N] }, 3 * N * 4, () => nat.unaryBackward('silu', a, b).dispose());
  }
  a.dispose();
  b.dispose();

  // ---- softmax: attention rows and lm_head rows
  const softmaxCase = (shape: number[], op: 'softmax' | 'logSoftmax', scale: number) => {
    const x = randn(shape, 4, scale);
    const out = nat[op](x);
    check(`${op} [${shape}]`, out, ref[op](head(x, 2)));
    out.dispose();
    row(emit, R1W1, { bench: 'softmax', op, shape }, 2 * x.size * 4, () => nat[op](x).dispose());
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
    row(emit, R1, { bench: 'softmax', op: 'crossEntropy', shape: [n, V] }, n * V * 4, () => {
      const r = nat.crossEntropy(logits, targets, -100);
      r.losses.dispose();
      r.lse.dispose();
    });
    const gRow = vk.full([n], 1 / n, { backend: nat });
    const gx = nat.crossEntropyBackward(logits, targets, lse, gRow, -100);
    const gRef = ref.crossEntropyBackward(head(logits, 4), vk.tensor(tv.slice(0, 4), [4], { backend: ref, dtype: 'i64' }), vk.toBackend(lse, ref).view([4], [1], 0), vk.full([4], 1 / n, { backend: ref }), -100);
    check('crossEntropyBackward', gx, gRef);
    gx.dispose();
    row(emit, R1W1, { bench: 'softmax', op: 'crossEntropyBackward', shape: [n, V] }, 2 * n * V * 4, () => nat.crossEntropyBackward(logits, targets, lse, gRow, -100).dispose());
    for (const t of [logits, targets, losses, lse, gRow]) t.dispose();
  }
}

// Standalone: `node --import tsx bench/kernels-elementwise.ts`
if (import.meta.url === `file://${process.argv[1]}`) {
  await benchElementwise((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
