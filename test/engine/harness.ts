// Test harness for ops, after ggml's test-backend-ops: run the same op on the native and reference backends and
// compare; check every gradient against central finite differences computed in float64 on the reference backend.
import assert from 'node:assert/strict';
import {
  type Backend, Tensor, backward, getBackend, noGrad, referenceBackend, tensor, tidy, Rng,
} from '../../src/engine/index.js';
import { type NativeIsa, nativeIsa, nativeIsas, setNativeIsa } from '../../src/engine/backend/native/index.js';
import { loadAddon } from '../../src/engine/backend/native/addon.js';

export const ref = referenceBackend;
export const nat: Backend = getBackend('native');

export interface InputSpec {
  shape: number[];
  /** 'f32' (default) or an int dtype; for ints give `int` (exclusive upper bound) */
  dtype?: 'f32' | 'i32' | 'i64' | 'u8' | 'bf16' | 'f16';
  int?: number;
  /** value range for floats, default [-1, 1] */
  range?: [number, number];
  /** differentiate with respect to this input (floats only; default true) */
  grad?: boolean;
  /** make a non-contiguous view on the native side: a transposed copy whose transpose is passed */
  strided?: boolean;
  /** explicit values instead of random */
  values?: number[];
}

export function randomValues(spec: InputSpec, rng: Rng): number[] {
  const n = spec.shape.reduce((a, d) => a * d, 1);
  if (spec.values) return spec.values.slice();
  const out = new Array<number>(n);
  const [lo, hi] = spec.range ?? [-1, 1];
  for (let i = 0; i < n; i++) out[i] = spec.int !== undefined ? rng.int(spec.int) : lo + (hi - lo) * rng.next();
  return out;
}

/** Builds a tensor on backend b with the given values; `strided` makes it a transposed view of a copy. */
export function make(b: Backend, spec: InputSpec, values: number[], dtype?: Tensor['dtype']): Tensor {
  const dt = dtype ?? spec.dtype ?? 'f32';
  if (spec.strided && spec.shape.length >= 2) {
    const r = spec.shape.length;
    const tshape = spec.shape.slice();
    [tshape[r - 2], tshape[r - 1]] = [tshape[r - 1], tshape[r - 2]];
    // values are in logical order of spec.shape; lay them out transposed
    const rows = spec.shape[r - 2], cols = spec.shape[r - 1], batch = values.length / (rows * cols);
    const tv = new Array<number>(values.length);
    for (let q = 0; q < batch; q++)
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) tv[q * rows * cols + j * rows + i] = values[q * rows * cols + i * cols + j];
    const base = tensor(tv, tshape, { dtype: dt, backend: b });
    const st = base.strides.slice();
    [st[r - 2], st[r - 1]] = [st[r - 1], st[r - 2]];
    const v = base.view(spec.shape, st, 0);
    base.dispose();
    return v;
  }
  return tensor(values, spec.shape, { dtype: dt, backend: b });
}

export function maxRelErr(a: number[], b: number[]): { rel: number; abs: number; at: number } {
  assert.equal(a.length, b.length, 'length mismatch');
  let maxRef = 0, maxDiff = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(b[i]));
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxDiff)) { maxDiff = d; at = i; }
  }
  return { rel: maxDiff / Math.max(maxRef, 1e-30), abs: maxDiff, at };
}

export function assertClose(name: string, got: number[], want: number[], tol: number): void {
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]) !== Number.isNaN(got[i])) assert.fail(`${name}: NaN mismatch at ${i}: got ${got[i]}, want ${want[i]}`);
    if (want[i] === -Infinity || want[i] === Infinity) assert.equal(got[i], want[i], `${name}: at ${i}`);
  }
  const finite = (v: number[]) => v.map((x) => (Number.isFinite(x) ? x : 0));
  const e = maxRelErr(finite(got), finite(want));
  if (!(e.rel <= tol)) assert.fail(`${name}: max|diff|/max|ref| = ${e.rel.toExponential(3)} > ${tol} (at ${e.at}: got ${got[e.at]}, want ${want[e.at]})`);
}

type OpFn = (...xs: Tensor[]) => Tensor | Tensor[];

/**
 * The instruction sets the native checks run under: every one the CPU has (whichever is the default), or from the
 * level that VLMKIT_ISA or withoutSimd set downwards, so one test run covers the AVX-512, AVX2 and scalar kernels.
 */
export function isaPaths(): NativeIsa[] {
  const all = nativeIsas(), now = all.indexOf(nativeIsa());
  const env = process.env.VLMKIT_ISA as NativeIsa | undefined;
  // the level used when no test sets one: what VLMKIT_ISA forces, else the CPU's default
  const top = all.indexOf(env || (loadAddon().cpuFeatures() as { default: NativeIsa }).default);
  assert.ok(now >= 0 && top >= 0, `unknown instruction set: ${nativeIsa()} / ${env}`);
  if (now > top) return all.slice(now);  // withoutSimd or setNativeIsa lowered it: that level and below
  return all.slice(env ? top : 0);
}

/** Runs fn(isa) once under each of isaPaths(), restoring the level in use afterwards. */
export function forEachIsa(fn: (isa: NativeIsa) => void): void {
  const paths = isaPaths();
  assert.ok(paths.length > 0, 'no instruction set to run the native kernels under');
  const before = nativeIsa();
  try {
    for (const isa of paths) {
      setNativeIsa(isa);
      fn(isa);
    }
  } finally {
    setNativeIsa(before);
  }
}

