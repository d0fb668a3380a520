// `npm run bench:generate`: SmolVLM-256M-Instruct-shaped inference (random bf16 weights written to a temp dir by
// bench/random-model.ts) against the machine's limits measured in the same run (bench/ceilings.ts). One JSON object
// per line, as bench:engine: {bench, value, unit, tiles, batch, dtype, ceiling, ceilingVia, ratio, target, ...}.
// Lines: machine; the limits (f32 FMA peak, read bandwidth) and the OpenBLAS anchor; image_processor (decode +
// process of a 2048x2048 JPEG); decode (tokens/s at batch 1 and 8 after a short prompt, and at batch 1 after the
// 17-tile prompt, against the weight stream at read bandwidth; the batch-1 row also gives the tokens/s of the
// layer-by-layer path, one addon call per op, that the one-call decode step replaced); end_to_end (one 2048x2048
// JPEG -> 17 tiles, and 5 at longest_edge 1024 -> 64 generated tokens, seconds: no ceiling, the llama.cpp figure
// of bench/llamacpp-anchor.json printed as an anchor); then the compute-bound rows against the best FMA-peak sample of
// the run: vision_encode (seconds per 512x512 tile, its GFLOP/s) and prefill (tokens/s of the text model alone for
// a 1-tile and a 17-tile prompt, image features precomputed, so vision encoding excluded; logits of the last
// position only); rss (peak).
// The results are checked first: logits are finite, and the KV-cached last-position logits agree with the
// uncached forward on a short image prompt. Timings are the best of a few runs (the machine is shared); the FMA
// peak is sampled again before each run of a compute-bound figure, the best sample kept.
//
//   npm run bench:generate                 every group
//   npm run bench:generate -- decode       only some: check, vision, processor, prefill, decode, e2e
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import * as vk from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import { generateStream, type GenerationOutput } from '../src/generate/generate.js';
import { loadModel, type Idefics3Model } from '../src/models/idefics3/index.js';
import { Processor } from '../src/models/idefics3/processor.js';
import { decodeImage } from '../src/processing/decode.js';
import type { RgbImage } from '../src/processing/decode.js';
import { loadAddon } from '../src/engine/backend/native/addon.js';
import { bandwidth, beyondCacheBytes, computeFields, fmaPeak, fmaVia, machine, openblasLabel, PeakTracker, peakWarning, ratio } from './ceilings.js';
import { SMOLVLM_256M, writeRandomSmolVLM } from './random-model.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const note = (s: string): void => void process.stderr.write(`bench: ${s}\n`);
const MB = 1 << 20;

const groups = process.argv.slice(2);
const want = (g: string) => groups.length === 0 || groups.includes(g);

/** Best (smallest) seconds of `runs` calls of fn (after `warmup` untimed calls). */
async function best(runs: number, fn: () => unknown, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  let b = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    b = Math.min(b, (performance.now() - t0) / 1e3);
  }
  return b;
}

/**
 * Best seconds of `runs` calls of fn, each preceded by a sample of the FMA peak (all pool threads, up to 0.3 s):
 * figure and ceiling are both measured over the same stretch of a shared machine; the ceiling is the best sample
 * of the run so far.
 */
async function paired(runs: number, fn: () => unknown, peak: PeakTracker): Promise<number> {
  const t0 = performance.now();
  await fn();
  const span = Math.min(0.3, Math.max(0.05, (performance.now() - t0) / 1e3));
  let t = Infinity;
  for (let i = 0; i < runs; i++) {
    peak.sample(span);
    const t1 = performance.now();
    await fn();
    t = Math.min(t, (performance.now() - t1) / 1e3);
  }
  return t;
}

// ---------------------------------------------------------------- the best GEMM of the run (information)

type BestGemm = { gflops: number; via: string };
/** A compute-bound figure, emitted at the end against the best FMA-peak sample of the run. */
type ComputeRow = { row: Row; gflops: number };

/** GFLOP/s of the fastest of `runs` plain OpenBLAS sgemm calls (2 threads) C[M,N] = A[M,K]·B[N,K]ᵀ (an anchor). */
function sgemmBest(M: number, N: number, K: number, runs = 15): number {
  const t = Math.min(...(loadAddon().rawSgemm(M, N, K, true, 2, runs) as Float64Array));
  return (2 * M * N * K) / t / 1e9;
}

