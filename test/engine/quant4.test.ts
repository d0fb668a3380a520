// 4-bit weights: ggml's Q4_0 and bitsandbytes' NF4 (plain and double-quantized). Quantize-then-dequantize is
// checked against values derived here independently (the codebook and the dynamic map written out, the block
// scales, the nibble order read with a DataView); linear with a 4-bit weight on every native path (decode rows,
// decoded panels, scalar) equals the product with the dequantized weight to f32 rounding; the input gradient
// against finite differences; bad input; memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { ShapeError, VlmkitError } from '../../src/errors.js';
import { assertClose, checkGrad, nat, ref, withNtRows, withoutSimd } from './harness.js';

const TOL = 1e-5;
const f32 = Math.fround;

function randomMatrix(rng: vk.Rng, n: number, scale = 1): number[] {
  return Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

// IEEE half decoded by its definition.
function halfValue(h: number): number {
  const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

// ---- Q4_0

/** Per 18 bytes: fp16 LE d, then 16 bytes; element j = low nibble of byte j, element j + 16 = its high nibble. */
function decodeQ4Here(bytes: Uint8Array, n: number): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let b = 0; b < n / 32; b++) {
    const d = halfValue(dv.getUint16(b * 18, true));
    const q = Array.from({ length: 32 }, (_, j) => (j < 16 ? dv.getUint8(b * 18 + 2 + j) & 15 : dv.getUint8(b * 18 + 2 + j - 16) >> 4));
    for (let j = 0; j < 32; j++) out.push(d * (q[j] - 8));
  }
  return out;
}

test('Q4_0 quantization: signed scale, nibble order, rounding and the clamp at 15', () => {
  for (const b of [ref, nat]) {
    // block 0: largest magnitude -8 (negative) -> d = -8 / -8 = 1 (0x3C00); q = min(15, trunc(x + 8.5))
    const b0 = Array(32).fill(0);
    Object.assign(b0, { 0: -8, 1: 0.5, 2: -0.5, 3: -1.5, 4: 7.6, 5: 2.49 });
    b0[16] = 3; b0[17] = -7;
    // block 1: largest magnitude +8 -> d = -1 (0xBC00): +8 lands on nibble 0, -8 would need 16 and clamps to 15
    const b1 = Array(32).fill(0);
    Object.assign(b1, { 0: 8, 1: -8, 2: 1 });
    const w = vk.quantize(vk.tensor([...b0, ...b1, ...Array(32).fill(0)], [1, 96], { backend: b }), 'q4_0');
    const by = w.bytes;
    assert.equal(by.length, 3 * 18);
    assert.deepEqual([by[0], by[1]], [0x00, 0x3c], 'block 0 scale');
    // byte j: element j low, element j + 16 high; element 0 -> 0, 1 -> 9, 2 -> 8, 3 -> 7, 4 -> 15 (16 clamped), 5 -> 10
    assert.deepEqual([...by.subarray(2, 8)], [0 | (11 << 4), 9 | (1 << 4), 8 | (8 << 4), 7 | (8 << 4), 15 | (8 << 4), 10 | (8 << 4)]);
    assert.deepEqual([by[18], by[19]], [0x00, 0xbc], 'block 1 scale');
    assert.deepEqual([...by.subarray(20, 23)], [0 | (8 << 4), 15 | (8 << 4), 7 | (8 << 4)]);
    // a zero block: d = 0 / -8 = -0 (fp16 0x8000, as ggml stores it), every nibble 8
    assert.ok(by.subarray(36).every((v, i) => v === [0x00, 0x80][i] || (i >= 2 && v === 0x88)), `a zero block: ${[...by.subarray(36, 40)]}`);
    const deq = w.dequantize().toArray();
    assert.deepEqual(deq.slice(0, 6), [-8, 1, 0, -1, 7, 2]);
    assert.deepEqual(deq.slice(32, 35), [8, -7, 1], 'd = -1: the clamp turns -8 into -7');
    w.dispose();
  }
});