/**
 * Runs `fn` on native (f32 inputs) and reference (f32 inputs, f64 arithmetic) and compares every output, the
 * native side under each instruction set of isaPaths().
 */
export function checkForward(name: string, fn: OpFn, specs: InputSpec[], tol = 1e-5, seed = 1): void {
  tidy(() => {
    const rng = new Rng(seed);
    const vals = specs.map((s) => randomValues(s, rng));
    const outR = [fn(...specs.map((s, i) => make(ref, s, vals[i])))].flat();
    const want = outR.map((o) => o.toArray());
    forEachIsa((isa) => tidy(() => {
      const outN = [fn(...specs.map((s, i) => make(nat, s, vals[i])))].flat();
      assert.equal(outN.length, outR.length);
      outN.forEach((o, i) => {
        assert.deepEqual(o.shape, outR[i].shape, `${name} [${isa}]: output ${i} shape`);
        assert.equal(o.backend.name, 'native', `${name} [${isa}]: output ${i} is not on the native backend`);
        assertClose(`${name} [${isa}] output ${i}`, o.toArray(), want[i], tol);
      });
    }));
  });
}

/**
 * Gradient check: autograd on the reference backend in f64 against central finite differences of
 * sum(out * w) (w a fixed random weight), then native autograd (f32) against reference autograd.
 */
export function checkGrad(
  name: string,
  fn: OpFn,
  specs: InputSpec[],
  o: { tolFd?: number; tolNative?: number; eps?: number; seed?: number; maxProbe?: number; native?: boolean } = {},
): void {
  const tolFd = o.tolFd ?? 1e-6, tolNative = o.tolNative ?? 1e-4, eps = o.eps ?? 1e-6;
  tidy(() => {
    const rng = new Rng(o.seed ?? 7);
    const vals = specs.map((s) => randomValues(s, rng));
    const isF = (s: InputSpec) => !s.dtype || s.dtype === 'f32';
    const diff = specs.map((s) => isF(s) && s.grad !== false);
    // weights for the scalar objective
    const probe = noGrad(() => [fn(...specs.map((s, i) => make(ref, s, vals[i], isF(s) ? 'f64' : undefined)))].flat());
    const weights = probe.map((t) => Array.from({ length: t.size }, () => rng.next() * 2 - 1));
    const objective = (outs: Tensor[]) => outs.reduce((acc, t, k) => {
      const v = t.toArray();
      let s = 0;
      for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i])) s += v[i] * weights[k][i];
      return acc + s;
    }, 0);
    const runGrad = (b: Backend, dt: 'f64' | 'f32') => {
      const ins = specs.map((s, i) => {
        const t = make(b, s, vals[i], isF(s) ? dt : undefined);
        if (diff[i]) t.requiresGrad = true;
        return t;
      });
      const outs = [fn(...ins)].flat();
      let seeded = false;
      outs.forEach((t, k) => {
        if (!t.requiresGrad) return;
        const w = tensor(weights[k], t.shape, { dtype: t.dtype === 'f64' ? 'f64' : 'f32', backend: b });
        backward(t, w, { retainGraph: true });
        seeded = true;
      });
      assert.ok(seeded, `${name}: no output requires grad`);
      return ins.map((t) => (t.grad ? t.grad.toArray() : null));
    };
    const gRef = runGrad(ref, 'f64');
    specs.forEach((s, i) => {
      if (!diff[i]) return;
      const n = vals[i].length;
      const probeIdx = n <= (o.maxProbe ?? 64) ? [...Array(n).keys()] : Array.from({ length: o.maxProbe ?? 64 }, () => rng.int(n));
      const fd: number[] = [], an: number[] = [];
      for (const j of probeIdx) {
        const at = (d: number) => noGrad(() => {
          const v2 = vals.map((v) => v.slice());
          v2[i][j] += d;
          return objective([fn(...specs.map((s2, k) => make(ref, s2, v2[k], isF(s2) ? 'f64' : undefined)))].flat());
        });
        fd.push((at(eps) - at(-eps)) / (2 * eps));
        an.push(gRef[i]![j]);
      }
      assertClose(`${name} d/dinput${i} (reference vs finite differences)`, an, fd, tolFd);
    });
    if (o.native !== false) {
      forEachIsa((isa) => {
        const gNat = runGrad(nat, 'f32');
        specs.forEach((_, i) => {
          if (!diff[i]) return;
          assertClose(`${name} d/dinput${i} (native [${isa}] vs reference)`, gNat[i]!, gRef[i]!, tolNative);
        });
      });
    }
  });
}

/** Runs fn with linear products of up to `rows` rows on the gemm_nt kernel (0: OpenBLAS for every row count). */
export function withNtRows(rows: number, fn: () => void): void {
  const addon = loadAddon();
  const before = addon.gemmNtMaxRows() as number;
  addon.gemmNtMaxRows(rows);
  try {
    fn();
  } finally {
    addon.gemmNtMaxRows(before);
  }
}

/** Runs fn with the native kernels on their scalar (non-AVX2) paths, so the fallbacks are checked here too. */
export function withoutSimd(fn: () => void): void {
  const addon = loadAddon();
  addon.setSimd(false);
  try {
    fn();
  } finally {
    addon.setSimd(true);
  }
}
