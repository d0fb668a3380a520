// Elementwise ops: every unary op and its derivative, every binary op under each broadcasting path (flat,
// scalar, row, column, general strided), native against reference and gradients against finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as vk from '../../src/engine/index.js';
import type { UnaryOp } from '../../src/engine/index.js';
import { type InputSpec, assertClose, checkForward, checkGrad, nat, ref, withoutSimd } from './harness.js';

const UNARY: { op: UnaryOp; fn: (x: vk.Tensor) => vk.Tensor; range: [number, number] }[] = [
  { op: 'neg', fn: vk.neg, range: [-5, 5] },
  { op: 'exp', fn: vk.exp, range: [-30, 30] },
  { op: 'log', fn: vk.log, range: [1e-3, 50] },
  { op: 'sqrt', fn: vk.sqrt, range: [1e-3, 50] },
  { op: 'rsqrt', fn: vk.rsqrt, range: [1e-2, 50] },
  { op: 'tanh', fn: vk.tanh, range: [-8, 8] },
  { op: 'sigmoid', fn: vk.sigmoid, range: [-20, 20] },
  { op: 'silu', fn: vk.silu, range: [-20, 20] },
  { op: 'gelu', fn: vk.gelu, range: [-8, 8] },
  { op: 'gelu_tanh', fn: vk.geluTanh, range: [-8, 8] },
  { op: 'logsigmoid', fn: vk.logsigmoid, range: [-20, 20] },
  { op: 'relu', fn: vk.relu, range: [-5, 5] },
  { op: 'abs', fn: vk.abs, range: [-5, 5] },
  { op: 'square', fn: vk.square, range: [-5, 5] },
];

// Tolerance (max |native - reference| / max |reference|): the native kernels are accurate to a few f32 ulp
// (measured worst 2.2e-7 over [-12, 12] for the transcendental ones, exact for neg/abs/relu/square/sqrt), so
// 1e-6 leaves headroom without hiding a wrong formula.
const TOL = 1e-6;

test('unary ops: native equals reference (odd sizes, views, batch 1, multi-threaded sizes)', () => {
  for (const { op, fn, range } of UNARY) {
    checkForward(`${op} [37, 29]`, fn, [{ shape: [37, 29], range }], TOL);
    checkForward(`${op} transposed view`, fn, [{ shape: [3, 37, 29], range, strided: true }], TOL);
    checkForward(`${op} [1, 5]`, fn, [{ shape: [1, 5], range }], TOL);
    checkForward(`${op} scalar`, fn, [{ shape: [], range }], TOL);
    checkForward(`${op} [7]`, fn, [{ shape: [7], range }], TOL);
    // above the pool's grain: split across threads
    checkForward(`${op} [300, 257]`, fn, [{ shape: [300, 257], range }], TOL);
  }
});

test('unary ops on bf16 and f16 inputs compute in f32', () => {
  for (const dtype of ['bf16', 'f16'] as const)
    for (const { op, fn, range } of UNARY.filter((u) => ['exp', 'silu', 'gelu', 'square'].includes(u.op)))
      checkForward(`${op} ${dtype}`, fn, [{ shape: [9, 13], range: [Math.max(range[0], -8), Math.min(range[1], 8)], dtype }], TOL);
});

test('unary ops: special values (inf, NaN, zero, denormal range) match the reference', () => {
  const special = [0, -0, Infinity, -Infinity, NaN, 1e-40, -1e-40, 88.7, -88.7, 100, -100, 1e-8];
  for (const { op, fn } of UNARY) {
    if (op === 'log' || op === 'sqrt' || op === 'rsqrt') continue;
    const yn = fn(vk.tensor(special, [special.length], { backend: nat })).toArray();
    const yr = fn(vk.tensor(special, [special.length], { backend: ref })).toArray();
    for (let i = 0; i < special.length; i++) {
      const a = yn[i], b = yr[i];
      if (Number.isNaN(b)) assert.ok(Number.isNaN(a), `${op}(${special[i]}): got ${a}, want NaN`);
      else if (a === b) continue;
      else if (!Number.isFinite(b) || Math.abs(b) > 1e-30) assert.ok(Math.abs(a - b) <= 1e-6 * Math.abs(b), `${op}(${special[i]}): got ${a}, want ${b}`);
      // results below 1e-30 (the denormal range) may flush to 0 in f32
      else assert.ok(Math.abs(a - b) <= 1e-30, `${op}(${special[i]}): got ${a}, want ${b}`);
    }
  }
  const pos = [0, Infinity, NaN, 1e-40, 4, 0.25];
  for (const fn of [vk.log, vk.sqrt, vk.rsqrt]) {
    const yn = fn(vk.tensor(pos, [pos.length], { backend: nat })).toArray();
    const yr = fn(vk.tensor(pos, [pos.length], { backend: ref })).toArray();
    // 1e-40 is a denormal: f32 math keeps it (log = -92.1)
    assertClose('log/sqrt/rsqrt special', yn, yr, 1e-6);
  }
});

