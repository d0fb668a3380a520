// npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>: a complete bf16 Hugging Face model folder
// from checkpoint-<step> of a full-training run (the config and tokenizer files of a from-scratch run's staged
// <run>/base, or of the model a fine-tune started from, as its checkpoint names it; + the checkpoint's f32 weights), written
// exactly as the run's own final save writes model/ (same names, same bf16 rounding). For taking the model at a
// step of a run that is still going, or that stopped before its end.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelWeights } from '../src/models/index.js';
import { ModelDir } from '../src/io/model-dir.js';
import { saveMergedCheckpoint } from '../src/train/peft.js';
import { loadVisionFrom } from '../src/train/vision-from.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../src/io/safetensors-write.js';

const [run, step, out] = process.argv.slice(2);
if (!run || !step || !out) throw new Error('usage: npx tsx scripts/checkpoint-model.ts <run folder> <step> <out folder>');
const ck = join(run, `checkpoint-${step}`, 'trainable.safetensors');
if (!existsSync(ck)) throw new Error(`${ck} is missing: give a step the run saved (ls ${run})`);
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-ck-'));
try {
  let base = join(run, 'base');
  if (existsSync(base)) {
    // a from-scratch run: its checkpoint holds every weight it trains; a frozen tower (--vision-from with
    // --freeze-vision) is added from where the run took it
    for (const f of readdirSync(base)) if (!/\.safetensors$|^README\.md$|^loss\.png$/.test(f)) copyFileSync(join(base, f), join(tmp, f));
    const st = JSON.parse(readFileSync(join(run, `checkpoint-${step}`, 'trainer_state.json'), 'utf8')) as { settings?: { mode?: string; visionFrom?: string | null } };
    if (st.settings?.mode === 'frozen-vision' && st.settings.visionFrom) {
      const entries: SafetensorsEntry[] = [];
      for (const [file, rename] of [[ck, (n: string) => n], [join(st.settings.visionFrom, 'model.safetensors'), (n: string) => (n.startsWith('vision_model.') ? `model.${n}` : null)]] as const) {
        const f = SafetensorsFile.open(file);
        try {
          for (const n of f.names()) {
            const to = rename(n);
            if (!to) continue;
            const r = f.read(n);
            entries.push({ name: to, dtype: r.dtype as SafetensorsEntry['dtype'], shape: r.shape, data: r.data });
          }
        } finally {
          f.close();
        }
      }
      writeSafetensors(join(tmp, 'model.safetensors'), entries);
    } else copyFileSync(ck, join(tmp, 'model.safetensors'));
    const model = loadModelWeights(ModelDir.of(tmp), { dtype: 'f32' });
    saveMergedCheckpoint(model, null, { sourceDir: tmp, outDir: out, overwrite: true, dtype: 'BF16' });
  } else {
    // a fine-tune of a model folder: its weights, the vision tower it took from --vision-from (a frozen tower is not
    // in the checkpoint), then the checkpoint's trained tensors
    const st = JSON.parse(readFileSync(join(run, `checkpoint-${step}`, 'trainer_state.json'), 'utf8')) as { settings?: { model?: string | null; mode?: string; visionFrom?: string | null } };
    const s = st.settings;
    if ((s?.mode !== 'full' && s?.mode !== 'frozen-vision') || !s.model) throw new Error(`${run} has no base/ and its checkpoint is not of a full fine-tune of a model folder`);
    base = s.model;
    const model = loadModelWeights(ModelDir.of(base), { dtype: 'f32' });
    const params = model.parameters();
    if (s.visionFrom) loadVisionFrom(s.visionFrom, params);
    const f = SafetensorsFile.open(ck);
    try {
      for (const name of f.names()) {
        const p = params.get(name);
        if (!p) throw new Error(`${ck} has ${name}, which ${base} does not`);
        const r = f.read(name);
        if (r.dtype !== 'F32') throw new Error(`${ck}: ${name} is ${r.dtype}; checkpoints hold f32`);
        (p.data as Float32Array).set(r.data as Float32Array);
      }
    } finally {
      f.close();
    }
    saveMergedCheckpoint(model, null, { sourceDir: base, outDir: out, overwrite: true, dtype: 'BF16' });
  }
  console.log(`${out}: checkpoint ${step} of ${run} in bf16`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
