// `npm run bench:engine`: the engine's kernels against the machine's limits measured in the same run, one JSON
// object per line: {bench, value, unit, <shape/dtype params>, ceiling, ceilingVia, ratio}. The first line describes
// the machine, then the limits (f32 FMA peak of the widest vector unit; read, write and copy bandwidth beyond the
// caches) and the OpenBLAS sgemm anchors, then the memory-bound figures (one-row linears, decode linears, norms,
// elementwise, softmax; each timed alternately with the stream probe of its own traffic over the same bytes), and
// last the compute-bound ones (many-row linears, attention) against the best FMA-peak sample of the whole run, with
// the best GEMM of the run beside them as information (bench/ceilings.ts). Every figure is checked against an f64
// computation on a slice of its output before it is timed. Bandwidths count bytes moved (read + written).
import * as vk from '../src/engine/index.js';
import '../src/engine/backend/native/index.js';
import { bf16ToF32, f16ToF32 } from '../src/engine/dtype.js';
import type { Tensor } from '../src/engine/index.js';
import { bandwidth, beyondCacheBytes, computeFields, fmaPeak, fmaVia, machine, openblasLabel, openblasSgemm, PeakTracker, peakWarning, ratio, timeAgainstProbe, timeMedian, trafficLabel, type Traffic } from './ceilings.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const note = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

const MB = 1 << 20;
const nat = vk.getBackend('native');
const ref = vk.referenceBackend;

// ---------------------------------------------------------------- inputs

/** Fast random fill: f32 uniform in [-1, 1); bf16/f16 as bit patterns of values of magnitude ~[2^-7, 2). */
function randomFill(t: Tensor, seed: number): Tensor {
  let s = seed >>> 0 || 1;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const d = t.data;
  if (t.dtype === 'f32') {
    const f = d as Float32Array;
    for (let i = 0; i < f.length; i++) f[i] = next() / 2147483648 - 1;
  } else {
    const u = d as Uint16Array;
    // bf16: sign | exponent 120..127 | 7 mantissa bits; f16: sign | exponent 8..15 | 10 mantissa bits
    const bf = t.dtype === 'bf16';
    for (let i = 0; i < u.length; i++) {
      const r = next();
      u[i] = bf ? ((r >>> 16) & 0x8000) | ((120 + (r & 7)) << 7) | ((r >>> 3) & 0x7f) : ((r >>> 16) & 0x8000) | ((8 + (r & 7)) << 10) | ((r >>> 3) & 0x3ff);
    }
  }
  return t;
}
const rnd = (shape: number[], dtype: vk.DType, seed: number) => randomFill(vk.empty(shape, { backend: nat, dtype }), seed);

function widenAt(t: Tensor, i: number): number {
  const d = t.data;
  return t.dtype === 'bf16' ? bf16ToF32((d as Uint16Array)[i]) : t.dtype === 'f16' ? f16ToF32((d as Uint16Array)[i]) : (d as Float32Array)[i];
}

// ---------------------------------------------------------------- checks

/** out[m, n] against Σ_k x[m,k]·w[n,k] (+ b[n]) in f64, for the first two rows and the first/last 64 columns. */
function checkLinear(name: string, x: Tensor, w: Tensor, b: Tensor | null, out: Tensor): void {
  const [N, K] = w.shape, M = x.size / K;
  const xd = x.data as Float32Array, od = out.data as Float32Array, bd = b ? (b.data as Float32Array) : null;
  const cols = new Set<number>();
  for (let n = 0; n < Math.min(64, N); n++) cols.add(n), cols.add(N - 1 - n);
  let maxRef = 0, maxDiff = 0;
  for (let m = 0; m < Math.min(2, M); m++)
    for (const n of cols) {
      let s = bd ? bd[n] : 0;
      for (let k = 0; k < K; k++) s += xd[m * K + k] * widenAt(w, n * K + k);
      maxRef = Math.max(maxRef, Math.abs(s));
      maxDiff = Math.max(maxDiff, Math.abs(s - od[m * N + n]));
    }
  if (!(maxDiff <= 1e-4 * maxRef)) throw new Error(`${name}: output differs from the f64 check by ${maxDiff} (max |ref| ${maxRef})`);
}