test('Q4_0 quantize then dequantize of random matrices: values derived independently', () => {
  const rng = new vk.Rng(7);
  for (const [N, K, scale] of [[5, 64, 1], [3, 320, 1e-3], [2, 32, 300]] as const) {
    const x = randomMatrix(rng, N * K, scale).map(f32);
    const w = vk.quantize(vk.tensor(x, [N, K], { backend: ref }), 'q4_0');
    const here = decodeQ4Here(w.bytes, N * K);
    assert.deepEqual(w.dequantize().toArray(), here, `[${N}, ${K}]: dequantize equals the layout decoded here`);
    for (let b = 0; b < (N * K) / 32; b++) {
      const blk = x.slice(b * 32, b * 32 + 32);
      // the value of largest magnitude (the first on a tie) sets d = max / -8
      let max = 0;
      for (const v of blk) if (Math.abs(v) > Math.abs(max)) max = v;
      const d = f32(max / -8), id = d ? f32(1 / d) : 0;
      const hd = halfValue(w.bytes[b * 18] | (w.bytes[b * 18 + 1] << 8));
      assert.ok(Math.abs(hd - d) <= Math.max(Math.abs(d) * 2 ** -11, 2 ** -25), `block ${b}: stored d ${hd} vs ${d}`);
      for (let j = 0; j < 32; j++) {
        const want = Math.min(15, Math.trunc(f32(f32(blk[j] * id) + 8.5)));
        const q = j < 16 ? w.bytes[b * 18 + 2 + j] & 15 : w.bytes[b * 18 + 2 + j - 16] >> 4;
        assert.equal(q, want, `block ${b}[${j}]`);
      }
    }
    const wn = vk.quantize(vk.tensor(x, [N, K], { backend: nat }), 'q4_0');
    assert.deepEqual([...wn.bytes], [...w.bytes], 'the native backend stores the same bytes');
    w.dispose();
    wn.dispose();
  }
});

// ---- NF4

// bitsandbytes functional.py get_4bit_type('nf4')
const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
].map(f32);

/** The nearest NF4 code by brute force (ties: the lower code). */
function nearestNf4(v: number): number {
  let best = 0;
  for (let c = 1; c < 16; c++) if (Math.abs(v - NF4[c]) < Math.abs(v - NF4[best])) best = c;
  return best;
}

/** create_dynamic_map(signed=True, 7 exponent bits, 8 bits) in float64: ±10^(i-6) · midpoints of linspace(0.1, 1, 2^i + 1), 0, 1. */
function dynamicMapHere(): number[] {
  const out = [0, 1];
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1;
    const lin = Array.from({ length: n }, (_, j) => 0.1 + (0.9 * j) / (n - 1));
    for (let j = 0; j + 1 < n; j++) out.push(10 ** (i - 6) * (lin[j] + lin[j + 1]) / 2, -(10 ** (i - 6)) * (lin[j] + lin[j + 1]) / 2);
  }
  return out.sort((a, b) => a - b);
}

/** Reads an NF4 weight's sections (codes, then f32 absmax or the double-quantized statistics) with a DataView. */
function readNf4Here(bytes: Uint8Array, n: number, dq: boolean) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = n / 64, codesEnd = n / 2;
  // element 2i: the high nibble of byte i; element 2i + 1: its low nibble
  const codes = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? bytes[i >> 1] >> 4 : bytes[i >> 1] & 15));
  if (!dq) return { codes, absmax: Array.from({ length: blocks }, (_, b) => dv.getFloat32(codesEnd + 4 * b, true)), dqs: null };
  const qabsmax = [...bytes.subarray(codesEnd, codesEnd + blocks)];
  const a2at = codesEnd + Math.ceil(blocks / 4) * 4, nb2 = Math.ceil(blocks / 256);
  const absmax2 = Array.from({ length: nb2 }, (_, i) => dv.getFloat32(a2at + 4 * i, true));
  const offset = dv.getFloat32(a2at + 4 * nb2, true);
  const map = Array.from({ length: 256 }, (_, i) => dv.getFloat32(a2at + 4 * nb2 + 4 + 4 * i, true));
  assert.equal(bytes.length, a2at + 4 * nb2 + 4 + 1024, 'the layout ends after the map');
  const absmax = qabsmax.map((q, b) => f32(f32(map[q] * absmax2[Math.floor(b / 256)]) + offset));
  return { codes, absmax, dqs: { qabsmax, absmax2, offset, map } };
}

