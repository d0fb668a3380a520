// `vlmkit info [<dir>]`: what a checkpoint is, from its files alone (no weights are read): architecture and sizes,
// parameter counts per part, weight dtypes, image tokens per tile and per image at given sizes.
import { parseArgs } from 'node:util';
import { describeModel } from '../api.js';
import { nativeIsa, nativeThreads } from '../engine/index.js';
import { loadAddon } from '../engine/backend/native/addon.js';
import { argError, generationOptions, modelDir, parsing, parseSize } from './args.js';
import { type CliIo, write } from './io.js';

export const INFO_USAGE = `usage: vlmkit info [<dir>] [--size WxH]... [--longest-edge PX] [--no-split] [--json]
  <dir>               the checkpoint folder (default: the built-in model vlmkit-shapes, models/vlmkit-shapes
                      in the vlmkit package); --model DIR says the same
  --size WxH          also show how many tokens an image of that size becomes (repeatable; default 512x512 and 1920x1080)
  --longest-edge PX   ... when images are first resized to this long edge (as ask/chat --longest-edge)
  --no-split          ... when images are not split into tiles (as ask/chat --no-split)
  --json       one JSON object`;

export async function info(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(INFO_USAGE, () => parseArgs({ args: argv, options: { size: { type: 'string', multiple: true }, 'longest-edge': { type: 'string' }, 'no-split': { type: 'boolean' }, json: { type: 'boolean' }, model: { type: 'string' } }, allowPositionals: true, strict: true }));
  if (positionals.length > 1 || (positionals.length === 1 && values.model !== undefined)) throw argError(`give one checkpoint directory\n${INFO_USAGE}`);
  const dir = positionals[0] ?? modelDir(values);
  const sizes = (values.size ?? ['512x512', '1920x1080']).map(parseSize);
  const { doImageSplitting, longestEdge } = generationOptions({ 'no-split': values['no-split'], 'longest-edge': values['longest-edge'] });
  const d = describeModel(dir, { sizes, doImageSplitting, longestEdge });
  const e = engine();
  const json = { ...d.json, engine: e };
  const line = `engine: native kernels ${e.isa} (CPU: ${e.cpu.join(', ') || 'x86-64 baseline'}), ${e.threads} threads`;
  await write(io.stdout, values.json ? JSON.stringify(json) + '\n' : [...d.lines, line].join('\n') + '\n');
  return 0;
}

/** What the native engine runs on this machine: the kernels' instruction set (VLMKIT_ISA forces one) and the CPU's. */
function engine(): { isa: string; cpu: string[]; threads: number } {
  const f = loadAddon().cpuFeatures() as Record<string, boolean | string>;
  const cpu = ['avx2', 'f16c', 'avx512', 'avx512bf16', 'avx512vnni'].filter((k) => f[k] === true);
  return { isa: nativeIsa(), cpu, threads: nativeThreads() };
}