function checkRows(name: string, got: Tensor, want: Tensor, rows: number[], tol = 1e-4): void {
  const D = want.shape[want.rank - 1];
  const g = got.data as Float32Array, w = want.toArray();
  let maxRef = 0, maxDiff = 0;
  rows.forEach((r, i) => {
    for (let j = 0; j < D; j++) {
      maxRef = Math.max(maxRef, Math.abs(w[i * D + j]));
      maxDiff = Math.max(maxDiff, Math.abs(w[i * D + j] - g[r * D + j]));
    }
  });
  if (!(maxDiff <= tol * maxRef)) throw new Error(`${name}: differs from the reference by ${maxDiff} (max |ref| ${maxRef})`);
}

/** The given rows of a native [R, D] tensor, as a reference-backend tensor. */
function refRows(t: Tensor, rows: number[]): Tensor {
  const D = t.shape[t.rank - 1], d = t.data as Float32Array;
  const v: number[] = [];
  for (const r of rows) for (let j = 0; j < D; j++) v.push(d[r * D + j]);
  return vk.tensor(v, [rows.length, D], { backend: ref });
}

/** Per-row statistics (mean/rstd) of the given rows, as a reference-backend tensor. */
function stat(t: Tensor, rows: number[]): Tensor {
  const d = t.data as Float32Array;
  return vk.tensor(rows.map((r) => d[r]), [rows.length], { backend: ref });
}

// ---------------------------------------------------------------- linear

const SMOL = { hidden: 576, inter: 1536, heads: 9, kvHeads: 3, headDim: 64, layers: 30, vocab: 49280 };
// [M x K] x [K x N] as the brief writes them: vision MLP up, vision attention projection, text prefill MLP up,
// text lm_head at decode
const LINEAR_SHAPES: [number, number, number][] = [[1024, 768, 3072], [1024, 768, 768], [100, 576, 1536], [1, 576, 49280]];

type BestGemm = { gflops: number; via: string };

/** A compute-bound figure, emitted at the end against the best FMA-peak sample and the best GEMM of the run. */
export interface ComputeRow { row: Row; gflops: number; gemm?: string }

/**
 * Linear products. Many rows (compute-bound): GFLOP/s, kept for the end (against the FMA peak, and the best GEMM of
 * the run as information). One row (memory-bound): weight bytes per second against the read bandwidth over as many
 * bytes.
 */
function benchLinear(peak: PeakTracker, compute: ComputeRow[]): void {
  for (const dtype of ['f32', 'bf16'] as const)
    for (const [M, K, N] of LINEAR_SHAPES)
      vk.tidy(() => {
        const x = rnd([M, K], 'f32', 1), w = rnd([N, K], dtype, 2), b = rnd([N], 'f32', 3);
        const shape = `[${M}x${K}]x[${K}x${N}]`;
        for (const bias of [false, true]) {
          if (bias && M === 1) continue;
          const out = vk.linear(x, w, bias ? b : null);
          checkLinear(`linear ${dtype} ${shape}`, x, w, bias ? b : null, out);
          out.dispose();
          if (M > 8) peak.sample();
          const fn = () => vk.linear(x, w, bias ? b : null).dispose();
          if (M > 8) {
            const t = timeMedian(fn, { minMs: 400 });
            const gflops = (2 * M * N * K) / t / 1e9;
            compute.push({ row: { bench: 'linear', shape, M, K, N, dtype, bias, value: r3(gflops), unit: 'GFLOP/s', ms: r3(t * 1e3) }, gflops, gemm: `vlmkit linear ${dtype} ${shape}${bias ? ' + bias' : ''}` });
            continue;
          }
          // memory-bound: the weight is streamed once per call (x and the output are a few KB), against a read
          // sweep of as many bytes timed alternately with it
          const bytes = w.size * (dtype === 'f32' ? 4 : 2);
          const m = timeAgainstProbe(fn, { reads: 1, writes: 0 }, bytes);
          const gbs = bytes / m.t / 1e9;
          emit({ bench: 'linear', shape, M, K, N, dtype, bias, value: r3(gbs), unit: 'GB/s', gflops: r3((2 * M * N * K) / m.t / 1e9), bytes, ms: r3(m.t * 1e3), ceiling: r3(m.ceilingGBs), ceilingVia: `read bandwidth: ${m.via}`, ratio: r3(ratio(gbs, m.ceilingGBs)) });
        }
      });
}

