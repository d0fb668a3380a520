// The benches' ceilings (bench/ceilings.ts, native/kernels/bench.cc): the probes compute what they claim (a
// bandwidth probe that skipped work would report a limit the machine does not have), the FMA probe measures the
// widest unit the CPU has, and the ratio helpers refuse a broken ceiling instead of printing a ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadAddon } from '../../src/engine/backend/native/addon.js';
import '../../src/engine/backend/native/index.js';
import { bandwidth, computeFields, fmaPeak, PeakTracker, probeTraffic, ratio } from '../../bench/ceilings.js';

const addon = loadAddon();

/** The unit the probe must pick on this CPU, from /proc/cpuinfo (Linux x86-64 only; null elsewhere). */
function expectedIsa(): string | null {
  let info: string;
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
  const flags = /^flags\s*:(.*)$/m.exec(info)?.[1].split(/\s+/) ?? [];
  if (!flags.length) return null;
  return flags.includes('avx512f') ? 'avx512f' : flags.includes('avx2') && flags.includes('fma') ? 'avx2' : 'sse2';
}

test('fmaPeak: finite positive GFLOP/s of the widest FMA unit, on the pool threads', () => {
  const p = fmaPeak({ seconds: 0.05, tries: 2 });
  assert.ok(Number.isFinite(p.gflops) && p.gflops > 0, `gflops ${p.gflops}`);
  assert.ok(['avx512f', 'avx2', 'sse2', 'scalar'].includes(p.isa), `isa ${p.isa}`);
  const want = expectedIsa();
  if (want !== null) assert.equal(p.isa, want);
  assert.ok(Number.isInteger(p.threads) && p.threads >= 1 && p.threads <= (addon.numThreads() as number), `threads ${p.threads}`);
  assert.throws(() => addon.fmaPeak(0), /seconds/);
  assert.throws(() => addon.fmaPeak(NaN), /seconds/);
});

test('streamProbe: reads, fills, copies and sums exactly, at any offset and length', () => {
  // odd lengths and offsets that break 64-byte alignment: the unaligned head, the vector body and the tail all run
  for (const n of [1, 17, 1000, 5003, 70001])
    for (const off of [0, 1, 3])
      for (const nt of [true, false]) {
        const buf = (seed: number) => {
          const a = new Float32Array(n + off).subarray(off);
          for (let i = 0; i < n; i++) a[i] = ((i * 7 + seed * 13) % 11) - 5;
          return a;
        };
        const a = buf(1), b = buf(2), c = buf(3);
        let sum = 0;
        for (const v of a) sum += v;
        assert.equal(addon.streamProbe([a], null, false), sum, `read n=${n} off=${off}`);
        const d = new Float32Array(n + off).subarray(off).fill(NaN);
        addon.streamProbe([], d, nt);
        assert.ok(d.every((v) => v === 1), `fill n=${n} off=${off} nt=${nt}`);
        addon.streamProbe([a], d, nt);
        assert.deepEqual(d, a, `copy n=${n} off=${off} nt=${nt}`);
        addon.streamProbe([a, b], d, nt);
        assert.ok(d.every((v, i) => v === a[i] + b[i]), `add n=${n} off=${off} nt=${nt}`);
        addon.streamProbe([a, b, c], d, nt);
        assert.ok(d.every((v, i) => v === a[i] + b[i] + c[i]), `add3 n=${n} off=${off} nt=${nt}`);
      }
  const x = new Float32Array(8);
  assert.throws(() => addon.streamProbe([x, x, x, x], x, true), /0 to 3 sources/);
  assert.throws(() => addon.streamProbe([x, x], null, false), /one source/);
  assert.throws(() => addon.streamProbe([new Float32Array(4)], x, false), /as long as dst/);
});

test('bandwidth: finite positive GB/s for each traffic the benches use', () => {
  for (const t of [{ reads: 1, writes: 0 }, { reads: 0, writes: 1 }, { reads: 1, writes: 1 }, { reads: 2, writes: 1 }] as const) {
    const b = bandwidth(t, 1 << 20, 3);
    assert.ok(Number.isFinite(b.gbs) && b.gbs > 0, `${JSON.stringify(t)}: ${b.gbs}`);
    assert.match(b.via, /read|store/);
  }
});

test('ratio and computeFields refuse a ceiling that is not a finite positive number', () => {
  assert.equal(ratio(50, 200), 0.25);
  for (const bad of [NaN, 0, -1, Infinity]) assert.throws(() => ratio(1, bad), /ceiling/);
  assert.throws(() => ratio(NaN, 1), /not finite/);
  const peak = { gflops: 400, isa: 'avx512f', threads: 2 };
  const f = computeFields(100, peak, { gflops: 200, via: 'OpenBLAS' });
  assert.equal(f.ratio, 0.25);
  assert.equal(f.vsBestGemm, 0.5);
  assert.match(String(f.ceilingVia), /FMA peak \(avx512f, 2 threads/);
  assert.match(String(f.bestGemmVia), /not a ceiling/);
  assert.throws(() => computeFields(100, { ...peak, gflops: NaN }), /ceiling/);
  assert.equal(f.warning, undefined);
  // a GEMM faster than the peak samples: the peak was not measured, and the row says so
  assert.match(String(computeFields(100, peak, { gflops: 500, via: 'OpenBLAS' }).warning), /overstated/);
});

test('PeakTracker keeps the best sample; probeTraffic maps every read-only kernel to one read stream', () => {
  const t = new PeakTracker({ gflops: 10, isa: 'avx2', threads: 2 });
  t.add({ gflops: 30, isa: 'avx2', threads: 2 });
  t.add({ gflops: 20, isa: 'avx2', threads: 2 });
  assert.equal(t.best.gflops, 30);
  assert.equal(t.samples, 3);
  assert.throws(() => new PeakTracker().best, /no FMA peak/);
  assert.deepEqual(probeTraffic({ reads: 2, writes: 0 }), { reads: 1, writes: 0 });
  assert.deepEqual(probeTraffic({ reads: 2, writes: 1 }), { reads: 2, writes: 1 });
  assert.throws(() => probeTraffic({ reads: 0, writes: 0 }), /no probe/);
  assert.throws(() => probeTraffic({ reads: 4, writes: 1 }), /no probe/);
});
