// The parity check of one reference case against vlmkit, as `npm run parity` runs it:
//  1. processing: our chat template, tokenizer and image processor on the case's prompt(s) and images, compared
//     with the case's input_ids / attention_mask / pixel_attention_mask (exactly) and pixel_values (max/mean |diff|);
//  2. the model on the case's own tensors: logits (max|diff| / max|ref|, over real tokens: logits at padding
//     positions are not defined by anything), or the vision tower / connector outputs;
//  3. when the case has `generate` (and `greedy_nocache`), greedy generation with the KV cache (and without one),
//     token for token, with transformers' settings (min_new_tokens = max_new_tokens = the case's count).
// Tolerances are those of the fixtures' README.
import { join } from 'node:path';
import { tensor } from '../engine/index.js'; // (the index registers the native backend)
import type { Tensor } from '../engine/tensor.js';
import { Processor, type ProcessorSample } from '../processing/processor.js';
import { loadImage, processImages } from '../processing/image.js';
import { loadGenerationConfig } from '../generate/stopping.js';
import { generate } from '../generate/generate.js';
import type { ModelInputs } from '../generate/types.js';
import { ParityCase, caseSamples, parseSmolVlmPrompt, type FloatTensor } from './case.js';

export const TOLERANCE = { pixelMaxAbs: 0.02, pixelMeanAbs: 1e-3, relErr: 1e-4 } as const;

export interface ParityOptions {
  /** the checkpoint directory the case was made with */
  model: string;
  /** a PEFT adapter directory (cases with "adapter" in their json) */
  adapter?: string;
  /** where the case's images are (default: `images` next to the cases folder) */
  images?: string;
  /** skip the model checks (processing only) */
  noModel?: boolean;
}

export interface ParityResult {
  case: string;
  input_ids_equal: boolean | null;
  pixel_values_max_abs: number | null;
  pixel_values_mean_abs: number | null;
  logits_rel_err: number | null;
  generate_equal: boolean | null;
  ok: boolean | null;
  /** attention_mask and pixel_attention_mask equal */
  masks_equal: boolean | null;
  /** our chat template renders the case's prompt exactly (null when the prompt is not in SmolVLM's chat format) */
  template_equal: boolean | null;
  vision_rel_err: number | null;
  connector_rel_err: number | null;
  /** training cases (src/parity/train.ts): loss, worst gradient, worst tensor after the AdamW step, completion loss */
  loss_rel_err: number | null;
  grads_max_rel_err: number | null;
  after_step_max_rel_err: number | null;
  loss_completion_rel_err: number | null;
  /** what failed, one line each */
  failures: string[];
  /** why parts of the case were not checked */
  notes: string[];
}

