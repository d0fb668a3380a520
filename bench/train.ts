// `npm run bench:train`: one LoRA SFT step (r=8 on q/k/v/o/gate/up/down_proj, batch 1, AdamW, clipping) on a
// random-weight model of SmolVLM-256M-Instruct's exact shape (bf16 weights, bench/random-model.ts), for a 1-tile
// and a 17-tile (4x4 + global) sample, with and without gradient checkpointing. One JSON object per line:
//   {bench, value, unit, tiles, batch, dtype, gc, ceiling, ratio, ...}
// - train_step: seconds per optimizer step (data loading included), tokens/s;
// - train_gflops: useful matmul FLOP/s of the step's compute (forward + the backward products a LoRA step needs,
//   counted from the shapes; the recomputation of gradient checkpointing is not counted) against the f32 FMA peak
//   of the widest vector unit, sampled right before and after the step (the best sample); beside it, as an
//   anchor, a plain OpenBLAS sgemm at the vision MLP's shape measured at the same moments (the machine is shared:
//   cpu_share says how much of the 2 cores the step had);
// - train_profile: milliseconds per step in each backend kernel (linear, matmul, attention, ...);
// - train_memory: peak RSS of the process, and peak activation memory = the most tensor bytes held at once during
//   the step minus what was held before it (engine storage counter), with and without checkpointing.
// Each configuration runs in its own child process, so that peak RSS is that configuration's. Without
// checkpointing the 17-tile step holds what every layer's backward reads (about 8.4 GB of activations, 9 GB peak
// RSS; before graph scopes released what no rule reads, ~27 GB): when the estimate from the 1-tile step does not
// fit in free memory it is skipped and the estimate reported (--force runs it anyway). The result is
// checked first: the loss is finite and near ln(vocab) for random weights, and the checkpointed step gives the
// same loss and gradient norm as the plain one.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { computeFields, fmaPeak, machine, openblasLabel, openblasSgemm, PeakTracker, peakRssMB, peakWarning, ratio, type FmaPeak } from './ceilings.js';
import { SMOLVLM_256M, writeRandomSmolVLM } from './random-model.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const note = (s: string): void => void process.stderr.write(`bench:train: ${s}\n`);
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const MB = 1 << 20;
const LORA_R = 8;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

interface ChildConfig {
  dir: string;
  data: string;
  tiles: number;
  gc: boolean;
  /** timed steps (after `warmup` untimed ones) */
  steps: number;
  warmup: number;
}

interface ChildResult {
  tiles: number;
  gc: boolean;
  seqLen: number;
  targets: number;
  /** median seconds of trainer.step() */
  stepS: number;
  /** seconds of decoding + processing + collating the sample (part of stepS) */
  dataS: number;
  loss: number;
  gradNorm: number;
  maxRssMB: number;
  rssBeforeMB: number;
  activationMB: number;
  heldBeforeMB: number;
  flops: number;
  /** the FMA peak sampled in the child right before and right after the timed steps (the better sample) */
  peak: FmaPeak;
  /** OpenBLAS sgemm GFLOP/s measured at the same moments (mean): an anchor */
  openblas: number;
  /** CPU seconds of this process during the timed steps / (wall seconds x engine threads) */
  cpuShare: number;
  /** milliseconds per backend kernel over the timed steps, largest first */
  kernels: Record<string, number>;
}

// ---------------------------------------------------------------- FLOPs of one LoRA step, from the shapes

/**
 * Matmul FLOPs (2·M·N·K per product) of the forward and of the backward products a LoRA step needs: dX of every
 * frozen linear whose input carries a gradient, the adapters' dA, dB and dX, attention's four backward products,
 * and the lm_head at the loss targets only (forward + dX). Not counted: gradient checkpointing's recomputation,
 * FlashAttention's recomputed scores, elementwise work.
 */
