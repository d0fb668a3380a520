// `vlmkit classify`: zero-shot classification of images with a CLIP or SigLIP checkpoint. Each image is scored
// against every label (CLIP: softmax over the labels; SigLIP: a sigmoid per label), best first.
import { parseArgs } from 'node:util';
import { loadContrastive } from '../contrastive-api.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const CLASSIFY_USAGE = `usage: vlmkit classify --model <dir> --labels "a cat,a dog" [--template "a photo of {}"] [--json] <image>...
  --model DIR        a CLIP or SigLIP checkpoint directory (CLIPModel / SiglipModel, e.g. openai/clip-vit-base-patch32)
  --labels LIST      the candidate labels, comma-separated
  --label TEXT       one more label (repeatable; for labels with commas)
  --template T       each label goes through T, "{}" marking where (e.g. "a photo of {}"); default the label alone
  --top K            print the K best labels per image (default all)
  --json             one JSON object per image: {"image", "scores": [{"label", "score", "logit"}, ...]}
scores: CLIP's are probabilities over the given labels (they sum to 1); SigLIP's are each label's own probability.`;

/** --labels "a,b" and every --label, in order. */
export function labelList(labels: string | undefined, extra: readonly string[] | undefined): string[] {
  const out = labels === undefined ? [] : labels.split(',');
  return [...out, ...(extra ?? [])];
}

export async function classify(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(CLASSIFY_USAGE, () => parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { model: { type: 'string' }, labels: { type: 'string' }, label: { type: 'string', multiple: true }, template: { type: 'string' }, top: { type: 'string' }, json: { type: 'boolean' } },
  }));
  if (!values.model?.trim()) throw argError(`--model DIR is required: the folder of a CLIP or SigLIP checkpoint\n${CLASSIFY_USAGE}`);
  if (values.labels === undefined && !values.label?.length) throw argError(`give the candidate labels with --labels "a cat,a dog"\n${CLASSIFY_USAGE}`);
  if (positionals.length === 0) throw argError(`give at least one image to classify\n${CLASSIFY_USAGE}`);
  let top: number | undefined;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top < 1) throw argError(`--top takes an integer >= 1, got ${JSON.stringify(values.top)}`);
  }
  const labels = labelList(values.labels, values.label);
  const clip = loadContrastive(values.model);
  try {
    const results = await clip.classify(positionals, labels, { template: values.template });
    const lines: string[] = [];
    for (const r of results) {
      const scores = r.scores.slice(0, top);
      if (values.json) lines.push(JSON.stringify({ image: r.image, scores }));
      else lines.push(r.image, ...scores.map((s) => `  ${s.score.toFixed(4)}  ${s.label}`));
    }
    await write(io.stdout, lines.join('\n') + '\n');
    return 0;
  } finally {
    clip.dispose();
  }
}
