// Ceilings the engine's figures are compared with, measured in the same run on the same machine:
//   sgemm:  one plain OpenBLAS cblas_sgemm call with OpenBLAS's own threads (2 by default), shape for shape;
//   memcpy: the better of a memcpy shared out over our pool and Buffer.copy, for the same number of bytes;
//   read:   a read-only AVX2 sweep over our pool (what a weight-streaming kernel could reach at best).
// Bandwidths count bytes moved: a memcpy of n bytes moves 2n (n read, n written).
import os from 'node:os';
import { loadAddon } from '../src/engine/backend/native/addon.js';
import { nativeThreads } from '../src/engine/index.js';

export interface TimeOptions {
  warmup?: number;
  /** at least this many timed runs */
  runs?: number;
  /** and keep running until this much time has been spent */
  minMs?: number;
}

export function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Median seconds of fn over several runs after a warm-up. */
export function timeMedian(fn: () => void, o: TimeOptions = {}): number {
  const warmup = o.warmup ?? 2, runs = o.runs ?? 7, minMs = o.minMs ?? 300;
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  const start = performance.now();
  while (ts.length < runs || (performance.now() - start < minMs && ts.length < 1000)) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1e3);
  }
  return median(ts);
}

export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const addon = loadAddon();
  return {
    bench: 'machine',
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    threads: nativeThreads(),
    avx2: Boolean((addon.cpuFeatures() as { avx2: boolean }).avx2),
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    // other processes competing for the cores make every figure noisy: the 1-minute load average says how much
    loadavg1: Math.round(os.loadavg()[0] * 100) / 100,
    platform: `${os.platform()}-${os.arch()}`,
  };
}

/** GFLOP/s of one plain OpenBLAS sgemm C[M,N] = A[M,K]·op(B) (B stored [N,K] when transB), median of runs. */
export function sgemmCeiling(M: number, N: number, K: number, o: { transB?: boolean; threads?: number; runs?: number } = {}): { gflops: number; seconds: number } {
  const addon = loadAddon();
  const flops = 2 * M * N * K;
  const runs = o.runs ?? Math.max(5, Math.min(50, Math.ceil(0.3 / Math.max(flops / 100e9, 1e-6))));
  const t = median(Array.from(addon.rawSgemm(M, N, K, o.transB ?? true, o.threads ?? 2, runs) as Float64Array));
  return { gflops: flops / t / 1e9, seconds: t };
}

const memcpyCache = new Map<number, { gbs: number; via: string }>();

/** Bytes moved per second (2n/t) by the better memcpy of n bytes. */
export function memcpyCeiling(n: number): { gbs: number; via: string } {
  const hit = memcpyCache.get(n);
  if (hit) return hit;
  const addon = loadAddon();
  const src = Buffer.alloc(n, 1), dst = Buffer.alloc(n);
  const tPool = timeMedian(() => addon.memcpyPool(dst, src), { runs: 9 });
  const tBuf = timeMedian(() => src.copy(dst), { runs: 9 });
  const r = tPool <= tBuf ? { gbs: (2 * n) / tPool / 1e9, via: 'pool memcpy' } : { gbs: (2 * n) / tBuf / 1e9, via: 'Buffer.copy' };
  memcpyCache.set(n, r);
  return r;
}

/** Bytes read per second by an AVX2 sum over n bytes, over our pool. */
export function readCeiling(n: number): number {
  const addon = loadAddon();
  const a = new Float32Array(Math.ceil(n / 4)).fill(1);
  const t = timeMedian(() => addon.readSum(a), { runs: 9 });
  return (a.length * 4) / t / 1e9;
}
