// Training checkpoints: everything a later run needs to continue the very same run, bit for bit.
//
//   <out>/checkpoint-<step>/
//     trainable.safetensors   every trained tensor by the trainer's name, f32 as in memory
//     optimizer.safetensors   AdamW exp_avg.<name> / exp_avg_sq.<name> (f32), per-parameter step counts in metadata
//     trainer_state.json      position (step, epoch, batch within the epoch, samples/tokens seen), the run's
//                             fingerprint (data, seed, batching, what trains) and settings
//     adapter_config.json + adapter_model.safetensors   (LoRA runs) the adapter as PEFT loads it
//
// A checkpoint directory is written under a temporary name and renamed when complete (writeDirAtomic), so a
// crash or Ctrl-C never leaves a half-written checkpoint-N; leftovers of a killed run are removed on the next
// start. The data order is a pure function of (seed, epoch) and LoRA dropout masks one of (seed, micro-batch
// index, module) (LoraModel.dropoutStep), so the position alone restores both: no random stream to save.
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, fromRaw } from '../engine/index.js';
import { FileFormatError, VlmkitError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { type SafetensorsEntry, writeDirAtomic, writeSafetensors, writeTextFileAtomic } from '../io/safetensors-write.js';
import type { LoraModel } from './lora.js';
import type { AdamWState } from './optim.js';
import { saveAdapter, tensorBytes } from './peft.js';
import type { SftTrainer, TrainerPosition } from './sft.js';

export const TRAINER_STATE = 'trainer_state.json';
export const TRAINABLE_WEIGHTS = 'trainable.safetensors';
export const OPTIMIZER_STATE = 'optimizer.safetensors';
const FORMAT = 'vlmkit-sft-checkpoint';

/** What makes two runs the same run: if any of it differs, a resume would not continue the checkpoint's run. */
export type RunFingerprint = Record<string, unknown>;

export interface TrainerStateFile {
  format: typeof FORMAT;
  version: 1;
  position: TrainerPosition;
  totalSteps: number;
  lr: number;
  fingerprint: RunFingerprint;
  /** informational: the settings of the run */
  settings?: Record<string, unknown>;
  /** informational: the last step's metrics */
  last?: Record<string, unknown>;
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** The checkpoint-N directories of a run folder, oldest first. */
export function listCheckpoints(outDir: string): { step: number; dir: string }[] {
  if (!existsSync(outDir)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const n of readdirSync(outDir)) {
    const m = /^checkpoint-(\d+)$/.exec(n);
    const dir = join(outDir, n);
    if (m && statSync(dir).isDirectory() && existsSync(join(dir, TRAINER_STATE))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outDir: string): string | null {
  const all = listCheckpoints(outDir);
  return all.length ? all[all.length - 1]!.dir : null;
}

/** Removes the temporary files and folders a killed run may have left in the run folder (".name.tmp-..."). */
export function removeStaleTemps(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  const gone: string[] = [];
  for (const n of readdirSync(outDir)) {
    if (/^\..+\.tmp-\d+-[a-z0-9]+$/.test(n)) {
      rmSync(join(outDir, n), { recursive: true, force: true });
      gone.push(n);
    }
  }
  return gone;
}

/** Keeps the newest `keep` checkpoints (0 = keep all). */
export function pruneCheckpoints(outDir: string, keep: number): void {
  if (!(keep > 0)) return;
  const all = listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.dir, { recursive: true, force: true });
}

function f32Entry(name: string, t: Tensor): SafetensorsEntry {
  const b = tensorBytes(t, 'F32');
  return { name, dtype: 'F32', shape: t.shape, data: b.data };
}

export interface SaveCheckpointOptions {
  fingerprint: RunFingerprint;
  settings?: Record<string, unknown>;
  last?: Record<string, unknown>;
  /** recorded in the adapter config */
  baseModel?: string | null;
}

/** Writes <outDir>/checkpoint-<step> atomically; returns its path. */
export function saveTrainingCheckpoint(outDir: string, trainer: SftTrainer, o: SaveCheckpointOptions): string {
  const dir = join(outDir, checkpointName(trainer.position.step));
  const opt = trainer.optimizer.stateDict();
  const steps: Record<string, string> = {};
  const optEntries: SafetensorsEntry[] = [];
  for (const [n, s] of opt.params) {
    steps[n] = String(s.step);
    optEntries.push(f32Entry(`exp_avg.${n}`, s.m), f32Entry(`exp_avg_sq.${n}`, s.v));
  }
  const state: TrainerStateFile = {
    format: FORMAT, version: 1, position: { ...trainer.position }, totalSteps: trainer.totalSteps,
    lr: opt.lr, fingerprint: o.fingerprint, settings: o.settings, last: o.last,
  };
  writeDirAtomic(dir, (tmp) => {
    writeSafetensors(join(tmp, TRAINABLE_WEIGHTS), [...trainer.params].map(([n, t]) => f32Entry(n, t)), { format: 'vlmkit' });
    writeSafetensors(join(tmp, OPTIMIZER_STATE), optEntries, { format: 'vlmkit', steps: JSON.stringify(steps) });
    if (trainer.lora) saveAdapter(trainer.lora, tmp, { baseModelNameOrPath: o.baseModel ?? null });
    writeTextFileAtomic(join(tmp, TRAINER_STATE), JSON.stringify(state, null, 1) + '\n');
  });
  return dir;
}

export function readTrainerState(dir: string): TrainerStateFile {
  const p = join(dir, TRAINER_STATE);
  if (!existsSync(p)) throw new VlmkitError('E_RESUME', `${dir} is not a training checkpoint (no ${TRAINER_STATE}); give a checkpoint-N folder or the run folder that holds them`);
  let j: TrainerStateFile;
  try {
    j = JSON.parse(readFileSync(p, 'utf8')) as TrainerStateFile;
  } catch (e) {
    throw new FileFormatError(`${p} is not valid JSON (${(e as Error).message}); the checkpoint is damaged, resume from an earlier one`);
  }
  if (j.format !== FORMAT || j.version !== 1) throw new FileFormatError(`${p} is not a vlmkit SFT checkpoint state (format ${JSON.stringify(j.format)})`);
  return j;
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/**
 * Restores a checkpoint into a trainer built for the same run: trained tensors, optimizer moments and step
 * counts, position. Refuses a checkpoint of another run (data, seed, batching, what trains).
 */
export function loadTrainingCheckpoint(dir: string, trainer: SftTrainer, fingerprint: RunFingerprint): TrainerStateFile {
  const st = readTrainerState(dir);
  const diffs = Object.keys({ ...st.fingerprint, ...fingerprint }).filter((k) => stable(st.fingerprint[k]) !== stable(fingerprint[k]));
  if (diffs.length)
    throw new VlmkitError('E_RESUME', `cannot resume from ${dir}: it belongs to another run (${diffs.map((k) => `${k}: ${stable(st.fingerprint[k])} then, ${stable(fingerprint[k])} now`).join('; ')}); use the same data and settings, or start a new run in another --out`);
  const wf = SafetensorsFile.open(join(dir, TRAINABLE_WEIGHTS));
  const of = SafetensorsFile.open(join(dir, OPTIMIZER_STATE));
  const made: Tensor[] = [];
  try {
    const names = new Set(wf.names());
    for (const [n, p] of trainer.params) {
      if (!names.has(n)) throw new VlmkitError('E_RESUME', `checkpoint ${dir} has no tensor ${n}; it was saved by another kind of run`);
      const raw = wf.read(n);
      if (raw.dtype !== 'F32' || raw.shape.length !== p.rank || raw.shape.some((d, i) => d !== p.shape[i]))
        throw new VlmkitError('E_RESUME', `checkpoint ${dir}: ${n} is ${raw.dtype} [${raw.shape}], the run trains it as f32 [${p.shape}]`);
      if (!p.isContiguous() || p.dtype !== 'f32') throw new Error(`vlmkit internal: trainable ${n} is not contiguous f32`);
      (p.data as Float32Array).set(raw.data as Float32Array);
    }
    if (names.size !== trainer.params.size)
      throw new VlmkitError('E_RESUME', `checkpoint ${dir} holds ${names.size} trained tensors, this run trains ${trainer.params.size}`);
    const steps = JSON.parse(of.metadata.steps ?? '{}') as Record<string, string>;
    const params = new Map<string, { step: number; m: Tensor; v: Tensor }>();
    for (const [n, s] of Object.entries(steps)) {
      const m = fromRaw(of.read(`exp_avg.${n}`)), v = fromRaw(of.read(`exp_avg_sq.${n}`));
      made.push(m, v);
      params.set(n, { step: Number(s), m, v });
    }
    const state: AdamWState = { lr: st.lr, params };
    trainer.optimizer.loadStateDict(state);
  } finally {
    for (const t of made) t.dispose();
    wf.close();
    of.close();
  }
  trainer.position = { ...st.position };
  return st;
}