function eqArrays(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** max|a - b| / max|b| over the elements where `keep` (per leading position) is true. */
export function relErr(ours: Float32Array, ref: Float32Array, rowSize = ref.length, keep?: (row: number) => boolean): number {
  let md = 0;
  let mr = 0;
  for (let r = 0; r * rowSize < ref.length; r++) {
    if (keep && !keep(r)) continue;
    for (let i = r * rowSize, e = i + rowSize; i < e; i++) {
      const d = Math.abs(ours[i]! - ref[i]!);
      if (!(d <= md)) md = d; // NaN propagates
      const a = Math.abs(ref[i]!);
      if (a > mr) mr = a;
    }
  }
  return mr === 0 ? md : md / mr;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Runs every check the case supports. Never throws for a failed comparison (that goes into `failures`). */
export async function runParity(casePath: string, opts: ParityOptions): Promise<ParityResult> {
  const c = ParityCase.open(casePath);
  const res: ParityResult = {
    case: c.name,
    input_ids_equal: null,
    pixel_values_max_abs: null,
    pixel_values_mean_abs: null,
    logits_rel_err: null,
    generate_equal: null,
    ok: null,
    masks_equal: null,
    template_equal: null,
    vision_rel_err: null,
    connector_rel_err: null,
    loss_rel_err: null,
    grads_max_rel_err: null,
    after_step_max_rel_err: null,
    loss_completion_rel_err: null,
    failures: [],
    notes: [],
  };
  const fail = (m: string) => res.failures.push(m);
  try {
    await checkProcessing(c, opts, res, fail);
    if (!opts.noModel) await checkModel(c, opts, res, fail);
    if (!opts.noModel) await (await import('./train.js')).checkTrainCase(c.path, opts.model, opts.adapter, res, fail, (m) => res.notes.push(m));
  } finally {
    c.close();
  }
  const checked = [res.input_ids_equal, res.masks_equal, res.template_equal, res.pixel_values_max_abs, res.logits_rel_err, res.generate_equal, res.vision_rel_err, res.connector_rel_err, res.loss_rel_err].some((v) => v !== null);
  res.ok = res.failures.length > 0 ? false : checked ? true : null;
  if (!checked && res.notes.length === 0) res.notes.push('the case holds nothing this tool checks (no prompt/input_ids, logits, vision outputs or generate)');
  return res;
}

function comparePixels(ours: { data: Float32Array; shape: readonly number[] }, ref: FloatTensor, res: ParityResult, fail: (m: string) => void): void {
  if (ours.data.length !== ref.data.length) {
    fail(`pixel_values: ours ${shapeStr(ours.shape)} vs reference ${shapeStr(ref.shape)}`);
    return;
  }
  let max = 0;
  let sum = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(ours.data[i]! - ref.data[i]!);
    if (!(d <= max)) max = d;
    sum += d;
  }
  res.pixel_values_max_abs = max;
  res.pixel_values_mean_abs = ref.data.length ? sum / ref.data.length : 0;
  if (!(max <= TOLERANCE.pixelMaxAbs)) fail(`pixel_values max |diff| ${max} > ${TOLERANCE.pixelMaxAbs}`);
  if (!(res.pixel_values_mean_abs <= TOLERANCE.pixelMeanAbs)) fail(`pixel_values mean |diff| ${res.pixel_values_mean_abs} > ${TOLERANCE.pixelMeanAbs}`);
}

async function checkProcessing(c: ParityCase, opts: ParityOptions, res: ParityResult, fail: (m: string) => void): Promise<void> {
  const imagesDir = opts.images ?? c.defaultImagesDir;
  const samples = caseSamples(c.meta);
  const split = typeof c.meta.do_image_splitting === 'boolean' ? c.meta.do_image_splitting : undefined;
  if (!samples) {
    // an image alone (vision tower / connector cases): the image processor only
    const img = c.meta.image;
    if (typeof img === 'string' && c.has('pixel_values')) {
      const ref = c.floats('pixel_values');
      const processor = Processor.fromDir(opts.model);
      // such cases store the tiles of one image; a single tile means splitting was off
      const tiles = ref.shape.length === 4 ? ref.shape[0]! : ref.shape.length === 5 ? ref.shape[1]! : 0;
      const cfg = { ...processor.imageConfig, ...(split !== undefined ? { doImageSplitting: split } : tiles === 1 ? { doImageSplitting: false } : {}) };
      const p = processImages([[await loadImage(join(imagesDir, img))]], cfg);
      comparePixels({ data: p.pixelValues, shape: p.pixelValuesShape }, ref, res, fail);
    }
    return;
  }
  if (!c.has('input_ids')) {
    res.notes.push('no input_ids in the case: prompt processing not compared');
    return;
  }
  if (samples.some((s) => s.prompt.includes('<video>'))) {
    res.notes.push('video prompts are not processed by vlmkit yet: input_ids/pixel_values not compared');
    return;
  }
  const processor = Processor.fromDir(opts.model);
  const procSamples: ProcessorSample[] = [];
  let templateOk: boolean | null = null;
  for (const s of samples) {
    const images = s.images.map((n) => join(imagesDir, n));
    const parsed = parseSmolVlmPrompt(s.prompt);
    if (parsed) {
      const rendered = processor.prompt.chatTemplate.render(parsed.messages, {
        addGenerationPrompt: parsed.addGenerationPrompt,
        specialTokens: { bos_token: processor.tokenizer.bosToken, eos_token: processor.tokenizer.eosToken },
        variables: processor.prompt.config.templateVariables,
      });
      const same = rendered === s.prompt;
      templateOk = (templateOk ?? true) && same;
      if (!same) fail(`chat template: rendered ${JSON.stringify(rendered.slice(0, 120))} differs from the case's prompt ${JSON.stringify(s.prompt.slice(0, 120))}`);
      procSamples.push({ messages: parsed.messages, images, addGenerationPrompt: parsed.addGenerationPrompt });
    } else {
      procSamples.push({ text: s.prompt, images });
    }
  }
  res.template_equal = templateOk;
  const padding = c.meta.padding_side === 'right' ? 'right' : 'left';
  const enc = await processor.encodeBatch(procSamples, { padding, doImageSplitting: split });
  try {
    const refIds = c.ints('input_ids');
    res.input_ids_equal = eqArrays(enc.inputIds.shape as number[], refIds.shape) && eqArrays(enc.ids.flat(), refIds.values);
    if (!res.input_ids_equal) {
      const ours = enc.ids.flat();
      const at = ours.findIndex((v, i) => v !== refIds.values[i]);
      fail(`input_ids: ours ${shapeStr(enc.inputIds.shape)} vs reference ${shapeStr(refIds.shape)}, first difference at flat index ${at}`);
    }
    let masksOk = true;
    if (c.has('attention_mask')) {
      const m = c.ints('attention_mask');
      if (!eqArrays(enc.mask.flat(), m.values)) {
        masksOk = false;
        fail('attention_mask differs');
      }
    }
    if (c.has('pixel_attention_mask')) {
      const m = c.ints('pixel_attention_mask');
      const ours = enc.pixelAttentionMask ? Array.from(enc.pixelAttentionMask.data as Uint8Array) : [];
      if (!eqArrays(ours, m.values)) {
        masksOk = false;
        fail(`pixel_attention_mask differs (ours ${enc.pixelAttentionMask ? shapeStr(enc.pixelAttentionMask.shape) : 'none'}, reference ${shapeStr(m.shape)})`);
      }
    }
    res.masks_equal = masksOk;
    if (c.has('pixel_values')) {
      const ref = c.floats('pixel_values');
      if (!enc.pixelValues) fail(`pixel_values: we made none, the reference has ${shapeStr(ref.shape)}`);
      else comparePixels({ data: enc.pixelValues.data as Float32Array, shape: enc.pixelValues.shape }, ref, res, fail);
    }
  } finally {
    enc.dispose();
  }
}

/** The case's own tensors as model inputs (ids and masks as i32 / u8). */
function caseInputs(c: ParityCase): ModelInputs {
  const ids = c.ints('input_ids');
  const mask = c.has('attention_mask') ? c.ints('attention_mask') : { shape: ids.shape, values: ids.values.map(() => 1) };
  const inputs: ModelInputs = {
    inputIds: tensor(ids.values, ids.shape, { dtype: 'i32' }),
    attentionMask: tensor(mask.values, mask.shape, { dtype: 'i32' }),
  };
  if (c.has('pixel_values')) {
    const pv = c.floats('pixel_values');
    inputs.pixelValues = tensor(pv.data, pv.shape, { dtype: 'f32' });
  }
  if (c.has('pixel_attention_mask')) {
    const pm = c.ints('pixel_attention_mask');
    inputs.pixelAttentionMask = tensor(pm.values, pm.shape, { dtype: 'u8' });
  }
  return inputs;
}

function disposeInputs(i: ModelInputs): void {
  for (const t of [i.inputIds, i.attentionMask, i.pixelValues, i.pixelAttentionMask]) t?.dispose();
}

async function checkModel(c: ParityCase, opts: ParityOptions, res: ParityResult, fail: (m: string) => void): Promise<void> {
  const wantsLogits = c.has('logits') && c.has('input_ids');
  const wantsVision = c.has('vision_last_hidden_state') || c.has('connector_out');
  const wantsGen = c.has('generate') && c.has('input_ids');
  if (!wantsLogits && !wantsVision && !wantsGen) return;
  if (typeof c.meta.adapter === 'string' && !opts.adapter) {
    res.notes.push(`the case was made with the adapter ${c.meta.adapter}: pass --adapter <dir> to check its logits`);
    return;
  }
  const { loadModel } = await import('../models/idefics3/index.js');
  const { idefics3Forward, idefics3NoCacheLM } = await import('../generate/idefics3.js');
  const model = loadModel(opts.model, { dtype: 'f32' });
  try {
    if (opts.adapter) {
      const { loadAdapter } = await import('../train/peft.js');
      loadAdapter(model, opts.adapter);
    }
    if (wantsVision && c.has('pixel_values')) {
      const pv = c.floats('pixel_values');
      const px = tensor(pv.data, pv.shape, { dtype: 'f32' });
      try {
        for (const [key, field, fn] of [
          ['vision_last_hidden_state', 'vision_rel_err', () => model.visionHiddenStates(px)],
          ['connector_out', 'connector_rel_err', () => model.visionFeatures(px)],
        ] as const) {
          if (!c.has(key)) continue;
          const ref = c.floats(key);
          const out = fn();
          try {
            if (out.size !== ref.data.length) fail(`${key}: ours ${shapeStr(out.shape)} vs reference ${shapeStr(ref.shape)}`);
            else {
              const e = relErr(out.toFloat32Array(), ref.data);
              res[field] = e;
              if (!(e <= TOLERANCE.relErr)) fail(`${key}: relative error ${e} > ${TOLERANCE.relErr}`);
            }
          } finally {
            out.dispose();
          }
        }
      } finally {
        px.dispose();
      }
    }
    if (!wantsLogits && !wantsGen) return;
    const inputs = caseInputs(c);
    try {
      if (wantsLogits) {
        const ref = c.floats('logits');
        const mask = c.has('attention_mask') ? c.ints('attention_mask').values : null;
        const out: Tensor = idefics3Forward(model)(inputs);
        try {
          if (out.size !== ref.data.length) fail(`logits: ours ${shapeStr(out.shape)} vs reference ${shapeStr(ref.shape)}`);
          else {
            const V = ref.shape[ref.shape.length - 1]!;
            const e = relErr(out.toFloat32Array(), ref.data, V, mask ? (r) => mask[r] !== 0 : undefined);
            res.logits_rel_err = e;
            if (!(e <= TOLERANCE.relErr)) fail(`logits: relative error ${e} > ${TOLERANCE.relErr}`);
          }
        } finally {
          out.dispose();
        }
      }
      if (wantsGen) {
        const ref = c.ints('generate');
        const n = ref.shape[1]!;
        const gcfg = loadGenerationConfig(opts.model);
        const settings = { maxNewTokens: n, minNewTokens: n, eosTokenIds: gcfg.eosTokenIds };
        const got = await generate(model, inputs, settings);
        const ours = got.rows.flatMap((r) => [...r.tokenIds, ...new Array<number>(n - r.tokenIds.length).fill(gcfg.padTokenId ?? 0)]);
        let equal = eqArrays(ours, ref.values);
        if (!equal) fail(`generate (KV cache): ours ${JSON.stringify(got.rows.map((r) => r.tokenIds))} vs reference ${JSON.stringify(ref.values)}`);
        if (c.has('greedy_nocache')) {
          const refNc = c.ints('greedy_nocache');
          // plain argmax for n steps, no end-of-sequence handling (as the reference's loop)
          const nc = await generate(idefics3NoCacheLM(model), inputs, { maxNewTokens: refNc.shape[1]!, eosTokenIds: [] });
          const oursNc = nc.rows.flatMap((r) => r.tokenIds);
          if (!eqArrays(oursNc, refNc.values)) {
            equal = false;
            fail(`greedy without cache: ours ${JSON.stringify(oursNc)} vs reference ${JSON.stringify(refNc.values)}`);
          }
        }
        res.generate_equal = equal;
      }
    } finally {
      disposeInputs(inputs);
    }
  } finally {
    model.dispose();
  }
}
