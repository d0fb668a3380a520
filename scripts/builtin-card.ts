// npx tsx scripts/builtin-card.ts [run folder] [model folder] [out folder] [step] [--previous DIR] [--average W]: the last step of
// scripts/pretrain-builtin.sh. Copies the trained model (default <run>/model; or a folder that
// scripts/checkpoint-model.ts made from a checkpoint of the run) and the loss plot into models/vlmkit-shapes and
// writes its model card from
// what the run and the held-out evaluation measured: metrics.jsonl (steps, wall time, losses), eval-qa.json (exact
// match per question type) and eval-grounding.json (box IoU). Nothing in the card is typed by hand.
// --previous DIR: the runs given are the phases after those of the model card in DIR (the shipped model the first of
// them started from), whose runs' logs are not at hand (a fresh clone has no runs/). The earlier phases' data and
// training paragraphs, their wall time and their loss plot are taken from that card as it was written from their
// logs; the new phases are numbered on from them and plotted in loss.png, the earlier plot kept beside it.
// --average W: the model folder is scripts/average-models.ts's average of the model the last run started from (weight
// 1 - W) and the run's end (W); the card says so and how to make it.
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { writeDirAtomic } from '../src/io/safetensors-write.js';
import { writePng } from '../src/eval/draw.js';
import { linePlot, lossSeries } from '../src/eval/plot.js';
import type { EvalReport } from '../src/eval/runner.js';
import { BOX_BINS } from '../src/data/patch-labels.js';

// The runs of the model's phases, in order, comma-separated (phase 1 from a random initialisation, then phases that
// fine-tune the previous one); the config each phase ran with is PHASE_CONFIGS[i]. The held-out evaluation is the
// last phase's; the card reports every phase's data, settings, steps and wall time.
// The phases: the decoder on the frozen tower (recipe.json), the same model given the tower trained on with the box
// heads (recipe-box.json), then all of it trained on, the tower unfrozen, on pictures asked more of the weakest
// question types (recipe-unfrozen.json), then all of it again on pictures asked more of the questions that bind a
// name to an object (recipe-binding.json; recipe-refine.json, an earlier fourth phase, was not shipped). A model may be the first phases only (its card lists as many runs). An earlier model
// had three other phases (phase1-3.json); the cards of the earlier models are in git history.
const PHASE_CONFIGS = ['recipes/builtin/recipe.json', 'recipes/builtin/recipe-box.json', 'recipes/builtin/recipe-unfrozen.json', 'recipes/builtin/recipe-binding.json'];
// the recipe of the tower a phase takes with "vision-from" (scripts/pretrain-vision.ts; its metrics.jsonl beside
// the tower's folder)
const TOWER_RECIPES = ['recipes/builtin/vision.json', 'recipes/builtin/vision-box.json'];
// the machines the phases ran on (not in the metrics): the same 2-core cloud machine type, whose CPU changed
const MACHINES = ['a 2-core AMD EPYC Zen 4 (AVX-512)', 'a 2-core AMD EPYC Zen 5 (AVX-512)', 'a 2-core AMD EPYC Zen 5 (AVX-512)', 'a 2-core AMD EPYC Zen 5 (AVX-512)'];
const argv = process.argv.slice(2);
const prevAt = argv.indexOf('--previous');
const previousDir = prevAt >= 0 ? argv.splice(prevAt, 2)[1] : undefined;
if (prevAt >= 0 && !previousDir) throw new Error('--previous takes the folder of the model card the runs continue');
const avgAt = argv.indexOf('--average');
const average = avgAt >= 0 ? Number(argv.splice(avgAt, 2)[1]) : null;
if (average !== null && !(average > 0 && average < 1)) throw new Error('--average takes the weight of the last run\'s end, between 0 and 1');
const runs = (argv[0] ?? 'runs/builtin').split(',').filter(Boolean);
const run = runs[runs.length - 1]!;
const modelSrc = argv[1] ?? join(run, 'model');
const out = argv[2] ?? 'models/vlmkit-shapes';