/** Few-row (decode) linears over weights too big for the caches: copies of the weight are cycled. */
function benchDecodeLinears(): void {
  const shapes: [string, number, number][] = [
    ['q/o_proj', SMOL.hidden, SMOL.hidden],
    ['k/v_proj', SMOL.hidden, SMOL.kvHeads * SMOL.headDim],
    ['gate/up_proj', SMOL.hidden, SMOL.inter],
    ['down_proj', SMOL.inter, SMOL.hidden],
  ];
  for (const dtype of ['bf16', 'f16', 'f32'] as const)
    for (const M of [1, 4])
      for (const [name, K, N] of shapes)
        vk.tidy(() => {
          const bytes = N * K * (dtype === 'f32' ? 4 : 2);
          const copies = Math.max(2, Math.ceil((96 * MB) / bytes));
          const ws = Array.from({ length: copies }, (_, i) => rnd([N, K], dtype, 10 + i));
          const x = rnd([M, K], 'f32', 5);
          const out = vk.linear(x, ws[0]);
          checkLinear(`decode linear ${name} ${dtype}`, x, ws[0], null, out);
          out.dispose();
          const m = timeAgainstProbe(() => { for (const w of ws) vk.linear(x, w).dispose(); }, { reads: 1, writes: 0 }, bytes * copies, 300, 5);
          const t = m.t / copies, gbs = bytes / t / 1e9;
          emit({ bench: 'linear', case: 'decode', proj: name, shape: `[${M}x${K}]x[${K}x${N}]`, M, K, N, dtype, value: r3(gbs), unit: 'GB/s', us: r3(t * 1e6), ceiling: r3(m.ceilingGBs), ceilingVia: `read bandwidth: ${m.via}`, ratio: r3(ratio(gbs, m.ceilingGBs)) });
        });
}

/**
 * Q8_0 weights (ggml's blocks, read inside the product): a decode product [1x576]x[576x1536] in weight GB/s
 * (copies cycled past the caches) against the read bandwidth over as many bytes, and a prompt-sized
 * [100x576]x[576x1536] in GFLOP/s, kept for the end with the other compute-bound rows (against the FMA peak).
 */
function benchQuant(compute: ComputeRow[]): void {
  const [K, N] = [SMOL.hidden, SMOL.inter];
  for (const M of [1, 100])
    vk.tidy(() => {
      const bytes = vk.QuantizedWeight.byteLength('q8_0', [N, K]);
      const copies = M === 1 ? Math.max(2, Math.ceil((96 * MB) / bytes)) : 1;
      const ws = Array.from({ length: copies }, (_, i) => {
        const f = rnd([N, K], 'f32', 20 + i);
        const q = vk.quantize(f, 'q8_0');
        f.dispose();
        return q;
      });
      try {
        const x = rnd([M, K], 'f32', 6);
        const out = vk.linear(x, ws[0]);
        const deq = ws[0].dequantize();
        checkLinear(`linear q8_0 [${M}x${K}]`, x, deq, null, out);
        out.dispose();
        deq.dispose();
        const shape = `[${M}x${K}]x[${K}x${N}]`;
        if (M === 1) {
          const m = timeAgainstProbe(() => { for (const w of ws) vk.linear(x, w).dispose(); }, { reads: 1, writes: 0 }, bytes * copies, 300, 5);
          const t = m.t / copies, gbs = bytes / t / 1e9;
          emit({ bench: 'linear', case: 'decode', shape, M, K, N, dtype: 'q8_0', value: r3(gbs), unit: 'GB/s', bytes, us: r3(t * 1e6), ceiling: r3(m.ceilingGBs), ceilingVia: `read bandwidth: ${m.via}`, ratio: r3(ratio(gbs, m.ceilingGBs)) });
        } else {
          const t = timeMedian(() => vk.linear(x, ws[0]).dispose(), { runs: 5, minMs: 300 });
          const gflops = (2 * M * N * K) / t / 1e9;
          compute.push({ row: { bench: 'linear', case: 'prompt', shape, M, K, N, dtype: 'q8_0', value: r3(gflops), unit: 'GFLOP/s', ms: r3(t * 1e3) }, gflops, gemm: `vlmkit linear q8_0 ${shape}` });
        }
      } finally {
        for (const w of ws) w.dispose();
      }
    });
}

