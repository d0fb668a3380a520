// `vlmkit demo`: the built-in model answers a few questions about the bundled sample picture (assets/demo.png)
// and draws the boxes of its grounding answer. It needs nothing but the package: a first run that shows what
// vlmkit does, in seconds.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BUILTIN_MODEL_DIR, inspectModel, loadVlm } from '../api.js';
import { VlmkitError } from '../errors.js';
import { randomScene, renderScene, type ShapeScene } from '../data/shapes.js';
import { Rng } from '../data/rng.js';
import { drawBoxes, writePng } from '../eval/draw.js';
import { answerBoxes } from '../eval/grounding.js';
import type { LabeledBox } from '../data/loc.js';
import type { Canvas } from '../data/raster.js';
import { loadImage } from '../processing/decode.js';
import { MODEL_FLAG_USAGE, argError, modelDir, parsing } from './args.js';
import { type CliIo, status, write } from './io.js';

/**
 * The bundled picture is the generator's scene for this seed at 128 px, drawn once by scripts/demo-picture.ts. A
 * seed of its own: the built-in model's training images come from other streams (mixSeed of the data seed, the
 * split and the index), so the demo shows it a picture it has not seen.
 */
export const DEMO_SEED = 84;
export const DEMO_SIZE = 128;

export const DEMO_USAGE = `usage: vlmkit demo [--model <dir>] [--out PATH] [--json]
${MODEL_FLAG_USAGE}
  --out PATH                where to write the picture with the grounding answer's boxes (default demo-boxes.png
                            in the current folder)
  --json                    print one JSON object {model, image, answers: [{question, answer, raw_answer, boxes}],
                            boxes_png, seconds}
  --f32                     load every weight as f32
Answers are greedy. The picture is the shapes generator's scene for seed ${DEMO_SEED}
(vlmkit data shapes makes pictures of its kind); vlmkit ask asks your own questions about your pictures.`;

/** src/cli/demo.ts or dist/cli/demo.js: the package root is two folders up. */
export const DEMO_IMAGE = fileURLToPath(new URL('../../assets/demo.png', import.meta.url));

/** The demo's scene, as the generator makes it (what the picture shows, so the true answers). */
export function demoScene(): ShapeScene {
  return randomScene(new Rng(DEMO_SEED), DEMO_SIZE);
}

/** The demo's picture, drawn afresh (scripts/demo-picture.ts writes it to assets/demo.png). */
export function renderDemoPicture(): Canvas {
  return renderScene(demoScene());
}

/**
 * The questions, in the generator's own phrasings, about the scene of DEMO_SEED (a red circle, a red square, a blue
 * diamond and a blue circle on beige): a caption, two counts, a colour, an absent object and a grounding question.
 * The last one is the grounding question whose boxes are drawn.
 */
export const DEMO_QUESTIONS = [
  'Describe the image.',
  'How many shapes are there?',
  'How many circles are there?',
  'What colour is the square?',
  'Is there a red star?',
  'Where is the blue diamond?',
] as const;

export interface DemoAnswer {
  question: string;
  /** without location tokens */
  answer: string;
  raw_answer: string;
  /** from the answer's location tokens, in the picture's pixels */
  boxes: LabeledBox[];
}

const fmt = (v: number) => String(Math.round(v));
const boxText = (b: LabeledBox) => `${b.label.trim() || 'box'} at (${fmt(b.x0)}, ${fmt(b.y0)})-(${fmt(b.x1)}, ${fmt(b.y1)})`;

export async function demo(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(DEMO_USAGE, () => parseArgs({ args: argv, options: { model: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, f32: { type: 'boolean' } }, allowPositionals: true, strict: true }));
  if (positionals.length) throw argError(`vlmkit demo takes no arguments, got ${JSON.stringify(positionals.join(' '))}; its questions are fixed; vlmkit ask --image PATH "QUESTION" asks your own\n${DEMO_USAGE}`);
  const out = values.out ?? 'demo-boxes.png';
  if (!out.trim()) throw argError('--out takes the path of the PNG to write, e.g. --out boxes.png');
  const dir = modelDir(values);
  const model = inspectModel(dir); // a missing or broken model folder fails here, before anything heavy
  if (!existsSync(DEMO_IMAGE))
    throw new VlmkitError('E_FILE', `the demo picture is missing (${DEMO_IMAGE}): this vlmkit install is incomplete; reinstall it (npm install vlmkit)`);
  const image = await loadImage(DEMO_IMAGE);

  const builtin = values.model === undefined;
  status(io, `loading ${builtin ? `the built-in model (${BUILTIN_MODEL_DIR})` : dir} ...`);
  const t0 = performance.now();
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined });
  const answers: DemoAnswer[] = [];
  try {
    for (const question of DEMO_QUESTIONS) {
      const r = await vlm.generate(question, [image], { temperature: 0 });
      const { text, boxes } = answerBoxes(r.text, image.width, image.height);
      answers.push({ question, answer: text, raw_answer: r.text.trim(), boxes });
      if (!values.json) await write(io.stdout, `Q: ${question}\nA: ${text || '(an empty answer)'}${boxes.length ? `  [${boxes.map(boxText).join('; ')}]` : ''}\n`);
    }
  } finally {
    vlm.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  // the grounding question is the last one: its boxes go on the picture
  const boxes = answers[answers.length - 1]!.boxes;
  writePng(out, drawBoxes(image, boxes));
  if (values.json) {
    await write(io.stdout, JSON.stringify({ model: model.dir, image: DEMO_IMAGE, answers, boxes_png: out, seconds }) + '\n');
  } else {
    const what = boxes.length ? `the ${boxes.length === 1 ? 'box' : `${boxes.length} boxes`} of the last answer drawn` : 'no boxes: the last answer has none';
    await write(io.stdout, `wrote ${out} (the picture, ${what})\n`);
    io.stderr.write(`${answers.length} answers in ${seconds.toFixed(2)} s with ${builtin ? 'the built-in model' : model.dir}; the picture: ${DEMO_IMAGE}\n`);
  }
  return 0;
}