const need = (p: string) => {
  if (!existsSync(p)) throw new Error(`${p} is missing: run scripts/pretrain-builtin.sh first`);
  return p;
};
const json = <T>(p: string) => JSON.parse(readFileSync(need(p), 'utf8')) as T;

/** The earlier phases, as the card in `dir` reports them (written by this script from their logs). */
function previousCard(dir: string) {
  const text = readFileSync(need(join(dir, 'README.md')), 'utf8');
  const section = (name: string) => {
    const m = new RegExp(`\\n## ${name}\\n([\\s\\S]*?)\\n## `).exec(text);
    if (!m) throw new Error(`${dir}/README.md has no "## ${name}" section; --previous takes a card this script wrote`);
    return m[1]!;
  };
  const data = section('Data').split('\n').filter((l) => /^Phase \d+: /.test(l));
  const training = section('Training');
  const wallAt = training.indexOf('\nWall time **');
  const w = /\nWall time \*\*(\d+) h (\d+) min\*\* for ([\d,]+) steps \(and the tower's ([\d,]+)\)/.exec(training);
  const paragraphs = wallAt >= 0 ? training.slice(0, wallAt).trim() : '';
  const phases = (paragraphs.match(/^\*\*Phase \d+\*\*/gm) ?? []).length;
  if (!w || !data.length || data.length !== phases)
    throw new Error(`${dir}/README.md: its Data and Training sections do not list the same phases with a wall time; --previous takes a card this script wrote`);
  const num = (x: string) => Number(x.replace(/,/g, ''));
  return { data, paragraphs, phases, wall: num(w[1]!) * 3600 + num(w[2]!) * 60, steps: num(w[3]!), towerSteps: num(w[4]!), lossPng: need(join(dir, 'loss.png')) };
}
const prev = previousDir ? previousCard(previousDir) : null;
const first = prev?.phases ?? 0; // the number of the phase before the runs given
/** the earlier phases' plot, kept beside the new one */
const earlierPng = `loss-phases-1-${first}.png`;
if (first + runs.length > PHASE_CONFIGS.length) throw new Error(`${first + runs.length} phases; recipes/builtin has configs for ${PHASE_CONFIGS.length}`);

interface MetricRow { type: string; event?: string; step?: number; path?: string; loss?: number; eval_loss?: number; elapsed_s?: number; trainable_params?: number; total_steps?: number; train?: { file: string; rows: number; tokens: number } }
interface Dataset {
  generator: string; seed: number; size: number; questions_per_image?: number; conversation?: boolean;
  /** vlmkit data --weights: a factor per question type on how often it is asked */
  question_weights?: Record<string, number>;
  /** vlmkit data --repeat: how many questions of a type one picture may get */
  question_repeat?: Record<string, number>;
  splits: Record<string, { images?: number; clips?: number; rows?: number }>;
  /** scripts/video-rows-as-frames.ts: the video rows this file holds as frame pictures */
  frames_of?: string;
  /** scripts/mix-rows.ts: the files a mixed training file took its rows from */
  parts?: { file: string; rows: number; dataset: Dataset }[];
}

/** What one phase's run measured, from its metrics.jsonl (up to `upTo`, for a model taken from a checkpoint). */
function phase(dir: string, config: string, upTo: number) {
  const all = readFileSync(need(join(dir, 'metrics.jsonl')), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as MetricRow);
  const metrics = all.filter((m) => m.step === undefined || m.step <= upTo);
  const start = metrics.find((m) => m.event === 'start');
  const trains = metrics.filter((m) => m.type === 'train' && m.loss !== undefined);
  const evals = metrics.filter((m) => m.type === 'eval');
  if (!start || trains.length === 0) throw new Error(`${dir}/metrics.jsonl has no start event or no training step`);
  // a resumed run restores its clock from the checkpoint, so the last elapsed_s is the time of every step kept; the
  // steps an interruption lost after its last checkpoint (run again on resume: elapsed_s goes back) count on top
  let wall = 0, last = 0;
  for (const t of trains) {
    if (t.elapsed_s! < last) wall += last - t.elapsed_s!;
    last = t.elapsed_s!;
  }
  wall += last;
  const tail = trains.slice(-100);
  const dataFile = start.train!.file;
  const dataset = json<Dataset>(join(dirname(dataFile), 'dataset.json'));
  return {
    dir, config, start, trains, evals, wall, dataFile, dataset,
    steps: trains[trains.length - 1]!.step!,
    finalLoss: tail.reduce((s, t) => s + t.loss!, 0) / tail.length,
    lastEval: evals[evals.length - 1],
    recipe: json<Record<string, unknown>>(config),
  };
}
// the model's step when it is a checkpoint of the last phase's run (4th positional argument), else the run's last
const upTo = argv[3] ? Number(argv[3]) : Infinity;
if (Number.isNaN(upTo)) throw new Error(`the step must be a number, got ${argv[3]}`);
const phases = runs.map((r, i) => phase(r, PHASE_CONFIGS[first + i]!, i === runs.length - 1 ? upTo : Infinity));
/** a phase's config that trains the vision tower: full training without "freeze-vision" */
const trainsTower = (recipe: Record<string, unknown>) => recipe.full === true && recipe['freeze-vision'] !== true;
const lastPhase = phases[phases.length - 1]!;
const steps = lastPhase.steps;
const wall = phases.reduce((s, p) => s + p.wall, 0);
const allSteps = phases.reduce((s, p) => s + p.steps, 0) + (prev?.steps ?? 0);
/** does phase number k (1-based, an earlier one's included) train the tower */
const phaseTrainsTower = (k: number) => trainsTower(json<Record<string, unknown>>(PHASE_CONFIGS[k - 1]!));

// a phase on a tower trained alone (its config's "vision-from"; scripts/pretrain-builtin.sh writes the tower's
// metrics.jsonl beside it): what that run measured
interface TowerRow { step: number; loss?: number; s_per_step?: number; eval_loss?: number; [k: `eval_${string}`]: number | undefined }
const towers = phases.map((p, i) => {
  const from = p.recipe['vision-from'];
  if (typeof from !== 'string') return null;
  // a recipe's paths are relative to its folder (vlmkit train pretrain --recipe), a config's to the repository root
  const dir = first + i === 0 ? join(dirname(p.config), from) : from;
  const rows = readFileSync(need(join(dirname(dir), 'metrics.jsonl')), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TowerRow);
  const trains = rows.filter((r) => r.loss !== undefined), evals = rows.filter((r) => r.eval_loss !== undefined);
  if (!trains.length || !evals.length) throw new Error(`${dirname(dir)}/metrics.jsonl has no training step or no evaluation`);
  const last = trains[trains.length - 1]!;
  const recipeFile = TOWER_RECIPES[first + i]!;
  return { file: recipeFile, frozen: p.recipe['freeze-vision'] === true, recipe: json<Record<string, unknown>>(recipeFile), steps: last.step, wall: last.step * last.s_per_step!, evals, lastEval: evals[evals.length - 1]! };
});
const tower = towers[0] ?? null;
const towerWall = towers.reduce((s, t) => s + (t?.wall ?? 0), 0);
const towerSteps = towers.reduce((s, t) => s + (t?.steps ?? 0), 0) + (prev?.towerSteps ?? 0);
/** a tower trained alone, here or in the earlier phases */
const anyTower = tower !== null || (prev?.towerSteps ?? 0) > 0;

const qa = json<EvalReport>(join(run, 'eval-qa.json'));
const gr = json<EvalReport>(join(run, 'eval-grounding.json'));
// held-out motion clips, when the last phase learned them (eval-motion.json; their dataset from the phase's mix)
const motion = existsSync(join(run, 'eval-motion.json')) ? json<EvalReport>(join(run, 'eval-motion.json')) : null;
const motionData = lastPhase.dataset.parts?.find((p) => p.dataset.generator === 'motion')?.dataset ?? null;
if (motion && !motionData) throw new Error(`${run}/eval-motion.json is there but the last phase's data has no motion clips`);
// a wrong answer still names the colour, the kind and what happened ("The red circle moves to the left."): which of
// the three it got right, from the reference and the prediction
const motionParts = (() => {
  if (!motion) return null;
  const re = /^the (\w+) (\w+) (.+?)\.?$/i;
  const right = { colour: 0, kind: 0, event: 0 };
  for (const w of motion.wrong) {
    const r = re.exec(String(w.references[0]).trim()), q = re.exec(String(w.prediction).trim());
    if (!r || !q) continue;
    if (r[1]!.toLowerCase() === q[1]!.toLowerCase()) right.colour++;
    if (r[2]!.toLowerCase() === q[2]!.toLowerCase()) right.kind++;
    if (r[3]!.toLowerCase() === q[3]!.toLowerCase()) right.event++;
  }
  const ok = motion.rows - motion.wrong.length;
  return { colour: (ok + right.colour) / motion.rows, kind: (ok + right.kind) / motion.rows, event: (ok + right.event) / motion.rows };
})();
const config = json<{ text_config: Record<string, number>; vision_config: Record<string, number>; scale_factor: number }>(join(modelSrc, 'config.json'));

// one loss curve over all phases (vlmkit plot's series and drawing): a later phase's steps follow the previous one's
let offset = prev?.steps ?? 0;
const lines: Record<string, unknown>[] = [];
for (const p of phases) {
  for (const m of [...p.trains, ...p.evals]) lines.push({ ...m, step: m.step! + offset });
  offset += p.steps;
}
const lossPlot = linePlot(lossSeries(lines), {
  title: prev ? `vlmkit-shapes, phase${phases.length > 1 ? `s ${first + 1} to ${first + phases.length}` : ` ${first + 1}`}` : phases.length > 1 ? `vlmkit-shapes, ${phases.length} phases` : 'vlmkit-shapes: from-scratch training', xLabel: 'step', yLabel: 'loss', logY: true,
});

const dataCommand = (d: Dataset) => {
  const count = (x: { images?: number; clips?: number }) => x.images ?? x.clips ?? 0;
  const n = Object.values(d.splits).reduce((s, x) => s + count(x), 0);
  if (d.generator === 'motion') return `vlmkit data motion --n ${n} --seed ${d.seed} --size ${d.size}`;
  // the split, when it is not the default 0.8,0.1,0.1
  const f = ['train', 'validation', 'test'].map((k) => +(count(d.splits[k] ?? {}) / n).toFixed(3));
  const split = f.join(',') === '0.8,0.1,0.1' ? '' : ` --split ${f.join(',')}`;
  const pairs = (flag: string, o?: Record<string, number>) => (o ? ` --${flag} ${Object.entries(o).map(([k, w]) => `${k}=${w}`).join(',')}` : '');
  const weights = pairs('weights', d.question_weights) + pairs('repeat', d.question_repeat);
  return `vlmkit data ${d.generator} --n ${n} --seed ${d.seed} --size ${d.size} --questions ${d.questions_per_image}${d.conversation ? ' --conversation' : ''}${weights}${split}`;
};
const partText = (p: { rows: number; dataset: Dataset }) => p.dataset.generator === 'motion'
  ? `${p.rows.toLocaleString('en')} motion clips (\`${dataCommand(p.dataset)}\`, the first of its ${p.dataset.splits.train!.clips!.toLocaleString('en')} training clips; 2 frames each as the model samples them${p.dataset.frames_of ? ', written out once as pictures by `scripts/video-rows-as-frames.ts`: the same token ids and pixels, without an ffmpeg run per clip in every batch' : ''})`
  : `${p.rows.toLocaleString('en')} shapes conversations of ${p.dataset.questions_per_image} questions (\`${dataCommand(p.dataset)}\`, the first of its ${p.dataset.splits.train!.images!.toLocaleString('en')} training pictures)`;
// a file mixed in more than once (the motion clips of phase 2) is named once, with how many times
const timesOver = <P extends { file: string }>(parts: readonly P[]) => parts.reduce<(P & { times: number })[]>((acc, x) => {
  const same = acc.find((y) => y.file === x.file);
  if (same) same.times++;
  else acc.push({ ...x, times: 1 });
  return acc;
}, []);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const DESCRIBE: Record<string, string> = {
  caption: 'caption (every object, left to right, and the background)',
  count_total: 'count: all objects', count_kind: 'count: of a kind', count_color: 'count: of a colour', count_color_kind: 'count: of a colour and kind',
  color: 'colour of a kind', presence: 'presence (yes / no)', position: 'position (left / right, top / bottom)', size: 'which is larger',
};
const rows = Object.entries(qa.per_category).map(([k, v]) => `| ${DESCRIBE[k] ?? k} | ${v.rows} | ${pct(v.accuracy)} |`);
const v = config.vision_config, t = config.text_config;
const tokens = (v.image_size / v.patch_size / config.scale_factor) ** 2;
const hours = (s: number) => `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;

// every weight of the model, the frozen tower's included (the run's start event counts only the trained ones)
const modelParams = (() => {
  const f = SafetensorsFile.open(join(modelSrc, 'model.safetensors'));
  try {
    return f.names().reduce((n, name) => n + f.info(name).shape.reduce((a, b) => a * b, 1), 0);
  } finally {
    f.close();
  }
})();
// the three question types the model gets right least often, for the status line
const weakest = Object.entries(qa.per_category).sort((a, b) => a[1].accuracy - b[1].accuracy).slice(0, 3)
  .map(([k, x]) => `${DESCRIBE[k]?.split(' (')[0] ?? k} (${pct(x.accuracy)})`).join(', ');

const card = `---
license: apache-2.0
library_name: vlmkit
pipeline_tag: image-text-to-text
tags: [smolvlm, idefics3, synthetic, grounding]
---
# vlmkit-shapes

vlmkit's built-in model: a SmolVLM-architecture vision-language model (\`Idefics3ForConditionalGeneration\`) of
${(modelParams / 1e6).toFixed(2)}M parameters that vlmkit trained from a random initialisation with its own trainer, on this
repository's generated "shapes" pictures. It answers questions about simple pictures of coloured shapes (counts,
colours, presence, positions, sizes), describes them, and finds objects (\`<locNNNN>\` boxes, as PaliGemma writes
them). It is the default model of \`vlmkit ask\`, \`chat\`, \`tokens\`, \`info\`, \`eval\` and \`demo\`, so that
everything works offline. It knows nothing beyond its generator's world of shapes.

- **Vision**: a ${v.num_hidden_layers}-layer, ${v.hidden_size}-wide SigLIP-style encoder on one ${v.image_size} px tile of ${v.patch_size} px patches; pixel shuffle ${config.scale_factor}: ${tokens} image tokens.
- **Language**: a ${t.num_hidden_layers}-layer, ${t.hidden_size}-wide Llama decoder (${t.num_attention_heads} heads, ${t.num_key_value_heads} KV heads), tied embeddings.
- **Tokenizer**: a ${t.vocab_size}-slot byte-level BPE learned from the generators' text, with SmolVLM's special tokens and chat template and \`<loc0000>\`..\`<loc1023>\`.
- **Weights**: bf16 safetensors with transformers' tensor names and config keys.

## Data
${prev ? prev.data.join('\n') + '\n' : ''}${phases.map((p, i) => `${prev || phases.length > 1 ? `Phase ${first + i + 1}: ` : ''}${p.dataset.parts ? `a mix (\`scripts/mix-rows.ts\`) of ${timesOver(p.dataset.parts).map((x) => partText(x) + (x.times > 1 ? `, each given ${x.times} times` : '')).join(' and ')}` : `\`${dataCommand(p.dataset)}\`: ${p.dataset.splits.train!.images!.toLocaleString('en')} training pictures (each one conversation of ${p.dataset.questions_per_image} questions)${first + i === 0 ? `, ${p.dataset.splits.validation!.images!.toLocaleString('en')} validation and ${p.dataset.splits.test!.images!.toLocaleString('en')} test pictures, split by seed` : `: new pictures, of another seed`}`}.`).join('\n')}
1 to 6 objects (circle, square, triangle, star, diamond, hexagon) in 8 colours, varied sizes, overlaps, and plain,
gradient or noisy backgrounds, drawn with antialiasing.${motion ? ` The motion clips are 2-second videos (made with ffmpeg, 8 frames at 4
fps, ${motionData!.size} px) of one shape that moves left, right, up or down, appears, disappears or changes colour, asked "What happens in the video?".` : ''}

## Training
${prev ? `${prev.paragraphs}\n\n` : ''}${tower ? `**Vision tower** (\`${tower.file}\`, \`scripts/pretrain-vision.ts\`). The SigLIP-style encoder alone, with one linear head per
label set on its last layer, learns to name for every ${v.patch_size} px patch of a generated picture the kind and the colour of the
object covering it and which third of the object's box it is in (cross-entropy per patch; every batch is new pictures):
${tower.steps.toLocaleString('en')} steps of ${tower.recipe.batch} pictures, AdamW lr ${tower.recipe.lr} (cosine), seed ${tower.recipe.seed}; about ${Math.round(tower.wall / 60)} min. On held-out
pictures, of the patches an object covers, it names the kind of ${pct(tower.lastEval.eval_kind_accuracy!)}, the colour of ${pct(tower.lastEval.eval_color_accuracy!)} and the part of
the box of ${pct(tower.lastEval.eval_part_accuracy!)} (kind: ${tower.evals.map((e) => pct(e.eval_kind_accuracy!)).join(' / ')} at steps ${tower.evals.map((e) => e.step.toLocaleString('en')).join(' / ')}).
The heads are dropped; the encoder goes into the model${tower.frozen ? ` and stays frozen there${phases.some((p) => trainsTower(p.recipe)) ? ' until a later phase trains it on' : ''}` : ''}.
${towers.slice(1).map((tw, j) => tw ? `
**Vision tower with box heads** (\`${tw.file}\`, for phase ${j + 2}). The phase-1 tower trained on for ${tw.steps.toLocaleString('en')} steps of ${tw.recipe.batch} pictures
(AdamW lr ${tw.recipe.lr}, cosine, seed ${tw.recipe.seed}; about ${Math.round(tw.wall / 60)} min) with four more heads: for every patch an object covers, the bin
(of ${BOX_BINS}, ${(v.image_size / BOX_BINS).toFixed(0)} px each) of each edge of that object's whole box, so that any patch of an object carries where the object is.
On held-out pictures it names the kind of ${pct(tw.lastEval.eval_kind_accuracy!)}, the colour of ${pct(tw.lastEval.eval_color_accuracy!)} and the part of ${pct(tw.lastEval.eval_part_accuracy!)} of the
patches an object covers, and puts the top / left / bottom / right edge within one bin for ${['top', 'left', 'bottom', 'right'].map((k) => pct(tw.lastEval[`eval_${k}_within1`]!)).join(' / ')} of them
(exactly: ${['top', 'left', 'bottom', 'right'].map((k) => pct(tw.lastEval[`eval_${k}_accuracy`]!)).join(' / ')}).
` : '').join('')}
` : ''}${phases.map((p, i) => {
  const r = p.recipe;
  const what = first + i === 0
    ? (tower?.frozen ? 'The pixel-shuffle projection and the decoder trained from a random initialisation (transformers\' Idefics3 rules; the location tokens start as a smooth function of their bin) on the frozen tower'
      : 'Full training from a random initialisation (transformers\' Idefics3 rules; the location tokens start as a smooth function of their bin)')
    : towers[i] ? `The phase-${first + i} model with the box-head tower put in${towers[i]!.frozen ? ' (frozen)' : ''}, its projection and decoder trained on`
      : `Full fine-tuning of the phase-${first + i} model${r['freeze-vision'] ? ' (its tower frozen)' : phaseTrainsTower(first + i) ? ', its vision tower trained on again' : ', its vision tower unfrozen this time'}`;
  const partial = p === lastPhase && p.steps < p.start.total_steps! ? ` (this model is the run's checkpoint at step ${p.steps.toLocaleString('en')} of its ${p.start.total_steps!.toLocaleString('en')}-step schedule, where it was stopped; \`--resume\` goes on from there)` : '';
  return `${prev || phases.length > 1 ? `**Phase ${first + i + 1}** (\`${p.config}\`). ` : ''}${what}: ${p.steps.toLocaleString('en')} steps of ${r['batch-size']} conversations${partial}, AdamW lr ${r.lr} (${r.schedule}, warm-up ${r['warmup-ratio']}), weight decay ${r['weight-decay']}, ${r['vision-lr-scale'] !== undefined && r['vision-lr-scale'] !== 1 ? `vision tower lr x${r['vision-lr-scale']}, ` : ''}gradient clip ${r.clip}, loss on the answers only, seed ${r.seed}; ${hours(p.wall)} on ${MACHINES[first + i]} (${(p.wall / p.steps).toFixed(2)} s a step). Final training loss ${p.finalLoss.toFixed(3)} (mean of the last 100 steps)${p.lastEval ? `, validation loss ${p.lastEval.eval_loss!.toFixed(3)} at step ${p.lastEval.step}` : ''}.${p === lastPhase && average !== null ? ` **This model is not that run's end but the average** of every weight of the phase-${first + i} model (x${+(1 - average).toFixed(3)}) and the run's end (x${average}) (\`scripts/average-models.ts\`, as WiSE-FT averages a fine-tuned model with its start): the run's end gains more on held-out pictures of the generator but names a colour wrong on one of the pictures drawn by other means (\`test/builtin/generalise.test.ts\`); the average does not (recipes/builtin/README.md).` : ''}`;
}).join('\n\n')}

Wall time **${hours(wall + towerWall + (prev?.wall ?? 0))}** for ${allSteps.toLocaleString('en')} steps${anyTower ? ` (and the tower's ${towerSteps.toLocaleString('en')})` : ''} in all, on 2 cores.

${prev ? `![loss curve of phases 1 to ${first}](${earlierPng})

![loss curve of phase${phases.length > 1 ? 's' : ''} ${phases.map((_, i) => first + i + 1).join(', ')}](loss.png)

The first plot is phases 1 to ${first} as their card drew it from their logs; the second goes on from step ${prev.steps.toLocaleString('en')}, where they ended${phases.length > 1 ? ` (${phases.slice(1).map((_, i) => `phase ${first + i + 2} starts at step ${(prev.steps + phases.slice(0, i + 1).reduce((a, p) => a + p.steps, 0)).toLocaleString('en')}`).join(', ')})` : ''}; the loss axes are logarithmic.` : `![loss curve](loss.png)${phases.length > 1 ? `

The loss curve runs through the phases in order (${phases.slice(1).map((_, i) => `phase ${i + 2} starts at step ${phases.slice(0, i + 1).reduce((a, p) => a + p.steps, 0).toLocaleString('en')}`).join(', ')}); the loss axis is logarithmic.` : ''}`}

## Results on held-out pictures
Exact match (normalised: case, punctuation, articles) on the first ${qa.rows.toLocaleString('en')} test questions with a text answer:
**${pct(qa.accuracy)} overall**.

| question type | rows | exact match |
| --- | --- | --- |
${rows.join('\n')}

Grounding ("Where is the red star?", boxes from the \`<locNNNN>\` tokens against the true box, in pixels) on the first
${gr.rows} grounding test questions: **mean IoU ${gr.mean_iou!.toFixed(3)}**, ${pct(gr.accuracy_iou50!)} of boxes with IoU >= 0.5.

${motion ? `## Results on held-out video clips
\`vlmkit eval --metric exact\` on the first ${motion.rows.toLocaleString('en')} motion clips of the test split (never trained on): **${pct(motion.accuracy)}** of the answers are exactly right. Within every answer, the colour is right in ${pct(motionParts!.colour)}, the shape's kind
in ${pct(motionParts!.kind)} and what happens in ${pct(motionParts!.event)}.

| what happens | clips | exact match |
| --- | --- | --- |
${Object.entries(motion.per_category).map(([k, x]) => `| ${k} | ${x.rows} | ${pct(x.accuracy)} |`).join('\n')}

` : ''}${qa.accuracy >= 0.9 && gr.mean_iou! >= 0.7 ? '' : `**Status: not good enough yet.** vlmkit's target for its built-in model is >= 90% exact match and a mean box IoU
>= 0.7; this model is short of both. Its weakest question types are ${weakest}, and its boxes are
${gr.mean_iou! < 0.5 ? 'rarely on target' : 'often off'}. Read its answers as a demonstration of the pipeline, not as facts.
`}
## Reproduce
\`\`\`
bash scripts/pretrain-builtin.sh
\`\`\`
builds the tokenizer, ${anyTower ? `trains the vision tower (${(prev ? TOWER_RECIPES : towers.filter((x) => x).map((x) => x!.file)).map((f) => `\`npx tsx scripts/pretrain-vision.ts --recipe ${f}\``).join(', then ')}), ` : ''}generates the data, runs \`vlmkit train pretrain --recipe recipes/builtin/recipe.json\`${first + phases.length > 1 ? `, then
${PHASE_CONFIGS.slice(1, first + phases.length).map((c) => `\`vlmkit train sft --config ${c}\``).join(' and ')} (from the repository root, on the data the script generates${first + phases.length > 2 ? ' and mixes' : ''})` : ''},
${average !== null ? `averages the last phase's end with the model it started from (\`npx tsx scripts/average-models.ts <start> ${run}/model ${average} <out>\`), ` : ''}evaluates (\`vlmkit eval --metric exact\` and \`--metric iou\`) and writes this folder.${steps < lastPhase.start.total_steps! ? ` This model is the last run's
checkpoint at step ${steps}: \`npx tsx scripts/checkpoint-model.ts ${run} ${steps} ${run}/model-${steps}\` makes it, then the
evaluation and \`npx tsx scripts/builtin-card.ts ${runs.join(',')} ${run}/model-${steps} models/vlmkit-shapes ${steps}${previousDir ? ` --previous ${previousDir}` : ''}\`.` : ''} Same seed and data give the
same loss curve to the printed digits (\`test/builtin/recipe.test.ts\` runs the first steps of ${anyTower ? 'the decoder\'s run, and \`test/builtin/vision-recipe.test.ts\` those of the tower' : 'phase 1'}).
`;

const files = readdirSync(need(modelSrc)).filter((f) => statSync(join(modelSrc, f)).isFile() && f !== 'README.md' && !/^loss.*\.png$/.test(f));
writeDirAtomic(out, (tmp) => {
  for (const f of files) copyFileSync(join(modelSrc, f), join(tmp, f));
  if (prev) copyFileSync(prev.lossPng, join(tmp, earlierPng));
  writePng(join(tmp, 'loss.png'), lossPlot);
  writeFileSync(join(tmp, 'README.md'), card);
});
console.log(`${out}: ${files.length + (prev ? 3 : 2)} files; exact ${pct(qa.accuracy)}, mean IoU ${gr.mean_iou!.toFixed(3)}, ${allSteps} steps in ${hours(wall)}`);

