// Trains the built-in model's vision tower alone on per-patch labels of generated shapes scenes (src/train/patches.ts)
// and writes a SigLIP vision checkpoint that `vlmkit train ... --vision-from` reads.
//   npx tsx scripts/pretrain-vision.ts --out DIR [--recipe recipes/builtin/vision.json] [--steps N] [--batch B] [--lr X] [--seed S] [--config config.json]
//     [--eval-every N] [--log-every N] [--stop-after N] [--heads base|box] [--init DIR]
// --heads picks the label sets (src/data/patch-labels.ts PATCH_HEAD_SETS; base when left out); --init starts from
// a tower this script wrote (its tensors; heads it lacks start random), e.g. to add the box heads to a trained tower.
// Progress on stderr; one JSON line per logged step and per evaluation on stdout. The tower so far is written to
// DIR-partial at every evaluation, the finished one to DIR. --stop-after N stops after step N of the N-step schedule (the first steps of the
// recipe, for test/builtin/vision-recipe.test.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeDirAtomic, writeSafetensors } from '../src/io/safetensors-write.js';
import { siglipVisionConfigFromJson } from '../src/models/siglip/config.js';
import { PATCH_HEAD_SETS } from '../src/data/patch-labels.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { loadVisionFrom } from '../src/train/vision-from.js';
import { PatchModel, PatchObjective, type PatchExample, type PatchBatch } from '../src/train/patches.js';
import { Trainer } from '../src/train/trainer.js';

const OPTIONS = {
  recipe: { type: 'string' },
  out: { type: 'string' }, steps: { type: 'string', default: '2000' }, batch: { type: 'string', default: '32' },
  lr: { type: 'string', default: '1e-3' }, seed: { type: 'string', default: '1' }, config: { type: 'string', default: 'recipes/builtin/config.json' },
  'eval-every': { type: 'string', default: '250' }, 'log-every': { type: 'string', default: '25' }, 'stop-after': { type: 'string' },
  heads: { type: 'string', default: 'base' }, init: { type: 'string' },
} as const;
const { values: a } = parseArgs({ options: OPTIONS });
if (!a.out) throw new Error('--out DIR is required');
// a recipe file's keys are the flags' names (paths relative to the file); flags given here win
if (a.recipe) {
  const r = JSON.parse(readFileSync(a.recipe, 'utf8')) as Record<string, unknown>;
  const given = new Set(process.argv.slice(2).filter((x) => x.startsWith('--')).map((x) => x.slice(2).split('=')[0]));
  for (const [k, v] of Object.entries(r)) {
    if (k === 'description' || given.has(k)) continue;
    if (!(k in OPTIONS)) throw new Error(`${a.recipe}: unknown key ${JSON.stringify(k)}`);
    (a as Record<string, unknown>)[k] = k === 'config' || k === 'init' ? join(dirname(a.recipe), String(v)) : String(v);
  }
}
const steps = Number(a.steps), batch = Number(a.batch), seed = Number(a.seed);
const full = JSON.parse(readFileSync(a.config!, 'utf8'));
const vj = full.vision_config ?? full;
const cfg = siglipVisionConfigFromJson(vj, a.config!);
const heads = PATCH_HEAD_SETS[a.heads!];
if (!heads) throw new Error(`--heads ${JSON.stringify(a.heads)}: use one of ${Object.keys(PATCH_HEAD_SETS).join(', ')}`);
const model = PatchModel.random(cfg, heads, seed);
if (a.init) {
  // the earlier tower's encoder (loadVisionFrom: names, shapes and dtypes checked, written in place), then each of
  // its heads that this model has; heads it lacks stay random
  const own = new Map([...model.named].filter(([n]) => n.startsWith('vision_model.')).map(([n, t]) => [`model.${n}`, t]));
  let n = loadVisionFrom(a.init, own);
  const file = join(a.init, 'model.safetensors');
  const f = SafetensorsFile.open(file);
  try {
    for (const [name, t] of model.named) {
      if (!name.startsWith('patch_heads.') || !f.has(name)) continue;
      const raw = f.read(name);
      if (raw.dtype !== 'F32' || raw.shape.join(',') !== t.shape.join(',')) throw new Error(`--init ${file}: ${name} is ${raw.dtype} [${raw.shape}], this tower needs F32 [${t.shape}]; give a tower of the same config`);
      (t.data as Float32Array).set(raw.data as Float32Array);
      n++;
    }
  } finally {
    f.close();
  }
  process.stderr.write(`init: ${n} of ${model.named.size} tensors from ${file}\n`);
}
const objective = new PatchObjective({ seed, size: cfg.imageSize, patchSize: cfg.patchSize, heads });
const train = { examples: Array.from({ length: steps * batch }, (_, i): PatchExample => ({ index: i })) };
// held-out scenes: indices no training step reaches
const val = { examples: Array.from({ length: 256 }, (_, i): PatchExample => ({ index: 1e9 + i })) };
const t = new Trainer<PatchExample, PatchBatch, PatchModel>({
  model, objective, train, val, params: model.parameters(),
  config: { lr: Number(a.lr), maxSteps: steps, batchSize: batch, warmupRatio: 0.03, schedule: 'cosine', clip: 1, weightDecay: 0.05, seed, evalBatchSize: 64 },
});