/** GFLOP/s of the fastest of `runs` vlmkit linears x[M,K]·w[N,K]ᵀ with f32 weights. */
function linearBest(M: number, N: number, K: number, runs = 9): number {
  return vk.tidy(() => {
    const x = vk.rand([M, K]), w = vk.rand([N, K]);
    vk.linear(x, w).dispose();
    let b = Infinity;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      vk.linear(x, w).dispose();
      b = Math.min(b, (performance.now() - t0) / 1e3);
    }
    return (2 * M * N * K) / b / 1e9;
  });
}

// ---------------------------------------------------------------- anchors (another program's figures)

interface AnchorFile { source: string; date: string; llamaCppCommit: string; machine: string; figures: Record<string, { value: number; unit: string; what: string }> }
let anchors: AnchorFile | null | undefined;

/**
 * A llama.cpp figure of bench/llamacpp-anchor.json (copied from the shared anchors, so that the bench never reads
 * outside the repository), with its source: an anchor to read beside a figure, never its ceiling. Null when the
 * file is missing or has no such figure.
 */
function anchor(name: string, context?: string): Record<string, unknown> | null {
  if (anchors === undefined) {
    try {
      anchors = JSON.parse(readFileSync(new URL('./llamacpp-anchor.json', import.meta.url), 'utf8')) as AnchorFile;
    } catch (e) {
      note(`bench/llamacpp-anchor.json unreadable (${(e as Error).message}): no anchors printed`);
      anchors = null;
    }
  }
  const f = anchors?.figures[name];
  if (!anchors || !f) return null;
  return { value: f.value, unit: f.unit, what: f.what, ...(context && { context }), via: `llama.cpp ${anchors.llamaCppCommit.slice(0, 9)}, ${anchors.date}, ${anchors.machine}`, source: anchors.source };
}

// ---------------------------------------------------------------- flop counts

const V = SMOLVLM_256M.vision, TX = SMOLVLM_256M.text;

/** Multiply-adds x2 of one tile through the vision tower and the connector. */
function visionFlops(): number {
  const P = (V.imageSize / V.patch) ** 2, D = V.hidden, I = V.mlp;
  const embed = 2 * P * 3 * V.patch * V.patch * D;
  const layer = 2 * P * D * D * 4 + 2 * P * D * I * 2 + 2 * 2 * P * P * D;
  const connector = 2 * SMOLVLM_256M.imageSeqLen * D * SMOLVLM_256M.scaleFactor ** 2 * TX.hidden;
  return embed + V.layers * layer + connector;
}

/** Flops of a T-token causal prefill from an empty cache, lm_head on the last position only. */
function prefillFlops(T: number): number {
  const H = TX.hidden, qd = TX.heads * TX.headDim, kvd = TX.kvHeads * TX.headDim, I = TX.mlp;
  const linears = 2 * T * (H * qd + 2 * H * kvd + qd * H + 3 * H * I);
  const attn = 2 * 2 * TX.heads * TX.headDim * ((T * (T + 1)) / 2); // q·k and p·v over the visible keys
  return TX.layers * (linears + attn) + 2 * TX.vocab * H;
}

/** Bytes of weights one decode step reads (bf16): every text linear and the (tied) lm_head. */
function decodeWeightBytes(): number {
  const H = TX.hidden, qd = TX.heads * TX.headDim, kvd = TX.kvHeads * TX.headDim, I = TX.mlp;
  return 2 * (TX.layers * (H * qd + 2 * H * kvd + qd * H + 3 * H * I) + TX.vocab * H);
}

// ---------------------------------------------------------------- inputs

/** A 2048x2048 test picture (gradients and noise) as JPEG bytes, as a photo would arrive. */
function testJpeg(side: number): Uint8Array {
  const rgba = new Uint8Array(side * side * 4);
  let s = 12345;
  for (let y = 0; y < side; y++)
    for (let x = 0; x < side; x++) {
      const i = (y * side + x) * 4;
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      rgba[i] = ((x * 255) / side) ^ (s >>> 28);
      rgba[i + 1] = (y * 255) / side;
      rgba[i + 2] = (x + y) & 255;
      rgba[i + 3] = 255;
    }
  return new Uint8Array(jpeg.encode({ data: rgba, width: side, height: side }, 90).data);
}

