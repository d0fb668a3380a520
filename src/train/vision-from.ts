// `--vision-from DIR`: a from-scratch VLM whose vision tower starts from another checkpoint's, the rest random.
// This is "align before fuse" (ALBEF): a SigLIP model trained contrastively on image-caption pairs (vlmkit train
// contrastive) has learned to see what the captions name; its vision tower then starts the VLM, which would
// otherwise have to learn seeing from the answer loss alone. Idefics3's vision tower is SigLIP's
// (SiglipVisionTransformer without the pooling head), so the tensors map one to one by name.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bf16ToF32 } from '../engine/dtype.js';
import { VlmkitError } from '../errors.js';
import { readJsonFile } from '../io/model-dir.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { Tensor } from '../engine/index.js';

/** The prefix of the vision tower's tensors in a checkpoint of each model_type that has one. */
const VISION_PREFIX: Record<string, string> = {
  siglip: 'vision_model.',
  siglip_vision_model: 'vision_model.',
  idefics3: 'model.vision_model.',
  smolvlm: 'model.vision_model.',
};
/** The prefix of the vision tower's parameters in the model being built (transformers' Idefics3 names). */
const OWN_PREFIX = 'model.vision_model.';

const fail = (msg: string) => new VlmkitError('E_ARGS', msg);

/**
 * Overwrites every vision-tower parameter of `params` (f32, by transformers name) with the tensor of the same place
 * in the checkpoint folder `dir` (a SigLIP or Idefics3 / SmolVLM model, f32 or bf16). Everything is read and
 * checked before anything is written: a missing tensor or a shape that differs fails with one line naming it.
 * Returns how many tensors were copied.
 */
export function loadVisionFrom(dir: string, params: Map<string, Tensor>): number {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw fail(`--vision-from ${dir} has no config.json; give a SigLIP or SmolVLM / Idefics3 checkpoint folder`);
  const modelType = String(readJsonFile(configPath, 'model config').model_type ?? '');
  const prefix = VISION_PREFIX[modelType];
  if (!prefix) throw fail(`--vision-from ${dir} is a ${JSON.stringify(modelType)} model; its vision tower must be SigLIP's: give a siglip, idefics3 or smolvlm checkpoint`);
  const weights = join(dir, 'model.safetensors');
  if (!existsSync(weights)) throw fail(`--vision-from ${dir} has no model.safetensors (sharded checkpoints are not read here); give a single-file checkpoint`);
  const f = SafetensorsFile.open(weights);
  try {
    const staged: [Tensor, Float32Array][] = [];
    for (const [name, p] of params) {
      if (!name.startsWith(OWN_PREFIX)) continue;
      const src = prefix + name.slice(OWN_PREFIX.length);
      if (!f.has(src)) throw fail(`--vision-from ${weights} has no tensor ${src} (for ${name}); is its vision tower built like this model's?`);
      const raw = f.read(src);
      if (raw.shape.length !== p.rank || raw.shape.some((d, i) => d !== p.shape[i]))
        throw fail(`--vision-from ${weights}: ${src} is [${raw.shape}], this model's ${name} is [${p.shape}]; the vision_config of the two must match`);
      let data: Float32Array;
      if (raw.dtype === 'F32') data = raw.data as Float32Array;
      else if (raw.dtype === 'BF16') data = Float32Array.from(raw.data as Uint16Array, bf16ToF32); // exact widening
      else throw fail(`--vision-from ${weights}: ${src} is ${raw.dtype}; only f32 and bf16 weights are read`);
      staged.push([p, data]);
    }
    if (staged.length === 0) throw fail(`--vision-from: this model has no vision tower parameters under ${OWN_PREFIX}`);
    for (const [p, data] of staged) {
      if (!p.isContiguous() || p.dtype !== 'f32') throw new Error('vlmkit internal: a vision parameter of a new model is not contiguous f32');
      (p.data as Float32Array).set(data);
    }
    return staged.length;
  } finally {
    f.close();
  }
}