/** The tower as a folder, written whole (a SigLIP vision checkpoint plus the heads, and what they name). */
function save(dir: string): void {
  const entries = [...model.named].map(([name, tt]) => ({ name, dtype: 'F32' as const, shape: tt.shape, data: tt.toFloat32Array() }));
  writeDirAtomic(dir, (tmp) => {
    writeSafetensors(join(tmp, 'model.safetensors'), entries, { format: 'pt' });
    writeFileSync(join(tmp, 'config.json'), JSON.stringify({
      ...vj, architectures: ['SiglipVisionModel'], model_type: 'siglip_vision_model', vision_use_head: false, patch_heads: heads,
    }, null, 2) + '\n');
  });
}

const logEvery = Number(a['log-every']), evalEvery = Number(a['eval-every']);
const stopAfter = a['stop-after'] === undefined ? Infinity : Number(a['stop-after']);
for (const [k, v] of Object.entries({ steps, batch, seed, logEvery, evalEvery, lr: Number(a.lr) }))
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`--${k} must be a number > 0, got ${JSON.stringify(v)}`);
let acc = 0, n = 0;
const t0 = performance.now();
while (!t.done && t.position.step < stopAfter) {
  const r = await t.step();
  acc += r.loss; n++;
  const s = t.position.step;
  if (s % logEvery === 0 || t.done) {
    const rec = { step: s, loss: acc / n, batch, lr: r.lr, grad_norm: r.gradNorm, s_per_step: (performance.now() - t0) / 1e3 / s, ...r.metrics };
    process.stdout.write(JSON.stringify(rec) + '\n');
    process.stderr.write(`step ${s}/${steps} loss ${(acc / n).toFixed(4)} ${Object.entries(r.metrics ?? {}).map(([k, v]) => `${k} ${(v as number).toFixed(3)}`).join(' ')} ${rec.s_per_step.toFixed(2)} s/step\n`);
    acc = n = 0;
  }
  if (s % evalEvery === 0 || t.done || s >= stopAfter) {
    const e = await t.evaluate();
    process.stdout.write(JSON.stringify({ step: s, eval_loss: e.loss, ...Object.fromEntries(Object.entries(e.metrics ?? {}).map(([k, v]) => [`eval_${k}`, v])) }) + '\n');
    process.stderr.write(`  eval loss ${e.loss.toFixed(4)} ${JSON.stringify(e.metrics)}\n`);
    // the tower so far goes beside --out; --out itself holds only a finished run's tower (what pretrain-builtin.sh
    // checks for before it trains one)
    if (!t.done) save(`${a.out}-partial`);
  }
}
save(a.out!);
process.stderr.write(`done in ${((performance.now() - t0) / 1e3).toFixed(0)} s; tower in ${a.out}\n`);
