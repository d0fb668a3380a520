// npx tsx scripts/average-models.ts <model A> <model B> <weight of B> <out folder>: a model whose every weight is
// (1 - w) * A + w * B, in bf16, with B's other files (config, tokenizer, processor). A and B must be the same
// architecture: the same tensor names and shapes. Why: averaging a fine-tuned model with the model it started from
// (WiSE-FT, Wortsman et al. 2022) keeps much of what the fine-tuning gained on its own data and more of what the
// start knew beyond it; the built-in model's fourth phase gains on held-out pictures but names a colour wrong on one of
// the pictures drawn by other means (test/builtin/generalise.test.ts), and the average of it and phase 3 does neither
// (recipes/builtin/README.md). Each weight is averaged in float32 and rounded to bf16 as the trainer saves it.
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bf16ToF32, f32ToBf16 } from '../src/engine/index.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { writeDirAtomic, writeSafetensors } from '../src/io/safetensors-write.js';

const [a, b, wText, out] = process.argv.slice(2);
const fail = (msg: string): never => {
  process.stderr.write(`average-models: ${msg}\n`);
  process.exit(1);
};
if (!a || !b || !wText || !out) fail('usage: npx tsx scripts/average-models.ts <model A> <model B> <weight of B, 0..1> <out folder>');
const w = Number(wText);
if (!(w >= 0 && w <= 1)) fail(`the weight of B must be a number from 0 to 1, got ${wText}`);
for (const d of [a!, b!]) if (!existsSync(join(d, 'model.safetensors'))) fail(`${d} has no model.safetensors; give two model folders`);

const fa = SafetensorsFile.open(join(a!, 'model.safetensors'));
const fb = SafetensorsFile.open(join(b!, 'model.safetensors'));
/** a tensor's values as float32, from bf16, f16-free files (the built-in model's and the trainer's saves) */
const floats = (f: SafetensorsFile, name: string): Float32Array => {
  const t = f.read(name);
  if (t.dtype === 'F32') return t.data as Float32Array;
  if (t.dtype !== 'BF16') fail(`tensor ${name} is ${t.dtype}; this averages bf16 or f32 weights`);
  return Float32Array.from(t.data as Uint16Array, bf16ToF32);
};
try {
  const names = fb.names();
  const extra = fa.names().filter((n) => !fb.has(n));
  if (extra.length || names.some((n) => !fa.has(n))) fail(`${a} and ${b} do not hold the same tensors (${[...extra, ...names.filter((n) => !fa.has(n))].slice(0, 3).join(', ')}...); give two models of one architecture`);
  const entries = names.map((name) => {
    const sa = fa.info(name).shape, sb = fb.info(name).shape;
    if (sa.join('x') !== sb.join('x')) fail(`tensor ${name} is [${sa}] in ${a} and [${sb}] in ${b}`);
    const x = floats(fa, name), y = floats(fb, name);
    const avg = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = Math.fround(Math.fround((1 - w) * x[i]!) + Math.fround(w * y[i]!));
      if (!Number.isFinite(v)) fail(`tensor ${name} averages to ${v} at ${i}; the models hold a non-finite weight`);
      avg[i] = f32ToBf16(v);
    }
    return { name, dtype: 'BF16' as const, shape: sb, data: avg };
  });
  const files = readdirSync(b!).filter((f) => statSync(join(b!, f)).isFile() && f !== 'model.safetensors' && f !== 'README.md' && !/^loss.*\.png$/.test(f));
  writeDirAtomic(out!, (tmp) => {
    for (const f of files) copyFileSync(join(b!, f), join(tmp, f));
    writeSafetensors(join(tmp, 'model.safetensors'), entries, { format: 'pt' });
  });
  process.stdout.write(`${out}: ${entries.length} tensors, ${1 - w} x ${a} + ${w} x ${b}\n`);
} finally {
  fa.close();
  fb.close();
}
