// The limits the benches' figures are compared with: the machine's own, measured in the same run by the addon's
// probes (native/kernels/bench.cc), on all pool threads at once, like the kernels:
//   compute: the f32 FMA peak of the widest vector unit the CPU has (AVX-512F, else AVX2/FMA, else SSE2), in
//            FLOP/s (an FMA counts 2). Compute-bound figures are divided by it.
//   memory:  contiguous streams with the traffic of the kernel: `reads` arrays read and `writes` (0 or 1) written,
//            as fast as the CPU loads and stores (the better of streaming and ordinary stores). Memory-bound
//            figures are divided by the probe with their traffic, over the same number of bytes.
// Ceilings are the best sample (a limit is the most the machine did); figures are medians or best-of as each
// bench says. Other programs' figures (OpenBLAS sgemm, llama.cpp) are anchors: printed, labelled, never divided
// into a figure as a ceiling. The best GEMM reached in the run (any path) is printed beside compute-bound ratios as
// information only.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { loadAddon } from '../src/engine/backend/native/addon.js';
import { nativeIsa, nativeThreads } from '../src/engine/index.js';

export interface TimeOptions {
  warmup?: number;
  /** at least this many timed runs */
  runs?: number;
  /** and keep running until this much time has been spent */
  minMs?: number;
}

/**
 * This process's own peak RSS in MB: Linux's VmHWM. getrusage's maxRSS (process.resourceUsage) is not: Linux
 * carries it over fork and exec, so a child spawned by a parent holding 800 MB reports at least 800 MB.
 */
export function peakRssMB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: getrusage is the best there is
  }
  return process.resourceUsage().maxRSS / 1024;
}

export function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Seconds of each run of fn after a warm-up. */
export function timeRuns(fn: () => void, o: TimeOptions = {}): number[] {
  const warmup = o.warmup ?? 2, runs = o.runs ?? 7, minMs = o.minMs ?? 300;
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  const start = performance.now();
  while (ts.length < runs || (performance.now() - start < minMs && ts.length < 1000)) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1e3);
  }
  return ts;
}

/** Median seconds of fn over several runs after a warm-up. */
export function timeMedian(fn: () => void, o: TimeOptions = {}): number {
  return median(timeRuns(fn, o));
}

/** Bytes of the last-level cache (Linux sysfs), or null where it cannot be read. */
export function l3Bytes(): number | null {
  try {
    const s = readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8').trim();
    const m = /^(\d+)([KMG]?)$/.exec(s);
    if (!m) return null;
    return Number(m[1]) * ({ '': 1, K: 1024, M: 1 << 20, G: 1 << 30 } as Record<string, number>)[m[2]];
  } catch {
    return null;
  }
}

/** A buffer size well beyond the last-level cache: 8x L3, at least 256 MB. */
export function beyondCacheBytes(): number {
  return Math.max(256 << 20, 8 * (l3Bytes() ?? 0));
}

/** The kernels OpenBLAS picked for this CPU, as the label of every OpenBLAS figure (an anchor, not a ceiling). */
export function openblasLabel(): string {
  const core = String(loadAddon().blasCore());
  const env = process.env.OPENBLAS_CORETYPE;
  return `OpenBLAS sgemm (${core} kernels${env ? `, OPENBLAS_CORETYPE=${env}` : ''}), 2 threads`;
}

export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const addon = loadAddon();
  const l3 = l3Bytes();
  return {
    bench: 'machine',
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    threads: nativeThreads(),
    avx2: Boolean((addon.cpuFeatures() as { avx2: boolean }).avx2),
    // the instruction set the kernels use (the CPU's widest, or what VLMKIT_ISA forces)
    kernelIsa: nativeIsa(),
    // the widest FMA unit, the one the compute ceiling measures
    fmaIsa: (addon.fmaPeak(0.001) as { isa: string }).isa,
    openblasCore: String(addon.blasCore()),
    ...(l3 !== null && { l3MB: l3 / 2 ** 20 }),
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    // other processes competing for the cores make every figure noisy: the 1-minute load average says how much
    loadavg1: Math.round(os.loadavg()[0] * 100) / 100,
    platform: `${os.platform()}-${os.arch()}`,
  };
}

// ---------------------------------------------------------------- compute

