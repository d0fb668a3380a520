// `vlmkit train sft`: supervised fine-tuning from the command line. Flags (or a JSON config file whose keys are
// the flag names) become SftRunOptions; the run itself is runSft (src/train/sft.ts). Ctrl-C finishes the current
// step, writes a checkpoint and exits with code 130; --resume continues from it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { LoraConfigInput } from '../train/lora.js';
import type { SftMode, SftRunOptions } from '../train/sft.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const TRAIN_USAGE = `usage: vlmkit train sft --model <dir> --data train.jsonl --out runs/x [options]
  --model DIR               the base SmolVLM / Idefics3 checkpoint
  --data FILE               training rows, JSONL: {"messages": [...], "images": [...]} or
                            {"prompt": ..., "completion": ..., "images": [...]}; image paths relative to the file
  --val FILE                validation rows (same forms), evaluated every --eval-every steps and at the end
  --out DIR                 run folder: checkpoint-N/, metrics.jsonl, the final adapter (or model/ with --full)
  --lora SPEC               r=8,alpha=16[,dropout=0.05][,targets=q_proj,k_proj,...|all-linear][,rslora=true]
                            (default r=8,alpha=16 on q/k/v/o/gate/up/down_proj)
  --full                    fine-tune every weight instead of LoRA (model loaded in f32)
  --freeze-vision           keep the vision tower frozen (with --full: train the rest; with LoRA: no adapters there)
  --lr X                    peak learning rate (default 2e-4 LoRA, 2e-5 full)
  --epochs N                passes over the data (default 1)
  --max-steps N             optimizer steps (wins over --epochs)
  --batch-size N            rows per micro-batch (default 1)
  --grad-accum N            micro-batches per optimizer step (default 1)
  --warmup-steps N | --warmup-ratio R    linear warmup (default none)
  --schedule S              constant, linear (default) or cosine
  --clip X                  clip the global gradient norm (default 1; 0 = off)
  --skip-nonfinite          skip (and count) a step whose loss or gradient norm is NaN/Inf instead of stopping
  --weight-decay X          AdamW decoupled weight decay (default 0)
  --seed N                  data order, adapter init and dropout (default 42)
  --gradient-checkpointing  recompute each layer in the backward pass (less memory, ~1/3 more compute)
  --assistant-only          loss on the assistant replies only (prompt/completion rows: always the completion)
  --max-length N            tokens per row (default the model's context); longer rows are cut after their images,
  --no-truncate             or, with this flag, treated as bad rows
  --skip-bad-rows           skip rows with a missing/unreadable image, no assistant turn or too long (counted)
  --group-by-length         batch rows of similar length together
  --save-every N            write checkpoint-N every N steps (default: only when interrupted)
  --save-total-limit N      keep only the newest N checkpoints
  --eval-every N            evaluate on --val every N steps
  --resume [DIR]            continue the run from the newest checkpoint in --out (or from DIR)
  --json                    JSON lines on stdout: every step {step, loss, lr, grad_norm, tokens_per_s, ...}
  --config FILE             a JSON object of these options (keys as the flag names); flags given here win
  --f32                     LoRA: load the frozen weights as f32 too (more memory)`;

const FLAGS = {
  model: { type: 'string' }, data: { type: 'string' }, val: { type: 'string' }, out: { type: 'string' },
  lora: { type: 'string' }, full: { type: 'boolean' }, 'freeze-vision': { type: 'boolean' },
  lr: { type: 'string' }, epochs: { type: 'string' }, 'max-steps': { type: 'string' }, 'batch-size': { type: 'string' },
  'grad-accum': { type: 'string' }, 'warmup-steps': { type: 'string' }, 'warmup-ratio': { type: 'string' },
  schedule: { type: 'string' }, clip: { type: 'string' }, 'weight-decay': { type: 'string' }, seed: { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' }, 'assistant-only': { type: 'boolean' }, 'max-length': { type: 'string' },
  'no-truncate': { type: 'boolean' }, 'skip-bad-rows': { type: 'boolean' }, 'group-by-length': { type: 'boolean' },
  'save-every': { type: 'string' }, 'save-total-limit': { type: 'string' }, 'eval-every': { type: 'string' },
  resume: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' }, f32: { type: 'boolean' },
  'skip-nonfinite': { type: 'boolean' },
} as const;

type FlagName = keyof typeof FLAGS;
type Values = Partial<Record<FlagName, string | boolean>>;

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-');

/** --config FILE: a JSON object whose keys are flag names (kebab-case, camelCase or snake_case). */
function readConfig(path: string): Values {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw argError(code ? `--config: cannot read ${path} (${code})` : `--config: ${path} is not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw argError(`--config: ${path} must hold a JSON object of options`);
  const out: Values = {};
  for (const [k, v] of Object.entries(j as Record<string, unknown>)) {
    const name = kebab(k) as FlagName;
    if (name === 'config' || !(name in FLAGS)) throw argError(`--config: ${path} has an unknown option "${k}"; the options are the flags of vlmkit train sft --help`);
    const type = FLAGS[name].type;
    if (name === 'lora' && v && typeof v === 'object') out.lora = JSON.stringify(v);
    else if (type === 'boolean') {
      if (typeof v !== 'boolean') throw argError(`--config: "${k}" must be true or false, got ${JSON.stringify(v)}`);
      out[name] = v;
    } else {
      if (typeof v !== 'string' && typeof v !== 'number') throw argError(`--config: "${k}" must be a string or number, got ${JSON.stringify(v)}`);
      out[name] = String(v);
    }
  }
  return out;
}

