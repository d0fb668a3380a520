// `vlmkit ask`: one question about zero or more images. The answer alone goes to stdout (live on a terminal),
// timings to stderr; --json prints one JSON object instead.
import { parseArgs } from 'node:util';
import { loadImage, type DecodeOptions, type RgbImage } from '../processing/decode.js';
import { checkMediaCount, inspectModel, loadVlm, userMessage } from '../api.js';
import { GENERATION_FLAGS, GENERATION_USAGE, argError, generationOptions, parsing, requireModel } from './args.js';
import { leadingTrimmer, timingLine, timingsJson } from './format.js';
import { type CliIo, status, tileProgress, write } from './io.js';

export const ASK_USAGE = `usage: vlmkit ask --model <dir> [--image <path>]... [options] "<question>"
  --model DIR               a SmolVLM / Idefics3 checkpoint directory
  --image PATH              an image (PNG, JPEG, WebP, GIF); repeat for several, in order
  --json                    print one JSON object {text, token_ids, finish_reason, prompt_tokens, timings}
  --f32                     load every weight as f32 (slower, more memory; as the parity checks run)
${GENERATION_USAGE}
Write <image> in the question to place the images there; otherwise they come before it.`;

/** Decodes every image up front, so a bad file fails before the model loads. */
export async function loadImages(paths: readonly string[], opts: DecodeOptions = {}): Promise<RgbImage[]> {
  const out: RgbImage[] = [];
  for (const p of paths) out.push(await loadImage(p, opts));
  return out;
}

export async function ask(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(ASK_USAGE, () => parseArgs({ args: argv, options: { model: { type: 'string' }, image: { type: 'string', multiple: true }, json: { type: 'boolean' }, f32: { type: 'boolean' }, ...GENERATION_FLAGS }, allowPositionals: true, strict: true }));
  const dir = requireModel(values, ASK_USAGE);
  const question = positionals.join(' ');
  if (!question.trim()) throw argError(`give the question as the last argument\n${ASK_USAGE}`);
  const gen = generationOptions(values);
  const model = inspectModel(dir); // a missing directory or an unsupported model_type fails here, before anything heavy
  const images = await loadImages(values.image ?? [], { maxImagePixels: gen.maxImagePixels });
  checkMediaCount({ messages: [userMessage(question, images.length)], images });

  status(io, `loading ${dir} ...`);
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined });
  const ac = new AbortController();
  const onInt = () => ac.abort();
  process.once('SIGINT', onInt);
  try {
    const live = !values.json && io.stdout.isTTY === true;
    const stream = vlm.stream(question, images, { ...gen, signal: ac.signal, onImageTile: values.json ? undefined : tileProgress(io) });
    const trim = leadingTrimmer();
    for await (const piece of stream) if (live) await write(io.stdout, trim(piece));
    const r = await stream.result;
    if (values.json) {
      await write(io.stdout, JSON.stringify({ text: r.text.trim(), token_ids: r.tokenIds, finish_reason: r.finishReason, prompt_tokens: r.promptTokens, timings: timingsJson(r.timings) }) + '\n');
    } else {
      await write(io.stdout, live ? '\n' : r.text.trim() + '\n');
      io.stderr.write(timingLine(r.timings, r.finishReason) + '\n');
    }
    return 0;
  } finally {
    process.off('SIGINT', onInt);
    vlm.dispose();
  }
}