test('unary gradients: reference vs finite differences, native vs reference', () => {
  for (const { op, fn, range } of UNARY) {
    const r: [number, number] = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? [0.3, 3] : [Math.max(range[0], -4), Math.min(range[1], 4)];
    // relu/abs are not differentiable at 0; random points in [-4, 4] keep away from it by far more than eps
    checkGrad(op, fn, [{ shape: [4, 7], range: r }], { tolNative: 1e-5 });
    checkGrad(`${op} transposed`, fn, [{ shape: [2, 5, 3], range: r, strided: true }], { tolNative: 1e-5 });
  }
});

test('unaryBackward on views of both x and gy', () => {
  for (const op of ['silu', 'gelu', 'tanh', 'exp'] as UnaryOp[]) {
    const spec: InputSpec = { shape: [5, 19, 11], range: [-3, 3], strided: true };
    checkForward(`${op}'`, (x, g) => x.backend.unaryBackward(op, x, g), [spec, { ...spec, range: [-1, 1] }], TOL);
    checkForward(`${op}' mixed`, (x, g) => x.backend.unaryBackward(op, x, g), [spec, { shape: [5, 19, 11] }], TOL);
  }
});

const BINARY: { op: string; fn: (a: vk.Tensor | number, b: vk.Tensor | number) => vk.Tensor; range: [number, number] }[] = [
  { op: 'add', fn: vk.add, range: [-3, 3] },
  { op: 'sub', fn: vk.sub, range: [-3, 3] },
  { op: 'mul', fn: vk.mul, range: [-3, 3] },
  { op: 'div', fn: vk.div, range: [0.5, 3] },
  { op: 'pow', fn: vk.pow, range: [0.5, 2] },
  { op: 'maximum', fn: vk.maximum, range: [-3, 3] },
  { op: 'minimum', fn: vk.minimum, range: [-3, 3] },
];

// Broadcasting variants: [a spec, b spec] covering the flat, scalar, row, column and general strided paths.
const VARIANTS: [string, number[], number[], Partial<InputSpec>?, Partial<InputSpec>?][] = [
  ['same shape', [17, 33], [17, 33]],
  ['same shape, multi-threaded', [300, 257], [300, 257]],
  ['scalar right', [4, 33], []],
  ['scalar left', [], [4, 33]],
  ['size-1 tensor right', [5, 7], [1]],
  ['row broadcast (bias)', [5, 17, 33], [33]],
  ['row broadcast, multi-threaded', [512, 160], [160]],
  ['row on the left', [1, 33], [2, 5, 33]],
  ['column broadcast', [5, 17, 1], [17, 33]],
  ['both sides broadcast', [4, 1, 3], [1, 5, 1]],
  ['new leading dims', [2, 3, 4, 5], [4, 5]],
  ['transposed views', [6, 9], [6, 9], { strided: true }, { strided: true }],
  ['view + row', [3, 7, 9], [9], { strided: true }],
  ['view + column', [7, 9], [7, 1], { strided: true }],
  ['batch 1', [1, 1, 8], [1, 8]],
  ['empty', [0, 4], [4]],
];

test('binary ops: native equals reference under every broadcasting path', () => {
  for (const { op, fn, range } of BINARY)
    for (const [name, sa, sb, xa, xb] of VARIANTS)
      // exact IEEE ops in f32 on both sides (reference rounds its f64 result once): 1e-6 covers pow's libm
      checkForward(`${op} ${name}`, (a, b) => fn(a, b), [{ shape: sa, range, ...xa }, { shape: sb, range, ...xb }], 1e-6);
});

test('binary ops with a number operand', () => {
  checkForward('x * 3', (a) => vk.mul(a, 3), [{ shape: [5, 6] }], 0);
  checkForward('2 - x', (a) => vk.sub(2, a), [{ shape: [5, 6] }], 0);
  checkForward('x ^ 2', (a) => vk.pow(a, 2), [{ shape: [5, 6] }], 1e-7);
  checkForward('1 / x', (a) => vk.div(1, a), [{ shape: [5, 6], range: [0.5, 2] }], 1e-7);
});

test('maximum/minimum propagate NaN from either side', () => {
  const a = [NaN, 1, 2, NaN, -Infinity, 3, 0, 5, 6, 7];
  const b = [1, NaN, 3, NaN, 1, Infinity, -0, 4, NaN, 8];
  for (const fn of [vk.maximum, vk.minimum]) {
    const yn = fn(vk.tensor(a, [10], { backend: nat }), vk.tensor(b, [10], { backend: nat })).toArray();
    const yr = fn(vk.tensor(a, [10], { backend: ref }), vk.tensor(b, [10], { backend: ref })).toArray();
    assertClose('max/min NaN', yn, yr, 0);
  }
});