/**
 * Every linear of one SmolVLM-256M text decode step (30 layers + lm_head), bf16, each weight read once; with one
 * thread and with the whole pool (on a shared machine the one-thread figure is the steadier measure of the kernel).
 */
function benchDecodeToken(): void {
  const pool = vk.nativeThreads();
  for (const threads of pool > 1 ? [1, pool] : [1]) {
    vk.setNativeThreads(threads);
    try {
      decodeToken(threads, pool);
    } finally {
      vk.setNativeThreads(pool);
    }
  }
}

function decodeToken(threads: number, pool: number): void {
  vk.tidy(() => {
    const { hidden: H, inter: I, layers: L, vocab: V } = SMOL;
    const kv = SMOL.kvHeads * SMOL.headDim;
    const layer = () => ({
      q: rnd([H, H], 'bf16', 1), k: rnd([kv, H], 'bf16', 2), v: rnd([kv, H], 'bf16', 3), o: rnd([H, H], 'bf16', 4),
      g: rnd([I, H], 'bf16', 5), u: rnd([I, H], 'bf16', 6), d: rnd([H, I], 'bf16', 7),
    });
    const layers = Array.from({ length: L }, layer);
    const head = rnd([V, H], 'bf16', 8);
    const x = rnd([1, H], 'f32', 9), xi = rnd([1, I], 'f32', 10);
    const step = () => {
      for (const l of layers) {
        for (const w of [l.q, l.k, l.v, l.o, l.g, l.u]) vk.linear(x, w).dispose();
        vk.linear(xi, l.d).dispose();
      }
      vk.linear(x, head).dispose();
    };
    const out = vk.linear(x, head);
    checkLinear('decode lm_head', x, head, null, out);
    out.dispose();
    let bytes = head.size * 2;
    for (const l of layers) for (const w of Object.values(l)) bytes += w.size * 2;
    // the limit: every weight byte read once per token at the read bandwidth of the whole pool, timed alternately
    // with the steps (the one-thread row is held to the same limit: it shows what one core leaves on the table)
    vk.setNativeThreads(pool);
    const probe = bandwidth({ reads: 1, writes: 0 }, bytes, 3);
    vk.setNativeThreads(threads);
    const m = timeAgainstProbe(step, { reads: 1, writes: 0 }, bytes, 1000, 7);
    const read = threads === pool ? { gbs: Math.max(m.ceilingGBs, probe.gbs), via: m.via } : probe;
    const t = m.t, ceil = read.gbs / (bytes / 1e9);
    emit({ bench: 'linear', case: 'decode_token', model: 'SmolVLM-256M text', dtype: 'bf16', threads, calls: L * 7 + 1, weightMB: r3(bytes / MB), value: r3(1 / t), unit: 'tokens/s', gbs: r3(bytes / t / 1e9), ceiling: r3(ceil), ceilingVia: `weight bytes at the read bandwidth of ${pool} threads (${read.via})`, ratio: r3(ratio(1 / t, ceil)) });
  });
}

// ---------------------------------------------------------------- norms

