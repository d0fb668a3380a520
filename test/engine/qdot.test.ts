// The 8-bit-activation decode kernels (native/kernels/qdot.cc), taken by a product with a Q8_0, Q4_0 or NF4 weight
// of up to 8 rows when no graph is recorded (inference). Each instruction-set path (scalar, AVX2 maddubs, AVX-512
// VNNI) is held to (a) the same integer arithmetic derived here independently from the packed bytes, bit for bit:
// int8 activations per 32-value block, exact block sums, their f32 scaling and the fixed order of the f32 sums; and
// (b) the float64 product with the dequantized weight, within the bound the activation rounding gives (plus NF4's
// int8 codes and the f32 sums). Also: the same bits run to run and on 1 or 2 threads; NaN and zero rows; products
// under gradient tracking, inside gradient checkpointing, or with the kernels turned off stay exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import { forEachIsa, nat } from './harness.js';

const f32 = Math.fround;
const FLT_MIN = 2 ** -126;
type Fmt = 'q8_0' | 'q4_0' | 'nf4';
const FORMATS: [Fmt, vk.QuantOptions][] = [['q8_0', {}], ['q4_0', {}], ['nf4', { doubleQuant: false }], ['nf4', {}]];

function randomMatrix(rng: vk.Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

// IEEE half decoded by its definition.
function halfValue(h: number): number {
  const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Round half to even (the SIMD conversion's rounding), of a value already in f32. */
function rne(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// NF4's codes as the int8 kernels read them: round(127 · code)
const NF4_I8 = Array.from(vk.NF4_CODE, (c) => Math.round(127 * c));

/** One row's 32-value blocks as int8 values (element order) and f32 scales, as the kernels quantize them. */
function quantizeRow(x: Float32Array): { q: number[][]; d: number[]; amax: number[] } {
  const q: number[][] = [], d: number[] = [], amax: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    const blk = Array.from(x.subarray(b * 32, b * 32 + 32));
    const a = Math.max(...blk.map(Math.abs));
    amax.push(a);
    if (!blk.every(Number.isFinite)) { q.push(Array(32).fill(0)); d.push(NaN); continue; }
    const db = f32(a / 127);
    if (!(db >= FLT_MIN)) { q.push(Array(32).fill(0)); d.push(0); continue; }
    const id = f32(1 / db);
    q.push(blk.map((v) => Math.max(-127, Math.min(127, rne(f32(v * id))))));
    d.push(db);
  }
  return { q, d, amax };
}

/** Unit u (32 values) of row n: its f32 scale and int8 values in element order, read from the packed bytes. */
function unitOf(fmt: Fmt, w: vk.QuantizedWeight, absmax: Float32Array | null, n: number, u: number): { scale: number; wq: number[] } {
  const [, K] = w.shape, by = w.bytes;
  if (fmt === 'nf4') {
    const first = n * K + u * 32;
    const wq = Array.from({ length: 32 }, (_, e) => {
      const byte = by[(first + e) >> 1];
      return NF4_I8[(first + e) % 2 === 0 ? byte >> 4 : byte & 15];
    });
    return { scale: f32(absmax![first >> 6] / 127), wq };
  }
  const B = fmt === 'q8_0' ? 34 : 18, at = (n * (K / 32) + u) * B;
  const scale = halfValue(by[at] | (by[at + 1] << 8));
  const wq = Array.from({ length: 32 }, (_, j) =>
    fmt === 'q8_0' ? (by[at + 2 + j] << 24) >> 24 : (j < 16 ? by[at + 2 + j] & 15 : by[at + 2 + j - 16] >> 4) - 8);
  return { scale, wq };
}

/** The kernels' arithmetic: exact int sums, t = (w · d) · s, lane u mod 8, the fixed final order, + bias. */
function emulate(fmt: Fmt, w: vk.QuantizedWeight, x: Float32Array, M: number, bias: Float32Array | null): Float32Array {
  const [N, K] = w.shape, nu = K / 32, nbp = Math.ceil(nu / 8) * 8;
  const absmax = fmt === 'nf4' ? vk.nf4Absmax(w.bytes, N * K, w.doubleQuant) : null;
  const acts = Array.from({ length: M }, (_, m) => quantizeRow(x.subarray(m * K, m * K + K)));
  const out = new Float32Array(M * N);
  for (let n = 0; n < N; n++) {
    const units = Array.from({ length: nu }, (_, u) => unitOf(fmt, w, absmax, n, u));
    for (let m = 0; m < M; m++) {
      const l = Array(8).fill(0);
      for (let u = 0; u < nbp; u++) {
        let s = 0, f = 0;
        if (u < nu) {
          for (let j = 0; j < 32; j++) s += units[u].wq[j] * acts[m].q[u][j];
          f = f32(units[u].scale * acts[m].d[u]);
        }
        l[u % 8] = f32(l[u % 8] + f32(f * s));
      }
      const r = f32(f32(f32(l[0] + l[4]) + f32(l[2] + l[6])) + f32(f32(l[1] + l[5]) + f32(l[3] + l[7])));
      out[m * N + n] = bias ? f32(r + bias[n]) : r;
    }
  }
  return out;
}

function sameBits(what: string, got: Float32Array, want: Float32Array): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
}

/** The native product under noGrad (the 8-bit path). */
function inference(w: vk.QuantizedWeight, x: Float32Array, M: number, bias: Float32Array | null): Float32Array {
  return vk.noGrad(() => vk.tidy(() => {
    const K = w.shape[1];
    return vk.linear(vk.tensor(x, [M, K], { backend: nat }), w, bias ? vk.tensor(bias, [bias.length], { backend: nat }) : null).toFloat32Array();
  }));
}

// rows 1..8; K with a last group of 8 units short (96: 3 units, 576: 18, 448: 14) or whole (256, 1536)
// [1, 60, 320]: NF4 row 51 starts at block 255, so one group of 4 blocks straddles two double-quantization blocks of 256
const SHAPES: [number, number, number][] = [[1, 40, 64], [3, 17, 576], [8, 33, 448], [5, 9, 256], [2, 70, 1536], [4, 12, 96], [1, 60, 320]];

test('8-bit-activation products equal the integer arithmetic derived here, bit for bit, on every instruction set', () => {
  let checked = 0;
  for (const [fmt, qo] of FORMATS) {
    for (const [M, N, K] of SHAPES) {
      if (K % vk.WEIGHT_FORMATS[fmt].blockValues !== 0) continue;
      const rng = new vk.Rng(M * 131 + N * 7 + K);
      const w = vk.quantize(vk.tensor(randomMatrix(rng, N * K), [N, K], { backend: nat }), fmt, qo);
      // activations of uneven size, as a model's are (an outlier block, a tiny one)
      const x = randomMatrix(rng, M * K);
      for (let j = 0; j < 32; j++) { x[j] *= 40; x[K - 1 - j] *= 1e-3; }
      const bias = M % 2 === 1 ? randomMatrix(rng, N) : null;
      const want = emulate(fmt, w, x, M, bias);
      const tag = `${fmt}${qo.doubleQuant === false ? ' plain' : ''} ${M}x${K}x${N}`;
      forEachIsa((isa) => {
        const got = inference(w, x, M, bias);
        sameBits(`${tag} [${isa}]`, got, want);
        sameBits(`${tag} [${isa}] run again`, inference(w, x, M, bias), got);
        checked++;
      });
      const before = vk.nativeThreads();
      try {
        vk.setNativeThreads(1);
        sameBits(`${tag} on one thread`, inference(w, x, M, bias), want);
      } finally {
        vk.setNativeThreads(before);
      }
      w.dispose();
    }
  }
  assert.ok(checked >= 22, `only ${checked} products checked`);
});

test('8-bit-activation products are within the activation rounding of the float64 product with the dequantized weight', () => {
  const delta = Math.max(...Array.from(vk.NF4_CODE, (c, i) => Math.abs(c - NF4_I8[i] / 127)));
  assert.ok(delta > 0 && delta < 0.5 / 127, `NF4 int8 code error ${delta}`);
  for (const [fmt, qo] of FORMATS) {
    for (const [M, N, K] of [[1, 64, 576], [6, 20, 1536]] as const) {
      const rng = new vk.Rng(N + K);
      const w = vk.quantize(vk.tensor(randomMatrix(rng, N * K), [N, K], { backend: nat }), fmt, qo);
      const deq = w.dequantize().toFloat32Array();
      const x = randomMatrix(rng, M * K, 3);
      for (let j = 0; j < 32; j++) x[64 + j] *= 25;
      const absmax = fmt === 'nf4' ? vk.nf4Absmax(w.bytes, N * K, w.doubleQuant) : null;
      const tag = `${fmt}${qo.doubleQuant === false ? ' plain' : ''} ${M}x${K}x${N}`;
      forEachIsa((isa) => {
        const got = inference(w, x, M, null);
        let worst = 0, maxErr = 0;
        for (let m = 0; m < M; m++) {
          const { amax } = quantizeRow(x.subarray(m * K, m * K + K));
          for (let n = 0; n < N; n++) {
            let exact = 0, bound = 0, mag = 0;
            for (let u = 0; u < K / 32; u++) {
              let sw = 0, sx = 0;
              for (let j = u * 32; j < u * 32 + 32; j++) {
                const wv = deq[n * K + j], xv = x[m * K + j];
                exact += wv * xv;
                sw += Math.abs(wv);
                sx += Math.abs(xv);
                mag += Math.abs(wv) * (Math.abs(xv) + amax[u] / 127);
              }
              // |x − d·q| <= d/2 (d = amax/127, up to its f32 roundings); NF4 reads each code within delta
              const codeErr = absmax ? absmax[(n * K + u * 32) >> 6] * delta : 0;
              bound += (amax[u] / 254) * (1 + 1e-4) * (sw + 32 * codeErr) + codeErr * sx;
            }
            // the f32 products and sums of the block terms: at most K/32 + 5 roundings on the way
            bound += (K / 32 + 8) * 2 ** -23 * mag;
            const err = Math.abs(got[m * N + n] - exact);
            assert.ok(Number.isFinite(got[m * N + n]) && err <= bound, `${tag} [${isa}] [${m}, ${n}]: error ${err} > bound ${bound}`);
            worst = Math.max(worst, err / bound);
            maxErr = Math.max(maxErr, err);
          }
        }
        // the bound is not vacuous: the activations really are rounded, by a fair share of it
        assert.ok(maxErr > 0 && worst > 0.02, `${tag} [${isa}]: largest error ${maxErr}, ${worst} of the bound`);
      });
      w.dispose();
    }
  }
});

test('8-bit activations: a row holding NaN gives NaN, a zero row gives the bias, other rows are unaffected', () => {
  const rng = new vk.Rng(5);
  const [N, K] = [24, 128];
  for (const [fmt, qo] of FORMATS) {
    const w = vk.quantize(vk.tensor(randomMatrix(rng, N * K), [N, K], { backend: nat }), fmt, qo);
    const x = randomMatrix(rng, 3 * K);
    x[K + 40] = NaN;
    x.fill(0, 2 * K);
    const bias = randomMatrix(rng, N);
    forEachIsa((isa) => {
      const got = inference(w, x, 3, bias);
      sameBits(`${fmt} [${isa}] row 0`, got.subarray(0, N), emulate(fmt, w, x.subarray(0, K), 1, bias));
      assert.ok(got.subarray(N, 2 * N).every(Number.isNaN), `${fmt} [${isa}]: the NaN row`);
      sameBits(`${fmt} [${isa}] zero row`, got.subarray(2 * N), bias);
    });
    w.dispose();
  }
});

test('products under gradient tracking, inside gradient checkpointing, or with the 8-bit kernels off stay exact', () => {
  const rng = new vk.Rng(9);
  const [M, N, K] = [3, 20, 256];
  for (const [fmt, qo] of FORMATS) {
    vk.tidy(() => {
      const w = vk.quantize(vk.tensor(randomMatrix(rng, N * K), [N, K], { backend: nat }), fmt, qo);
      const xv = randomMatrix(rng, M * K);
      const x = vk.tensor(xv, [M, K], { backend: nat });
      const exact = vk.linear(x, w).toFloat32Array();  // graph recorded: the exact product
      // the exact product is the product with the dequantized weight, to f32 rounding (test/engine/quant*.test.ts)
      const int8 = inference(w, xv, M, null);
      assert.ok(int8.some((v, i) => v !== exact[i]), `${fmt}: the inference product is the 8-bit one`);
      sameBits(`${fmt} checkpoint forward`, vk.checkpoint((a) => vk.linear(a, w), [x]).toFloat32Array(), exact);
      const before = vk.setInt8Activations(false);
      try {
        sameBits(`${fmt} kernels off`, inference(w, xv, M, null), exact);
      } finally {
        vk.setInt8Activations(before);
      }
      sameBits(`${fmt} withExactActivations`, vk.noGrad(() => vk.withExactActivations(() => vk.linear(x, w).toFloat32Array())), exact);
      // more than 8 rows: always the exact kernels
      const x9 = randomMatrix(rng, 9 * K);
      const t9 = vk.tensor(x9, [9, K], { backend: nat });
      sameBits(`${fmt} 9 rows`, inference(w, x9, 9, null), vk.linear(t9, w).toFloat32Array());
      w.dispose();
    });
  }
});