function num(v: Values, flag: FlagName, kind: 'int' | 'float', min: number): number | undefined {
  const s = v[flag];
  if (s === undefined) return undefined;
  const x = Number(s);
  const ok = typeof s === 'string' && s.trim() !== '' && Number.isFinite(x) && (kind === 'float' || Number.isInteger(x)) && x >= min;
  if (!ok) throw argError(`--${flag} takes ${kind === 'int' ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(s)}`);
  return x;
}

/**
 * "r=8,alpha=16,dropout=0.05,targets=q_proj,k_proj" (a bare item continues the targets / exclude list), or a JSON
 * object {r, alpha | lora_alpha, dropout | lora_dropout, targets | target_modules, ...}.
 */
export function parseLoraSpec(spec: string): Partial<LoraConfigInput> {
  const o: Partial<LoraConfigInput> & { targetModules?: string[] | string; excludeModules?: string[] | string } = {};
  const bad = (why: string) => argError(`--lora ${JSON.stringify(spec)}: ${why}; e.g. --lora r=8,alpha=16,dropout=0.05,targets=q_proj,v_proj`);
  const setNum = (key: 'r' | 'loraAlpha' | 'loraDropout', raw: unknown, name: string) => {
    const x = Number(raw);
    if (raw === '' || raw === null || !Number.isFinite(x)) throw bad(`${name} must be a number, got ${JSON.stringify(raw)}`);
    o[key] = x;
  };
  const apply = (k: string, v: unknown): 'targets' | 'exclude' | null => {
    switch (k) {
      case 'r': case 'rank': setNum('r', v, 'r'); return null;
      case 'alpha': case 'lora_alpha': case 'loraAlpha': setNum('loraAlpha', v, 'alpha'); return null;
      case 'dropout': case 'lora_dropout': case 'loraDropout': setNum('loraDropout', v, 'dropout'); return null;
      case 'rslora': case 'use_rslora': o.useRslora = v === true || v === 'true' || v === '1'; return null;
      case 'init': case 'init_lora_weights': o.initLoraWeights = v === 'gaussian' ? 'gaussian' : v !== false && v !== 'false'; return null;
      case 'targets': case 'target_modules': case 'targetModules':
        if (Array.isArray(v)) o.targetModules = v.map(String);
        else o.targetModules = String(v) === 'all-linear' ? 'all-linear' : [String(v)];
        return 'targets';
      case 'exclude': case 'exclude_modules':
        o.excludeModules = Array.isArray(v) ? v.map(String) : [String(v)];
        return 'exclude';
      default: throw bad(`unknown key "${k}" (use r, alpha, dropout, targets, exclude, rslora, init)`);
    }
  };
  const t = spec.trim();
  if (t.startsWith('{')) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(t) as Record<string, unknown>;
    } catch (e) {
      throw bad(`not valid JSON (${(e as Error).message})`);
    }
    for (const [k, v] of Object.entries(j)) apply(k, v);
    return o;
  }
  let list: 'targets' | 'exclude' | null = null;
  for (const item of t.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq < 0) {
      const arr = list === 'targets' ? o.targetModules : list === 'exclude' ? o.excludeModules : null;
      if (!Array.isArray(arr)) throw bad(`"${item}" is not key=value`);
      arr.push(item);
      continue;
    }
    list = apply(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  return o;
}