export interface FmaPeak { gflops: number; isa: string; threads: number }

/** The best of `tries` FMA-peak samples of `seconds` each (all pool threads at once). */
export function fmaPeak(o: { seconds?: number; tries?: number } = {}): FmaPeak {
  const addon = loadAddon();
  let best: FmaPeak | null = null;
  for (let i = 0; i < (o.tries ?? 5); i++) {
    const p = addon.fmaPeak(o.seconds ?? 0.2) as FmaPeak;
    if (!best || p.gflops > best.gflops) best = p;
  }
  return best!;
}

export const fmaVia = (p: FmaPeak): string => `f32 FMA peak (${p.isa}, ${p.threads} threads, same run)`;

/**
 * The best FMA-peak sample of the run so far. On a shared machine one sample can fall in a busy moment and come
 * out low, which would flatter every ratio divided by it: compute-bound benches sample again next to each figure
 * and divide by the best sample seen.
 */
export class PeakTracker {
  samples = 0;
  private top: FmaPeak | null = null;
  constructor(first?: FmaPeak) {
    if (first) this.add(first);
  }
  add(p: FmaPeak): FmaPeak {
    this.samples++;
    if (!this.top || p.gflops > this.top.gflops) this.top = p;
    return this.top;
  }
  sample(seconds = 0.1): FmaPeak {
    return this.add(fmaPeak({ seconds, tries: 1 }));
  }
  /** Many short samples: the best of them catches a quiet moment, as the best of many short GEMM calls does. */
  burst(n = 12, seconds = 0.03): FmaPeak {
    for (let i = 0; i < n; i++) this.sample(seconds);
    return this.best;
  }
  get best(): FmaPeak {
    if (!this.top) throw new Error('bench: no FMA peak sampled yet');
    return this.top;
  }
}

/** GFLOP/s of one plain OpenBLAS sgemm C[M,N] = A[M,K]·op(B) (B stored [N,K] when transB), median of runs. */
export function openblasSgemm(M: number, N: number, K: number, o: { transB?: boolean; threads?: number; runs?: number } = {}): { gflops: number; seconds: number } {
  const addon = loadAddon();
  const flops = 2 * M * N * K;
  const runs = o.runs ?? Math.max(5, Math.min(50, Math.ceil(0.3 / Math.max(flops / 100e9, 1e-6))));
  const t = median(Array.from(addon.rawSgemm(M, N, K, o.transB ?? true, o.threads ?? 2, runs) as Float64Array));
  return { gflops: flops / t / 1e9, seconds: t };
}

// ---------------------------------------------------------------- ratios (pure)

const r3 = (v: number) => Math.round(v * 1000) / 1000;

/** value / ceiling, refusing a ceiling that is not a finite positive number (a broken probe must not pass). */
export function ratio(value: number, ceiling: number): number {
  if (!(Number.isFinite(ceiling) && ceiling > 0)) throw new Error(`bench: ceiling ${ceiling} is not a finite positive number`);
  if (!Number.isFinite(value)) throw new Error(`bench: figure ${value} is not finite`);
  return value / ceiling;
}

/** A GEMM that outruns the FMA peak means no peak sample caught the machine quiet: the ratios are overstated. */
export const peakWarning = 'a GEMM of this run outran every FMA-peak sample: the machine was too busy for its peak to be measured, so this ratio is overstated';

/**
 * The fields of a compute-bound row: ratio against the FMA peak, and (information, not a ceiling) against the best
 * GEMM reached in the run.
 */
export function computeFields(gflops: number, peak: FmaPeak, bestGemm?: { gflops: number; via: string }): Record<string, unknown> {
  return {
    ceiling: r3(peak.gflops), ceilingVia: fmaVia(peak), ratio: r3(ratio(gflops, peak.gflops)),
    ...(bestGemm && { vsBestGemm: r3(ratio(gflops, bestGemm.gflops)), bestGemm: r3(bestGemm.gflops), bestGemmVia: `${bestGemm.via} (information, not a ceiling)` }),
    ...(bestGemm && bestGemm.gflops > peak.gflops && { warning: peakWarning }),
  };
}

/** Arrays of n floats a memory-bound kernel reads and writes (its useful traffic). */
export interface Traffic { reads: number; writes: 0 | 1 }