test('NF4 quantization: the codebook, blocks of 64, the first element in the high nibble', () => {
  for (const b of [ref, nat]) {
    // block 0: x_j = 2 · NF4[j % 16] -> absmax 2 and codes j % 16; block 1: a midpoint goes to the lower code
    const b0 = Array.from({ length: 64 }, (_, j) => 2 * NF4[j % 16]);
    const mid = (NF4[8] + NF4[9]) / 2;
    const b1 = Array(64).fill(0);
    Object.assign(b1, { 0: 1, 1: f32(mid), 2: -1, 3: 0.0001 });
    const w = vk.quantize(vk.tensor([...b0, ...b1], [1, 128], { backend: b }), 'nf4', { doubleQuant: false });
    const by = w.bytes;
    assert.equal(by.length, 64 + 2 * 4);
    assert.deepEqual([...by.subarray(0, 8)], [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    const dv = new DataView(by.buffer, by.byteOffset);
    assert.deepEqual([dv.getFloat32(64, true), dv.getFloat32(68, true)], [2, 1]);
    const f = f32(mid) > f32(mid) ? 9 : 8; // f32(mid) is the decision point itself: x > mid fails, so code 8
    assert.deepEqual([by[32], by[33]], [(15 << 4) | f, (0 << 4) | 7], '1, the midpoint, -1, and 0.0001 (nearest 0.0)');
    assert.deepEqual(w.dequantize().toArray().slice(0, 16), NF4.map((c) => 2 * c));
    w.dispose();
  }
});

test('NF4 quantize then dequantize of random matrices: plain and double-quantized, derived independently', () => {
  const rng = new vk.Rng(9);
  const mapHere = dynamicMapHere();
  for (const [N, K, scale] of [[3, 64, 1], [40, 448, 1e-2], [600, 64, 3]] as const) {
    const x = randomMatrix(rng, N * K, scale).map(f32);
    for (const dq of [false, true]) {
      const what = `[${N}, ${K}] ${dq ? 'double' : 'plain'}`;
      const w = vk.quantize(vk.tensor(x, [N, K], { backend: ref }), 'nf4', { doubleQuant: dq });
      assert.equal(w.doubleQuant, dq);
      const { codes, absmax, dqs } = readNf4Here(w.bytes, N * K, dq);
      const trueMax = Array.from({ length: (N * K) / 64 }, (_, b) => Math.max(...x.slice(b * 64, b * 64 + 64).map(Math.abs)));
      // codes come from the exact absmax, double quantization or not
      for (let i = 0; i < N * K; i++) {
        const v = x[i] / trueMax[Math.floor(i / 64)];
        const c = codes[i];
        assert.ok(Math.abs(v - NF4[c]) <= Math.abs(v - NF4[nearestNf4(v)]) + 1e-6, `${what}: element ${i} (${v}) got code ${c}`);
      }
      if (!dqs) assert.deepEqual(absmax, trueMax, `${what}: absmax stored exactly`);
      else {
        assert.equal(dqs.map.length, 256);
        // f32 arithmetic (linspace, midpoints, scaling) against float64 here: a few f32 ulps
        dqs.map.forEach((m, i) => assert.ok(Math.abs(m - mapHere[i]) <= 2 ** -21 * Math.abs(mapHere[i]), `map[${i}] ${m} vs ${mapHere[i]}`));
        const mean = trueMax.reduce((a, v) => a + v, 0) / trueMax.length;
        assert.ok(Math.abs(dqs.offset - mean) <= mean * 1e-6, `${what}: offset ${dqs.offset} is the mean ${mean}`);
        for (let b2 = 0; b2 < dqs.absmax2.length; b2++) {
          const seg = trueMax.slice(b2 * 256, b2 * 256 + 256).map((a) => a - dqs.offset);
          const a2 = Math.max(...seg.map(Math.abs));
          assert.ok(Math.abs(dqs.absmax2[b2] - a2) <= a2 * 1e-6, `${what}: absmax2[${b2}]`);
          seg.forEach((s, j) => {
            const v = s / dqs.absmax2[b2];
            const q = dqs.qabsmax[b2 * 256 + j];
            const best = Math.min(...mapHere.map((m) => Math.abs(v - m)));
            assert.ok(Math.abs(v - mapHere[q]) <= best + 1e-6, `${what}: absmax ${b2 * 256 + j} (${v}) got map entry ${q}`);
          });
        }
        // the read-back absmax is within the map's resolution of the true one
        absmax.forEach((a, b) => assert.ok(Math.abs(a - trueMax[b]) <= 0.05 * trueMax[b] + 1e-7, `${what}: absmax ${b}`));
      }
      const here = codes.map((c, i) => f32(NF4[c] * absmax[Math.floor(i / 64)]));
      assert.deepEqual(w.dequantize().toArray(), here, `${what}: dequantize equals the layout decoded here`);
      const wn = vk.quantize(vk.tensor(x, [N, K], { backend: nat }), 'nf4', { doubleQuant: dq });
      assert.deepEqual([...wn.bytes], [...w.bytes], `${what}: the native backend stores the same bytes`);
      w.dispose();
      wn.dispose();
    }
  }
  // a block of zeros has absmax 0 and decodes to zeros; a constant absmax makes absmax2 0 and reads back the offset
  const z = vk.quantize(vk.tensor([...Array(64).fill(0), ...Array(64).fill(0.5)], [2, 64], { backend: ref }), 'nf4');
  assert.deepEqual(z.dequantize().toArray(), [...Array(64).fill(0), ...Array(64).fill(0.5)]);
  const c = vk.quantize(vk.tensor(Array(128).fill(-0.25), [2, 64], { backend: ref }), 'nf4');
  assert.deepEqual(c.dequantize().toArray(), Array(128).fill(-0.25));
  z.dispose();
  c.dispose();
});

// ---- products

// decode rows (<= 8) and decoded panels (> 8); K = 448 is 7 NF4 blocks, 14 Q4_0 blocks
const SHAPES: [number, number, number][] = [[1, 40, 64], [3, 17, 128], [8, 33, 448], [9, 20, 64], [40, 70, 448], [130, 48, 256]];
const FORMATS: [vk.QuantFormat, vk.QuantOptions][] = [['q4_0', {}], ['nf4', { doubleQuant: false }], ['nf4', {}]];

function checkLinear(name: string, fmt: vk.QuantFormat, qo: vk.QuantOptions, M: number, N: number, K: number, bias: boolean): void {
  vk.tidy(() => {
    const rng = new vk.Rng(M * 131 + N * 7 + K);
    const wv = randomMatrix(rng, N * K), xv = randomMatrix(rng, M * K), bv = randomMatrix(rng, N);
    const tag = `${name} ${fmt}${qo.doubleQuant === false ? ' plain' : ''} ${M}x${K}x${N}`;
    const w = vk.quantize(vk.tensor(wv, [N, K], { backend: nat }), fmt, qo);
    const x = vk.tensor(xv, [M, K], { backend: nat });
    const bt = bias ? vk.tensor(bv, [N], { backend: nat }) : null;
    const y = vk.linear(x, w, bt).toArray();
    // the product with the dequantized weight, in f32 (native) and in float64 (reference)
    const deq = w.dequantize();
    assertClose(`${tag} vs dequantized (native f32)`, y, vk.linear(x, deq, bt).toArray(), TOL);
    const yr = vk.linear(vk.tensor(xv, [M, K], { backend: ref }), vk.tensor(deq.toArray(), [N, K], { backend: ref }),
      bias ? vk.tensor(bv, [N], { backend: ref }) : null);
    assertClose(`${tag} vs dequantized (reference)`, y, yr.toArray(), TOL);
    // the reference backend's own quantized product
    const wr = vk.quantize(vk.tensor(wv, [N, K], { backend: ref }), fmt, qo);
    assertClose(`${tag} vs reference quantized`, y, vk.linear(vk.tensor(xv, [M, K], { backend: ref }), wr, bias ? vk.tensor(bv, [N], { backend: ref }) : null).toArray(), TOL);
    // the input gradient g · deq(W) against g · W_deq in float64
    const g = randomMatrix(rng, M * N);
    const gx = vk.tidy(() => nat.quantLinearGradInput(vk.tensor(g, [M, N], { backend: nat }), w).toArray());
    assertClose(`${tag} grad input`, gx, vk.matmul(vk.tensor(g, [M, N], { backend: ref }), vk.tensor(deq.toArray(), [N, K], { backend: ref })).toArray(), TOL);
    w.dispose();
    wr.dispose();
  });
}

test('linear with a Q4_0 or NF4 weight equals the product with its dequantized weight on every native path', () => {
  for (const [fmt, qo] of FORMATS) {
    for (const [M, N, K] of SHAPES) checkLinear('default', fmt, qo, M, N, K, M % 2 === 1);
    withNtRows(0, () => { for (const [M, N, K] of SHAPES) checkLinear('no gemm_nt', fmt, qo, M, N, K, true); });
    withoutSimd(() => { for (const [M, N, K] of SHAPES) checkLinear('scalar', fmt, qo, M, N, K, true); });
  }
});

test('linear with a 4-bit weight: gradient with respect to x and bias (finite differences), none for W', () => {
  for (const [fmt, qo] of FORMATS)
    for (const [M, N, K] of [[3, 10, 128], [20, 24, 64]] as const) {
      const wv = randomMatrix(new vk.Rng(M + N + K), N * K);
      const qw = new Map<string, vk.QuantizedWeight>();
      const wFor = (b: vk.Backend) => {
        if (!qw.has(b.name)) qw.set(b.name, vk.quantize(vk.tensor(wv, [N, K], { backend: b }), fmt, qo));
        return qw.get(b.name)!;
      };
      checkGrad(`linear ${fmt} ${M}x${K}x${N}`, (x, bias) => vk.linear(x, wFor(x.backend), bias), [{ shape: [M, K] }, { shape: [N] }]);
      withoutSimd(() => checkGrad(`linear ${fmt} scalar ${M}x${K}x${N}`, (x) => vk.linear(x, wFor(x.backend)), [{ shape: [M, K] }], { seed: 3 }));
      for (const w of qw.values()) w.dispose();
    }
});

test('4-bit weights: bad input gives clear errors; memory is engine storage, released by dispose', () => {
  assert.throws(() => vk.quantize(vk.tensor(Array(96).fill(1), [1, 96], { backend: nat }), 'nf4'),
    (e: Error) => e instanceof ShapeError && /nf4 stores rows in blocks of 64.*96 columns/.test(e.message));
  const nan = Array(128).fill(1);
  nan[70] = Infinity;
  assert.throws(() => vk.quantize(vk.tensor(nan, [2, 64], { backend: nat }), 'nf4'), (e: Error) => e instanceof VlmkitError && /Infinity at \[1, 6\]/.test(e.message));
  assert.throws(() => vk.quantize(vk.tensor(Array(32).fill(1e6), [1, 32], { backend: nat }), 'q4_0'), /fp16 scale/);
  assert.throws(() => vk.QuantizedWeight.fromBytes('nf4', [2, 64], new Uint8Array(72), { what: 'model.x.weight' }),
    (e: Error) => e instanceof VlmkitError && /model.x.weight: 72 bytes of packed nf4 data, but \[2, 64\] needs 1100/.test(e.message));
  const before = vk.storageStats();
  const t = vk.tensor(randomMatrix(new vk.Rng(5), 96 * 128), [96, 128], { backend: nat });
  const sizes = { q4_0: 96 * 4 * 18, nf4plain: 96 * 64 + 96 * 2 * 4, nf4: 96 * 64 + 192 + 4 + 4 + 1024 };
  const a = vk.quantize(t, 'q4_0'), b = vk.quantize(t, 'nf4', { doubleQuant: false }), c = vk.quantize(t, 'nf4');
  assert.deepEqual([a.bytes.length, b.bytes.length, c.bytes.length], [sizes.q4_0, sizes.nf4plain, sizes.nf4]);
  assert.equal(vk.storageStats().bytes - before.bytes, 96 * 128 * 4 + sizes.q4_0 + sizes.nf4plain + sizes.nf4);
  const copy = vk.QuantizedWeight.fromBytes('nf4', [96, 128], c.bytes, { backend: nat });
  vk.tidy(() => assert.deepEqual(copy.dequantize().toArray(), c.dequantize().toArray()));
  for (const d of [t, a, b, c, copy]) d.dispose();
  assert.deepEqual(vk.storageStats(), before);
});
