// Training checkpoints: everything a later run needs to continue the very same run, bit for bit.
//
//   <out>/checkpoint-<step>/
//     trainable.safetensors   every trained tensor by the trainer's name, f32 as in memory
//     optimizer.safetensors   AdamW exp_avg.<name> / exp_avg_sq.<name> (f32), per-parameter step counts in metadata
//     trainer_state.json      position (step, epoch, batch within the epoch, samples/tokens seen), the run's
//                             fingerprint (data, seed, batching, what trains) and settings
//     adapter_config.json + adapter_model.safetensors   (LoRA runs) the adapter as PEFT loads it
//
// A checkpoint directory is written under a temporary name and renamed when complete (writeDirAtomic), and an old
// one is renamed to a temporary name before it is deleted, so a crash or Ctrl-C never leaves a half-written or
// half-deleted checkpoint-N; leftovers of a killed run are removed on the next start. A checkpoint-N folder that
// lacks one of its files anyway (copied in part, or left by an older vlmkit) is never resumed from.
//
// A resume trusts nothing in the folder: every field of the state is checked for type and range, the position
// against the step count, the fingerprint against this run's, every tensor for name, shape and finiteness, and
// the optimizer's step counts for presence; an error names the file and what to do. The data order is a pure function of (seed, epoch) and LoRA dropout masks one of (seed, micro-batch
// index, module) (LoraModel.dropoutStep), so the position alone restores both: no random stream to save.
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, fromRaw } from '../engine/index.js';
import { FileFormatError, VlmkitError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { type SafetensorsEntry, tempPathFor, writeDirAtomic, writeSafetensors, writeTextFileAtomic } from '../io/safetensors-write.js';
import { assertFiniteForSave, firstNonFinite } from './finite.js';
import type { LoraModel } from './lora.js';
import type { AdamWState } from './optim.js';
import { saveAdapter, tensorBytes } from './peft.js';
import type { Trainer, TrainerPosition } from './trainer.js';

/** What a checkpoint saves and restores of a trainer, whatever its objective. */
export type ResumableTrainer = Pick<Trainer<unknown>, 'position' | 'optimizer' | 'params' | 'lora' | 'totalSteps' | 'positionAt'>;

export const TRAINER_STATE = 'trainer_state.json';
export const TRAINABLE_WEIGHTS = 'trainable.safetensors';
export const OPTIMIZER_STATE = 'optimizer.safetensors';
const FORMAT = 'vlmkit-sft-checkpoint';
/** what a checkpoint needs to be resumed from (a LoRA one also holds the adapter, which a resume does not read) */
export const CHECKPOINT_FILES = [TRAINER_STATE, TRAINABLE_WEIGHTS, OPTIMIZER_STATE] as const;

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

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The files of CHECKPOINT_FILES that `dir` lacks. */
export function missingCheckpointFiles(dir: string): string[] {
  return CHECKPOINT_FILES.filter((f) => !existsSync(join(dir, f)));
}

/** Every checkpoint-N directory of a run folder with the files it lacks, oldest first. */
function checkpointDirs(outDir: string): { step: number; dir: string; missing: string[] }[] {
  if (!isDir(outDir)) return [];
  const out: { step: number; dir: string; missing: string[] }[] = [];
  for (const n of readdirSync(outDir)) {
    const m = /^checkpoint-(\d+)$/.exec(n);
    const dir = join(outDir, n);
    if (m && isDir(dir)) out.push({ step: Number(m[1]), dir, missing: missingCheckpointFiles(dir) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The complete checkpoint-N directories of a run folder, oldest first. */
export function listCheckpoints(outDir: string): { step: number; dir: string }[] {
  return checkpointDirs(outDir).filter((c) => !c.missing.length).map(({ step, dir }) => ({ step, dir }));
}

/** The checkpoint-N directories that lack a file (never resumed from), with what they lack. */
export function incompleteCheckpoints(outDir: string): { step: number; dir: string; missing: string[] }[] {
  return checkpointDirs(outDir).filter((c) => c.missing.length);
}

/** Throws E_RESUME unless `dir` holds every file a resume reads. */
export function assertCompleteCheckpoint(dir: string): void {
  if (!existsSync(dir)) throw new VlmkitError('E_RESUME', `--resume: ${dir} does not exist; give a checkpoint-N folder or the run folder that holds them`);
  const missing = missingCheckpointFiles(dir);
  if (missing.length === CHECKPOINT_FILES.length)
    throw new VlmkitError('E_RESUME', `--resume: ${dir} is not a training checkpoint (no ${TRAINER_STATE}); give a checkpoint-N folder or the run folder that holds them`);
  if (missing.length)
    throw new VlmkitError('E_RESUME', `--resume: ${dir} is an incomplete checkpoint (no ${missing.join(', ')}), left by a run killed while writing or deleting it; resume from an earlier checkpoint-N`);
}

/**
 * The checkpoint a --resume of `dir` continues: `dir` itself when it is a checkpoint folder, else the newest complete
 * checkpoint-N in it (newer incomplete ones are passed over and reported through `note`).
 */
export function resolveResumeDir(dir: string, note: (s: string) => void = () => undefined): string {
  if (isDir(dir) && missingCheckpointFiles(dir).length === CHECKPOINT_FILES.length) {
    const all = checkpointDirs(dir);
    const newest = all.filter((c) => !c.missing.length).at(-1);
    const partial = all.filter((c) => c.missing.length && (!newest || c.step > newest.step));
    for (const c of partial) note(`ignoring ${c.dir}: incomplete (no ${c.missing.join(', ')}), left by a killed run`);
    if (!newest)
      throw new VlmkitError('E_RESUME', `--resume: ${dir} has no checkpoint-N folder to resume from${partial.length ? ` (${partial.map((c) => c.dir).join(', ')} incomplete)` : ''}; run without --resume to start, with --save-every N to write checkpoints`);
    return newest.dir;
  }
  assertCompleteCheckpoint(dir);
  return dir;
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

/**
 * Keeps the newest `keep` checkpoints (0 = keep all). Each old one is first renamed to a temporary name (one
 * atomic step: a kill leaves either the whole checkpoint-N or a temporary folder that the next start removes),
 * then deleted; a deletion that fails leaves only that temporary folder, for the next start to remove. `remove`
 * deletes a folder (tests pass one that stops halfway, as a kill would).
 */
export function pruneCheckpoints(outDir: string, keep: number, remove: (dir: string) => void = (d) => rmSync(d, { recursive: true, force: true })): void {
  if (!(keep > 0)) return;
  const all = listCheckpoints(outDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    const gone = tempPathFor(c.dir);
    renameSync(c.dir, gone);
    try {
      remove(gone);
    } catch {
      // already out of the way under a temporary name: the checkpoint is gone as far as any run can see
    }
  }
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
export function saveTrainingCheckpoint(outDir: string, trainer: ResumableTrainer, o: SaveCheckpointOptions): string {
  const dir = join(outDir, checkpointName(trainer.position.step));
  const opt = trainer.optimizer.stateDict();
  const steps: Record<string, string> = {};
  const optEntries: SafetensorsEntry[] = [];
  for (const [n, s] of opt.params) {
    steps[n] = String(s.step);
    optEntries.push(f32Entry(`exp_avg.${n}`, s.m), f32Entry(`exp_avg_sq.${n}`, s.v));
  }
  assertFiniteForSave(trainer.params, `checkpoint ${dir}`);
  assertFiniteForSave([...opt.params].flatMap(([n, s]) => [[`exp_avg.${n}`, s.m], [`exp_avg_sq.${n}`, s.v]] as [string, Tensor][]), `checkpoint ${dir}`);
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

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** A damaged or foreign checkpoint file: names the file and the field. */
function damaged(file: string, what: string, got?: unknown): FileFormatError {
  const shown = got === undefined ? '' : `, got ${String(JSON.stringify(got)).slice(0, 80)}`;
  return new FileFormatError(`${file}: ${what}${shown}; the checkpoint is damaged or not from this vlmkit, resume from an earlier one`);
}

const POSITION_COUNTS = ['step', 'epoch', 'batchInEpoch', 'samplesSeen', 'tokensSeen', 'skippedSteps'] as const;

/** Reads and checks <dir>/trainer_state.json: the format, and every field's type and range. */
export function readTrainerState(dir: string): TrainerStateFile {
  const p = join(dir, TRAINER_STATE);
  if (!existsSync(p)) throw new VlmkitError('E_RESUME', `${dir} is not a training checkpoint (no ${TRAINER_STATE}); give a checkpoint-N folder or the run folder that holds them`);
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(`${p} ${code ? `cannot be read (${code})` : `is not valid JSON (${(e as Error).message})`}; the checkpoint is damaged, resume from an earlier one`);
  }
  if (!isObject(j)) throw damaged(p, 'must hold a JSON object');
  if (j.format !== FORMAT || j.version !== 1) throw new FileFormatError(`${p} is not a vlmkit SFT checkpoint state (format ${JSON.stringify(j.format)}, version ${JSON.stringify(j.version)})`);
  const pos = j.position;
  if (!isObject(pos)) throw damaged(p, `"position" must be an object {${POSITION_COUNTS.join(', ')}, elapsed}`, pos);
  for (const k of POSITION_COUNTS) if (!isCount(pos[k])) throw damaged(p, `position.${k} must be an integer >= 0`, pos[k]);
  if (!(typeof pos.elapsed === 'number' && Number.isFinite(pos.elapsed) && pos.elapsed >= 0)) throw damaged(p, 'position.elapsed must be a number of seconds >= 0', pos.elapsed);
  const position = Object.fromEntries([...POSITION_COUNTS, 'elapsed'].map((k) => [k, pos[k]])) as unknown as TrainerPosition;
  if (position.skippedSteps > position.step) throw damaged(p, `position.skippedSteps (${position.skippedSteps}) exceeds position.step (${position.step})`);
  if (!(isCount(j.totalSteps) && j.totalSteps >= 1)) throw damaged(p, '"totalSteps" must be an integer >= 1', j.totalSteps);
  if (position.step > j.totalSteps) throw damaged(p, `position.step ${position.step} is past totalSteps ${j.totalSteps}`);
  if (!(typeof j.lr === 'number' && Number.isFinite(j.lr) && j.lr >= 0)) throw damaged(p, '"lr" must be a number >= 0', j.lr);
  if (!isObject(j.fingerprint)) throw damaged(p, '"fingerprint" must be an object', j.fingerprint);
  for (const k of ['settings', 'last'] as const) if (j[k] !== undefined && !isObject(j[k])) throw damaged(p, `"${k}" must be an object`, j[k]);
  return { ...(j as unknown as TrainerStateFile), position };
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
export function loadTrainingCheckpoint(dir: string, trainer: ResumableTrainer, fingerprint: RunFingerprint): TrainerStateFile {
  assertCompleteCheckpoint(dir);
  const st = readTrainerState(dir);
  const sp = join(dir, TRAINER_STATE);
  const diffs = Object.keys({ ...st.fingerprint, ...fingerprint }).filter((k) => stable(st.fingerprint[k]) !== stable(fingerprint[k]));
  if (diffs.length)
    throw new VlmkitError('E_RESUME', `cannot resume from ${dir}: it belongs to another run (${diffs.map((k) => `${k}: ${stable(st.fingerprint[k])} then, ${stable(fingerprint[k])} now`).join('; ')}); use the same data and settings, or start a new run in another --out`);
  if (st.totalSteps !== trainer.totalSteps)
    throw new VlmkitError('E_RESUME', `cannot resume from ${dir}: it was a run of ${st.totalSteps} steps, this one has ${trainer.totalSteps}; use the same --max-steps / --epochs, or start a new run in another --out`);
  const want = trainer.positionAt(st.position.step);
  if (st.position.epoch !== want.epoch || st.position.batchInEpoch !== want.batchInEpoch)
    throw damaged(sp, `position (epoch ${st.position.epoch}, batch ${st.position.batchInEpoch}) is not where step ${st.position.step} of this run stands (epoch ${want.epoch}, batch ${want.batchInEpoch})`);
  const wp = join(dir, TRAINABLE_WEIGHTS), op = join(dir, OPTIMIZER_STATE);
  const wf = SafetensorsFile.open(wp);
  const made: Tensor[] = [];
  let of: SafetensorsFile | null = null;
  try {
    of = SafetensorsFile.open(op);
    const names = new Set(wf.names());
    const loaded = new Map<string, Float32Array>();
    for (const [n, p] of trainer.params) {
      if (!names.has(n)) throw new VlmkitError('E_RESUME', `${wp} has no tensor ${n}; the checkpoint was saved by another kind of run`);
      const raw = wf.read(n);
      if (raw.dtype !== 'F32' || raw.shape.length !== p.rank || raw.shape.some((d, i) => d !== p.shape[i]))
        throw new VlmkitError('E_RESUME', `${wp}: ${n} is ${raw.dtype} [${raw.shape}], the run trains it as f32 [${p.shape}]`);
      loaded.set(n, raw.data as Float32Array);
    }
    if (names.size !== trainer.params.size)
      throw new VlmkitError('E_RESUME', `${wp} holds ${names.size} trained tensors, this run trains ${trainer.params.size}`);
    const params = readOptimizer(op, of, trainer, st.position.step, made);
    // nothing is written into the trainer before every file has passed
    for (const [n, data] of loaded) {
      const p = trainer.params.get(n)!;
      const bad = firstNonFinite(data);
      if (bad !== null) throw damaged(wp, `tensor ${n} holds ${bad}`);
      if (!p.isContiguous() || p.dtype !== 'f32') throw new Error(`vlmkit internal: trainable ${n} is not contiguous f32`);
      (p.data as Float32Array).set(data);
    }
    trainer.optimizer.loadStateDict({ lr: st.lr, params });
  } finally {
    for (const t of made) t.dispose();
    wf.close();
    of?.close();
  }
  trainer.position = { ...st.position };
  return st;
}

/**
 * The Adam state of optimizer.safetensors, checked: the "steps" metadata (per parameter its update count, at most
 * the checkpoint's step) must be there, and for each of its parameters exactly an exp_avg and an exp_avg_sq of the
 * parameter's shape, finite (exp_avg_sq >= 0). Missing metadata would otherwise restart Adam from zero moments.
 */
function readOptimizer(op: string, of: SafetensorsFile, trainer: ResumableTrainer, step: number, made: Tensor[]): AdamWState['params'] {
  const raw = of.metadata.steps;
  if (typeof raw !== 'string') throw damaged(op, 'has no "steps" metadata (the Adam step count of each parameter)');
  let steps: unknown;
  try {
    steps = JSON.parse(raw);
  } catch {
    throw damaged(op, 'its "steps" metadata is not JSON', raw);
  }
  if (!isObject(steps)) throw damaged(op, 'its "steps" metadata must be an object {parameter: count}', steps);
  const expected = new Set<string>();
  const present = new Set(of.names());
  const params = new Map<string, { step: number; m: Tensor; v: Tensor }>();
  for (const [n, s] of Object.entries(steps)) {
    const p = trainer.params.get(n);
    if (!p) throw damaged(op, `names parameter ${n}, which this run does not train`);
    const count = typeof s === 'string' && /^\d+$/.test(s) ? Number(s) : NaN;
    if (!(count >= 1 && count <= step)) throw damaged(op, `the step count of ${n} must be an integer in [1, ${step}] (the checkpoint's step)`, s);
    const moments: Tensor[] = [];
    for (const what of ['exp_avg', 'exp_avg_sq'] as const) {
      const name = `${what}.${n}`;
      expected.add(name);
      if (!present.has(name)) throw damaged(op, `has no tensor ${name}`);
      const r = of.read(name);
      if (r.dtype !== 'F32' || r.shape.length !== p.rank || r.shape.some((d, i) => d !== p.shape[i])) throw damaged(op, `${name} is ${r.dtype} [${r.shape}], the parameter is f32 [${p.shape}]`);
      const bad = firstNonFinite(r.data as Float32Array);
      if (bad !== null) throw damaged(op, `${name} holds ${bad}`);
      if (what === 'exp_avg_sq' && (r.data as Float32Array).some((x) => x < 0)) throw damaged(op, `${name} holds a negative value`);
      const t = fromRaw(r);
      made.push(t);
      moments.push(t);
    }
    params.set(n, { step: count, m: moments[0]!, v: moments[1]! });
  }
  const extra = [...present].find((n) => !expected.has(n));
  if (extra !== undefined) throw damaged(op, `holds ${extra}, which has no step count in its "steps" metadata`);
  return params;
}