export const trafficLabel = (t: Traffic): string =>
  t.writes === 0 ? 'read bandwidth' : t.reads === 0 ? 'write bandwidth' : `${t.reads} read stream${t.reads > 1 ? 's' : ''} + 1 write stream`;

/** The traffic probe the kernel is measured against (read-only probes read one array of all the bytes). */
export function probeTraffic(t: Traffic): Traffic {
  if (t.reads < 0 || t.reads > 3 || (t.writes !== 0 && t.writes !== 1) || t.reads + t.writes === 0) throw new Error(`bench: no probe for ${t.reads} reads + ${t.writes} writes`);
  return t.writes === 0 ? { reads: 1, writes: 0 } : t;
}

// ---------------------------------------------------------------- memory

interface Probe { run: () => void; bytes: number; via: string }

const probeBuffers = new Map<string, Float32Array[]>();

/**
 * The probes for `t` over `bytes` bytes moved in all (split evenly over its arrays): one per store kind for
 * writing traffic (streaming stores win beyond the caches, ordinary ones inside them).
 */
function probes(t: Traffic, bytes: number): Probe[] {
  const p = probeTraffic(t);
  const arrays = p.reads + p.writes;
  const n = Math.max(16, Math.round(bytes / 4 / arrays / 16) * 16);
  const key = `${p.reads},${p.writes},${n}`;
  let bufs = probeBuffers.get(key);
  if (!bufs) {
    bufs = Array.from({ length: arrays }, () => new Float32Array(n).fill(1));
    probeBuffers.set(key, bufs);
    // a few hundred MB each beyond the caches: keep only the latest few sets
    for (const k of probeBuffers.keys()) if (probeBuffers.size > 3) probeBuffers.delete(k);
  }
  const addon = loadAddon();
  const srcs = bufs.slice(0, p.reads), dst = p.writes ? bufs[p.reads] : null;
  const moved = n * 4 * arrays;
  if (!dst) return [{ run: () => addon.streamProbe(srcs, null, false), bytes: moved, via: `read sweep, ${n * 4} bytes` }];
  return [true, false].map((nt) => ({
    run: () => addon.streamProbe(srcs, dst, nt),
    bytes: moved,
    via: `${p.reads ? `${p.reads} read + ` : ''}1 ${nt ? 'streaming' : 'ordinary'}-store stream${p.reads ? 's' : ''}, ${moved} bytes moved`,
  }));
}

/** GB/s (bytes moved / s / 1e9) of the best probe of traffic `t` over `bytes` bytes: the best of several runs. */
export function bandwidth(t: Traffic, bytes: number, runs = 9): { gbs: number; via: string } {
  let best = { gbs: 0, via: '' };
  for (const p of probes(t, bytes)) {
    const s = Math.min(...timeRuns(p.run, { warmup: 1, runs, minMs: 0 }));
    const gbs = p.bytes / s / 1e9;
    if (gbs > best.gbs) best = { gbs, via: p.via };
  }
  return best;
}

/**
 * Median seconds of fn, and the best GB/s of the probes of traffic `t` over the same bytes, timed alternately
 * with fn so that load from other processes falls on both.
 */
export function timeAgainstProbe(fn: () => void, t: Traffic, bytes: number, minMs = 400, minRuns = 9): { t: number; ceilingGBs: number; via: string } {
  const ps = probes(t, bytes);
  const tk: number[] = [], tp: number[][] = ps.map(() => []);
  const clock = (f: () => void, into: number[]) => {
    const t0 = performance.now();
    f();
    into.push((performance.now() - t0) / 1e3);
  };
  fn(); fn();
  for (const p of ps) p.run();
  const start = performance.now();
  while (tk.length < minRuns || performance.now() - start < minMs) {
    clock(fn, tk);
    ps.forEach((p, i) => clock(p.run, tp[i]));
  }
  let best = { gbs: 0, via: '' };
  ps.forEach((p, i) => {
    const gbs = p.bytes / Math.min(...tp[i]) / 1e9;
    if (gbs > best.gbs) best = { gbs, via: `${p.via}, interleaved` };
  });
  return { t: median(tk), ceilingGBs: best.gbs, via: best.via };
}