const userTurn = (text: string, images: number) => [{ role: 'user' as const, content: [...Array.from({ length: images }, () => ({ type: 'image' as const })), { type: 'text' as const, text }] }];

/** Uniform pixels in [-1, 1) for `n` tiles [1, n, 3, S, S]. */
function randomPixels(n: number): Tensor {
  return vk.tidy(() => vk.sub(vk.mul(vk.rand([1, n, 3, V.imageSize, V.imageSize]), 2), 1));
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

// ---------------------------------------------------------------- checks

/** Finite logits; cached (prefill + one step) last-position logits == the uncached forward's, on an image prompt. */
function check(model: Idefics3Model, proc: Processor): void {
  const enc = proc.encodeDecoded([{ messages: userTurn('What is in this image?', 1), images: [{ width: 512, height: 512, data: new Uint8Array(512 * 512 * 3).fill(128) } as RgbImage] }], { doImageSplitting: false });
  try {
    const ids = Array.from(enc.inputIds.toArray());
    const T = ids.length;
    vk.noGrad(() => vk.tidy(() => {
      const full = model.forward({ inputIds: enc.inputIds, pixelValues: enc.pixelValues, pixelAttentionMask: enc.pixelAttentionMask });
      const all = full.toFloat32Array();
      for (let i = 0; i < all.length; i++) if (!Number.isFinite(all[i])) throw new Error(`check: logit ${i} of the uncached forward is ${all[i]}`);
      const Vs = model.vocabSize;
      const want = all.subarray((T - 1) * Vs, T * Vs);
      const cache = model.createCache(1, T + 1);
      try {
        const head = vk.tensor(ids.slice(0, T - 1), [1, T - 1], { dtype: 'i32' });
        model.prefill({ inputIds: head, pixelValues: enc.pixelValues, pixelAttentionMask: enc.pixelAttentionMask }, cache).dispose();
        const got = model.step({ inputIds: vk.tensor([ids[T - 1]], [1, 1], { dtype: 'i32' }), positionIds: vk.tensor([T - 1], [1, 1], { dtype: 'i32' }) }, cache).toFloat32Array();
        const diff = new Float32Array(Vs);
        for (let i = 0; i < Vs; i++) diff[i] = got[i] - want[i];
        const rel = maxAbs(diff) / maxAbs(want);
        if (!(rel < 1e-3)) throw new Error(`check: cached last-token logits differ from the uncached forward by ${rel} (relative)`);
        note(`check: ${T}-token image prompt, logits finite, cached vs uncached max rel diff ${rel.toExponential(2)}`);
      } finally {
        cache.dispose();
      }
    }));
  } finally {
    enc.dispose();
  }
}

// ---------------------------------------------------------------- benches

async function benchVision(model: Idefics3Model, tracker: PeakTracker, out: ComputeRow[]): Promise<void> {
  const px = randomPixels(1);
  try {
    const t = await paired(4, () => vk.noGrad(() => model.visionFeatures(px).dispose()), tracker);
    const gf = visionFlops() / t / 1e9;
    out.push({ row: { bench: 'vision_encode', value: r3(t), unit: 's', tiles: 1, batch: 1, dtype: 'bf16', gflops: r3(gf), gflop: r3(visionFlops() / 1e9), target: 'vsBestGemm >= 0.7', anchor: anchor('encode_pass_s') }, gflops: gf });
  } finally {
    px.dispose();
  }
}

/** Text prefill of a `tiles`-tile prompt (image features already computed), logits of the last position. */
async function benchPrefill(model: Idefics3Model, proc: Processor, tiles: number, tracker: PeakTracker, out: ComputeRow[]): Promise<void> {
  const side = tiles === 1 ? 512 : 2048;
  const img = { width: side, height: side, data: new Uint8Array(side * side * 3).fill(100) } as RgbImage;
  const enc = proc.encodeDecoded([{ messages: userTurn('Describe this image in detail.', 1), images: [img] }], { doImageSplitting: tiles > 1 });
  const T = enc.inputIds.shape[1];
  const nTiles = enc.pixelValues!.shape[1];
  if (nTiles !== tiles) throw new Error(`prefill: the processor made ${nTiles} tiles, expected ${tiles}`);
  // image features of the right shape (random: their values do not change the timing)
  const feats = vk.tidy(() => vk.mul(vk.randn([tiles, SMOLVLM_256M.imageSeqLen, TX.hidden]), 0.5));
  try {
    const run = () => vk.noGrad(() => vk.tidy(() => {
      const cache = model.createCache(1, T);
      try {
        const emb = model.embedInputs(enc.inputIds, null, null, feats);
        const l = model.text.forward(emb, { cache, logitsFor: 'last' });
        if (!Number.isFinite(l.toFloat32Array()[0])) throw new Error('prefill: logits are not finite');
      } finally {
        cache.dispose();
      }
    }));
    const t = await paired(tiles === 1 ? 7 : 4, run, tracker);
    const gf = prefillFlops(T) / t / 1e9;
    out.push({
      row: {
        bench: 'prefill', value: r3(T / t), unit: 'tokens/s', tiles, batch: 1, tokens: T, dtype: 'bf16', seconds: r3(t),
        excludes: 'vision encoding: the text model alone over the prompt, image features precomputed (see vision_encode)',
        gflops: r3(gf), target: 'vsBestGemm >= 0.6', anchor: anchor('pp512_f16_tokens_per_s', 'a 512-token text prompt, F16 weights'),
      },
      gflops: gf,
    });
  } finally {
    feats.dispose();
    enc.dispose();
  }
}

async function run(gen: AsyncGenerator<unknown, GenerationOutput, undefined>): Promise<GenerationOutput> {
  for (;;) {
    const r = await gen.next();
    if (r.done) return r.value;
  }
}

/** A greedy decode of `steps` tokens per row after a prompt of `promptTokens` text tokens; returns tokens/s. */
function decoder(model: Idefics3Model, batch: number, promptTokens: number, steps: number) {
  const ids: number[] = [];
  for (let b = 0; b < batch; b++) for (let t = 0; t < promptTokens; t++) ids.push(50 + ((b * 37 + t * 11) % 380));
  const inputIds = vk.tensor(ids, [batch, promptTokens], { dtype: 'i32' });
  const attentionMask = vk.tensor(new Int32Array(batch * promptTokens).fill(1), [batch, promptTokens], { dtype: 'i32' });
  return {
    async run(): Promise<number> {
      const out = await run(generateStream(model, { inputIds, attentionMask }, { maxNewTokens: steps + 1, eosTokenIds: [] }));
      if (out.timings.decodeTokens !== batch * steps) throw new Error(`decode: ${out.timings.decodeTokens} tokens decoded, expected ${batch * steps}`);
      return out.timings.decodeTokensPerSec;
    },
    dispose(): void {
      inputIds.dispose();
      attentionMask.dispose();
    },
  };
}

async function benchDecode(model: Idefics3Model, first: { gbs: number; via: string }, tracker: PeakTracker): Promise<void> {
  const bytes = decodeWeightBytes();
  // the read bandwidth is sampled again before each run (the best sample kept), over the weights' bytes
  let read = first;
  const sampleRead = () => {
    const b = bandwidth({ reads: 1, writes: 0 }, bytes, 2);
    if (b.gbs > read.gbs) read = b;
  };
  // batch 1 and batch 8 runs alternate, so that both see the same share of a busy machine; best of 8 each (a
  // batch-8 run is twice as long, so on a shared machine it needs more tries to catch a quiet stretch)
  const d1 = decoder(model, 1, 16, 64), d8 = decoder(model, 8, 16, 64), long = decoder(model, 1, 1141, 64);
  try {
    let b1 = 0, b8 = 0, bl = 0, lbl = 0;
    for (let i = 0; i < 8; i++) {
      sampleRead();
      b1 = Math.max(b1, await d1.run());
      if (i % 2 === 0) tracker.sample(0.1);
      b8 = Math.max(b8, await d8.run());
      // the layer-by-layer path (one addon call per op) that the one-call decode step replaces, for comparison
      if (i % 2 === 1) {
        model.text.fusedDecode = false;
        try {
          lbl = Math.max(lbl, await d1.run());
        } finally {
          model.text.fusedDecode = true;
        }
      }
    }
    for (let i = 0; i < 2; i++) {
      sampleRead();
      bl = Math.max(bl, await long.run());
    }
    // batch 1: every weight byte read once per token, at the read bandwidth
    const ceil = ratio(read.gbs * 1e9, bytes);
    // batch 8 (roofline): one weight pass serves 8 tokens, each token costs 2 flops per weight (2 bytes in bf16)
    const peak = tracker.best;
    const ceil8 = Math.min(8 * ceil, ratio(peak.gflops * 1e9, bytes));
    const readVia = `weight bytes at the read bandwidth (${read.via}, the best sample of the run)`;
    emit({ bench: 'decode', value: r3(b1), unit: 'tokens/s', tiles: 0, batch: 1, context: 16, dtype: 'bf16', weightMB: r3(bytes / MB), ceiling: r3(ceil), ceilingVia: readVia, ratio: r3(ratio(b1, ceil)), layerByLayer: r3(lbl), vsLayerByLayer: r3(b1 / lbl), target: 'value >= 50', anchor: anchor('tg128_f16_tokens_per_s') });
    emit({ bench: 'decode', value: r3(b8), unit: 'tokens/s', tiles: 0, batch: 8, context: 16, dtype: 'bf16', vsBatch1: r3(b8 / b1), ceiling: r3(ceil8), ceilingVia: `the lower of 8x the batch-1 ceiling and the ${fmaVia(peak)} at 2 flops per weight per token`, ratio: r3(ratio(b8, ceil8)), target: 'vsBatch1 >= 4' });
    emit({ bench: 'decode', value: r3(bl), unit: 'tokens/s', tiles: 17, batch: 1, context: 1141, dtype: 'bf16', ceiling: r3(ceil), ceilingVia: `${readVia}; KV cache reads not counted, so the true limit is lower`, ratio: r3(ratio(bl, ceil)) });
  } finally {
    d1.dispose();
    d8.dispose();
    long.dispose();
  }
}

async function benchProcessor(proc: Processor, jpg: Uint8Array): Promise<void> {
  let img: RgbImage | null = null;
  const tDecode = await best(2, async () => void (img = await decodeImage(jpg, 'test.jpg')), 0);
  const tProc = await best(2, () => proc.encodeDecoded([{ messages: userTurn('Describe this image in detail.', 1), images: [img!] }]).dispose(), 0);
  emit({ bench: 'image_processor', value: r3(tDecode + tProc), unit: 's', tiles: 17, batch: 1, image: '2048x2048 JPEG', decodeS: r3(tDecode), processS: r3(tProc) });
}

/**
 * One 2048x2048 JPEG -> image processor -> prompt -> 64 generated tokens, at the checkpoint's image size (17
 * tiles: the target) and at --longest-edge 1024 (5 tiles: what a user trading detail for speed gets).
 */
async function benchEndToEnd(model: Idefics3Model, proc: Processor, jpg: Uint8Array): Promise<void> {
  for (const [longestEdge, tiles] of [[undefined, 17], [1024, 5]] as const) {
    const t0 = performance.now();
    const enc = await proc.encode({ messages: userTurn('Describe this image in detail.', 1), images: [jpg] }, { longestEdge });
    const tProc = performance.now();
    let out: GenerationOutput;
    try {
      if (enc.pixelValues!.shape[1] !== tiles) throw new Error(`end to end: ${enc.pixelValues!.shape[1]} tiles, expected ${tiles}`);
      out = await run(generateStream(model, enc, { maxNewTokens: 64, eosTokenIds: [] }));
    } finally {
      enc.dispose();
    }
    const s = (performance.now() - t0) / 1e3;
    if (out.timings.generatedTokens !== 64) throw new Error(`end to end: ${out.timings.generatedTokens} tokens generated, expected 64`);
    emit({
      bench: 'end_to_end', value: r3(s), unit: 's', tiles, batch: 1, dtype: 'bf16', ...(longestEdge && { longestEdge }),
      promptTokens: out.timings.prefillTokens, generated: 64,
      processS: r3((tProc - t0) / 1e3), encodeAndPrefillS: r3(out.timings.prefillMs / 1e3), decodeS: r3(out.timings.decodeMs / 1e3),
      encodeAndPrefill: 'vision encoding of every tile + the text prefill, up to the first token',
      decodeTokensPerSec: r3(out.timings.decodeTokensPerSec),
      ...(tiles === 17 && { anchor: anchor('end_to_end_17_tiles_s') }),
    });
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  vk.setDefaultBackend('native');
  emit(machine());
  const peak = new PeakTracker(fmaPeak());
  const first = peak.burst();
  emit({ bench: 'fma_peak', value: r3(first.gflops), unit: 'GFLOP/s', isa: first.isa, threads: first.threads, via: `${fmaVia(first)}: best of 5 samples of 0.2 s and 12 of 0.03 s`, note: 'sampled again before each compute-bound run; the compute-bound rows come last, against the best sample of the run' });
  const big = beyondCacheBytes();
  const rd = bandwidth({ reads: 1, writes: 0 }, big);
  emit({ bench: 'bandwidth', kind: 'read', bytes: big, value: r3(rd.gbs), unit: 'GB/s', via: rd.via, counts: 'bytes read' });
  // the best GEMM of the run, any path, at the vision MLP's shape: information beside the compute-bound ratios;
  // measured at the start and again at the end, so that it does not hang on one busy moment
  const shape = `[1024x${V.hidden}]x[${V.hidden}x${V.mlp}]`;
  let blas = 0, ours = 0;
  const measureGemms = (when: string) => {
    const b = sgemmBest(1024, V.mlp, V.hidden);
    blas = Math.max(blas, b);
    ours = Math.max(ours, linearBest(1024, V.mlp, V.hidden));
    emit({ bench: 'sgemm', anchor: openblasLabel(), shape, layout: 'B stored [N,K]', value: r3(b), unit: 'GFLOP/s', via: 'best of 15 calls', when, note: 'an anchor, not a ceiling' });
  };
  measureGemms('start');
  const compute: ComputeRow[] = [];

  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-generate-'));
  let model: Idefics3Model | null = null;
  try {
    const t0 = performance.now();
    const { params, bytes } = writeRandomSmolVLM(dir, { dtype: 'bf16' });
    const t1 = performance.now();
    model = loadModel(dir);
    const proc = Processor.fromDir(dir);
    const loadedRss = process.memoryUsage().rss;
    note(`random SmolVLM-256M: ${(params / 1e6).toFixed(1)}M params, ${(bytes / MB).toFixed(0)} MB bf16 written in ${((t1 - t0) / 1e3).toFixed(1)} s, loaded in ${((performance.now() - t1) / 1e3).toFixed(1)} s`);
    const jpg = want('processor') || want('e2e') ? testJpeg(2048) : new Uint8Array(0);

    if (want('check')) check(model, proc);
    if (want('vision')) await benchVision(model, peak, compute);
    if (want('processor')) await benchProcessor(proc, jpg);
    if (want('prefill')) {
      await benchPrefill(model, proc, 1, peak, compute);
      await benchPrefill(model, proc, 17, peak, compute);
    }
    if (want('decode')) await benchDecode(model, rd, peak);
    if (want('e2e')) await benchEndToEnd(model, proc, jpg);
    const peakRss = process.resourceUsage().maxRSS * 1024;
    // compute-bound rows last, against the best FMA-peak sample of the whole run
    measureGemms('end');
    const bestGemm: BestGemm = blas >= ours ? { gflops: blas, via: `${openblasLabel()} ${shape}` } : { gflops: ours, via: `vlmkit linear f32 ${shape}` };
    peak.burst();
    const top = peak.best;
    emit({ bench: 'best_gemm', value: r3(bestGemm.gflops), unit: 'GFLOP/s', via: bestGemm.via, vlmkitLinear: r3(ours), openblas: r3(blas), note: 'the best of the start and the end of the run: information beside compute-bound ratios, not a ceiling', ...(bestGemm.gflops > top.gflops && { warning: peakWarning }) });
    emit({ bench: 'fma_peak', value: r3(top.gflops), unit: 'GFLOP/s', isa: top.isa, threads: top.threads, via: `${fmaVia(top)}: the best of ${peak.samples} samples over the run`, note: 'the ceiling of the vision_encode and prefill rows below' });
    for (const c of compute) emit({ ...c.row, ...computeFields(c.gflops, top, bestGemm) });
    emit({ bench: 'rss', value: r3(peakRss / MB), unit: 'MB', dtype: 'bf16', afterLoadMB: r3(loadedRss / MB), what: 'peak resident set of the whole bench (weights, activations of 17 tiles, caches)' });
  } finally {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
