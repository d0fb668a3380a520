// `npm run bench:clip`: a ViT-B/16-shaped CLIP image tower with random f32 weights (224 px, 12 layers, width 768,
// 12 heads, MLP 3072, 197 tokens, projection 512) and the search query, against the machine's limits measured in
// the same run, one JSON object per line like bench:engine.
//   - ceiling: the engine's best f32 GEMM (vk.linear, x [M,K] · w [N,K]ᵀ, the path the tower's linears take) on
//     square shapes (1024³, 1536³), the best run, sampled before each batch size and after the tower so that a busy
//     moment does not set it low; the FMA peak and OpenBLAS's sgemm are printed beside it as information. On a
//     shared machine the wall-clock ratio moves with the load between samples, so each ratio is also given over
//     CPU time (ratioPerCpu: FLOPs per CPU-second of the tower / of the GEMM).
//   - image embeddings/s at batch 1 and 16; useful FLOPs = the tower's matmuls (patch embedding, q/k/v/out, QKᵀ,
//     attention·V, the two MLP linears, the projection), an FMA counting 2; ratio = FLOP/s / ceiling (target >= 0.7
//     at batch 16). A per-op profile of one batch-16 forward says where the time goes.
//   - search: top-10 over 100k stored embeddings of width 512 (SearchIndex.topRows), against the read-bandwidth
//     probe over the same 205 MB, timed alternately with it.
// `npm run bench:clip -- tower` or `-- search` runs one part.
import * as vk from '../src/engine/index.js';
import '../src/engine/backend/native/index.js';
import type { Tensor } from '../src/engine/index.js';
import { ClipModel, clipConfigFromJson, clipTensorSpecs } from '../src/models/clip/model.js';
import { SearchIndex } from '../src/search/index-file.js';
import { fmaPeak, machine, median, openblasLabel, openblasSgemm, ratio, timeAgainstProbe } from './ceilings.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const note = (s: string): void => void process.stderr.write(`bench: ${s}\n`);
const r3 = (v: number) => Math.round(v * 1000) / 1000;

export const VIT_B16 = { hidden: 768, layers: 12, heads: 12, mlp: 3072, imageSize: 224, patch: 16, projection: 512 } as const;

function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2147483648 - 1;
}

/** A CLIP with the ViT-B/16 vision tower and a one-layer tiny text tower (the bench times images only). */
export function randomVitB16(seed = 1): ClipModel {
  const v = VIT_B16;
  const cfg = clipConfigFromJson({
    projection_dim: v.projection,
    vision_config: { hidden_size: v.hidden, intermediate_size: v.mlp, num_hidden_layers: v.layers, num_attention_heads: v.heads, image_size: v.imageSize, patch_size: v.patch, hidden_act: 'quick_gelu' },
    text_config: { vocab_size: 64, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 16, eos_token_id: 63, bos_token_id: 62, pad_token_id: 1 },
  }, 'bench ViT-B/16');
  const rnd = lcg(seed);
  const named = new Map<string, Tensor>();
  for (const s of clipTensorSpecs(cfg)) {
    const t = vk.empty(s.shape, { dtype: 'f32' });
    const d = t.data as Float32Array;
    // layer norms 1, biases 0, the rest uniform with std 0.02 (activations stay finite through 12 layers)
    if (/norm\d?\.weight$/.test(s.hf)) d.fill(1);
    else if (s.hf.endsWith('.bias')) d.fill(0);
    else if (s.hf === 'logit_scale') d.fill(Math.log(100));
    else for (let i = 0; i < d.length; i++) d[i] = rnd() * 0.0346;
    named.set(s.hf, t);
  }
  return new ClipModel(cfg, named);
}

/** Matmul FLOPs of one image through the tower (an FMA = 2). */
export function towerFlops(): number {
  const v = VIT_B16, P = (v.imageSize / v.patch) ** 2, T = P + 1, D = v.hidden, F = v.mlp;
  const patch = 2 * P * D * (3 * v.patch * v.patch);
  const layer = 2 * T * (4 * D * D + 2 * D * F) + 2 * 2 * T * T * D;
  return patch + v.layers * layer + 2 * D * v.projection;
}

/** Wall and CPU seconds (every thread of the process) of each run of fn. */
function timeWallCpu(fn: () => void, warmup: number, runs: number): { wall: number[]; cpu: number[] } {
  for (let i = 0; i < warmup; i++) fn();
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    fn();
    wall.push((performance.now() - t0) / 1e3);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  return { wall, cpu };
}

interface Gemm { gflops: number; gflopsCpu: number; via: string }

