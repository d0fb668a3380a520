// Block-quantized weights (Q8_0): the format table against the addon's, quantization as ggml's
// quantize_row_q8_0_ref defines it (derived here independently: scale bytes, half-away rounding, int8 layout),
// dequantization, linear with a Q8_0 weight on every native path against the reference (and bit-equal to the
// product with the dequantized weight where both take the same kernel), the input gradient against finite
// differences, bad input, and memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { VlmkitError, ShapeError } from '../../src/errors.js';
import { loadAddon } from '../../src/engine/backend/native/addon.js';
import { assertClose, checkGrad, nat, ref, withNtRows, withoutSimd } from './harness.js';

const TOL = 1e-5;

function randomMatrix(rng: vk.Rng, n: number, scale = 1): number[] {
  return Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

// IEEE half decoded by its definition (independent of src/engine/dtype.ts).
function halfValue(h: number): number {
  const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes packed Q8_0 bytes with a DataView, the layout spelled out: per 34 bytes, fp16 LE d then 32 int8. */
function decodeHere(bytes: Uint8Array, n: number): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let b = 0; b < n / 32; b++) {
    const d = halfValue(dv.getUint16(b * 34, true));
    for (let j = 0; j < 32; j++) out.push(d * dv.getInt8(b * 34 + 2 + j));
  }
  return out;
}

test('weight formats: the TypeScript table equals the addon enum (native/core/formats.h)', () => {
  const native = loadAddon().weightFormats() as Record<string, { code: number; blockValues: number; blockBytes: number; kernels: boolean }>;
  assert.deepEqual(Object.keys(native).sort(), Object.keys(vk.WEIGHT_FORMATS).sort());
  for (const [name, f] of Object.entries(vk.WEIGHT_FORMATS)) {
    const n = native[name]!;
    assert.deepEqual({ code: n.code, blockValues: n.blockValues, blockBytes: n.blockBytes }, f, `format ${name}`);
    if (vk.isBlockFormat(name)) assert.equal(n.kernels, (vk.QUANT_FORMATS as readonly string[]).includes(name), `kernels for ${name}`);
  }
  // the plain formats share their codes with the tensor dtypes the addon already numbers
  const codes = Object.values(vk.WEIGHT_FORMATS).map((f) => f.code);
  assert.equal(new Set(codes).size, codes.length, 'codes are distinct');
});

test('Q8_0 quantization: scale bytes, half-away-from-zero rounding, int8 layout, zero blocks', () => {
  for (const b of [ref, nat]) {
    // block 0: amax 127 -> d = 1 (fp16 0x3C00), q = roundf(x): halves go away from zero (banker's would differ)
    // block 1: amax 254 -> d = 2 (0x4000), q = roundf(x / 2)
    // block 2: all zeros -> d = 0, q = 0
    const b0 = [127, 0.5, 1.5, 2.5, -0.5, -2.5, -127, 3.49, ...Array(24).fill(0)];
    const b1 = [-254, 3, 5, -5, 1, 0.9, ...Array(26).fill(0)];
    const b2 = Array(32).fill(0);
    const w = vk.quantize(vk.tensor([...b0, ...b1, ...b2], [1, 96], { backend: b }), 'q8_0');
    const by = w.bytes;
    assert.equal(by.length, 3 * 34);
    assert.deepEqual([by[0], by[1]], [0x00, 0x3c], `${b.name}: block 0 scale`);
    assert.deepEqual([...new Int8Array(by.buffer, by.byteOffset + 2, 8)], [127, 1, 2, 3, -1, -3, -127, 3]);
    assert.deepEqual([by[34], by[35]], [0x00, 0x40], `${b.name}: block 1 scale`);
    assert.deepEqual([...new Int8Array(by.buffer, by.byteOffset + 36, 6)], [-127, 2, 3, -3, 1, 0]);
    assert.ok(by.subarray(68).every((v) => v === 0), 'a zero block is all zero bytes');
    w.dispose();
  }
});

