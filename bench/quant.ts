// `npm run bench:quant`: the weight formats on SmolVLM-256M-Instruct's exact shapes (random bf16 weights written
// by bench/random-model.ts; the quantized ones made from them) against the machine's limits measured in the same
// run (bench/ceilings.ts). One JSON object per line, as bench:generate: {bench, dtype, value, unit, ceiling, ...}.
// Lines: machine; the read bandwidth; then for each of f32, bf16, q8_0, q4_0, nf4:
//   weights  the bytes of every weight as loaded (MB), and the bytes one decode step reads (text linears + lm_head)
//   decode   tokens/s at batch 1 after a 16-token prompt; ceiling: those bytes at the read bandwidth of the run
//            (sampled again before each run, the best kept): decode at batch 1 reads every such byte once a token
//   prefill  tokens/s of the text model over a 17-tile prompt (image features precomputed; logits of the last
//            position only), against the f32 FMA peak at 2 flops per weight per token
// and qlora: one LoRA step (r=8 on q/k/v/o/gate/up/down, 1-tile sample, batch 1, gradient checkpointing on, as
// QLoRA is run: without it the activations, not the weights, dominate the peak) on the NF4 base (a folder written
// by quantizeCheckpoint, as `vlmkit quantize` does) against the same step on the bf16 base, each in its own child
// process so that its peak RSS is its own; the children run this file compiled by tsc, as `vlmkit train` runs
// dist/ (compileForChildren). Each format's logits are checked first: finite, and their distance to the
// bf16 model's is printed (information: random weights, not a quality figure). The machine may be shared: read
// the ratios, not the raw figures.
//
//   npm run bench:quant                   everything
//   npm run bench:quant -- q8_0 q4_0      only some formats (and no qlora rows unless "qlora" is named)
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import * as vk from '../src/engine/index.js';
import type { QuantFormat, Tensor } from '../src/engine/index.js';
import { generate } from '../src/generate/generate.js';
import { type Idefics3Model, loadModel } from '../src/models/idefics3/index.js';
import { Processor } from '../src/models/idefics3/processor.js';
import { quantizeCheckpoint } from '../src/models/quantize.js';
import type { RgbImage } from '../src/processing/decode.js';
import { bandwidth, computeFields, fmaPeak, machine, PeakTracker, peakRssMB, ratio } from './ceilings.js';
import { SMOLVLM_256M, writeRandomSmolVLM } from './random-model.js';

type Row = Record<string, unknown>;
type Dtype = 'f32' | 'bf16' | QuantFormat;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const note = (s: string): void => void process.stderr.write(`bench:quant: ${s}\n`);
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const MB = 1 << 20;
const TX = SMOLVLM_256M.text;
const DTYPES: readonly Dtype[] = ['f32', 'bf16', 'q8_0', 'q4_0', 'nf4'];
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const wanted = DTYPES.filter((d) => args.length === 0 || args.includes(d));
const wantQlora = args.length === 0 || args.includes('qlora');

// ---------------------------------------------------------------- weight bytes

const elementBytes = (t: Tensor) => (t.dtype === 'f32' ? 4 : 2);

/** Bytes of every weight as held, and of those one decode step reads: the text layers' linears and the lm_head. */
function weightBytes(model: Idefics3Model): { total: number; decode: number } {
  let total = 0, decode = 0;
  for (const t of model.parameters().values()) total += t.size * elementBytes(t);
  for (const w of model.quantizedWeights().values()) total += w.bytes.length;
  const copy = model.text.decodeHead;
  if (copy) total += copy.bytes.length;
  for (const [path, l] of model.linears()) {
    if (!path.startsWith('model.text_model.layers.')) continue;
    decode += l.w instanceof vk.QuantizedWeight ? l.w.bytes.length : l.w.size * elementBytes(l.w);
  }
  // (an NF4 model's head is Q8_0 itself, listed with the quantized weights: it has no copy)
  const head = model.text.w.lmHead;
  return { total, decode: decode + (copy ? copy.bytes.length : head instanceof vk.QuantizedWeight ? head.bytes.length : head.size * elementBytes(head)) };
}

// ---------------------------------------------------------------- figures

