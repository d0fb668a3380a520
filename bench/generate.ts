// `npm run bench:generate`: SmolVLM-256M-Instruct-shaped inference (random bf16 weights written to a temp dir by
// bench/random-model.ts) against ceilings measured in the same run. One JSON object per line, as bench:engine:
// {bench, value, unit, tiles, batch, dtype, ceiling, ratio, target, ...}. Lines: machine; the sgemm/memory ceilings;
// vision_encode (seconds per 512x512 tile, and its GFLOP/s against sgemm); image_processor (decode + process of
// a 2048x2048 JPEG); prefill (tokens/s for a 1-tile and a 17-tile prompt, logits of the last position only, and
// its GFLOP/s against sgemm); decode (tokens/s at batch 1 and 8 after a short prompt, and at batch 1 after the
// 17-tile prompt); end_to_end (one 2048x2048 JPEG -> 17 tiles, and 5 at longest_edge 1024 -> 64 generated tokens,
// seconds); rss (peak).
// The results are checked first: logits are finite, and the KV-cached last-position logits agree with the
// uncached forward on a short image prompt. Timings are the best of a few runs (the machine is shared); compute
// ceilings are sustained sgemm rates sampled before each run, over as long as one run of the figure they divide.
//
//   npm run bench:generate                 every group
//   npm run bench:generate -- decode       only some: check, vision, processor, prefill, decode, e2e
import { mkdtempSync, rmSync } from 'node:fs';
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
import { machine, memcpyCeiling } from './ceilings.js';
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
 * Best seconds of `runs` calls of fn, each preceded by a sample of the ceiling over as long as one call of fn takes
 * (sustained GFLOP/s, the best sample kept): figure and ceiling are both sustained rates over the same spans of a
 * shared machine.
 */
async function paired(runs: number, fn: () => unknown, ceiling: (seconds: number) => number): Promise<{ t: number; ceiling: number }> {
  const t0 = performance.now();
  await fn();
  const span = (performance.now() - t0) / 1e3;
  let t = Infinity, c = 0;
  for (let i = 0; i < runs; i++) {
    c = Math.max(c, ceiling(span));
    const t1 = performance.now();
    await fn();
    t = Math.min(t, (performance.now() - t1) / 1e3);
  }
  return { t, ceiling: c };
}

/** Sustained GFLOP/s of back-to-back OpenBLAS sgemm calls (2 threads) C[M,N] = A[M,K]·B[N,K]ᵀ for ~`seconds`. */
function sgemmSustained(M: number, N: number, K: number, seconds: number): number {
  const flops = 2 * M * N * K;
  const one = Math.min(...(loadAddon().rawSgemm(M, N, K, true, 2, 2) as Float64Array));
  const iters = Math.max(3, Math.min(2000, Math.round(seconds / one)));
  const ts = loadAddon().rawSgemm(M, N, K, true, 2, iters) as Float64Array;
  let total = 0;
  for (const v of ts) total += v;
  return (flops * iters) / total / 1e9;
}

// ---------------------------------------------------------------- ceilings (best of several runs, like the figures)

/** GFLOP/s of the fastest of `runs` plain OpenBLAS sgemm calls (2 threads) C[M,N] = A[M,K]·B[N,K]ᵀ. */
function sgemmBest(M: number, N: number, K: number, runs = 15): number {
  const t = Math.min(...(loadAddon().rawSgemm(M, N, K, true, 2, runs) as Float64Array));
  return (2 * M * N * K) / t / 1e9;
}

/** Bytes read per second by the fastest of `runs` AVX2 sums over n bytes (our pool). */
function readBest(n: number, runs = 9): number {
  const a = new Float32Array(n / 4).fill(1);
  const addon = loadAddon();
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    addon.readSum(a);
    best = Math.min(best, (performance.now() - t0) / 1e3);
  }
  return n / best / 1e9;
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

async function benchVision(model: Idefics3Model): Promise<void> {
  const px = randomPixels(1);
  try {
    const { t, ceiling } = await paired(4, () => vk.noGrad(() => model.visionFeatures(px).dispose()), (span) => sgemmSustained(1024, V.mlp, V.hidden, span));
    const gf = visionFlops() / t / 1e9;
    emit({ bench: 'vision_encode', value: r3(t), unit: 's', tiles: 1, batch: 1, dtype: 'bf16', gflops: r3(gf), ceiling: r3(ceiling), ceilingVia: `sgemm [1024x${V.hidden}]x[${V.hidden}x${V.mlp}] sustained over as long as one run, sampled before each run`, ratio: r3(gf / ceiling), target: 'ratio >= 0.7', gflop: r3(visionFlops() / 1e9) });
  } finally {
    px.dispose();
  }
}

