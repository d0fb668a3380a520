// `vlmkit quantize <dir> --to FORMAT --out <dir>`: writes a quantized copy of a model folder (docs/quantization.md).
// Progress goes to stderr; the written folder is printed on stdout.
import { parseArgs } from 'node:util';
import { QUANT_FORMATS } from '../engine/index.js';
import { checkQuantFormat, quantizeCheckpoint } from '../models/index.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const QUANTIZE_USAGE = `usage: vlmkit quantize <dir> --to ${QUANT_FORMATS.join('|')} --out <dir> [--no-double-quant]
  <dir>                 a SmolVLM / Idefics3 checkpoint folder (f32, bf16 or f16 weights)
  --to FORMAT           q8_0 or q4_0 (ggml's blocks of 32), nf4 (bitsandbytes' blocks of 64)
  --out DIR             the new model folder (must not exist yet, or be empty); written whole or not at all
  --no-double-quant     nf4: keep each block's absmax in fp32 instead of quantizing it again in 8 bits
The linears of the transformer layers and the connector are quantized; embeddings, norms, biases and the patch
embedding stay as they are. Load the result with --model <out> (no flag needed).`;

export async function quantize(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(QUANTIZE_USAGE, () => parseArgs({ args: argv, options: { to: { type: 'string' }, out: { type: 'string' }, 'no-double-quant': { type: 'boolean' } }, allowPositionals: true, strict: true }));
  if (positionals.length !== 1) throw argError(`give one model folder to quantize\n${QUANTIZE_USAGE}`);
  if (values.to === undefined) throw argError(`--to is required: one of ${QUANT_FORMATS.join(', ')}\n${QUANTIZE_USAGE}`);
  const format = checkQuantFormat(values.to, '--to');
  if (!values.out?.trim()) throw argError(`--out is required: the folder to write the quantized model to\n${QUANTIZE_USAGE}`);
  if (values['no-double-quant'] && format !== 'nf4') throw argError(`--no-double-quant is for --to nf4 (q8_0 and q4_0 keep an fp16 scale per block)`);
  const src = positionals[0]!;
  const tty = io.stderr.isTTY === true;
  let lastPct = -1;
  const r = quantizeCheckpoint(src, values.out, format, {
    doubleQuant: !values['no-double-quant'],
    onWeight: (name, done, total) => {
      // a terminal gets one line rewritten per weight; a log gets a line per tenth
      if (tty) io.stderr.write(`\r\x1b[2Kquantizing ${done}/${total} ${name}`);
      else {
        const pct = Math.floor((10 * done) / total) * 10;
        if (pct !== lastPct) io.stderr.write(`quantizing: ${done}/${total} weights\n`);
        lastPct = pct;
      }
    },
  });
  if (tty) io.stderr.write('\r\x1b[2K');
  io.stderr.write(`${r.quantized} weights in ${format}, ${r.kept} tensors kept, ${(r.bytes / 2 ** 20).toFixed(1)} MiB of weights\n`);
  await write(io.stdout, `${values.out}\n`);
  return 0;
}
