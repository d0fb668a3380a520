// npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>: a complete bf16 Hugging Face model folder
// from checkpoint-<step> of a full-training run (the config and tokenizer files of a from-scratch run's staged
// <run>/base, or of the model a fine-tune started from, as its checkpoint names it; + the checkpoint's f32 weights), written
// exactly as the run's own final save writes model/ (same names, same bf16 rounding). For taking the model at a
// step of a run that is still going, or that stopped before its end.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelWeights, randomInitModel, readModelConfig } from '../src/models/index.js';
import { ModelDir } from '../src/io/model-dir.js';
import { saveMergedCheckpoint } from '../src/train/peft.js';
import { loadVisionFrom } from '../src/train/vision-from.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { isVisionParam } from '../src/train/trainer.js';

const [run, step, out] = process.argv.slice(2);
if (!run || !step || !out) throw new Error('usage: npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>');
const ck = join(run, `checkpoint-${step}`, 'trainable.safetensors');
if (!existsSync(ck)) throw new Error(`${ck} is missing: give a step the run saved (ls ${run})`);
// the model the run trained: a from-scratch run's new model (every weight comes from below) or the model folder a
// fine-tune started from; then the tower it took from --vision-from (a frozen tower is not in the checkpoints), then
// the checkpoint's trained tensors over it
const st = JSON.parse(readFileSync(join(run, `checkpoint-${step}`, 'trainer_state.json'), 'utf8')) as { settings?: { model?: string | null; mode?: string; visionFrom?: string | null } };
const s = st.settings ?? {};
const scratch = existsSync(join(run, 'base'));
if (!scratch && ((s.mode !== 'full' && s.mode !== 'frozen-vision') || !s.model)) throw new Error(`${run} has no base/ and its checkpoint is not of a full fine-tune of a model folder`);
const base = scratch ? join(run, 'base') : s.model!;
const model = scratch ? (({ family, config }) => randomInitModel(family, config))(readModelConfig(base)) : loadModelWeights(ModelDir.of(base), { dtype: 'f32' });
const params = model.parameters();
const set = new Set<string>();
if (s.visionFrom) {
  loadVisionFrom(s.visionFrom, params);
  for (const n of params.keys()) if (isVisionParam(n)) set.add(n);
}
const f = SafetensorsFile.open(ck);
try {
  for (const name of f.names()) {
    const p = params.get(name);
    if (!p) throw new Error(`${ck} has ${name}, which ${base} does not`);
    const r = f.read(name);
    if (r.dtype !== 'F32') throw new Error(`${ck}: ${name} is ${r.dtype}; checkpoints hold f32`);
    (p.data as Float32Array).set(r.data as Float32Array);
    set.add(name);
  }
} finally {
  f.close();
}
const unset = [...params.keys()].filter((n) => !set.has(n));
if (scratch && unset.length) throw new Error(`${ck} lacks ${unset.length} tensors of a new model (${unset[0]}, ...); is it a checkpoint of this run?`);
saveMergedCheckpoint(model, null, { sourceDir: base, outDir: out, overwrite: true, dtype: 'BF16' });
console.log(`${out}: checkpoint ${step} of ${run} in bf16`);