/** Text prefill of a `tiles`-tile prompt (image features already computed), logits of the last position. */
async function benchPrefill(model: Idefics3Model, proc: Processor, tiles: number): Promise<void> {
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
    // the ceiling: the better of OpenBLAS on this prompt's MLP shape and on the large vision shape (OpenBLAS's own
    // threading does poorly on short prompts, and a ceiling below what the engine reaches would flatter it)
    const { t, ceiling: ceil } = await paired(tiles === 1 ? 7 : 4, run, (span) => Math.max(sgemmSustained(T, TX.mlp, TX.hidden, span / 2), sgemmSustained(1024, V.mlp, V.hidden, span / 2)));
    const gf = prefillFlops(T) / t / 1e9;
    emit({ bench: 'prefill', value: r3(T / t), unit: 'tokens/s', tiles, batch: 1, tokens: T, dtype: 'bf16', seconds: r3(t), gflops: r3(gf), ceiling: r3(ceil), ceilingVia: `the better sgemm of [${T}x${TX.hidden}]x[${TX.hidden}x${TX.mlp}] and [1024x${V.hidden}]x[${V.hidden}x${V.mlp}], sustained over as long as one run, sampled before each run`, ratio: r3(gf / ceil), target: 'ratio >= 0.6' });
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

async function benchDecode(model: Idefics3Model, readGbs: number): Promise<void> {
  const bytes = decodeWeightBytes();
  const ceil = readGbs * 1e9 / bytes;
  // batch 1 and batch 8 runs alternate, so that both see the same share of a busy machine; best of 8 each (a
  // batch-8 run is twice as long, so on a shared machine it needs more tries to catch a quiet stretch)
  const d1 = decoder(model, 1, 16, 64), d8 = decoder(model, 8, 16, 64), long = decoder(model, 1, 1141, 64);
  try {
    let b1 = 0, b8 = 0, bl = 0;
    for (let i = 0; i < 8; i++) {
      b1 = Math.max(b1, await d1.run());
      b8 = Math.max(b8, await d8.run());
    }
    emit({ bench: 'decode', value: r3(b1), unit: 'tokens/s', tiles: 0, batch: 1, context: 16, dtype: 'bf16', weightMB: r3(bytes / MB), ceiling: r3(ceil), ceilingVia: 'weight bytes at the read-sweep rate', ratio: r3(b1 / ceil), target: 'value >= 50' });
    emit({ bench: 'decode', value: r3(b8), unit: 'tokens/s', tiles: 0, batch: 8, context: 16, dtype: 'bf16', vsBatch1: r3(b8 / b1), ceiling: r3(4 * b1), ceilingVia: '4x batch 1', ratio: r3(b8 / (4 * b1)), target: 'value >= 4x batch 1' });
    for (let i = 0; i < 2; i++) bl = Math.max(bl, await long.run());
    emit({ bench: 'decode', value: r3(bl), unit: 'tokens/s', tiles: 17, batch: 1, context: 1141, dtype: 'bf16', ceiling: r3(ceil), ceilingVia: 'weight bytes at the read-sweep rate (KV cache reads not counted)', ratio: r3(bl / ceil) });
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

/** One 2048x2048 JPEG -> processor (17 tiles) -> vision + prefill -> 64 generated tokens. */
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
      processS: r3((tProc - t0) / 1e3), prefillS: r3(out.timings.prefillMs / 1e3), decodeS: r3(out.timings.decodeMs / 1e3),
      decodeTokensPerSec: r3(out.timings.decodeTokensPerSec),
      ...(tiles === 17 && { ceiling: 45, ceilingVia: 'llama.cpp on this machine', ratio: r3(45 / s), target: 'value < 45' }),
    });
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  vk.setDefaultBackend('native');
  emit(machine());
  const sgemmVision = sgemmBest(1024, V.mlp, V.hidden);
  emit({ bench: 'sgemm', shape: `[1024x${V.hidden}]x[${V.hidden}x${V.mlp}]`, layout: 'B stored [N,K]', threads: 2, value: r3(sgemmVision), unit: 'GFLOP/s', via: 'best of 15 OpenBLAS calls', note: 'vision_encode and prefill sample this ceiling again before each of their runs' });
  const mc = memcpyCeiling(96 * MB);
  emit({ bench: 'memcpy', bytes: 96 * MB, value: r3(mc.gbs), unit: 'GB/s', counts: 'read+write', via: mc.via });
  const rd = readBest(256 * MB);
  emit({ bench: 'memcpy', kind: 'read-only sweep', bytes: 256 * MB, value: r3(rd), unit: 'GB/s', counts: 'read', via: 'best of 9 pool AVX2 sums' });

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
    if (want('vision')) await benchVision(model);
    if (want('processor')) await benchProcessor(proc, jpg);
    if (want('prefill')) {
      await benchPrefill(model, proc, 1);
      await benchPrefill(model, proc, 17);
    }
    if (want('decode')) await benchDecode(model, rd);
    if (want('e2e')) await benchEndToEnd(model, proc, jpg);
    const peak = process.resourceUsage().maxRSS * 1024;
    emit({ bench: 'rss', value: r3(peak / MB), unit: 'MB', dtype: 'bf16', afterLoadMB: r3(loadedRss / MB), what: 'peak resident set of the whole bench (weights, activations of 17 tiles, caches)' });
  } finally {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