function benchNorms(): void {
  for (const [R, D] of [[4096, 768], [1024, 576]])
    for (const kind of ['rmsnorm', 'layernorm'] as const)
      vk.tidy(() => {
        const x = rnd([R, D], 'f32', 1), w = rnd([D], 'f32', 2), b = rnd([D], 'f32', 3), gy = rnd([R, D], 'f32', 4);
        const rows = [0, 1, R - 1];
        const xr = refRows(x, rows), gr = refRows(gy, rows);
        const wr = vk.tensor(w.toArray(), [D], { backend: ref }), br = vk.tensor(b.toArray(), [D], { backend: ref });
        const eps = kind === 'rmsnorm' ? 1e-5 : 1e-6;
        let fwd: () => void, bwd: () => void;
        if (kind === 'rmsnorm') {
          const f = nat.rmsNorm(x, w, eps);
          checkRows('rmsnorm forward', f.y, ref.rmsNorm(xr, wr, eps).y, rows);
          const g = nat.rmsNormBackward(x, w, f.rstd, gy, false);
          checkRows('rmsnorm backward', g.gx, ref.rmsNormBackward(xr, wr, stat(f.rstd, rows), gr, false).gx, rows);
          fwd = () => { const r = nat.rmsNorm(x, w, eps); r.y.dispose(); r.rstd.dispose(); };
          bwd = () => { const r = nat.rmsNormBackward(x, w, f.rstd, gy, true); r.gx.dispose(); r.gw?.dispose(); };
        } else {
          const f = nat.layerNorm(x, w, b, eps);
          checkRows('layernorm forward', f.y, ref.layerNorm(xr, wr, br, eps).y, rows);
          const g = nat.layerNormBackward(x, w, f.mean, f.rstd, gy, false);
          checkRows('layernorm backward', g.gx, ref.layerNormBackward(xr, wr, stat(f.mean, rows), stat(f.rstd, rows), gr, false).gx, rows);
          fwd = () => { const r = nat.layerNorm(x, w, b, eps); r.y.dispose(); r.mean.dispose(); r.rstd.dispose(); };
          bwd = () => { const r = nat.layerNormBackward(x, w, f.mean, f.rstd, gy, true); r.gx.dispose(); r.gw?.dispose(); r.gb?.dispose(); };
        }
        // forward reads x and writes y; backward reads x and gy and writes gx (weights and row statistics are
        // a few KB): each against the probe with the same streams over the same bytes
        const size = R * D * 4;
        const cases: [string, () => void, number, Traffic][] = [['forward', fwd, 2 * size, { reads: 1, writes: 1 }], ['backward', bwd, 3 * size, { reads: 2, writes: 1 }]];
        for (const [dir, fn, moved, traffic] of cases) {
          const m = timeAgainstProbe(fn, traffic, moved, 300);
          const gbs = moved / m.t / 1e9;
          emit({ bench: kind, dir, shape: [R, D], dtype: 'f32', value: r3(gbs), unit: 'GB/s', bytes: moved, us: r3(m.t * 1e6), ceiling: r3(m.ceilingGBs), ceilingVia: `${trafficLabel(traffic)}: ${m.via}`, ratio: r3(ratio(gbs, m.ceilingGBs)) });
        }
      });
}

// ---------------------------------------------------------------- main

async function optional(file: string, name: string, run: (fn: (...a: never[]) => Promise<void> | void) => Promise<void> | void): Promise<void> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(file)) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(file.replace('./', '')))
      return note(`${file} does not exist yet; ${name} skipped`);
    throw e;
  }
  if (typeof mod[name] !== 'function') return note(`${file} has no ${name}(); skipped`);
  await run(mod[name] as (...a: never[]) => Promise<void>);
}

// `npm run bench:engine -- linear norm` runs only those groups (linear, decode, quant, norm, attention, elementwise);
// the machine line and the limits always come first; the compute-bound rows (linear, attention, quant prompt) come last.
const groups = process.argv.slice(2);
const want = (g: string) => groups.length === 0 || groups.includes(g);

