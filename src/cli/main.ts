// The `vlmkit` command: subcommand dispatch and the one place errors become exit codes. A VlmkitError (bad input
// a user can fix) prints its one-line message and exits 1; anything else prints its message and exits 2
// (set VLMKIT_DEBUG=1 for the stack).
import { readFileSync } from 'node:fs';
import { VlmkitError } from '../errors.js';
import { ask, ASK_USAGE } from './ask.js';
import { batch, BATCH_USAGE } from './batch.js';
import { chat, CHAT_USAGE } from './chat.js';
import { classify, CLASSIFY_USAGE } from './classify.js';
import { embed, EMBED_USAGE } from './embed.js';
import { data, DATA_USAGE } from './data.js';
import { demo, DEMO_USAGE } from './demo.js';
import { evaluate, EVAL_USAGE } from './eval.js';
import { info, INFO_USAGE } from './info.js';
import { processIo, type CliIo } from './io.js';
import { plot, PLOT_USAGE } from './plot.js';
import { search, SEARCH_USAGE } from './search.js';
import { quantize, QUANTIZE_USAGE } from './quantize.js';
import { serve, SERVE_USAGE } from './serve.js';
import { tokens, TOKENS_USAGE } from './tokens.js';
import { train, TRAIN_USAGE } from './train.js';

const USAGE = `usage: vlmkit <command> [options]

commands:
  demo     the built-in model on a bundled picture    vlmkit demo
  ask      answer one question about images          vlmkit ask --model DIR --image photo.jpg "What is in this image?"
  chat     talk about images in the terminal          vlmkit chat --model DIR --image photo.jpg
  tokens   show the expanded prompt and its token ids vlmkit tokens --model DIR --image photo.jpg "Describe it"
  info     describe a checkpoint                      vlmkit info DIR --size 1024x768
  train    fine-tune (LoRA or full) on a JSONL dataset vlmkit train sft --model DIR --data train.jsonl --out runs/x
  data     synthetic datasets and the tokenizer       vlmkit data shapes --n 10000 --seed 0 --out data/shapes
  eval     score a model on a JSONL test set          vlmkit eval --model DIR --data test.jsonl --metric exact
  plot     a training run's loss curve as a PNG       vlmkit plot runs/x --out loss.png
  classify zero-shot labels with CLIP / SigLIP         vlmkit classify --model DIR --labels "a cat,a dog" photo.jpg
  embed    CLIP / SigLIP embeddings as JSON lines     vlmkit embed --model DIR photo.jpg --text "a red car"
  search   a folder's images most like a text          vlmkit search --model DIR "a red car" photos/
  serve    an OpenAI-compatible HTTP server           vlmkit serve --model DIR --port 8080
  batch    a folder of images or JSONL rows           vlmkit batch --prompt "What is it?" photos/ --out results.jsonl
  quantize a model with 8- or 4-bit weights           vlmkit quantize DIR --to q4_0 --out DIR-q4_0

Without --model, ask, chat, tokens, info, eval, serve, batch and demo use the built-in model vlmkit-shapes (models/vlmkit-shapes
in the vlmkit package): a small SmolVLM-architecture model trained on vlmkit's shapes scenes only.
vlmkit <command> --help shows a command's options.`;

const COMMANDS: Record<string, { run: (argv: string[], io: CliIo) => Promise<number>; usage: string }> = {
  ask: { run: ask, usage: ASK_USAGE },
  chat: { run: chat, usage: CHAT_USAGE },
  tokens: { run: tokens, usage: TOKENS_USAGE },
  info: { run: info, usage: INFO_USAGE },
  plot: { run: plot, usage: PLOT_USAGE },
  train: { run: train, usage: TRAIN_USAGE },
  data: { run: data, usage: DATA_USAGE },
  eval: { run: evaluate, usage: EVAL_USAGE },
  demo: { run: demo, usage: DEMO_USAGE },
  classify: { run: classify, usage: CLASSIFY_USAGE },
  embed: { run: embed, usage: EMBED_USAGE },
  search: { run: search, usage: SEARCH_USAGE },
  serve: { run: serve, usage: SERVE_USAGE },
  batch: { run: batch, usage: BATCH_USAGE },
  quantize: { run: quantize, usage: QUANTIZE_USAGE },
};

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** One line, no stack: the message's first line for a user error. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

export async function run(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [cmd, ...rest] = argv;
  // `vlmkit ask ... | head -1`: a closed pipe ends the command quietly
  io.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  try {
    if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      io.stdout.write(USAGE + '\n');
      return cmd ? 0 : 1;
    }
    if (cmd === '--version' || cmd === '-v') {
      io.stdout.write(version() + '\n');
      return 0;
    }
    const c = COMMANDS[cmd];
    if (!c) throw new VlmkitError('E_ARGS', `unknown command "${cmd}"; the commands are ${Object.keys(COMMANDS).join(', ')} (vlmkit --help)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(c.usage + '\n');
      return 0;
    }
    return await c.run(rest, io);
  } catch (e) {
    if (e instanceof VlmkitError) {
      // usage text after the first line is for --help; the error itself is one line
      const [first] = e.message.split('\n');
      io.stderr.write(`vlmkit: ${oneLine(first ?? e.message)}\n`);
      // stopped by the user (Ctrl-C), as the shell reports SIGINT
      return e.code === 'E_INTERRUPTED' ? 130 : 1;
    }
    const err = e as Error;
    io.stderr.write(`vlmkit: unexpected error: ${oneLine(err?.message ?? String(e))}\n`);
    if (process.env.VLMKIT_DEBUG) io.stderr.write(`${err?.stack ?? ''}\n`);
    return 2;
  }
}

// Run when executed directly (node dist/cli/main.js ..., tsx src/cli/main.ts ...).
const self = process.argv[1] ? new URL(`file://${process.argv[1]}`).href : '';
if (self && (import.meta.url === self || import.meta.url === self.replace(/\.js$/, '.ts'))) {
  process.exitCode = await run(process.argv.slice(2));
}