export function loraStepFlops(tiles: number, T: number, targets: number, r = LORA_R): number {
  const v = SMOLVLM_256M.vision, t = SMOLVLM_256M.text;
  const P = (v.imageSize / v.patch) ** 2, Nv = tiles * P, D = v.hidden, F = v.mlp;
  let f = 0;
  const lin = (M: number, inF: number, outF: number, dx: boolean) => 2 * M * inF * outF * (dx ? 2 : 1);
  const lora = (M: number, inF: number, outF: number, dx: boolean) => {
    const fwd = 2 * M * r * (inF + outF);
    return fwd + 2 * M * r * outF * 2 + 2 * M * r * inF * (dx ? 2 : 1); // dB, d(xA), dA (+ dX through A)
  };
  // vision: patch embedding (forward only), 12 layers; LoRA on q/k/v (out_proj, fc1, fc2 are not targets)
  f += 2 * Nv * (3 * v.patch * v.patch) * D;
  for (let l = 0; l < v.layers; l++) {
    const first = l === 0; // layer 0's input (patch embeddings) needs no gradient
    for (let i = 0; i < 3; i++) f += lin(Nv, D, D, !first) + lora(Nv, D, D, !first);
    f += lin(Nv, D, D, true) + lin(Nv, D, F, true) + lin(Nv, F, D, true);
    f += 3 * (4 * tiles * P * P * D); // attention: QKᵀ and PV forward, 4 products backward
  }
  // connector (pixel shuffle by 4 -> 16·D inputs), forward + dX
  const Ni = tiles * SMOLVLM_256M.imageSeqLen;
  f += lin(Ni, D * SMOLVLM_256M.scaleFactor ** 2, t.hidden, true);
  // text: 30 layers, every projection adapted
  const H = t.hidden, q = t.heads * t.headDim, kv = t.kvHeads * t.headDim;
  const shapes: [number, number][] = [[H, q], [H, kv], [H, kv], [q, H], [H, t.mlp], [H, t.mlp], [t.mlp, H]];
  for (let l = 0; l < t.layers; l++) {
    for (const [i, o] of shapes) f += lin(T, i, o, true) + lora(T, i, o, true);
    f += 3 * (4 * t.heads * t.headDim * (T * (T + 1)) / 2); // causal attention
  }
  f += lin(targets, H, t.vocab, true); // lm_head at the targets
  return f;
}

// ---------------------------------------------------------------- child: one configuration

