// npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>: a complete bf16 Hugging Face model folder
// from checkpoint-<step> of a from-scratch run (its staged <run>/base files + the checkpoint's f32 weights), written
// exactly as the run's own final save writes model/ (same names, same bf16 rounding). For taking the model at a
// step of a run that is still going, or that stopped before its end.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelWeights } from '../src/models/index.js';
import { ModelDir } from '../src/io/model-dir.js';
import { saveMergedCheckpoint } from '../src/train/peft.js';

const [run, step, out] = process.argv.slice(2);
if (!run || !step || !out) throw new Error('usage: npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>');
const ck = join(run, `checkpoint-${step}`, 'trainable.safetensors');
if (!existsSync(ck)) throw new Error(`${ck} is missing: give a step the run saved (ls ${run})`);
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-ck-'));
try {
  for (const f of readdirSync(join(run, 'base'))) copyFileSync(join(run, 'base', f), join(tmp, f));
  copyFileSync(ck, join(tmp, 'model.safetensors'));
  const model = loadModelWeights(ModelDir.of(tmp), { dtype: 'f32' });
  saveMergedCheckpoint(model, null, { sourceDir: tmp, outDir: out, overwrite: true, dtype: 'BF16' });
  console.log(`${out}: checkpoint ${step} of ${run} in bf16`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
