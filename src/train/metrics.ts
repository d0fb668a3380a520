// Training metrics: JSON lines (one object per step / evaluation / event) appended to a file and, when asked,
// written to stdout; and a one-line progress bar with ETA for a terminal.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface TrainRecord {
  type: 'train';
  step: number;
  epoch: number;
  /** mean token loss of the optimizer step (all its micro-batches) */
  loss: number;
  lr: number;
  /** global gradient norm before clipping */
  grad_norm: number;
  tokens_per_s: number;
  samples_per_s: number;
  /** loss targets in the step */
  tokens: number;
  samples: number;
  step_s: number;
  elapsed_s: number;
  /** present when the gradient norm was not finite and the update was skipped */
  skipped?: boolean;
}

export interface EvalRecord {
  type: 'eval';
  step: number;
  eval_loss: number;
  eval_tokens: number;
  eval_samples: number;
  eval_s: number;
}

export interface EventRecord {
  type: 'event';
  event: string;
  step: number;
  [key: string]: unknown;
}

export type MetricsRecord = TrainRecord | EvalRecord | EventRecord | ({ type: string } & Record<string, unknown>);

export interface Writable {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface MetricsLoggerOptions {
  /** JSON lines file, appended to (a resumed run continues the same file) */
  file?: string | null;
  /** also write every record to this stream as a JSON line (--json) */
  stdout?: Writable | null;
}

/** Appends records as JSON lines; each line is written with one write() call and flushed to disk. */
export class MetricsLogger {
  private fd: number | null = null;
  private readonly stdout: Writable | null;
  readonly file: string | null;

  constructor(o: MetricsLoggerOptions = {}) {
    this.file = o.file ?? null;
    this.stdout = o.stdout ?? null;
    if (this.file) {
      mkdirSync(dirname(this.file), { recursive: true });
      this.fd = openSync(this.file, 'a');
    }
  }

  log(r: MetricsRecord): void {
    const line = JSON.stringify(r, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) + '\n';
    if (this.fd !== null) {
      writeSync(this.fd, line);
      fsyncSync(this.fd);
    }
    this.stdout?.write(line);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** "1h02m", "4m05s", "12s" */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** A number shown in ~4 significant figures, small learning rates in exponent form. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(4)).toString();
}

/**
 * A progress bar redrawn in place (carriage return) on a TTY: steps done / total, loss, lr, tokens/s, ETA from the
 * mean time of the steps run in this process. On a non-TTY stream it draws nothing.
 */
export class ProgressBar {
  private readonly out: Writable;
  private readonly total: number;
  private readonly width: number;
  private readonly firstStep: number;
  private readonly t0 = performance.now();
  private drawn = false;

  constructor(out: Writable, total: number, o: { startStep?: number; width?: number } = {}) {
    this.out = out;
    this.total = total;
    this.firstStep = o.startStep ?? 0;
    this.width = o.width ?? 24;
  }

  get enabled(): boolean {
    return this.out.isTTY === true;
  }

  /** ETA in seconds after `step` steps (of which those since startStep ran here). */
  eta(step: number): number {
    const done = step - this.firstStep;
    if (done <= 0) return NaN;
    return ((performance.now() - this.t0) / 1e3 / done) * (this.total - step);
  }

  update(step: number, r: { loss?: number; lr?: number; tokensPerS?: number; extra?: string } = {}): void {
    if (!this.enabled) return;
    const frac = this.total > 0 ? Math.min(1, step / this.total) : 0;
    const fill = Math.round(frac * this.width);
    const parts = [
      `[${'#'.repeat(fill)}${'.'.repeat(this.width - fill)}]`,
      `${step}/${this.total}`,
      r.loss !== undefined ? `loss ${formatNumber(r.loss)}` : '',
      r.lr !== undefined ? `lr ${formatNumber(r.lr)}` : '',
      r.tokensPerS !== undefined ? `${formatNumber(r.tokensPerS)} tok/s` : '',
      r.extra ?? '',
      `ETA ${formatSeconds(this.eta(step))}`,
    ].filter(Boolean);
    this.out.write(`\r${parts.join('  ')}\x1b[K`);
    this.drawn = true;
  }

  /** Ends the bar's line (before other output, and at the end). */
  clear(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