/**
 * The engine's best f32 GEMM on square shapes: GFLOP/s over wall time (the best run) and over CPU time (FLOPs per
 * CPU-second of all its threads, times the thread count: what the GEMM does in the time it is given the cores).
 */
function engineSgemm(): Gemm {
  let best: Gemm = { gflops: 0, gflopsCpu: 0, via: '' };
  const threads = vk.nativeThreads();
  for (const n of [1024, 1536]) {
    const x = vk.empty([n, n]), w = vk.empty([n, n]);
    (x.data as Float32Array).fill(0.5);
    (w.data as Float32Array).fill(0.25);
    const { wall, cpu } = timeWallCpu(() => vk.noGrad(() => vk.linear(x, w)).dispose(), 1, 5);
    const f = 2 * n * n * n;
    const g = f / Math.min(...wall) / 1e9, gc = (f * threads) / Math.min(...cpu) / 1e9;
    if (g > best.gflops) best = { ...best, gflops: g, via: `vlmkit f32 linear [${n}x${n}]·[${n}x${n}]ᵀ, best of ${wall.length} runs` };
    if (gc > best.gflopsCpu) best.gflopsCpu = gc;
    x.dispose();
    w.dispose();
  }
  return best;
}

function pixels(n: number, seed: number): Tensor {
  const S = VIT_B16.imageSize, rnd = lcg(seed);
  const t = vk.empty([n, 3, S, S]);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = rnd() * 2;
  return t;
}

/** Milliseconds per native backend kernel (linear, attention, layerNorm, copies, ...) over one call of fn. */
function profileKernels(fn: () => void): Record<string, number> {
  const nat = vk.getBackend('native') as unknown as Record<string, unknown>;
  const ms = new Map<string, number>();
  const saved = new Map<string, unknown>();
  for (const k of Object.keys(nat)) {
    const f = nat[k];
    if (typeof f !== 'function') continue;
    saved.set(k, f);
    nat[k] = (...a: unknown[]) => {
      const t0 = performance.now();
      try {
        return (f as (...x: unknown[]) => unknown).apply(nat, a);
      } finally {
        ms.set(k, (ms.get(k) ?? 0) + performance.now() - t0);
      }
    };
  }
  const t0 = performance.now();
  try {
    fn();
  } finally {
    for (const [k, f] of saved) nat[k] = f;
  }
  const total = performance.now() - t0;
  const out: Record<string, number> = { total: r3(total) };
  let inKernels = 0;
  for (const [k, v] of [...ms].sort((a, b) => b[1] - a[1])) {
    out[k] = r3(v);
    inKernels += v;
  }
  out.outsideKernels = r3(total - inKernels);
  return out;
}