async function child(cfg: ChildConfig): Promise<void> {
  const { storagePeak, storageStats } = await import('../src/engine/storage.js');
  const { loadModel } = await import('../src/models/idefics3/model.js');
  const { Processor } = await import('../src/models/idefics3/processor.js');
  const { LoraModel } = await import('../src/train/lora.js');
  const { trainableParameters } = await import('../src/train/params.js');
  const { SftDataset, loadExampleImages } = await import('../src/train/data.js');
  const { SftCollator } = await import('../src/train/collate.js');
  const { SftTrainer } = await import('../src/train/sft.js');
  const tag = `${cfg.tiles} tile${cfg.tiles > 1 ? 's' : ''}, checkpointing ${cfg.gc ? 'on' : 'off'}`;
  let t0 = performance.now();
  // one tile: the image unsplit (SmolVLM upscales any image to 2048 on its long edge before splitting)
  const proc = Processor.fromDir(cfg.dir, cfg.tiles === 1 ? { doImageSplitting: false } : {});
  const model = loadModel(cfg.dir);
  const lora = LoraModel.create(model, { r: LORA_R, loraAlpha: 16, targetModules: TARGETS }, { seed: 1 });
  const params = trainableParameters(model, 'lora', lora);
  const ds = await SftDataset.load(cfg.data, proc);
  const ex = ds.examples[0]!;
  note(`${tag}: model + data loaded in ${((performance.now() - t0) / 1e3).toFixed(1)} s (${ex.length} tokens, ${ex.tiles} tiles)`);
  if (ex.tiles !== cfg.tiles) throw new Error(`the sample has ${ex.tiles} tiles, expected ${cfg.tiles}`);
  // data time alone (decode + resize + normalize + collate)
  t0 = performance.now();
  const col = new SftCollator(proc);
  const b = col.collate([ex], await loadExampleImages(proc, [ex]));
  const dataS = (performance.now() - t0) / 1e3;
  const seqLen = b.seqLen, targets = b.numTargets;
  b.dispose();
  const tr = new SftTrainer({
    model, processor: proc, train: ds, params, lora,
    config: { batchSize: 1, maxSteps: cfg.warmup + cfg.steps, lr: 1e-4, clip: 1, gradientCheckpointing: cfg.gc, seed: 1 },
  });
  // time per backend kernel (the wrapper costs well under a microsecond per call)
  const { getBackend, nativeThreads } = await import('../src/engine/index.js');
  const nat = getBackend('native') as unknown as Record<string, unknown>;
  const kernelMs = new Map<string, number>();
  let profiling = false;
  for (const k of Object.keys(nat)) {
    const f = nat[k];
    if (typeof f !== 'function') continue;
    nat[k] = (...a: unknown[]) => {
      if (!profiling) return (f as (...x: unknown[]) => unknown).apply(nat, a);
      const k0 = performance.now();
      try {
        return (f as (...x: unknown[]) => unknown).apply(nat, a);
      } finally {
        kernelMs.set(k, (kernelMs.get(k) ?? 0) + performance.now() - k0);
      }
    };
  }
  const peaks: FmaPeak[] = [], blas: number[] = [];
  const v = SMOLVLM_256M.vision;
  const sample = () => {
    const t = new PeakTracker(fmaPeak({ seconds: 0.2, tries: 3 }));
    peaks.push(t.burst());
    blas.push(openblasSgemm(4096, v.mlp, v.hidden).gflops);
  };
  let cpuS = 0, wallS = 0;
  const times: number[] = [];
  let loss = NaN, gradNorm = NaN, activation = 0, heldBefore = 0, rssBefore = 0;
  for (let i = 0; i < cfg.warmup + cfg.steps; i++) {
    heldBefore = storageStats().bytes;
    rssBefore = process.memoryUsage().rss;
    storagePeak(true);
    note(`${tag}: step ${i + 1}/${cfg.warmup + cfg.steps}${i < cfg.warmup ? ' (warm-up)' : ''} ...`);
    const timed = i >= cfg.warmup;
    if (timed && i === cfg.warmup) sample();
    profiling = timed;
    const c0 = process.cpuUsage();
    const s0 = performance.now();
    const r = await tr.step();
    const s = (performance.now() - s0) / 1e3;
    profiling = false;
    if (timed) {
      const c = process.cpuUsage(c0);
      cpuS += (c.user + c.system) / 1e6;
      wallS += s;
    }
    activation = Math.max(activation, storagePeak() - heldBefore);
    note(`${tag}: step ${i + 1} took ${s.toFixed(2)} s, loss ${r.loss.toFixed(4)}, grad norm ${r.gradNorm.toFixed(4)}`);
    if (i === 0) {
      loss = r.loss;
      gradNorm = r.gradNorm;
    }
    if (i >= cfg.warmup) times.push(s);
  }
  tr.dispose();
  sample();
  times.sort((a, c) => a - c);
  const res: ChildResult = {
    tiles: cfg.tiles, gc: cfg.gc, seqLen, targets, stepS: times[times.length >> 1]!, dataS, loss, gradNorm,
    maxRssMB: peakRssMB(), rssBeforeMB: rssBefore / MB, activationMB: activation / MB,
    heldBeforeMB: heldBefore / MB, flops: loraStepFlops(cfg.tiles, seqLen, targets),
    peak: peaks.reduce((a, c) => (c.gflops > a.gflops ? c : a)),
    openblas: blas.reduce((a, c) => a + c, 0) / blas.length,
    cpuShare: cpuS / (wallS * nativeThreads()),
    kernels: Object.fromEntries([...kernelMs].sort((a, c) => c[1] - a[1]).slice(0, 8).map(([k, ms]) => [k, Math.round(ms / cfg.steps)])),
  };
  lora.remove();
  model.dispose();
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
}