async function main(): Promise<void> {
  vk.setDefaultBackend('native');
  emit(machine());
  // the machine's limits
  const peak = new PeakTracker(fmaPeak());
  const first = peak.burst();
  emit({ bench: 'fma_peak', value: r3(first.gflops), unit: 'GFLOP/s', isa: first.isa, threads: first.threads, via: `${fmaVia(first)}: best of 5 samples of 0.2 s and 12 of 0.03 s`, counts: 'f32, an FMA is 2 flops', note: 'sampled again before each compute-bound figure; rows divide by the best sample so far' });
  const big = beyondCacheBytes();
  const read = bandwidth({ reads: 1, writes: 0 }, big);
  emit({ bench: 'bandwidth', kind: 'read', bytes: big, value: r3(read.gbs), unit: 'GB/s', via: read.via, counts: 'bytes read' });
  for (const traffic of [{ reads: 0, writes: 1 }, { reads: 1, writes: 1 }] as Traffic[]) {
    const b = bandwidth(traffic, big);
    emit({ bench: 'bandwidth', kind: trafficLabel(traffic), bytes: big, value: r3(b.gbs), unit: 'GB/s', via: b.via, counts: 'bytes read + written' });
  }
  // anchors: what OpenBLAS reaches on the compute-bound linear shapes (its kernels and its own 2-thread split);
  // measured again at the end, so that the best GEMM of the run does not hang on one busy moment
  const anchors: BestGemm[] = [];
  const label = openblasLabel();
  const measureAnchors = (when: string) => {
    for (const [M, K, N] of LINEAR_SHAPES) {
      if (M <= 8) continue;
      const c = openblasSgemm(M, N, K, { transB: true, threads: 2 });
      anchors.push({ gflops: c.gflops, via: `${label} [${M}x${K}]x[${K}x${N}]` });
      emit({ bench: 'sgemm', anchor: label, shape: `[${M}x${K}]x[${K}x${N}]`, M, K, N, layout: 'B stored [N,K]', value: r3(c.gflops), unit: 'GFLOP/s', ms: r3(c.seconds * 1e3), when, note: 'an anchor, not a ceiling' });
    }
  };
  measureAnchors('start');

  // compute-bound figures are kept until the end, then divided by the best FMA-peak sample of the whole run (a
  // sample taken in a busy moment would flatter them)
  const compute: ComputeRow[] = [];
  if (want('linear')) benchLinear(peak, compute);
  if (want('decode')) {
    benchDecodeLinears();
    benchDecodeToken();
  }
  if (want('quant')) benchQuant(compute);
  if (want('norm')) benchNorms();
  if (want('attention')) await optional('./kernels-attention.js', 'benchAttention', (fn) => (fn as unknown as (p: PeakTracker, out: ComputeRow[]) => Promise<void>)(peak, compute));
  if (want('elementwise')) await optional('./kernels-elementwise.js', 'benchElementwise', (fn) => (fn as unknown as (e: typeof emit) => Promise<void>)(emit));

  measureAnchors('end');
  peak.burst();
  const top = peak.best;
  emit({ bench: 'fma_peak', value: r3(top.gflops), unit: 'GFLOP/s', isa: top.isa, threads: top.threads, via: `${fmaVia(top)}: the best of ${peak.samples} samples over the run`, note: 'the ceiling of every compute-bound row below' });
  // the best GEMM any path reached in this run: OpenBLAS's or ours, f32 weights or bf16 (information only)
  let best: BestGemm = anchors[0];
  for (const a of anchors) if (a.gflops > best.gflops) best = a;
  for (const c of compute) if (c.gemm && c.gflops > best.gflops) best = { gflops: c.gflops, via: c.gemm };
  emit({ bench: 'best_gemm', value: r3(best.gflops), unit: 'GFLOP/s', via: best.via, vsFmaPeak: r3(ratio(best.gflops, top.gflops)), note: 'the fastest GEMM of this run, any path: information beside compute-bound ratios, not a ceiling', ...(best.gflops > top.gflops && { warning: peakWarning }) });
  for (const c of compute) emit({ ...c.row, ...computeFields(c.gflops, top, best) });
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