test('binary gradients with broadcasting', () => {
  const cases: [string, number[], number[]][] = [['same', [3, 4], [3, 4]], ['row', [2, 3, 4], [4]], ['column', [3, 1], [2, 3, 5]], ['scalar', [3, 4], []]];
  for (const { op, fn, range } of BINARY.filter((b) => !['maximum', 'minimum'].includes(b.op)))
    for (const [name, sa, sb] of cases)
      checkGrad(`${op} ${name}`, (a, b) => fn(a, b), [{ shape: sa, range }, { shape: sb, range }], { tolNative: 1e-5 });
});

test('results do not depend on the thread count or on an element\'s position', () => {
  const x = vk.randn([70001], { backend: nat, seed: 5, std: 3 });
  const before = vk.nativeThreads();
  const run = () => UNARY.map((u) => u.fn(x).toArray());
  vk.setNativeThreads(1);
  const one = run();
  vk.setNativeThreads(Math.max(2, before));
  const many = run();
  vk.setNativeThreads(before);
  one.forEach((v, i) => assert.deepEqual(many[i], v, UNARY[i].op));
  // a slice starting at an odd offset gives the same values as the whole
  const s = vk.slice(x, 0, 3, 70001);
  for (const u of UNARY) {
    const whole = u.fn(x).toArray().slice(3), part = u.fn(s).toArray();
    assert.deepEqual(part, whole, `${u.op} on an offset view`);
  }
});

test('large outputs (streaming stores) equal the regular path bit for bit', () => {
  // 4.5M floats = 18 MB: above the 16 MB threshold for non-temporal stores; a 1001-element slice at an odd
  // offset takes the regular path (and an unaligned start)
  vk.tidy(() => {
    const n = 4_500_001;
    const fill = (seed: number, scale: number) => {
      const v = new Float32Array(n);
      let s = seed;
      for (let i = 0; i < n; i++) v[i] = ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * scale;
      return vk.tensor(v, [n], { backend: nat });
    };
    const x = fill(9, 10), y = fill(10, 2);
    const part = (t: vk.Tensor) => vk.slice(t, 0, 1003, 2004);
    const mid = (t: vk.Tensor) => {
      const v = Array.from((t.data as Float32Array).subarray(1003, 2004));
      t.dispose();
      return v;
    };
    for (const u of UNARY) {
      assert.deepEqual(mid(u.fn(x)), u.fn(part(x)).toArray(), u.op);
      assert.deepEqual(mid(nat.unaryBackward(u.op, x, y)), nat.unaryBackward(u.op, part(x), part(y)).toArray(), `${u.op}'`);
    }
    for (const { op, fn } of BINARY) assert.deepEqual(mid(fn(x, y)), fn(part(x), part(y)).toArray(), op);
    assert.deepEqual(mid(vk.add(x, 2)), vk.add(part(x), 2).toArray(), 'add scalar');
  });
});

test('shape errors name the op and both shapes', () => {
  const a = vk.zeros([2, 3], { backend: nat }), b = vk.zeros([3, 2], { backend: nat });
  assert.throws(() => vk.mul(a, b), (e: Error) => e.name === 'ShapeError' && /mul: shapes \[2, 3\] and \[3, 2\]/.test(e.message));
  assert.throws(() => vk.exp(vk.zeros([2], { backend: nat, dtype: 'i32' })), /exp: needs float tensors/);
});


test('scalar fallback (no AVX2): every op equals the reference', () => {
  withoutSimd(() => {
    for (const { op, fn, range } of UNARY) {
      checkForward(`${op} scalar path`, fn, [{ shape: [37, 29], range }], TOL);
      checkForward(`${op} scalar path, view`, fn, [{ shape: [3, 7, 9], range, strided: true }], TOL);
      const r: [number, number] = op === 'log' || op === 'sqrt' || op === 'rsqrt' ? [0.3, 3] : [-4, 4];
      checkForward(`${op}' scalar path`, (x, g) => x.backend.unaryBackward(op, x, g), [{ shape: [5, 9], range: r }, { shape: [5, 9] }], TOL);
    }
    for (const { op, fn, range } of BINARY)
      for (const [name, sa, sb, xa, xb] of VARIANTS.filter((v) => !v[0].includes('multi-threaded')))
        checkForward(`${op} ${name} scalar path`, (a, b) => fn(a, b), [{ shape: sa, range, ...xa }, { shape: sb, range, ...xb }], 1e-6);
  });
});