function runChild(cfg: ChildConfig): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) return reject(new Error(`bench child (${cfg.tiles} tiles, gc ${cfg.gc}) failed with code ${code}: ${out.slice(-2000)}`));
      resolve(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

// ---------------------------------------------------------------- parent

/** A smooth RGB test picture (compresses well, resizes like a photo). */
function writePng(path: string, w: number, h: number): void {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      png.data[i] = (x * 255) / w;
      png.data[i + 1] = (y * 255) / h;
      png.data[i + 2] = 128 + 100 * Math.sin((x + y) / 37);
      png.data[i + 3] = 255;
    }
  writeFileSync(path, PNG.sync.write(png));
}

const ANSWER = 'The chart shows quarterly revenue for three product lines. Revenue grows in every quarter, the largest line ' +
  'doubles from the first to the last quarter, and the smallest line stays flat at about a tenth of the total.';

async function main(): Promise<void> {
  const only = process.argv.includes('--quick') ? [1] : [1, 17];
  emit(machine());
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-train-'));
  try {
    let t0 = performance.now();
    const w = writeRandomSmolVLM(dir, { dtype: 'bf16' });
    note(`random SmolVLM-256M (${(w.params / 1e6).toFixed(1)}M parameters, ${(w.bytes / MB).toFixed(0)} MB bf16) written in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    const data: Record<number, string> = {};
    for (const tiles of only) {
      // 1 tile: a 512x512 image unsplit; 17: 2048x2048 splits into 4x4 tiles of 512 plus the global image
      const side = tiles === 1 ? 512 : 2048;
      writePng(join(dir, `img${tiles}.png`), side, side);
      data[tiles] = join(dir, `data${tiles}.jsonl`);
      writeFileSync(data[tiles]!, JSON.stringify({
        messages: [
          { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this chart in detail.' }] },
          { role: 'assistant', content: ANSWER },
        ],
        images: [`img${tiles}.png`],
      }) + '\n');
    }
    t0 = performance.now();
    const v = SMOLVLM_256M.vision;
    const peak = fmaPeak();
    emit({ bench: 'fma_peak', value: r3(peak.gflops), unit: 'GFLOP/s', isa: peak.isa, threads: peak.threads, note: 'at the start; train_gflops uses the one sampled around each step' });
    const blas = openblasSgemm(4096, v.mlp, v.hidden);
    emit({ bench: 'sgemm', anchor: openblasLabel(), shape: `[4096x${v.hidden}]x[${v.hidden}x${v.mlp}]`, value: r3(blas.gflops), unit: 'GFLOP/s', note: 'an anchor, not a ceiling; at the start' });
    const force = process.argv.includes('--force');
    let oneTile: ChildResult | null = null;
    for (const tiles of only) {
      const res: ChildResult[] = [];
      for (const gc of [false, true]) {
        if (!gc && tiles > 1 && oneTile && !force) {
          // without checkpointing every layer's intermediates stay alive: estimate from the 1-tile step (activation
          // bytes in proportion to tokens x layers x width, vision and text) and skip when it cannot fit
          const v = SMOLVLM_256M.vision, t = SMOLVLM_256M.text;
          const weight = (nv: number, nt: number) => nv * v.layers * v.hidden + nt * t.layers * t.hidden;
          const P = (v.imageSize / v.patch) ** 2;
          const T = oneTile.seqLen + (tiles - 1) * SMOLVLM_256M.imageSeqLen + 2 * 16; // + tile tokens and row markers
          const estMB = oneTile.activationMB * weight(tiles * P, T) / weight(P, oneTile.seqLen);
          const needMB = estMB + oneTile.rssBeforeMB;
          const freeMB = freemem() / MB;
          if (needMB > 0.9 * freeMB) {
            note(`${tiles} tiles without checkpointing would need about ${(needMB / 1024).toFixed(1)} GB, ${(freeMB / 1024).toFixed(1)} GB are free: skipped (--force runs it anyway)`);
            emit({ bench: 'train_memory', tiles, batch: 1, dtype: 'bf16', gc: false, value: null, unit: 'MB peak RSS', skipped: 'does not fit in free memory', estimated_activation_mb: r3(estMB), estimated_peak_mb: r3(needMB), free_mb: r3(freeMB), estimate: 'from the 1-tile step, activation bytes in proportion to tokens x layers x hidden size' });
            res.push({ ...oneTile, tiles, gc: false, activationMB: estMB, maxRssMB: needMB, stepS: NaN, estimated: true } as ChildResult & { estimated: boolean });
            continue;
          }
        }
        const r = await runChild({ dir, data: data[tiles]!, tiles, gc, steps: tiles === 1 ? 3 : 1, warmup: tiles === 1 ? 1 : 0 });
        // check first: random weights give a loss near ln(vocab), finite gradients
        const lnV = Math.log(SMOLVLM_256M.text.vocab);
        if (!(Math.abs(r.loss - lnV) < 2) || !Number.isFinite(r.gradNorm) || !(r.gradNorm > 0))
          throw new Error(`${tiles} tiles, gc ${gc}: loss ${r.loss} (expected about ln V = ${lnV.toFixed(2)}), grad norm ${r.gradNorm}`);
        res.push(r);
        if (tiles === 1 && !gc) oneTile = r;
        const common = { tiles, batch: 1, dtype: 'bf16', gc, lora: `r=${LORA_R} q/k/v/o/gate/up/down`, tokens: r.seqLen, targets: r.targets };
        const computeS = r.stepS - r.dataS;
        emit({ bench: 'train_step', ...common, value: r3(r.stepS), unit: 's/step', data_s: r3(r.dataS), tokens_per_s: r3(r.seqLen / r.stepS) });
        const gflops = r.flops / computeS / 1e9;
        emit({
          bench: 'train_gflops', ...common, value: r3(gflops), unit: 'GFLOP/s', gflop: r3(r.flops / 1e9), compute_s: r3(computeS),
          ...computeFields(gflops, r.peak), ceilingVia: `f32 FMA peak (${r.peak.isa}, ${r.peak.threads} threads), sampled just before and after the step (the better)`,
          vsOpenBLAS: r3(ratio(gflops, r.openblas)), openblas: r3(r.openblas), openblasVia: `${openblasLabel()} [4096x768]x[768x3072] just before and after the step (mean): an anchor, not a ceiling`,
          target: 'vsOpenBLAS >= 0.4', cpu_share: r3(r.cpuShare), ...(r.openblas > r.peak.gflops && { warning: peakWarning }),
        });
        emit({ bench: 'train_profile', ...common, unit: 'ms per step by backend kernel', value: r.kernels });
        emit({ bench: 'train_memory', ...common, value: r3(r.maxRssMB), unit: 'MB peak RSS', rss_before_step_mb: r3(r.rssBeforeMB), activation_mb: r3(r.activationMB), held_before_step_mb: r3(r.heldBeforeMB) });
      }
      const [plain, gc] = res as [ChildResult & { estimated?: boolean }, ChildResult];
      // the checkpointed step must compute the same thing
      if (!plain.estimated && (Math.abs(plain.loss - gc.loss) > 1e-5 * plain.loss || Math.abs(plain.gradNorm - gc.gradNorm) > 1e-4 * plain.gradNorm))
        throw new Error(`${tiles} tiles: checkpointing changed the step (loss ${plain.loss} vs ${gc.loss}, grad norm ${plain.gradNorm} vs ${gc.gradNorm})`);
      emit({ bench: 'train_gc_memory', tiles, batch: 1, dtype: 'bf16', value: r3(gc.activationMB / plain.activationMB), unit: 'activation ratio (gc / plain)', plain_mb: r3(plain.activationMB), gc_mb: r3(gc.activationMB), rss_plain_mb: r3(plain.maxRssMB), rss_gc_mb: r3(gc.maxRssMB), time_ratio: plain.estimated ? null : r3(gc.stepS / plain.stepS), plain_is: plain.estimated ? 'estimate' : 'measured', target: '<= 0.5' });
    }
    note(`done in ${((performance.now() - t0) / 1e3).toFixed(0)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ci = process.argv.indexOf('--child');
if (ci >= 0) await child(JSON.parse(process.argv[ci + 1]!) as ChildConfig);
else await main();