function benchTower(): void {
  const anchor = openblasSgemm(1024, 1024, 1024, { transB: true, threads: 2 });
  emit({ bench: 'sgemm', anchor: openblasLabel(), shape: '[1024x1024]x[1024x1024]', value: r3(anchor.gflops), unit: 'GFLOP/s', note: 'an anchor, not the ceiling' });
  const threads = vk.nativeThreads();
  let ceil: Gemm = { gflops: 0, gflopsCpu: 0, via: '' };
  // sampled before each batch size and after the last: on a shared machine the load moves between them
  const sampleCeiling = (when: string) => {
    const c = engineSgemm();
    emit({ bench: 'sgemm_ceiling', when, value: r3(c.gflops), unit: 'GFLOP/s', via: c.via, perCpuSecond: r3(c.gflopsCpu) });
    if (c.gflops > ceil.gflops) ceil = { ...ceil, gflops: c.gflops, via: c.via };
    if (c.gflopsCpu > ceil.gflopsCpu) ceil.gflopsCpu = c.gflopsCpu;
  };
  const model = randomVitB16();
  const flops = towerFlops();
  const rows: Row[] = [];
  let b1: Float32Array | null = null;
  for (const batch of [1, 16]) {
    sampleCeiling(`before batch ${batch}`);
    const px = pixels(batch, 7);
    let out: Float32Array | null = null;
    const run = () => vk.noGrad(() => {
      const e = model.imageEmbeds(px);
      out = e.toFloat32Array();
      e.dispose();
    });
    // few runs: a batch-16 forward is 560 GFLOP (batch 1 has warmed the code paths and the allocator's sizes)
    const { wall: ts, cpu } = batch === 1 ? timeWallCpu(run, 1, 3) : timeWallCpu(run, 0, 2);
    // checked before it counts: finite unit vectors, and image 0 the same in both batches
    const o = out as unknown as Float32Array;
    for (let i = 0; i < batch; i++) {
      const row = o.subarray(i * VIT_B16.projection, (i + 1) * VIT_B16.projection);
      const norm = Math.sqrt(row.reduce((a, x) => a + x * x, 0));
      if (!(Math.abs(norm - 1) < 1e-4)) throw new Error(`bench clip: image ${i} of batch ${batch} has embedding norm ${norm}`);
    }
    if (batch === 1) b1 = o.slice(0, VIT_B16.projection);
    else {
      const diff = b1!.reduce((a, x, j) => Math.max(a, Math.abs(x - o[j]!)), 0);
      if (!(diff < 1e-4)) throw new Error(`bench clip: image 0 differs by ${diff} between batch 1 and batch 16`);
    }
    const med = median(ts), best = Math.min(...ts);
    if (batch === 16) emit({ bench: 'clip_profile', batch, unit: 'ms by native backend kernel, one forward', value: profileKernels(run) });
    const row: Row = { bench: 'clip_image_embeds', model: 'ViT-B/16-shaped CLIP vision tower, random f32', imageSize: 224, tokens: 197, batch, value: r3(batch / med), unit: 'images/s', bestImagesPerS: r3(batch / best), msPerBatch: r3(med * 1e3), runs: ts.length, gflopsPerImage: r3(flops / 1e9), gflops: r3((flops * batch) / med / 1e9), gflopsBest: r3((flops * batch) / best / 1e9), gflopsPerCpu: r3((flops * batch * threads) / median(cpu) / 1e9) };
    rows.push(row);
    // printed at once against the ceiling so far (a long run still leaves its figures), and again at the end
    emit({ ...row, when: 'as measured', ceiling: r3(ceil.gflops), ratio: r3(ratio(row.gflops as number, ceil.gflops)) });
    px.dispose();
  }
  sampleCeiling('after the tower');
  // information only: a peak sample in a busy moment can fall below the GEMM, so nothing is divided by it
  const peak = fmaPeak({ tries: 3, seconds: 0.1 });
  emit({ bench: 'fma_peak', value: r3(peak.gflops), unit: 'GFLOP/s', isa: peak.isa, threads: peak.threads, note: 'information, not the ceiling of these rows' });
  for (const r of rows) {
    emit({ ...r, when: 'final', ceiling: r3(ceil.gflops), ceilingVia: `${ceil.via} (the best of the run)`, ratio: r3(ratio(r.gflops as number, ceil.gflops)), ratioBest: r3(ratio(r.gflopsBest as number, ceil.gflops)),
      // the same over CPU time: what the tower and the GEMM each did per second they held the cores (scheduling
      // by other processes left out; a pool thread spinning between ops counts against the tower)
      ceilingPerCpu: r3(ceil.gflopsCpu), ratioPerCpu: r3(ratio(r.gflopsPerCpu as number, ceil.gflopsCpu)), ...(r.batch === 16 && { target: 0.7 }) });
  }
  model.dispose();
}

function benchSearch(): void {
  const N = 100_000, D = 512, rnd = lcg(3);
  const m = new Float32Array(N * D);
  for (let i = 0; i < m.length; i++) m[i] = rnd();
  const q = new Float32Array(D);
  for (let i = 0; i < D; i++) q[i] = rnd();
  const ix = new SearchIndex({ family: 'clip', id: 'bench' }, D, Array.from({ length: N }, (_, i) => ({ path: `${i}.png`, mtimeMs: 0, size: 0 })), m);
  const got = ix.topRows(q, 10);
  if (got.length !== 10 || !got.every((h) => Number.isFinite(h.score))) throw new Error('bench clip: search returned no finite top 10');
  const bytes = N * D * 4;
  const t = timeAgainstProbe(() => ix.topRows(q, 10), { reads: 1, writes: 0 }, bytes);
  const gbs = bytes / t.t / 1e9;
  emit({ bench: 'search_query', stored: N, dim: D, k: 10, value: r3(t.t * 1e3), unit: 'ms', readGBs: r3(gbs), ceiling: r3(t.ceilingGBs), ceilingVia: `read bandwidth probe (${t.via})`, ratio: r3(ratio(gbs, t.ceilingGBs)), counts: 'the stored floats read once per query' });
}

const parts = process.argv.slice(2);
const want = (p: string) => parts.length === 0 || parts.includes(p);

function main(): void {
  vk.setDefaultBackend('native');
  emit(machine());
  if (want('tower')) benchTower();
  if (want('search')) benchSearch();
  note('done');
}

main();
