// `vlmkit chat`: a multi-turn conversation in the terminal. Each line you type is a user turn; the answer streams
// back. /image PATH attaches an image to your next message, /video PATH a video, /reset forgets the conversation, /exit (or Ctrl-D)
// leaves. Ctrl-C stops an answer that is being written. Piped input works too (one turn per line). The KV cache
// is kept between turns (a ChatSession): a follow-up question costs its own tokens, not the images again.
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { type RgbImage, loadImage } from '../processing/decode.js';
import { inspectModel, loadVlm } from '../api.js';
import { VlmkitError } from '../errors.js';
import { GENERATION_FLAGS, GENERATION_USAGE, VIDEO_FLAGS, VIDEO_USAGE, generationOptions, MODEL_FLAG_USAGE, modelDir, parsing, videoOptions, QUANT_FLAG_USAGE, quantOption } from './args.js';
import { leadingTrimmer, timingLine } from './format.js';
import { type CliIo, frameProgress, status, tileProgress, write } from './io.js';
import { probeVideo } from '../video/index.js';
import { applyAdapter, loadImages } from './ask.js';

export const CHAT_USAGE = `usage: vlmkit chat [--model <dir>] [--image <path>]... [--system "<text>"] [options]
${MODEL_FLAG_USAGE}
  --image PATH              attach images to your first message
  --system TEXT             a system message
  --f32                     load every weight as f32
  --adapter DIR             a LoRA or DoRA adapter (PEFT folder, e.g. from vlmkit train) applied to the model
${QUANT_FLAG_USAGE}
${GENERATION_USAGE}
${VIDEO_USAGE}
In the chat: /image PATH attaches an image to your next message, /video PATH a video, /reset starts over, /exit leaves.`;

const HELP = '/image PATH  attach an image to your next message · /video PATH  attach a video · /reset  start over · /exit  leave';

export async function chat(argv: string[], io: CliIo): Promise<number> {
  const { values } = parsing(CHAT_USAGE, () => parseArgs({ args: argv, options: { model: { type: 'string' }, image: { type: 'string', multiple: true }, system: { type: 'string' }, f32: { type: 'boolean' }, quant: { type: 'string' }, adapter: { type: 'string' }, ...GENERATION_FLAGS, ...VIDEO_FLAGS }, allowPositionals: true, strict: true }));
  const dir = modelDir(values);
  const quant = quantOption(values);
  const gen = generationOptions(values);
  const model = inspectModel(dir); // a missing directory or an unsupported model_type fails here, before anything heavy
  const video = videoOptions(values);
  let pending: RgbImage[] = await loadImages(values.image ?? [], { maxImagePixels: gen.maxImagePixels });
  let pendingVideos: string[] = values.video ?? [];
  for (const v of pendingVideos) await probeVideo(v);
  status(io, `loading ${dir} ...`);
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined, quant });
  try {
    if (values.adapter) await applyAdapter(vlm.model, values.adapter);
  } catch (e) {
    vlm.dispose();
    throw e;
  }
  const tty = io.stdin.isTTY === true && io.stdout.isTTY === true;
  const rl = createInterface({ input: io.stdin, output: tty ? io.stdout : undefined, terminal: tty, prompt: 'you> ' });
  const session = vlm.chat({ system: values.system });
  let current: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (current) current.abort();
    else rl.close();
  });
  if (tty) io.stdout.write(`${HELP}\n`);
  const say = (s: string) => (tty ? io.stderr.write(`\x1b[2m${s}\x1b[0m\n`) : io.stderr.write(s + '\n'));
  try {
    if (tty) rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (!line) {
        if (tty) rl.prompt();
        continue;
      }
      if (line === '/exit' || line === '/quit') break;
      if (line === '/help') {
        say(HELP);
      } else if (line === '/reset') {
        session.reset();
        pending = [];
        pendingVideos = [];
        say('(conversation cleared)');
      } else if (line.startsWith('/image')) {
        const path = line.slice('/image'.length).trim();
        try {
          if (!path) throw new VlmkitError('E_ARGS', 'usage: /image PATH');
          pending.push(await loadImage(path, { maxImagePixels: gen.maxImagePixels }));
          say(`(image ${path} attached to your next message)`);
        } catch (e) {
          if (!(e instanceof VlmkitError)) throw e;
          say(`error: ${e.message}`);
        }
      } else if (line.startsWith('/video')) {
        const path = line.slice('/video'.length).trim();
        try {
          if (!path) throw new VlmkitError('E_ARGS', 'usage: /video PATH');
          await probeVideo(path);
          pendingVideos.push(path);
          say(`(video ${path} attached to your next message)`);
        } catch (e) {
          if (!(e instanceof VlmkitError)) throw e;
          say(`error: ${e.message}`);
        }
      } else {
        current = new AbortController();
        try {
          const stream = session.send(line, { images: pending, videos: pendingVideos }, { ...gen, ...video, signal: current.signal, onImageTile: tileProgress(io), onVideoFrame: frameProgress(io) });
          const trim = leadingTrimmer();
          if (tty) io.stdout.write('vlm> ');
          for await (const piece of stream) await write(io.stdout, trim(piece));
          const r = await stream.result;
          await write(io.stdout, '\n');
          pending = [];
          pendingVideos = [];
          if (tty) say(timingLine(r.timings, r.finishReason));
        } catch (e) {
          if (!(e instanceof VlmkitError)) throw e;
          await write(io.stdout, '\n');
          // the conversation outgrew the context: the way on is a new one
          say(`error: ${e.message}${e.code === 'E_CONTEXT' ? ' (/reset starts a new conversation)' : ''}`);
        } finally {
          current = null;
        }
      }
      if (tty) rl.prompt();
    }
  } finally {
    rl.close();
    session.dispose();
    vlm.dispose();
  }
  return 0;
}
