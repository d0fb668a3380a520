// A training run's loop around any Trainer: the run folder, resume, progress, metrics lines, periodic evaluation
// and checkpoints, and Ctrl-C (stop after the current step with a checkpoint). What is trained and what is saved
// at the end belong to the caller (runSft).
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VlmkitError } from '../errors.js';
import { MetricsLogger, ProgressBar, type Writable } from './metrics.js';
import * as ck from './resume.js';
import type { LoopModel, MicroBatch, StepResult, Trainer } from './trainer.js';

/** Where a run writes for people and machines, and how it is stopped. */
export interface RunIo {
  /** JSON lines when json is set */
  stdout?: { write(s: string): unknown; isTTY?: boolean } | null;
  /** progress bar and human-readable lines */
  stderr?: { write(s: string): unknown; isTTY?: boolean } | null;
  json?: boolean;
  /** set requested = true to stop after the current step with a checkpoint (Ctrl-C) */
  stop?: { requested: boolean };
  /** called after every step (tests) */
  onStep?: (r: StepResult) => void | Promise<void>;
}

export interface LoopOptions {
  /** the run folder */
  out: string;
  logger: MetricsLogger;
  /** a human-readable line (suppressed with --json by the caller) */
  say: (s: string) => void;
  io: RunIo;
  /** the checkpoint this run resumed from, if any */
  resumeDir: string | null;
  /** keep only the newest N checkpoints (0 = all) */
  saveTotalLimit: number;
  /** what every checkpoint records besides the trainer's state */
  checkpoint: Omit<ck.SaveCheckpointOptions, 'last'>;
}

export interface LoopResult {
  interrupted: boolean;
  /** the last checkpoint written (or the one resumed from, when stopped before the first step) */
  checkpoint: string | null;
  losses: number[];
  evalLoss: number | null;
}

/** What every objective's run returns (SFT and DPO add their data summaries). */
export interface RunResult extends LoopResult {
  steps: number;
  totalSteps: number;
  /** the final adapter folder (LoRA) or model folder (full); null when interrupted */
  output: string | null;
  /** steps skipped for a non-finite loss or gradient norm (skipNonfinite), over every resumed part */
  skippedSteps: number;
}


/**
 * The run's metrics log (<out>/metrics.jsonl, appended to; JSON lines on stdout too with --json), after restoring the
 * checkpoint a resumed run continues from (refused when its fingerprint differs), logged and said.
 */
export function openRunLog(
  out: string,
  io: { json?: boolean; stdout?: Writable | null },
  resume: { dir: string | null; trainer: ck.ResumableTrainer; fingerprint: ck.RunFingerprint },
  say: (s: string) => void,
): MetricsLogger {
  const logger = new MetricsLogger({ file: join(out, 'metrics.jsonl'), stdout: io.json ? io.stdout ?? null : null });
  if (resume.dir) {
    const st = ck.loadTrainingCheckpoint(resume.dir, resume.trainer, resume.fingerprint);
    logger.log({ type: 'event', event: 'resume', step: st.position.step, checkpoint: resume.dir });
    say(`resumed from ${resume.dir} at step ${st.position.step} of ${resume.trainer.totalSteps}`);
  }
  return logger;
}

/** Creates the run folder; a file (or a file on the way) there is a one-line error naming --out. */
/**
 * A data file's reading progress on a terminal's stderr ("reading train.jsonl: 12,000 / 57,600 rows"), cleared
 * when done; nothing when stderr is not a terminal or the run prints JSON.
 */
export function readingProgress(io: Pick<RunIo, 'json' | 'stderr'>, file: string): ((done: number, total: number) => void) | undefined {
  if (io.json || !io.stderr?.isTTY) return undefined;
  const err = io.stderr;
  return (done, total) => err.write(done >= total ? '\r\x1b[2K' : `\r\x1b[2Kreading ${file}: ${done.toLocaleString('en')} / ${total.toLocaleString('en')} rows`);
}

export function makeRunFolder(out: string): void {
  let isDir = false;
  try {
    isDir = statSync(out).isDirectory();
  } catch {
    // not there yet
  }
  if (!isDir && existsSync(out)) throw new VlmkitError('E_ARGS', `--out ${out} is a file, not a folder; give a folder for the run (it is created when missing)`);
  if (isDir) return;
  try {
    mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new VlmkitError('E_ARGS', `--out ${out}: cannot create the run folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a writable folder path`);
  }
}


