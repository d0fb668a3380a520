// npx tsx scripts/builtin-card.ts [run folder] [model folder] [out folder] [step]: the last step of
// scripts/pretrain-builtin.sh. Copies the trained model (default <run>/model; or a folder that
// scripts/checkpoint-model.ts made from a checkpoint of the run) and the loss plot into models/vlmkit-shapes and
// writes its model card from
// what the run and the held-out evaluation measured: metrics.jsonl (steps, wall time, losses), eval-qa.json (exact
// match per question type) and eval-grounding.json (box IoU). Nothing in the card is typed by hand.
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../src/io/safetensors-write.js';
import type { EvalReport } from '../src/eval/runner.js';

const run = process.argv[2] ?? 'runs/builtin';
const modelSrc = process.argv[3] ?? join(run, 'model');
const out = process.argv[4] ?? 'models/vlmkit-shapes';

const need = (p: string) => {
  if (!existsSync(p)) throw new Error(`${p} is missing: run scripts/pretrain-builtin.sh first`);
  return p;
};
const json = <T>(p: string) => JSON.parse(readFileSync(need(p), 'utf8')) as T;

interface MetricRow { type: string; event?: string; step?: number; path?: string; loss?: number; eval_loss?: number; elapsed_s?: number; trainable_params?: number; total_steps?: number; train?: { rows: number; tokens: number } }
const all = readFileSync(need(join(run, 'metrics.jsonl')), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as MetricRow);
// the model's step when it is a checkpoint of the run (5th argument), else the run's last
const upTo = process.argv[5] ? Number(process.argv[5]) : Infinity;
if (Number.isNaN(upTo)) throw new Error(`the step must be a number, got ${process.argv[5]}`);
const metrics = all.filter((m) => m.step === undefined || m.step <= upTo);
const start = metrics.find((m) => m.event === 'start');
const trains = metrics.filter((m) => m.type === 'train' && m.loss !== undefined);
const evals = metrics.filter((m) => m.type === 'eval');
if (!start || trains.length === 0) throw new Error(`${run}/metrics.jsonl has no start event or no training step`);
// a resumed run restores its clock from the checkpoint, so the last elapsed_s is the time of every step kept; the
// steps an interruption lost after its last checkpoint (run again on resume: elapsed_s goes back) count on top
let wall = 0, last = 0;
for (const t of trains) {
  if (t.elapsed_s! < last) wall += last - t.elapsed_s!;
  last = t.elapsed_s!;
}
wall += last;
const steps = trains[trains.length - 1]!.step!;
const tail = trains.slice(-100);
const finalLoss = tail.reduce((s, t) => s + t.loss!, 0) / tail.length;
const lastEval = evals[evals.length - 1];

const qa = json<EvalReport>(join(run, 'eval-qa.json'));
const gr = json<EvalReport>(join(run, 'eval-grounding.json'));
const recipe = json<Record<string, unknown>>('recipes/builtin/recipe.json');
const config = json<{ text_config: Record<string, number>; vision_config: Record<string, number>; scale_factor: number }>(join(modelSrc, 'config.json'));
const dataset = json<{ splits: Record<string, { images: number; rows: number }> }>('runs/builtin-data/shapes/dataset.json');

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