test('Q8_0 quantize then dequantize of random matrices: values derived independently, error within d/2', () => {
  const rng = new vk.Rng(3);
  for (const [N, K, scale] of [[5, 64, 1], [3, 320, 1e-3], [2, 32, 300]] as const) {
    const x = randomMatrix(rng, N * K, scale);
    const w = vk.quantize(vk.tensor(x, [N, K], { backend: ref }), 'q8_0');
    const here = decodeHere(w.bytes, N * K);
    const deq = w.dequantize();
    assert.deepEqual(deq.toArray(), here, `[${N}, ${K}]: dequantize equals the layout decoded here`);
    for (let b = 0; b < (N * K) / 32; b++) {
      const blk = x.slice(b * 32, b * 32 + 32).map((v) => Math.fround(v));
      const amax = Math.max(...blk.map(Math.abs));
      const d = halfValue(w.bytes[b * 34] | (w.bytes[b * 34 + 1] << 8));
      // d is amax / 127 rounded to fp16: half an ulp, relative 2^-11, or 2^-25 among the subnormals (the 1e-3 case)
      const dErr = Math.abs(d - amax / 127);
      assert.ok(dErr <= Math.max((amax / 127) * 2 ** -11, 2 ** -25) * 1.0001, `block ${b}: d ${d} vs amax/127 ${amax / 127}`);
      for (let j = 0; j < 32; j++) {
        const q = (w.bytes[b * 34 + 2 + j] << 24) >> 24;
        const exact = blk[j] / (amax / 127);
        assert.ok(Math.abs(q) <= 127 && Math.abs(q - exact) <= 0.5 + 1e-5, `block ${b}[${j}]: q ${q} for x/d ${exact}`);
        // q rounds x / d (d before its fp16 rounding); the stored d then moves the value by at most 127 · dErr
        assert.ok(Math.abs(blk[j] - here[b * 32 + j]) <= (amax / 127) * 0.5 + 127 * dErr + amax * 2 ** -20, `block ${b}[${j}]: error`);
      }
    }
    // the native backend's quantization is the same bytes
    const wn = vk.quantize(vk.tensor(x, [N, K], { backend: nat }), 'q8_0');
    assert.deepEqual([...wn.bytes], [...w.bytes]);
    // bf16 input is quantized from its widened values
    const xb = vk.tensor(x, [N, K], { backend: ref, dtype: 'bf16' });
    const wb = vk.quantize(xb, 'q8_0');
    const wf = vk.quantize(vk.tensor(xb.toArray(), [N, K], { backend: ref }), 'q8_0');
    assert.deepEqual([...wb.bytes], [...wf.bytes]);
    for (const t of [w, deq, wn, xb, wb, wf]) t.dispose();
  }
});

// Rows cover the decode kernel (<= 8), gemm_nt (9..4096 on AVX2) and the decoded-panel path (gemm_nt off);
// K = 544 gives gemm_nt a k-block of 182 (a Q8_0 vector load that straddles two blocks).
const SHAPES: [number, number, number][] = [[1, 40, 64], [3, 17, 96], [8, 33, 544], [9, 20, 32], [40, 70, 544], [130, 48, 256]];

function checkLinear(name: string, M: number, N: number, K: number, o: { bias?: boolean; lead?: number[]; strided?: boolean } = {}): void {
  vk.tidy(() => {
    const rng = new vk.Rng(M * 131 + N * 7 + K);
    const rows = (o.lead ?? []).reduce((p, d) => p * d, M);
    const wv = randomMatrix(rng, N * K), xv = randomMatrix(rng, rows * K), bv = randomMatrix(rng, N);
    const run = (b: vk.Backend) => {
      const w = vk.quantize(vk.tensor(wv, [N, K], { backend: b }), 'q8_0');
      let x = vk.tensor(xv, [...(o.lead ?? []), M, K], { backend: b });
      if (o.strided) x = vk.transpose(vk.contiguous(vk.transpose(x, -1, -2)), -1, -2);
      const y = vk.linear(x, w, o.bias ? vk.tensor(bv, [N], { backend: b }) : null);
      w.dispose();
      return y;
    };
    const yn = run(nat), yr = run(ref);
    assert.deepEqual(yn.shape, [...(o.lead ?? []), M, N]);
    assertClose(`${name} linear q8_0 ${M}x${K}x${N}`, yn.toArray(), yr.toArray(), TOL);
  });
}

test('linear with a Q8_0 weight: native against the reference on every path', () => {
  for (const [M, N, K] of SHAPES) checkLinear('default', M, N, K, { bias: M % 2 === 1 });
  checkLinear('leading axes', 5, 24, 64, { lead: [2, 3], bias: true });
  checkLinear('strided x', 12, 16, 96, { strided: true });
  withNtRows(0, () => { for (const [M, N, K] of SHAPES) checkLinear('panel path', M, N, K, { bias: true }); });
  withoutSimd(() => { for (const [M, N, K] of SHAPES) checkLinear('scalar', M, N, K, { bias: true }); });
});

test('linear with a Q8_0 weight equals the product with its dequantized weight (same kernel: same bits)', () => {
  vk.tidy(() => {
    const rng = new vk.Rng(11);
    const [M, N, K] = [40, 50, 544];
    const w = vk.quantize(vk.tensor(randomMatrix(rng, N * K), [N, K], { backend: nat }), 'q8_0');
    const x = vk.tensor(randomMatrix(rng, M * K), [M, K], { backend: nat });
    const f = w.dequantize();
    // 40 rows: the f32 weight and the Q8_0 weight both go through gemm_nt, whose strips hold the same values
    assert.deepEqual(vk.linear(x, w).toArray(), vk.linear(x, f).toArray());
    // decode rows: a different summation (per-block scale factored out), equal to f32 rounding
    const x1 = vk.tensor(randomMatrix(rng, 2 * K), [2, K], { backend: nat });
    assertClose('decode rows vs dequantized', vk.linear(x1, w).toArray(), vk.linear(x1, f).toArray(), 1e-6);
    w.dispose();
  });
});

