// `vlmkit tokens`: the prompt as the model will see it (rendered by the chat template, <image> placeholders
// expanded for the given images) and its token ids. A debugging aid; no model weights are loaded.
import { parseArgs } from 'node:util';
import { type ProcessorSample, inspectModel, loadModelProcessor, userMessage } from '../api.js';
import type { RgbImage } from '../processing/decode.js';
import { argError, generationOptions, MODEL_FLAG_USAGE, modelDir, parsing } from './args.js';
import { loadImages } from './ask.js';
import { collapseRuns } from './format.js';
import { type CliIo, write } from './io.js';

export const TOKENS_USAGE = `usage: vlmkit tokens [--model <dir>] [--image <path>]... [--raw] [--no-split] [--longest-edge PX] [--max-image-pixels N] [--full] [--json] "<question or prompt>"
${MODEL_FLAG_USAGE}
  --raw               the argument is an already rendered prompt (with <image> placeholders), not a question
  --no-split          do not split images into tiles
  --longest-edge PX   resize images to this long edge first (default: the checkpoint's)
  --max-image-pixels N  refuse images whose header declares more than N pixels (default 178956970, PIL's limit)
  --full              do not shorten runs of <image> in the expanded prompt
  --json              one JSON object {prompt, expanded, input_ids, tokens, grids}`;

export async function tokens(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(TOKENS_USAGE, () => parseArgs({ args: argv, options: { model: { type: 'string' }, image: { type: 'string', multiple: true }, raw: { type: 'boolean' }, 'no-split': { type: 'boolean' }, 'longest-edge': { type: 'string' }, 'max-image-pixels': { type: 'string' }, full: { type: 'boolean' }, json: { type: 'boolean' } }, allowPositionals: true, strict: true }));
  const dir = modelDir(values);
  const text = positionals.join(' ');
  if (!text) throw argError(`give the question (or, with --raw, the prompt) as the last argument\n${TOKENS_USAGE}`);
  const model = inspectModel(dir); // a missing directory or an unsupported model_type fails here, before anything heavy
  const { doImageSplitting, longestEdge, maxImagePixels } = generationOptions({ 'no-split': values['no-split'], 'longest-edge': values['longest-edge'], 'max-image-pixels': values['max-image-pixels'] });
  const images = await loadImages(values.image ?? [], { maxImagePixels });
  const processor = loadModelProcessor(model);
  const sample: ProcessorSample & { images: RgbImage[] } = values.raw ? { text, images } : { messages: [userMessage(text, images.length)], images };
  const enc = processor.encodeDecoded([sample], { doImageSplitting, longestEdge });
  try {
    const p = enc.prompts[0]!;
    if (values.json) {
      await write(io.stdout, JSON.stringify({ prompt: p.prompt, expanded: p.text, input_ids: p.inputIds, tokens: p.inputIds.length, grids: enc.grids[0] }) + '\n');
      return 0;
    }
    const show = (s: string) => (values.full ? s : collapseRuns(s));
    const grids = enc.grids[0]!.map((g, i) => `image ${i + 1}: ${g.rows ? `${g.rows}x${g.cols} tiles + global` : '1 tile'}`).join(', ');
    const lines = [
      `prompt: ${JSON.stringify(p.prompt)}`,
      ...(grids ? [grids] : []),
      `expanded (${p.inputIds.length} tokens): ${JSON.stringify(show(p.text))}`,
      `input_ids: ${p.inputIds.join(' ')}`,
    ];
    await write(io.stdout, lines.join('\n') + '\n');
    return 0;
  } finally {
    enc.dispose();
  }
}