/**
 * Creates the run folder, removes temporary files an interrupted run left, and finds the checkpoint to resume
 * from (true / 'latest': the newest in `out`; a path: that one), checking that its state file reads.
 */
export function openRunFolder(out: string, resume: boolean | string | null, say: (s: string) => void): string | null {
  makeRunFolder(out);
  const stale = ck.removeStaleTemps(out);
  if (stale.length) say(`removed ${stale.length} unfinished temporary file(s) of an interrupted run`);
  if (!resume) return null;
  const dir = ck.resolveResumeDir(resume === true || resume === 'latest' ? out : resume, say);
  ck.readTrainerState(dir);
  return dir;
}

/** " margin 0.123 acc 0.75" for an objective with reward metrics (DPO), else "". */
function rewardText(m: Record<string, number> | undefined): string {
  const margin = m?.['rewards/margins'], acc = m?.['rewards/accuracies'];
  if (margin === undefined || acc === undefined) return '';
  return ` margin ${margin.toFixed(4)} acc ${acc.toFixed(2)}`;
}

/** Trains until done or stopped: steps, metrics, progress, evaluation and checkpoints on their schedules. */
export async function runLoop<E, B extends MicroBatch, M extends LoopModel>(trainer: Trainer<E, B, M>, o: LoopOptions): Promise<LoopResult> {
  const { logger, say, io } = o;
  const config = trainer.config;
  const progress = new ProgressBar(io.stderr ?? { write: () => undefined }, trainer.totalSteps, { startStep: trainer.position.step });
  const losses: number[] = [];
  let checkpoint: string | null = null;
  let evalLoss: number | null = null;
  const save = (last: Record<string, unknown>) => {
    // (saveTrainingCheckpoint refuses non-finite weights or moments; pruning waits for a checkpoint that exists)
    checkpoint = ck.saveTrainingCheckpoint(o.out, trainer, { ...o.checkpoint, last });
    ck.pruneCheckpoints(o.out, o.saveTotalLimit);
    logger.log({ type: 'event', event: 'checkpoint', step: trainer.position.step, path: checkpoint });
  };
  const evaluate = async () => {
    const e = await trainer.evaluate();
    evalLoss = e.loss;
    logger.log(trainer.evalRecord(e));
    if (progress.enabled) progress.clear();
    say(`step ${trainer.position.step}: eval loss ${e.loss.toFixed(4)} over ${e.targets} ${e.metrics ? 'pairs' : 'tokens'}${rewardText(e.metrics)}`);
  };
  let lastEvalStep = -1;
  const firstStep = trainer.position.step;
  while (!trainer.done) {
    if (io.stop?.requested && trainer.position.step === firstStep) {
      // stopped before this run trained anything: nothing new to save
      logger.log({ type: 'event', event: 'interrupted', step: firstStep, checkpoint: o.resumeDir });
      say('interrupted before the first step; nothing to save');
      return { interrupted: true, checkpoint: o.resumeDir, losses, evalLoss };
    }
    const r = await trainer.step();
    losses.push(r.loss);
    const rec = trainer.trainRecord(r);
    logger.log(rec);
    progress.update(trainer.position.step, { loss: r.loss, lr: r.lr, tokensPerS: rec.tokens_per_s, extra: rewardText(r.metrics).trim() });
    if (!progress.enabled && !io.json) say(`step ${rec.step}/${trainer.totalSteps} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} grad_norm ${r.gradNorm.toFixed(3)} ${rec.tokens_per_s.toFixed(1)} tok/s${rewardText(r.metrics)}`);
    await io.onStep?.(r);
    const step = trainer.position.step;
    if (trainer.val && config.evalEvery > 0 && step % config.evalEvery === 0) { await evaluate(); lastEvalStep = step; }
    const stopping = io.stop?.requested === true && !trainer.done;
    if ((config.saveEvery > 0 && step % config.saveEvery === 0) || stopping) save({ loss: r.loss, lr: r.lr, grad_norm: r.gradNorm });
    if (stopping) {
      progress.clear();
      logger.log({ type: 'event', event: 'interrupted', step, checkpoint });
      say(`interrupted after step ${step}: checkpoint written to ${checkpoint}; continue with --resume`);
      return { interrupted: true, checkpoint, losses, evalLoss };
    }
    // let signal handlers run between steps
    await new Promise((r) => setImmediate(r));
  }
  progress.clear();
  if (trainer.val && lastEvalStep !== trainer.position.step) await evaluate();
  return { interrupted: false, checkpoint, losses, evalLoss };
}