/** Flops of a T-token causal prefill from an empty cache, lm_head on the last position only (as bench:generate). */
function prefillFlops(T: number): number {
  const H = TX.hidden, qd = TX.heads * TX.headDim, kvd = TX.kvHeads * TX.headDim, I = TX.mlp;
  const linears = 2 * T * (H * qd + 2 * H * kvd + qd * H + 3 * H * I);
  const attn = 2 * 2 * TX.heads * TX.headDim * ((T * (T + 1)) / 2);
  return TX.layers * (linears + attn) + 2 * TX.vocab * H;
}

/** Last-position logits of a fixed 24-token text prompt (for the check). */
function probeLogits(model: Idefics3Model): Float32Array {
  return vk.noGrad(() => vk.tidy(() => {
    const ids = vk.tensor(Array.from({ length: 24 }, (_, t) => 50 + ((t * 37) % 400)), [1, 24], { dtype: 'i32' });
    const l = model.text.forward(model.embedInputs(ids, null, null, null), { logitsFor: 'last' }).toFloat32Array();
    for (let i = 0; i < l.length; i++) if (!Number.isFinite(l[i])) throw new Error(`check: logit ${i} is ${l[i]}`);
    return l;
  }));
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

/** Best tokens/s at batch 1 of `runs` greedy decodes of `steps` tokens after a 16-token prompt. */
async function decodeBest(model: Idefics3Model, runs: number, steps: number, before: () => void): Promise<number> {
  const ids = Array.from({ length: 16 }, (_, t) => 50 + ((t * 11) % 380));
  const inputIds = vk.tensor(ids, [1, 16], { dtype: 'i32' });
  const attentionMask = vk.tensor(new Int32Array(16).fill(1), [1, 16], { dtype: 'i32' });
  try {
    let b = 0;
    for (let i = 0; i <= runs; i++) {
      before();
      const out = await generate(model, { inputIds, attentionMask }, { maxNewTokens: steps + 1, eosTokenIds: [] });
      if (out.timings.decodeTokens !== steps) throw new Error(`decode: ${out.timings.decodeTokens} tokens decoded, expected ${steps}`);
      if (i > 0) b = Math.max(b, out.timings.decodeTokensPerSec); // the first run warms up
    }
    return b;
  } finally {
    inputIds.dispose();
    attentionMask.dispose();
  }
}

/** Best seconds of a 17-tile text prefill (image features precomputed), and its token count. */
function prefillBest(model: Idefics3Model, proc: Processor, runs: number, peak: PeakTracker): { s: number; T: number } {
  const img = { width: 2048, height: 2048, data: new Uint8Array(2048 * 2048 * 3).fill(100) } as RgbImage;
  const enc = proc.encodeDecoded([{ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image in detail.' }] }], images: [img] }]);
  const T = enc.inputIds.shape[1]!;
  const tiles = enc.pixelValues!.shape[1];
  const feats = vk.tidy(() => vk.mul(vk.randn([tiles!, SMOLVLM_256M.imageSeqLen, TX.hidden]), 0.5));
  try {
    if (tiles !== 17) throw new Error(`prefill: the processor made ${tiles} tiles, expected 17`);
    let s = Infinity;
    for (let i = 0; i < runs; i++) {
      peak.sample(0.1);
      const t0 = performance.now();
      vk.noGrad(() => vk.tidy(() => {
        const cache = model.createCache(1, T);
        try {
          const l = model.text.forward(model.embedInputs(enc.inputIds, null, null, feats), { cache, logitsFor: 'last' });
          if (!Number.isFinite(l.toFloat32Array()[0])) throw new Error('prefill: logits are not finite');
        } finally {
          cache.dispose();
        }
      }));
      s = Math.min(s, (performance.now() - t0) / 1e3);
    }
    return { s, T };
  } finally {
    feats.dispose();
    enc.dispose();
  }
}

async function benchFormat(dir: string, dtype: Dtype, proc: Processor, ref: { logits: Float32Array | null }, readBest: { gbs: number; via: string }, peak: PeakTracker): Promise<void> {
  const t0 = performance.now();
  const model = dtype === 'f32' ? loadModel(dir, { dtype: 'f32' }) : dtype === 'bf16' ? loadModel(dir) : loadModel(dir, { quant: dtype });
  try {
    note(`${dtype}: loaded in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    const bytes = weightBytes(model);
    const logits = probeLogits(model);
    if (dtype === 'bf16') ref.logits = logits;
    emit({ bench: 'weights', dtype, value: r3(bytes.total / MB), unit: 'MB', decodeMB: r3(bytes.decode / MB), decodeBytesAre: 'the text layers\' linears and the lm_head (tied to the token embeddings; a q8_0/q4_0 model reads its Q8_0 decode copy, an nf4 model its Q8_0 head)', quantized: model.quantizedWeights().size, ...(ref.logits && dtype !== 'bf16' && { logitsRelDiffToBf16: Number(relDiff(logits, ref.logits).toExponential(2)) }) });
    // the best read-bandwidth sample of the whole run (every format's ceiling divides by the best seen so far)
    const sampleRead = () => {
      const b = bandwidth({ reads: 1, writes: 0 }, bytes.decode, 2);
      if (b.gbs > readBest.gbs) Object.assign(readBest, b);
    };
    const tps = await decodeBest(model, 5, 48, sampleRead);
    const read = readBest, ceil = ratio(read.gbs * 1e9, bytes.decode);
    const target = dtype === 'q8_0' ? 'value >= 110' : dtype === 'q4_0' || dtype === 'nf4' ? 'value >= 150' : undefined;
    emit({ bench: 'decode', dtype, value: r3(tps), unit: 'tokens/s', batch: 1, context: 16, ceiling: r3(ceil), ceilingVia: `${r3(bytes.decode / MB)} MB of weights a token at the read bandwidth (${read.via}, ${r3(read.gbs)} GB/s, the best sample of the run)`, ratio: r3(ratio(tps, ceil)), ...(target && { target }) });
    const pf = prefillBest(model, proc, 2, peak);
    const gf = prefillFlops(pf.T) / pf.s / 1e9;
    emit({ bench: 'prefill', dtype, value: r3(pf.T / pf.s), unit: 'tokens/s', tiles: 17, batch: 1, tokens: pf.T, seconds: r3(pf.s), gflops: r3(gf), excludes: 'vision encoding (image features precomputed)', ...computeFields(gf, peak.best) });
  } finally {
    model.dispose();
  }
}

// ---------------------------------------------------------------- QLoRA against LoRA (child processes)

interface StepResult { stepS: number; loss: number; maxRssMB: number; seqLen: number }

async function child(cfg: { dir: string; data: string }): Promise<void> {
  const { LoraModel } = await import('../src/train/lora.js');
  const { trainableParameters } = await import('../src/train/params.js');
  const { SftDataset } = await import('../src/train/data.js');
  const { SftTrainer } = await import('../src/train/sft.js');
  const proc = Processor.fromDir(cfg.dir, { doImageSplitting: false });
  const model = loadModel(cfg.dir);
  const lora = LoraModel.create(model, { r: 8, loraAlpha: 16, targetModules: TARGETS }, { seed: 1 });
  const ds = await SftDataset.load(cfg.data, proc);
  const tr = new SftTrainer({ model, processor: proc, train: ds, params: trainableParameters(model, 'lora', lora), lora, config: { batchSize: 1, maxSteps: 3, lr: 1e-4, clip: 1, seed: 1, gradientCheckpointing: true } });
  const times: number[] = [];
  let loss = NaN;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = await tr.step();
    if (i === 0) loss = r.loss;
    if (i > 0) times.push((performance.now() - t0) / 1e3);
  }
  const res: StepResult = { stepS: Math.min(...times), loss, maxRssMB: peakRssMB(), seqLen: ds.examples[0]!.length };
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
}

/**
 * This file and everything it imports (src/), compiled by tsc with the project's compiler options into
 * .bench-tmp/ (as `npm run build` compiles src/ into dist/ for bin/vlmkit.js); returns the compiled bench. The step
 * children run it under plain node: a user's `vlmkit train` runs compiled JavaScript, and tsx's loader (its hooks
 * thread, the transformed sources) would add about 40 MB to both peaks that no user pays. The code that runs is
 * the same: the same sources, the same step. (The addon is found from .bench-tmp/src/engine/backend/native, as
 * from dist/.)
 */
function compileForChildren(): string {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const out = join(root, '.bench-tmp');
  for (const d of ['src', 'bench']) rmSync(join(out, d), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const config = join(out, 'tsconfig.quant.json');
  writeFileSync(config, JSON.stringify({ extends: '../tsconfig.json', compilerOptions: { rootDir: '..', outDir: '.', noEmit: false }, files: ['../bench/quant.ts'], include: [] }));
  execFileSync(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', config], { stdio: 'inherit' });
  return join(out, 'bench', 'quant.js');
}

function runChild(cfg: { dir: string; data: string }, compiled: string): Promise<StepResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [compiled, '--child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) return reject(new Error(`bench child (${cfg.dir}) failed with code ${code}: ${out.slice(-2000)}`));
      resolve(JSON.parse(line.slice(7)) as StepResult);
    });
  });
}

function writeStepData(dir: string): string {
  const png = new PNG({ width: 512, height: 512 });
  for (let i = 0; i < 512 * 512; i++) {
    png.data[4 * i] = i % 251;
    png.data[4 * i + 1] = (i >> 9) % 253;
    png.data[4 * i + 2] = 128;
    png.data[4 * i + 3] = 255;
  }
  writeFileSync(join(dir, 'img.png'), PNG.sync.write(png));
  const path = join(dir, 'data.jsonl');
  writeFileSync(path, JSON.stringify({
    messages: [
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this chart in detail.' }] },
      { role: 'assistant', content: 'Revenue grows in every quarter; the largest line doubles and the smallest stays flat.' },
    ],
    images: ['img.png'],
  }) + '\n');
  return path;
}

async function benchQlora(dir: string): Promise<void> {
  const data = writeStepData(dir);
  const qdir = join(dir, 'nf4');
  const t0 = performance.now();
  quantizeCheckpoint(dir, qdir, 'nf4');
  note(`NF4 checkpoint written in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  const t1 = performance.now();
  const compiled = compileForChildren();
  note(`the step children compiled in ${((performance.now() - t1) / 1e3).toFixed(1)} s`);
  const bf16 = await runChild({ dir, data }, compiled);
  const nf4 = await runChild({ dir: qdir, data }, compiled);
  const lnV = Math.log(TX.vocab);
  for (const [k, r] of [['bf16', bf16], ['nf4', nf4]] as const)
    if (!(Math.abs(r.loss - lnV) < 2)) throw new Error(`qlora check: the ${k} step's loss ${r.loss} is not near ln(vocab) = ${lnV.toFixed(2)} for random weights`);
  const common = { tiles: 1, batch: 1, gc: true, tokens: nf4.seqLen, lora: 'r=8 q/k/v/o/gate/up/down', base: 'nf4 (double-quantized, from a quantized folder)', against: 'the same step on the bf16 base' };
  emit({ bench: 'qlora_step', dtype: 'nf4', value: r3(nf4.stepS), unit: 's/step', ...common, bf16: r3(bf16.stepS), vsBf16: r3(nf4.stepS / bf16.stepS), firstLoss: nf4.loss, bf16FirstLoss: bf16.loss });
  emit({ bench: 'qlora_memory', dtype: 'nf4', value: r3(nf4.maxRssMB), unit: 'MB peak RSS', ...common, bf16: r3(bf16.maxRssMB), vsBf16: r3(nf4.maxRssMB / bf16.maxRssMB), target: 'vsBf16 <= 0.6' });
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  emit({ ...machine(), note: 'the machine may be shared with other work: read the ratios to the ceilings of this run' });
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-quant-'));
  try {
    const t0 = performance.now();
    const w = writeRandomSmolVLM(dir, { dtype: 'bf16' });
    note(`random SmolVLM-256M (${(w.params / 1e6).toFixed(1)}M parameters) written in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    const read = bandwidth({ reads: 1, writes: 0 }, 256 * MB);
    const readBest = { ...read };
    emit({ bench: 'bandwidth', kind: 'read', bytes: 256 * MB, value: r3(read.gbs), unit: 'GB/s', via: read.via, note: 'at the start; the decode rows sample it again over their own bytes' });
    const peak = new PeakTracker(fmaPeak());
    const proc = Processor.fromDir(dir);
    const ref = { logits: null as Float32Array | null };
    // bf16 first: the others' logits are compared with it
    for (const d of [...wanted].sort((a, b) => (a === 'bf16' ? -1 : b === 'bf16' ? 1 : 0))) await benchFormat(dir, d, proc, ref, readBest, peak);
    if (wantQlora) await benchQlora(dir);
    note(`done in ${((performance.now() - t0) / 1e3).toFixed(0)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ci = process.argv.indexOf('--child');
if (ci >= 0) await child(JSON.parse(process.argv[ci + 1]!) as { dir: string; data: string });
else await main();