test('linear with a Q8_0 weight: gradient with respect to x and bias (finite differences, native), none for W', () => {
  for (const [M, N, K] of [[1, 12, 64], [3, 10, 32], [20, 24, 96]] as const) {
    const rng = new vk.Rng(M + N + K);
    const wv = randomMatrix(rng, N * K);
    const qw = new Map<string, vk.QuantizedWeight>();
    const wFor = (b: vk.Backend) => {
      if (!qw.has(b.name)) qw.set(b.name, vk.quantize(vk.tensor(wv, [N, K], { backend: b }), 'q8_0'));
      return qw.get(b.name)!;
    };
    checkGrad(`linear q8_0 ${M}x${K}x${N}`, (x, bias) => vk.linear(x, wFor(x.backend), bias), [{ shape: [M, K] }, { shape: [N] }]);
    withoutSimd(() =>
      checkGrad(`linear q8_0 scalar ${M}x${K}x${N}`, (x) => vk.linear(x, wFor(x.backend)), [{ shape: [M, K] }], { seed: 3 }));
    for (const w of qw.values()) w.dispose();
  }
  // the graph records x (and bias) only: the quantized weight is no input of the gradient rule
  vk.tidy(() => {
    const w = vk.quantize(vk.tensor(Array(64).fill(0.5), [2, 32], { backend: nat }), 'q8_0');
    const x = vk.tensor(Array(32).fill(1), [1, 32], { backend: nat, requiresGrad: true });
    const y = vk.linear(x, w);
    assert.deepEqual(y.node?.inputs, [x]);
    vk.backward(vk.sum(y));
    const d = w.dequantize().toArray(); // 0.5 as Q8_0 stores it: fp16(0.5 / 127) * 127
    assert.deepEqual(x.grad!.toArray(), Array.from({ length: 32 }, (_, k) => d[k] + d[32 + k]));
    w.dispose();
  });
});

test('Q8_0: bad input gives clear errors', () => {
  const b = nat;
  assert.throws(() => vk.quantize(vk.tensor(Array(66).fill(1), [2, 33], { backend: b }), 'q8_0'),
    (e: Error) => e instanceof ShapeError && /blocks of 32.*33 columns/.test(e.message));
  assert.throws(() => vk.quantize(vk.tensor(Array(32).fill(1), [32], { backend: b }), 'q8_0'), ShapeError);
  const nan = Array(64).fill(1);
  nan[37] = NaN;
  assert.throws(() => vk.quantize(vk.tensor(nan, [2, 32], { backend: b }), 'q8_0'),
    (e: Error) => e instanceof VlmkitError && /NaN at \[1, 5\]/.test(e.message));
  assert.throws(() => vk.quantize(vk.tensor(Array(32).fill(1e7), [1, 32], { backend: b }), 'q8_0'),
    (e: Error) => e instanceof VlmkitError && /fp16 scale/.test(e.message));
  assert.throws(() => vk.quantize(vk.tensor(Array(32).fill(1), [1, 32], { backend: b }), 'q3_k' as 'q8_0'),
    (e: Error) => e instanceof VlmkitError && /unknown or not yet supported.*q3_k/.test(e.message));
  assert.throws(() => vk.QuantizedWeight.fromBytes('q8_0', [2, 64], new Uint8Array(100), { what: 'model.layers.0.q_proj.weight' }),
    (e: Error) => e instanceof VlmkitError && /model.layers.0.q_proj.weight: 100 bytes.*needs 136/.test(e.message));
  const w = vk.quantize(vk.tensor(Array(64).fill(1), [2, 32], { backend: b }), 'q8_0');
  const x = vk.tensor(Array(33).fill(1), [1, 33], { backend: b });
  assert.throws(() => vk.linear(x, w), (e: Error) => e instanceof ShapeError && /32 inputs, x \[1, 33\] has 33/.test(e.message));
  assert.throws(() => vk.linear(vk.tensor(Array(32).fill(1), [1, 32], { backend: ref }), w), /different backends/);
  w.dispose();
  assert.throws(() => vk.linear(vk.tensor(Array(32).fill(1), [1, 32], { backend: b }), w), /after dispose/);
  x.dispose();
});

test('Q8_0 weight memory: engine storage, released by dispose; fromBytes round-trips', () => {
  const before = vk.storageStats();
  const t = vk.tensor(randomMatrix(new vk.Rng(5), 96 * 64), [96, 64], { backend: nat });
  const w = vk.quantize(t, 'q8_0');
  assert.equal(vk.storageStats().bytes - before.bytes, 96 * 64 * 4 + 96 * 2 * 34);
  assert.equal(w.bytes.byteLength, vk.QuantizedWeight.byteLength('q8_0', [96, 64]));
  const copy = vk.QuantizedWeight.fromBytes('q8_0', [96, 64], w.bytes, { backend: nat });
  assert.deepEqual([...copy.bytes], [...w.bytes]);
  for (const d of [t, w, copy]) d.dispose();
  w.dispose();
  assert.deepEqual(vk.storageStats(), before);
});