/** Command-line flags (after the config file's) -> run options. */
export function trainOptions(argv: string[]): { opts: SftRunOptions; json: boolean } {
  // a bare --resume (no folder after it) means the newest checkpoint of --out
  const args = argv.flatMap((a, i) => (a === '--resume' && (i + 1 >= argv.length || argv[i + 1]!.startsWith('--')) ? ['--resume=latest'] : [a]));
  const { values, positionals } = parsing(TRAIN_USAGE, () => parseArgs({ args, options: FLAGS, allowPositionals: true, strict: true }));
  if (positionals.length) throw argError(`unexpected argument "${positionals[0]}"\n${TRAIN_USAGE}`);
  const v: Values = { ...(values.config ? readConfig(values.config) : {}), ...(values as Values) };
  for (const req of ['model', 'data', 'out'] as const)
    if (!v[req]) throw argError(`--${req} is required\n${TRAIN_USAGE}`);
  const full = v.full === true;
  if (full && v.lora !== undefined) throw argError('--full trains every weight; it does not take --lora (drop one of them)');
  const mode: SftMode = full ? (v['freeze-vision'] ? 'frozen-vision' : 'full') : 'lora';
  const schedule = v.schedule as string | undefined;
  if (schedule !== undefined && !['constant', 'linear', 'cosine'].includes(schedule))
    throw argError(`--schedule takes constant, linear or cosine, got ${JSON.stringify(schedule)}`);
  if (v['warmup-steps'] !== undefined && v['warmup-ratio'] !== undefined) throw argError('give --warmup-steps or --warmup-ratio, not both');
  const lora = mode === 'lora' ? { r: 8, loraAlpha: 16, ...(typeof v.lora === 'string' ? parseLoraSpec(v.lora) : {}) } : null;
  const opts: SftRunOptions = {
    model: String(v.model), data: String(v.data), val: typeof v.val === 'string' ? v.val : null, out: String(v.out),
    mode, lora: lora as SftRunOptions['lora'], freezeVision: mode === 'lora' && v['freeze-vision'] === true,
    lr: num(v, 'lr', 'float', 0) ?? (mode === 'lora' ? 2e-4 : 2e-5),
    epochs: num(v, 'epochs', 'float', 0),
    maxSteps: num(v, 'max-steps', 'int', 1),
    batchSize: num(v, 'batch-size', 'int', 1),
    gradAccum: num(v, 'grad-accum', 'int', 1),
    warmupSteps: num(v, 'warmup-steps', 'int', 0),
    warmupRatio: num(v, 'warmup-ratio', 'float', 0),
    schedule: schedule as SftRunOptions['schedule'],
    clip: num(v, 'clip', 'float', 0),
    skipNonfinite: v['skip-nonfinite'] === true,
    weightDecay: num(v, 'weight-decay', 'float', 0),
    seed: num(v, 'seed', 'int', 0),
    gradientCheckpointing: v['gradient-checkpointing'] === true,
    assistantOnly: v['assistant-only'] === true,
    maxLength: num(v, 'max-length', 'int', 2),
    truncate: v['no-truncate'] === true ? false : undefined,
    skipBadRows: v['skip-bad-rows'] === true,
    groupByLength: v['group-by-length'] === true,
    saveEvery: num(v, 'save-every', 'int', 0),
    saveTotalLimit: num(v, 'save-total-limit', 'int', 0),
    evalEvery: num(v, 'eval-every', 'int', 0),
    resume: typeof v.resume === 'string' ? v.resume : null,
    f32: v.f32 === true,
  };
  if (opts.epochs === 0) throw argError('--epochs takes a number > 0, got 0');
  if (opts.warmupRatio !== undefined && opts.warmupRatio > 1) throw argError(`--warmup-ratio takes a number in [0, 1], got ${opts.warmupRatio}`);
  if (opts.evalEvery && !opts.val) throw argError('--eval-every needs a validation file: add --val FILE');
  return { opts, json: v.json === true };
}

export async function train(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'sft') throw argError(`${sub ? `unknown training method "${sub}"` : 'say which training method'}; vlmkit train sft is the one there is\n${TRAIN_USAGE}`);
  const { opts, json } = trainOptions(rest);
  const { runSft } = await import('../train/sft.js');
  const stop = { requested: false };
  const onInt = () => {
    if (stop.requested) {
      io.stderr.write('\nvlmkit: aborted without a checkpoint for this step (resume from the last one)\n');
      process.exit(130);
    }
    stop.requested = true;
    io.stderr.write('\nvlmkit: stopping after this step and writing a checkpoint (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onInt);
  try {
    const r = await runSft(opts, { stdout: io.stdout, stderr: io.stderr, json, stop });
    if (r.interrupted) return 130;
    if (!json) {
      const last = r.losses[r.losses.length - 1];
      await write(io.stdout, `${opts.mode === 'lora' ? 'adapter' : 'model'} saved to ${r.output} (${r.steps} steps${last !== undefined ? `, last loss ${last.toFixed(4)}` : ''}${r.evalLoss !== null ? `, eval loss ${r.evalLoss.toFixed(4)}` : ''})\n`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onInt);
  }
}