const card = `---
license: apache-2.0
library_name: vlmkit
pipeline_tag: image-text-to-text
tags: [smolvlm, idefics3, synthetic, grounding]
---
# vlmkit-shapes

vlmkit's built-in model: a SmolVLM-architecture vision-language model (\`Idefics3ForConditionalGeneration\`) of
${(start.trainable_params! / 1e6).toFixed(2)}M parameters that vlmkit trained from a random initialisation with its own trainer, on this
repository's generated "shapes" pictures. It answers questions about simple pictures of coloured shapes (counts,
colours, presence, positions, sizes), describes them, and finds objects (\`<locNNNN>\` boxes, as PaliGemma writes
them). It is the default model of \`vlmkit ask\`, \`chat\`, \`tokens\`, \`info\`, \`eval\` and \`demo\`, so that
everything works offline. It knows nothing beyond its generator's world of shapes.

- **Vision**: a ${v.num_hidden_layers}-layer, ${v.hidden_size}-wide SigLIP-style encoder on one ${v.image_size} px tile of ${v.patch_size} px patches; pixel shuffle ${config.scale_factor}: ${tokens} image tokens.
- **Language**: a ${t.num_hidden_layers}-layer, ${t.hidden_size}-wide Llama decoder (${t.num_attention_heads} heads, ${t.num_key_value_heads} KV heads), tied embeddings.
- **Tokenizer**: a ${t.vocab_size}-slot byte-level BPE learned from the generators' text, with SmolVLM's special tokens and chat template and \`<loc0000>\`..\`<loc1023>\`.
- **Weights**: bf16 safetensors with transformers' tensor names and config keys.

## Data
\`vlmkit data shapes --n 40000 --seed 1 --size 128 --questions 5 --conversation\`: ${dataset.splits.train!.images.toLocaleString('en')} training pictures (each one
conversation of 5 questions), ${dataset.splits.validation!.images.toLocaleString('en')} validation and ${dataset.splits.test!.images.toLocaleString('en')} test pictures, split by seed. 1 to 6 objects
(circle, square, triangle, star, diamond, hexagon) in 8 colours, varied sizes, overlaps, and plain, gradient or noisy
backgrounds, drawn with antialiasing.

## Training
Full training from a random initialisation (transformers' Idefics3 rules; the location tokens start as a smooth
function of their bin): ${steps.toLocaleString('en')} steps of ${recipe['batch-size']} conversations${steps < start.total_steps! ? ` (this model is the checkpoint at step ${steps.toLocaleString('en')} of the recipe's ${start.total_steps!.toLocaleString('en')}-step schedule, taken while the run went on)` : ''}, AdamW lr ${recipe.lr} (${recipe.schedule}, warm-up ${recipe['warmup-ratio']}), weight
decay ${recipe['weight-decay']}, gradient clip ${recipe.clip}, loss on the answers only, seed ${recipe.seed}. Wall time **${hours(wall)}** on a
2-core AMD EPYC (family 19h, model 17: Zen 4, AVX-512) machine, shared during the run with other work (about 1.1 s a step when quiet). Final training loss ${finalLoss.toFixed(3)} (mean of the last 100 steps)${lastEval ? `, validation loss ${lastEval.eval_loss!.toFixed(3)} at step ${lastEval.step}` : ''}.

![loss curve](loss.png)

## Results on held-out pictures
Exact match (normalised: case, punctuation, articles) on the first ${qa.rows.toLocaleString('en')} test questions with a text answer:
**${pct(qa.accuracy)} overall**.

| question type | rows | exact match |
| --- | --- | --- |
${rows.join('\n')}

Grounding ("Where is the red star?", boxes from the \`<locNNNN>\` tokens against the true box, in pixels) on the first
${gr.rows} grounding test questions: **mean IoU ${gr.mean_iou!.toFixed(3)}**, ${pct(gr.accuracy_iou50!)} of boxes with IoU >= 0.5.

${qa.accuracy >= 0.9 && gr.mean_iou! >= 0.7 ? '' : `**Status: not good enough yet.** vlmkit's target for its built-in model is >= 90% exact match and a mean box IoU
>= 0.7; this model is short of both. It sees colours and the coarse layout of a picture, and its counts, presence
answers, captions and boxes are often wrong. Read its answers as a demonstration of the pipeline, not as facts.
`}
## Reproduce
\`\`\`
bash scripts/pretrain-builtin.sh
\`\`\`
builds the tokenizer, generates the data, runs \`vlmkit train pretrain --recipe recipes/builtin/recipe.json\`,
evaluates (\`vlmkit eval --metric exact\` and \`--metric iou\`) and writes this folder.${steps < start.total_steps! ? ` This model is the run's
checkpoint at step ${steps}: \`npx tsx scripts/checkpoint-model.ts runs/builtin ${steps} runs/builtin/model-${steps}\` makes it, then the
evaluation and \`npx tsx scripts/builtin-card.ts runs/builtin runs/builtin/model-${steps} models/vlmkit-shapes ${steps}\`.` : ''} Same seed and data give the
same loss curve to the printed digits (\`test/builtin/recipe.test.ts\` runs its first steps).
`;

const files = readdirSync(need(modelSrc)).filter((f) => statSync(join(modelSrc, f)).isFile() && f !== 'README.md' && f !== 'loss.png');
writeDirAtomic(out, (tmp) => {
  for (const f of files) copyFileSync(join(modelSrc, f), join(tmp, f));
  copyFileSync(need(join(run, 'loss.png')), join(tmp, 'loss.png'));
  writeFileSync(join(tmp, 'README.md'), card);
});
console.log(`${out}: ${files.length + 2} files; exact ${pct(qa.accuracy)}, mean IoU ${gr.mean_iou!.toFixed(3)}, ${steps} steps in ${hours(wall)}`);

