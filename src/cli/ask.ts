// `vlmkit ask`: one question about zero or more images. The answer alone goes to stdout (live on a terminal),
// timings to stderr; --json prints one JSON object instead.
import { parseArgs } from 'node:util';
import { loadImage, type DecodeOptions, type RgbImage } from '../processing/decode.js';
import { checkMediaCount, inspectModel, loadVlm, userMessage } from '../api.js';
import { drawBoxes, writePng } from '../eval/draw.js';
import { answerBoxes, locStripper, stripLocTokens } from '../eval/grounding.js';
import type { AdaptableModel } from '../train/lora.js';
import { GENERATION_FLAGS, GENERATION_USAGE, VIDEO_FLAGS, VIDEO_USAGE, argError, generationOptions, MODEL_FLAG_USAGE, modelDir, parsing, videoOptions, QUANT_FLAG_USAGE, quantOption } from './args.js';
import { leadingTrimmer, timingLine, timingsJson } from './format.js';
import { type CliIo, frameProgress, status, tileProgress, write } from './io.js';
import { probeVideo } from '../video/index.js';

export const ASK_USAGE = `usage: vlmkit ask [--model <dir>] [--image <path>]... [--video <path>]... [options] "<question>"
${MODEL_FLAG_USAGE}
  --image PATH              an image (PNG, JPEG, WebP, GIF); repeat for several, in order
  --json                    print one JSON object {text, raw_text, boxes, token_ids, finish_reason, prompt_tokens,
                            timings}; boxes: [{label, x0, y0, x1, y1}] from the answer's <locNNNN> tokens, in the
                            first image's pixels
  --draw OUT.png            draw the answer's boxes and labels onto the first image and write it as a PNG
  --f32                     load every weight as f32 (slower, more memory; as the parity checks run)
  --adapter DIR             a LoRA or DoRA adapter (PEFT folder, e.g. from vlmkit train) applied to the model
${QUANT_FLAG_USAGE}
${GENERATION_USAGE}
${VIDEO_USAGE}
Write <image> in the question to place the images there; otherwise they come before it. The printed answer
leaves out location tokens (<locNNNN>).`;

/** Loads a PEFT adapter directory (LoRA or DoRA) onto the model, unmerged (exact on 16-bit and quantized bases). */
export async function applyAdapter(model: AdaptableModel, dir: string): Promise<void> {
  const { loadAdapter } = await import('../train/peft.js');
  loadAdapter(model, dir);
}

/** Decodes every image up front, so a bad file fails before the model loads. */
export async function loadImages(paths: readonly string[], opts: DecodeOptions = {}): Promise<RgbImage[]> {
  const out: RgbImage[] = [];
  for (const p of paths) out.push(await loadImage(p, opts));
  return out;
}

export async function ask(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(ASK_USAGE, () => parseArgs({ args: argv, options: { model: { type: 'string' }, image: { type: 'string', multiple: true }, json: { type: 'boolean' }, draw: { type: 'string' }, f32: { type: 'boolean' }, quant: { type: 'string' }, adapter: { type: 'string' }, ...GENERATION_FLAGS, ...VIDEO_FLAGS }, allowPositionals: true, strict: true }));
  const dir = modelDir(values);
  const quant = quantOption(values);
  const question = positionals.join(' ');
  if (!question.trim()) throw argError(`give the question as the last argument\n${ASK_USAGE}`);
  const gen = generationOptions(values);
  const model = inspectModel(dir); // a missing directory or an unsupported model_type fails here, before anything heavy
  const video = videoOptions(values);
  const videos = values.video ?? [];
  if (!videos.length && (video.fps !== undefined || video.maxFrames !== undefined)) throw argError('--fps and --max-frames apply to a --video; give one');
  const images = await loadImages(values.image ?? [], { maxImagePixels: gen.maxImagePixels });
  // a video ffmpeg cannot read (or no ffmpeg) fails here, before the model loads
  for (const v of videos) await probeVideo(v);
  checkMediaCount({ messages: [userMessage(question, images.length, videos.length)], images, videos });
  if (values.draw !== undefined && images.length === 0) throw argError(`--draw ${values.draw} needs an --image to draw the answer's boxes on`);

  status(io, `loading ${dir} ...`);
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined, quant });
  const ac = new AbortController();
  const onInt = () => ac.abort();
  process.once('SIGINT', onInt);
  try {
    if (values.adapter) await applyAdapter(vlm.model, values.adapter);
    const live = !values.json && io.stdout.isTTY === true;
    const stream = vlm.stream(question, { images, videos }, {
      ...gen, ...video, signal: ac.signal,
      onImageTile: values.json ? undefined : tileProgress(io), onVideoFrame: values.json ? undefined : frameProgress(io),
    });
    const trim = leadingTrimmer();
    const strip = locStripper();
    for await (const piece of stream) if (live) await write(io.stdout, trim(strip(piece)));
    if (live) await write(io.stdout, trim(strip()));
    const r = await stream.result;
    // location tokens are relative to the whole image, so they map onto the first image's own pixels
    const first = images[0];
    const { text, boxes } = first ? answerBoxes(r.text, first.width, first.height) : { text: stripLocTokens(r.text), boxes: [] };
    if (values.draw !== undefined) writePng(values.draw, drawBoxes(first!, boxes));
    if (values.json) {
      await write(io.stdout, JSON.stringify({ text, raw_text: r.text.trim(), boxes, token_ids: r.tokenIds, finish_reason: r.finishReason, prompt_tokens: r.promptTokens, timings: timingsJson(r.timings) }) + '\n');
    } else {
      await write(io.stdout, live ? '\n' : text + '\n');
      io.stderr.write(timingLine(r.timings, r.finishReason) + '\n');
    }
    return 0;
  } finally {
    process.off('SIGINT', onInt);
    vlm.dispose();
  }
}

