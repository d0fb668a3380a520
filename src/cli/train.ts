// `vlmkit train sft`: supervised fine-tuning from the command line. Flags (or a JSON config file whose keys are
// the flag names) become SftRunOptions; the run itself is runSft (src/train/sft.ts). Ctrl-C finishes the current
// step, writes a checkpoint and exits with code 130; --resume continues from it.
// `vlmkit train pretrain --recipe FILE`: the same trainer from a random initialisation (--init random), every
// option from a recipe file kept in the repository, its paths relative to the recipe.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LoraConfigInput } from '../train/lora.js';
import type { SftMode, SftRunOptions } from '../train/sft.js';
import type { DpoConfig } from '../train/dpo.js';
import type { ContrastiveLossName } from '../train/contrastive-loss.js';

/** What `train dpo` adds to the run options. */
type DpoOptions = DpoConfig & { precomputeRef: boolean };
import { checkQuantFormat } from '../models/index.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const TRAIN_USAGE = `usage: vlmkit train sft --model <dir> --data train.jsonl --out runs/x [options]
       vlmkit train sft --init random --model-config config.json --tokenizer DIR --data ... --out ... [options]
       vlmkit train pretrain --recipe recipe.json [--out runs/x] [options]
       vlmkit train dpo --model <dir> --data pairs.jsonl --out runs/x [dpo options] [options]
       vlmkit train contrastive --model <dir> | --init random --model-config config.json --tokenizer DIR
                                --data pairs.jsonl --out runs/x [--loss clip|siglip] [--full | --lora SPEC] [options]
  --model DIR               the base SmolVLM / Idefics3 checkpoint
  --init random             train a new model from a random initialisation (every weight, as --full) instead
                            of loading --model; seeded by --seed
  --model-config FILE       with --init random: the config.json of the model to build
                            (default: the config.json in --tokenizer)
  --tokenizer DIR           with --init random: tokenizer.json, tokenizer_config.json, the chat template and
                            processor_config.json; copied with config.json into the saved model
  --vision-from DIR         (sft, pretrain) the vision tower from this SigLIP or SmolVLM checkpoint (e.g. one
                            trained by train contrastive or train patches): with --init random it starts the
                            new model (the rest random); with --model --full it replaces the model's own tower
  --recipe FILE             (train pretrain) a JSON object of these options, keys as the flag names, input
                            paths relative to the file; flags given here win
  --save-dtype T            f32 (default, as trained), bf16 or f16: dtype of the saved model (or adapter)
  --data FILE               training rows, JSONL: {"messages": [...], "images": [...]} or
                            {"prompt": ..., "completion": ..., "images": [...]}; image paths relative to the file
  --val FILE                validation rows (same forms), evaluated every --eval-every steps and at the end
  --out DIR                 run folder: checkpoint-N/, metrics.jsonl, the final adapter (or model/ with --full)
  --lora SPEC               r=8,alpha=16[,dropout=0.05][,targets=q_proj,k_proj,...|all-linear][,rslora=true]
                            (default r=8,alpha=16 on q/k/v/o/gate/up/down_proj)
  --dora                    DoRA (PEFT's use_dora): LoRA plus a trained magnitude per output feature of each
                            adapted layer; saved as PEFT does (use_dora, lora_magnitude_vector), merges like LoRA
  --full                    fine-tune every weight instead of LoRA (model loaded in f32)
  --freeze-vision           keep the vision tower frozen (with --full: train the rest; with LoRA: no adapters there;
                            with --init random: only with --vision-from, a new decoder on a trained tower)
  --lr X                    peak learning rate (default 2e-4 LoRA, 2e-5 full, 1e-3 --init random)
  --epochs N                passes over the data (default 1)
  --max-steps N             optimizer steps (wins over --epochs)
  --batch-size N            rows per micro-batch (default 1)
  --grad-accum N            micro-batches per optimizer step (default 1)
  --warmup-steps N | --warmup-ratio R    linear warmup (default none)
  --schedule S              constant, linear (default) or cosine
  --clip X                  clip the global gradient norm (default 1; 0 = off)
  --skip-nonfinite          skip (and count) a step whose loss or gradient norm is NaN/Inf instead of stopping
  --weight-decay X          AdamW decoupled weight decay (default 0)
  --vision-lr-scale K       the vision tower's lr is K x --lr (default 1; e.g. 4 for a tower learning from scratch)
  --seed N                  data order, adapter or random init and dropout (default 42)
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
  --config FILE             a JSON object of these options (keys as the flag names); flags given here win;
                            a "description" key (what the run is for) is allowed and ignored
  --f32                     LoRA: load the frozen weights as f32 too (more memory)
  --quant FORMAT            LoRA: hold the frozen base in nf4 (QLoRA; double-quantized; its token embeddings and
                            lm_head in q8_0, unlike bitsandbytes' 16-bit: docs/quantization.md), q4_0 or q8_0
                            (less memory); the adapter is saved as usual and loads onto the 16/32-bit base
dpo (LoRA; rows {"prompt", "chosen", "rejected", "images"}: conversational messages or plain strings, as TRL):
  --beta X                  how far the policy may move from the reference (default 0.1)
  --loss-type T             sigmoid (default), ipo or hinge
  --label-smoothing X       sigmoid only: the chance a preference is flipped, in [0, 0.5) (default 0)
  --sft-weight W            add W x the NLL of the chosen answer (TRL's rpo_alpha; default 0)
  --precompute-ref          compute the reference log-probs once before training (cached in --out)
  (the reference is the model with the adapters off; --skip-bad-rows skips empty or identical answers)
contrastive (a CLIP or SigLIP model; rows {"image": "a.png", "text": "a red circle"}, image paths relative to the file):
  --loss L                  clip (symmetric softmax; CLIP's default) or siglip (sigmoid; SigLIP's default)
  --recipe FILE             the options from a recipe file (as train pretrain), e.g. recipes/tiny-clip/recipe.json
  (the other rows of a micro-batch are the negatives: --batch-size is the contrastive batch; LoRA (the default
   for --model) adapts every encoder linear, --full trains every weight and saves <out>/model for vlmkit classify)`;

const FLAGS = {
  model: { type: 'string' }, data: { type: 'string' }, val: { type: 'string' }, out: { type: 'string' },
  lora: { type: 'string' }, dora: { type: 'boolean' }, full: { type: 'boolean' }, 'freeze-vision': { type: 'boolean' },
  lr: { type: 'string' }, epochs: { type: 'string' }, 'max-steps': { type: 'string' }, 'batch-size': { type: 'string' },
  'grad-accum': { type: 'string' }, 'warmup-steps': { type: 'string' }, 'warmup-ratio': { type: 'string' },
  schedule: { type: 'string' }, clip: { type: 'string' }, 'weight-decay': { type: 'string' }, 'vision-lr-scale': { type: 'string' }, seed: { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' }, 'assistant-only': { type: 'boolean' }, 'max-length': { type: 'string' },
  'no-truncate': { type: 'boolean' }, 'skip-bad-rows': { type: 'boolean' }, 'group-by-length': { type: 'boolean' },
  'save-every': { type: 'string' }, 'save-total-limit': { type: 'string' }, 'eval-every': { type: 'string' },
  resume: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' }, f32: { type: 'boolean' },
  'skip-nonfinite': { type: 'boolean' },
  init: { type: 'string' }, 'model-config': { type: 'string' }, 'vision-from': { type: 'string' }, tokenizer: { type: 'string' }, 'save-dtype': { type: 'string' },
  recipe: { type: 'string' },
  beta: { type: 'string' }, 'loss-type': { type: 'string' }, 'label-smoothing': { type: 'string' }, 'sft-weight': { type: 'string' },
  'precompute-ref': { type: 'boolean' }, quant: { type: 'string' },
  loss: { type: 'string' },
} as const;

/** The options only `train dpo` takes, and those it does not. */
const DPO_ONLY: readonly FlagName[] = ['beta', 'loss-type', 'label-smoothing', 'sft-weight', 'precompute-ref'];
const NOT_DPO: readonly FlagName[] = ['init', 'model-config', 'vision-from', 'tokenizer', 'recipe', 'full', 'assistant-only', 'no-truncate'];
/** The option only `train contrastive` takes, and the (token-level) ones it does not. */
const CONTRASTIVE_ONLY: readonly FlagName[] = ['loss'];
const NOT_CONTRASTIVE: readonly FlagName[] = ['vision-from', 'freeze-vision', 'assistant-only', 'no-truncate', 'max-length', 'f32'];
export type TrainMethod = 'sft' | 'pretrain' | 'dpo' | 'contrastive';

type FlagName = keyof typeof FLAGS;
type Values = Partial<Record<FlagName, string | boolean>>;

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-');

/** Options naming input files or folders: a recipe's are relative to the recipe's folder. */
const PATH_FLAGS: readonly FlagName[] = ['model', 'data', 'val', 'model-config', 'tokenizer', 'vision-from'];

/**
 * --config FILE (or --recipe FILE): a JSON object whose keys are flag names (kebab-case, camelCase or snake_case).
 * Either may carry a "description" (what the run is for; not an option). A recipe's relative input paths are
 * taken from the recipe's folder, so the recipe runs the same from any working directory.
 */
function readConfig(path: string, recipe = false): Values {
  const flag = recipe ? '--recipe' : '--config';
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw argError(code ? `${flag}: cannot read ${path} (${code})` : `${flag}: ${path} is not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw argError(`${flag}: ${path} must hold a JSON object of options`);
  const out: Values = {};
  for (const [k, v] of Object.entries(j as Record<string, unknown>)) {
    if (k === 'description') continue;
    const name = kebab(k) as FlagName;
    if (name === 'config' || name === 'recipe' || !(name in FLAGS)) throw argError(`${flag}: ${path} has an unknown option "${k}"; the options are the flags of vlmkit train sft --help`);
    const type = FLAGS[name].type;
    if (name === 'lora' && v && typeof v === 'object') out.lora = JSON.stringify(v);
    else if (type === 'boolean') {
      if (typeof v !== 'boolean') throw argError(`${flag}: "${k}" must be true or false, got ${JSON.stringify(v)}`);
      out[name] = v;
    } else {
      if (typeof v !== 'string' && typeof v !== 'number') throw argError(`${flag}: "${k}" must be a string or number, got ${JSON.stringify(v)}`);
      out[name] = recipe && PATH_FLAGS.includes(name) && !isAbsolute(String(v)) ? join(dirname(path), String(v)) : String(v);
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
      case 'dora': case 'use_dora': case 'useDora': o.useDora = v === true || v === 'true' || v === '1'; return null;
      case 'init': case 'init_lora_weights': o.initLoraWeights = v === 'gaussian' ? 'gaussian' : v !== false && v !== 'false'; return null;
      case 'targets': case 'target_modules': case 'targetModules':
        if (Array.isArray(v)) o.targetModules = v.map(String);
        else o.targetModules = String(v) === 'all-linear' ? 'all-linear' : [String(v)];
        return 'targets';
      case 'exclude': case 'exclude_modules':
        o.excludeModules = Array.isArray(v) ? v.map(String) : [String(v)];
        return 'exclude';
      default: throw bad(`unknown key "${k}" (use r, alpha, dropout, targets, exclude, rslora, dora, init)`);
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

/**
 * Command-line flags (after the config file's) -> run options. `method` 'pretrain' reads --recipe and always
 * starts from a random initialisation.
 */
export function trainOptions(argv: string[], method: TrainMethod = 'sft'): { opts: SftRunOptions & Partial<DpoOptions> & { loss?: string }; json: boolean } {
  // a bare --resume (no folder after it) means the newest checkpoint of --out
  const args = argv.flatMap((a, i) => (a === '--resume' && (i + 1 >= argv.length || argv[i + 1]!.startsWith('--')) ? ['--resume=latest'] : [a]));
  const { values, positionals } = parsing(TRAIN_USAGE, () => parseArgs({ args, options: FLAGS, allowPositionals: true, strict: true }));
  if (positionals.length) throw argError(`unexpected argument "${positionals[0]}"\n${TRAIN_USAGE}`);
  if (method === 'pretrain') {
    if (!values.recipe) throw argError(`train pretrain needs --recipe FILE (e.g. recipes/builtin/recipe.json)\n${TRAIN_USAGE}`);
    if (values.config) throw argError('train pretrain takes its options from --recipe; drop --config');
  } else if (values.recipe && method !== 'contrastive') throw argError(`--recipe is for vlmkit train pretrain and train contrastive; train ${method} takes --config FILE`);
  else if (values.recipe && values.config) throw argError('give --recipe or --config, not both');
  const v: Values = { ...(values.recipe ? readConfig(values.recipe, true) : values.config ? readConfig(values.config) : {}), ...(values as Values) };
  if (method === 'dpo') {
    const wrong = NOT_DPO.find((f) => v[f] !== undefined);
    if (wrong) throw argError(`--${wrong} is not an option of train dpo (it trains LoRA adapters on a pretrained --model); drop it`);
  } else {
    const wrong = DPO_ONLY.find((f) => v[f] !== undefined);
    if (wrong) throw argError(`--${wrong} is an option of vlmkit train dpo, not train ${method}`);
  }
  if (method === 'contrastive') {
    const wrong = NOT_CONTRASTIVE.find((f) => v[f] !== undefined);
    if (wrong) throw argError(`--${wrong} is not an option of train contrastive (it trains on image-caption pairs); drop it`);
    if (v.loss !== undefined && !['clip', 'siglip'].includes(String(v.loss))) throw argError(`--loss takes clip or siglip, got ${JSON.stringify(v.loss)}`);
  } else {
    const wrong = CONTRASTIVE_ONLY.find((f) => v[f] !== undefined);
    if (wrong) throw argError(`--${wrong} is an option of vlmkit train contrastive, not train ${method}`);
  }
  const init = v.init === undefined ? (method === 'pretrain' ? 'random' : 'pretrained') : String(v.init);
  if (init !== 'random' && init !== 'pretrained') throw argError(`--init takes random or pretrained, got ${JSON.stringify(init)}`);
  if (method === 'pretrain' && init !== 'random') throw argError('train pretrain always starts from a random initialisation; use vlmkit train sft to fine-tune a checkpoint');
  const random = init === 'random';
  for (const req of [...(random ? [] : ['model'] as const), 'data', 'out'] as const)
    if (!v[req]) throw argError(`--${req} is required\n${TRAIN_USAGE}`);
  if (random) {
    if (v.model !== undefined) throw argError('--init random builds the model from --model-config, not from --model; drop --model');
    if (v.lora !== undefined || v.dora === true) throw argError('--init random trains every weight of a new model; drop --lora and --dora');
    // a new model may keep a tower it takes from elsewhere as it is (its decoder learns to read it)
    if (v['freeze-vision'] === true && v['vision-from'] === undefined) throw argError('--init random with --freeze-vision would keep a random vision tower; add --vision-from DIR (a trained tower) or drop --freeze-vision');
    if (!v.tokenizer) throw argError(`--init random needs --tokenizer DIR (${method === 'contrastive' ? 'tokenizer.json and preprocessor_config.json' : 'tokenizer.json, tokenizer_config.json, chat template, processor_config.json'})\n${TRAIN_USAGE}`);
  } else if (v['model-config'] !== undefined || v.tokenizer !== undefined) {
    throw argError('--model-config and --tokenizer go with --init random; a fine-tune reads both from --model');
  } else if (v['vision-from'] !== undefined && v.full !== true) {
    throw argError('--vision-from replaces the vision tower of --model, which a LoRA adapter cannot carry; add --full (or --full --freeze-vision)');
  }
  const saveDtype = v['save-dtype'];
  if (saveDtype !== undefined && !['f32', 'bf16', 'f16'].includes(String(saveDtype))) throw argError(`--save-dtype takes f32, bf16 or f16, got ${JSON.stringify(saveDtype)}`);
  const full = v.full === true || random;
  if (full && v.lora !== undefined) throw argError('--full trains every weight; it does not take --lora (drop one of them)');
  if (full && v.dora === true) throw argError('--dora is a kind of LoRA adapter; --full trains every weight instead (drop one of them)');
  const mode: SftMode = full ? (v['freeze-vision'] ? 'frozen-vision' : 'full') : 'lora';
  const schedule = v.schedule as string | undefined;
  if (schedule !== undefined && !['constant', 'linear', 'cosine'].includes(schedule))
    throw argError(`--schedule takes constant, linear or cosine, got ${JSON.stringify(schedule)}`);
  if (v['warmup-steps'] !== undefined && v['warmup-ratio'] !== undefined) throw argError('give --warmup-steps or --warmup-ratio, not both');
  if (v.quant !== undefined && mode !== 'lora') throw argError(`--quant holds a frozen base in ${String(v.quant)} under LoRA adapters; ${random ? '--init random' : '--full'} trains every weight, which must stay in f32 (drop --quant)`);
  const quant = v.quant === undefined ? undefined : checkQuantFormat(String(v.quant), '--quant');
  const lora = mode === 'lora' ? { r: 8, loraAlpha: 16, ...(typeof v.lora === 'string' ? parseLoraSpec(v.lora) : {}), ...(v.dora === true ? { useDora: true } : {}) } : null;
  const opts: SftRunOptions = {
    model: random ? null : String(v.model), data: String(v.data), val: typeof v.val === 'string' ? v.val : null, out: String(v.out),
    init: random ? 'random' : 'pretrained',
    ...(random ? { modelConfig: typeof v['model-config'] === 'string' ? v['model-config'] : null, tokenizer: String(v.tokenizer) } : {}),
    visionFrom: typeof v['vision-from'] === 'string' ? v['vision-from'] : null,
    saveDtype: saveDtype as SftRunOptions['saveDtype'],
    mode, lora: lora as SftRunOptions['lora'], freezeVision: mode === 'lora' && v['freeze-vision'] === true,
    lr: num(v, 'lr', 'float', 0) ?? (mode === 'lora' ? 2e-4 : random ? 1e-3 : 2e-5),
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
    visionLrScale: num(v, 'vision-lr-scale', 'float', 0),
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
    quant,
  };
  if (opts.epochs === 0) throw argError('--epochs takes a number > 0, got 0');
  if (opts.warmupRatio !== undefined && opts.warmupRatio > 1) throw argError(`--warmup-ratio takes a number in [0, 1], got ${opts.warmupRatio}`);
  if (opts.evalEvery && !opts.val) throw argError('--eval-every needs a validation file: add --val FILE');
  if (method === 'dpo') {
    const lossType = v['loss-type'];
    if (lossType !== undefined && !['sigmoid', 'ipo', 'hinge'].includes(String(lossType))) throw argError(`--loss-type takes sigmoid, ipo or hinge, got ${JSON.stringify(lossType)}`);
    const dpo: Partial<DpoOptions> = {
      beta: num(v, 'beta', 'float', 0), lossType: lossType as DpoOptions['lossType'], labelSmoothing: num(v, 'label-smoothing', 'float', 0),
      sftWeight: num(v, 'sft-weight', 'float', 0), precomputeRef: v['precompute-ref'] === true,
    };
    if (dpo.beta === 0) throw argError('--beta takes a number > 0, got 0');
    if (dpo.labelSmoothing !== undefined && dpo.labelSmoothing >= 0.5) throw argError(`--label-smoothing takes a number in [0, 0.5), got ${dpo.labelSmoothing}`);
    return { opts: { ...opts, ...dpo }, json: v.json === true };
  }
  if (method === 'contrastive' && v.loss !== undefined) return { opts: { ...opts, loss: String(v.loss) }, json: v.json === true };
  return { opts, json: v.json === true };
}

export async function train(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'sft' && sub !== 'pretrain' && sub !== 'dpo' && sub !== 'contrastive')
    throw argError(`${sub ? `unknown training method "${sub}"` : 'say which training method'}; the methods are vlmkit train sft, train pretrain, train dpo and train contrastive\n${TRAIN_USAGE}`);
  const { opts, json } = trainOptions(rest, sub);
  const { runSft } = await import('../train/sft.js');
  const { runDpo } = await import('../train/dpo-run.js');
  const { runContrastive } = await import('../train/contrastive-run.js');
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
    const runIo = { stdout: io.stdout, stderr: io.stderr, json, stop };
    const r = sub === 'dpo'
      ? await runDpo({ ...opts, model: opts.model!, lora: opts.lora ?? null }, runIo)
      : sub === 'contrastive'
        ? await runContrastive({ ...opts, mode: opts.mode === 'lora' ? 'lora' : 'full', loss: opts.loss as ContrastiveLossName | undefined }, runIo)
        : await runSft(opts, runIo);
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
