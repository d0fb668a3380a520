// The parity check of one reference case against vlmkit, as `npm run parity` runs it:
//  1. processing: our chat template, tokenizer and image processor on the case's prompt(s) and images, compared
//     with the case's input_ids / attention_mask / pixel_attention_mask (exactly) and pixel_values (max/mean |diff|);
//  2. the model on the case's own tensors: logits (max|diff| / max|ref|, over real tokens: logits at padding
//     positions are not defined by anything), or the vision tower / connector outputs;
//  3. when the case has `generate` (and `greedy_nocache`), greedy generation with the KV cache (and without one),
//     token for token, with transformers' settings (min_new_tokens = max_new_tokens = the case's count).
// Tolerances are those of the fixtures' README.
import { join } from 'node:path';
import { tensor } from '../engine/index.js';
import type { Tensor } from '../engine/tensor.js';
import { countMedia } from '../processing/chat-template.js';
import {
  type ImageGrid, type Processor, type ProcessorSample, type VideoPromptInfo, hostInts, imageGridForSize, loadProcessor, processImages, videoFrameTimestamps,
  loadVideoProcessorConfig, processVideoFrames, videoFrameToSquare,
} from '../models/index.js';
import { IGNORE_INDEX, SftCollator, encodeConversation } from '../train/collate.js';
import { loadImage } from '../processing/decode.js';
import { noCacheLM } from '../generate/no-cache.js';
import { loadGenerationConfig } from '../generate/stopping.js';
import { generate } from '../generate/generate.js';
import type { ModelInputs } from '../generate/types.js';
import { relErr } from './compare.js';
import { checkContrastiveCase } from './contrastive.js';
import { ParityCase, caseSamples, npyShape, readNpyU8, parseSmolVlmPrompt, type CaseSample, type FloatTensor } from './case.js';

export { relErr };

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
  /** training cases: labels (and labels_completion) from our collator equal the case's */
  labels_equal: boolean | null;
  vision_rel_err: number | null;
  connector_rel_err: number | null;
  /** training cases (src/parity/train.ts): loss, worst gradient, worst tensor after the AdamW step, completion loss */
  loss_rel_err: number | null;
  grads_max_rel_err: number | null;
  after_step_max_rel_err: number | null;
  loss_completion_rel_err: number | null;
  /** contrastive cases (src/parity/contrastive.ts): image_embeds and text_embeds (logits_per_image: logits_rel_err) */
  image_embeds_rel_err: number | null;
  text_embeds_rel_err: number | null;
  /** the case's tensors nothing compared (the case is then not ok: see notes for why) */
  unchecked: string[];
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

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Marks case tensors as compared (whatever the outcome); the ones never marked are reported unchecked. */
type Mark = (...names: string[]) => void;
type Fail = (m: string) => void;

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
    labels_equal: null,
    vision_rel_err: null,
    connector_rel_err: null,
    loss_rel_err: null,
    grads_max_rel_err: null,
    after_step_max_rel_err: null,
    loss_completion_rel_err: null,
    image_embeds_rel_err: null,
    text_embeds_rel_err: null,
    unchecked: [],
    failures: [],
    notes: [],
  };
  const fail: Fail = (m) => res.failures.push(m);
  const compared = new Set<string>();
  const mark: Mark = (...names) => {
    for (const n of names) if (c.has(n)) compared.add(n);
  };
  let all: string[];
  try {
    all = c.names();
    if (c.has('logits_per_image')) {
      // a contrastive (CLIP / SigLIP) case: its own checks, nothing of the VLM path applies
      await checkContrastiveCase(c, opts, res, TOLERANCE, fail, mark);
    } else {
      await checkProcessing(c, opts, res, fail, mark);
    }
    if (!opts.noModel && !c.has('logits_per_image')) {
      await checkModel(c, opts, res, fail, mark);
      await (await import('./train.js')).checkTrainCase(c.path, opts.model, opts.adapter, res, fail, (m) => res.notes.push(m), mark,
        { imagesDir: opts.images ?? c.defaultImagesDir, meta: c.meta as Record<string, unknown> });
    }
  } finally {
    c.close();
  }
  res.unchecked = all.filter((n) => !compared.has(n)).sort();
  // a case passes only when every tensor it holds was compared; a partly checked one is neither passed nor failed
  res.ok = res.failures.length > 0 ? false : compared.size > 0 && res.unchecked.length === 0 ? true : null;
  if (opts.noModel && res.unchecked.length) res.notes.push('--no-model: the model outputs were not compared');
  if (compared.size === 0 && res.notes.length === 0) res.notes.push('the case holds nothing this tool checks (no prompt/input_ids, logits, vision outputs, generate or training tensors)');
  return res;
}

function comparePixels(ours: { data: Float32Array; shape: readonly number[] }, ref: FloatTensor, res: ParityResult, fail: Fail): void {
  if (ours.data.length !== ref.data.length) {
    fail(`pixel_values: ours ${shapeStr(ours.shape)} vs reference ${shapeStr(ref.shape)}`);
    return;
  }
  let max = 0;
  let sum = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(ours.data[i]! - ref.data[i]!);
    if (Number.isNaN(d)) {
      // a NaN anywhere fails the case (a running max would drop it at the next number)
      max = sum = NaN;
      break;
    }
    if (d > max) max = d;
    sum += d;
  }
  res.pixel_values_max_abs = max;
  res.pixel_values_mean_abs = ref.data.length ? sum / ref.data.length : 0;
  if (!(max <= TOLERANCE.pixelMaxAbs)) fail(`pixel_values max |diff| ${max} > ${TOLERANCE.pixelMaxAbs}`);
  if (!(res.pixel_values_mean_abs <= TOLERANCE.pixelMeanAbs)) fail(`pixel_values mean |diff| ${res.pixel_values_mean_abs} > ${TOLERANCE.pixelMeanAbs}`);
}

/** What our processing made of a case's samples, to compare with its tensors. */
interface OurBatch {
  shape: readonly number[];
  ids: readonly number[];
  mask: readonly number[];
  /** [B, T] unshifted labels (training cases) */
  labels?: readonly number[];
  labelsCompletion?: readonly number[];
  pixelMask?: { shape: readonly number[]; values: readonly number[] } | null;
  pixels?: { shape: readonly number[]; data: Float32Array } | null;
}

/** input_ids, attention_mask, labels, pixel_attention_mask and pixel_values (those `ours` has) against the case. */
function compareBatch(c: ParityCase, ours: OurBatch, res: ParityResult, fail: Fail, mark: Mark): void {
  const refIds = c.ints('input_ids');
  mark('input_ids');
  res.input_ids_equal = eqArrays(ours.shape as number[], refIds.shape) && eqArrays(ours.ids, refIds.values);
  if (!res.input_ids_equal) {
    const at = ours.ids.findIndex((v, i) => v !== refIds.values[i]);
    fail(`input_ids: ours ${shapeStr(ours.shape)} vs reference ${shapeStr(refIds.shape)}, first difference at flat index ${at}`);
  }
  let masksOk = true;
  if (c.has('attention_mask')) {
    mark('attention_mask');
    if (!eqArrays(ours.mask, c.ints('attention_mask').values)) {
      masksOk = false;
      fail('attention_mask differs');
    }
  }
  if (c.has('pixel_attention_mask') && ours.pixelMask !== undefined) {
    const m = c.ints('pixel_attention_mask');
    mark('pixel_attention_mask');
    if (!ours.pixelMask || !eqArrays(ours.pixelMask.shape, m.shape) || !eqArrays(ours.pixelMask.values, m.values)) {
      masksOk = false;
      fail(`pixel_attention_mask differs (ours ${ours.pixelMask ? shapeStr(ours.pixelMask.shape) : 'none'}, reference ${shapeStr(m.shape)})`);
    }
  }
  res.masks_equal = masksOk;
  for (const [key, got] of [['labels', ours.labels], ['labels_completion', ours.labelsCompletion]] as const) {
    if (!c.has(key) || got === undefined) continue;
    mark(key);
    const ref = c.ints(key);
    const same = eqArrays(got, ref.values);
    res.labels_equal = (res.labels_equal ?? true) && same;
    if (!same) fail(`${key}: ours differ from the reference at flat index ${got.findIndex((v, i) => v !== ref.values[i])} (of ${ref.values.length})`);
  }
  if (c.has('pixel_values') && ours.pixels !== undefined) {
    const ref = c.floats('pixel_values');
    mark('pixel_values');
    if (!ours.pixels) fail(`pixel_values: we made none, the reference has ${shapeStr(ref.shape)}`);
    else comparePixels(ours.pixels, ref, res, fail);
  }
}

/** Renders each parsed conversation with our chat template and compares it with the case's prompt. */
function checkTemplate(processor: Processor, prompts: readonly string[], parsed: readonly (ReturnType<typeof parseSmolVlmPrompt>)[], res: ParityResult, fail: Fail): void {
  let templateOk: boolean | null = null;
  parsed.forEach((p, i) => {
    if (!p) return;
    // rendered through PromptBuilder.build (a conversation with a video takes SmolVLM's video template there, as in
    // transformers' processor); the placeholder media only let it expand, the rendered prompt does not use them
    const n = countMedia(p.messages);
    const media = { images: new Array<ImageGrid>(n.images).fill({ rows: 0, cols: 0 }), videos: new Array<VideoPromptInfo>(n.videos).fill({ timestamps: [], duration: 0 }) };
    const rendered = processor.prompt.build(p.messages, media, { addGenerationPrompt: p.addGenerationPrompt }).prompt;
    const same = rendered === prompts[i];
    templateOk = (templateOk ?? true) && same;
    if (!same) fail(`chat template: rendered ${JSON.stringify(rendered.slice(0, 120))} differs from the case's prompt ${JSON.stringify(prompts[i]!.slice(0, 120))}`);
  });
  res.template_equal = templateOk;
}

async function checkProcessing(c: ParityCase, opts: ParityOptions, res: ParityResult, fail: Fail, mark: Mark): Promise<void> {
  const imagesDir = opts.images ?? c.defaultImagesDir;
  // a DPO pair (chosen_input_ids, rejected_input_ids) is processed by the preference data code in train.ts
  if (c.has('chosen_input_ids')) return;
  const samples = caseSamples(c.meta);
  const split = typeof c.meta.do_image_splitting === 'boolean' ? c.meta.do_image_splitting : undefined;
  if (!samples) {
    // an image alone (vision tower / connector cases): the image processor only
    const img = c.meta.image;
    if (typeof img === 'string' && c.has('pixel_values')) {
      const ref = c.floats('pixel_values');
      const processor = loadProcessor(opts.model);
      // such cases store the tiles of one image; a single tile means splitting was off
      const tiles = ref.shape.length === 4 ? ref.shape[0]! : ref.shape.length === 5 ? ref.shape[1]! : 0;
      const cfg = { ...processor.imageConfig, ...(split !== undefined ? { doImageSplitting: split } : tiles === 1 ? { doImageSplitting: false } : {}) };
      const p = processImages([[await loadImage(join(imagesDir, img))]], cfg);
      mark('pixel_values');
      comparePixels({ data: p.pixelValues, shape: p.pixelValuesShape }, ref, res, fail);
    }
    return;
  }
  if (!c.has('input_ids')) {
    res.notes.push('no input_ids in the case: prompt processing not compared');
    return;
  }
  const processor = loadProcessor(opts.model, split !== undefined ? { doImageSplitting: split } : {});
  const parsed = samples.map((s) => parseSmolVlmPrompt(s.prompt));
  if (c.has('labels')) {
    await checkTrainingBatch(c, processor, samples, parsed, imagesDir, res, fail, mark);
    return;
  }
  if (samples.some((s) => s.prompt.includes('<video>'))) {
    await checkVideo(c, processor, samples, parsed, imagesDir, res, fail, mark);
    return;
  }
  checkTemplate(processor, samples.map((s) => s.prompt), parsed, res, fail);
  const procSamples: ProcessorSample[] = samples.map((s, i) => {
    const images = s.images.map((n) => join(imagesDir, n));
    const p = parsed[i];
    return p ? { messages: p.messages, images, addGenerationPrompt: p.addGenerationPrompt } : { text: s.prompt, images };
  });
  const padding = c.meta.padding_side === 'right' ? 'right' : 'left';
  const enc = await processor.encodeBatch(procSamples, { padding, doImageSplitting: split });
  try {
    compareBatch(c, {
      shape: enc.inputIds.shape,
      ids: enc.ids.flat(),
      mask: enc.mask.flat(),
      pixelMask: enc.pixelAttentionMask ? { shape: enc.pixelAttentionMask.shape, values: Array.from(enc.pixelAttentionMask.data as Uint8Array) } : null,
      pixels: enc.pixelValues ? { shape: enc.pixelValues.shape, data: enc.pixelValues.data as Float32Array } : null,
    }, res, fail, mark);
  } finally {
    enc.dispose();
  }
}

/**
 * A training case (`labels`): its whole conversations and images through the SFT collator, as `vlmkit train sft`
 * makes a batch (right padding, pad and <image> -> -100; `labels_completion` with the assistant replies only).
 */
async function checkTrainingBatch(c: ParityCase, processor: Processor, samples: readonly CaseSample[], parsed: readonly (ReturnType<typeof parseSmolVlmPrompt>)[],
  imagesDir: string, res: ParityResult, fail: Fail, mark: Mark): Promise<void> {
  const bad = parsed.findIndex((p) => !p || p.addGenerationPrompt);
  if (bad >= 0) {
    fail(`sample ${bad}: ${JSON.stringify(samples[bad]!.prompt.slice(0, 80))} is not a whole SmolVLM conversation (User:/Assistant: turns, each ending in <end_of_utterance>), so its labels cannot be rebuilt`);
    return;
  }
  checkTemplate(processor, samples.map((s) => s.prompt), parsed, res, fail);
  const images = await Promise.all(samples.map((s) => processor.loadImages(s.images.map((n) => join(imagesDir, n)))));
  const cfg = processor.imageConfigFor();
  const items = parsed.map((p, i) => {
    const grids = images[i]!.map((im) => imageGridForSize(im.width, im.height, cfg));
    return { ...encodeConversation(processor.prompt, p!.messages, grids), grids };
  });
  const batch = new SftCollator(processor).collate(items, images);
  try {
    const completion = new SftCollator(processor, { assistantOnly: true });
    const T = batch.seqLen;
    const labelsCompletion = items.flatMap((x) => {
      const l = completion.labels(x);
      return [...l, ...new Array<number>(T - l.length).fill(IGNORE_INDEX)];
    });
    compareBatch(c, {
      shape: batch.inputIds.shape,
      ids: Array.from(batch.ids),
      mask: Array.from(hostInts(batch.attentionMask)),
      labels: Array.from(batch.labels),
      labelsCompletion,
      pixelMask: batch.pixelAttentionMask ? { shape: batch.pixelAttentionMask.shape, values: Array.from(hostInts(batch.pixelAttentionMask)) } : null,
      pixels: batch.pixelValues ? { shape: batch.pixelValues.shape, data: batch.pixelValues.toFloat32Array() } : null,
    }, res, fail, mark);
  } finally {
    batch.dispose();
  }
}

/**
 * A SmolVLM2 video case: the prompt expanded for the case's frames (`frames`, an .npy of [N, H, W, 3] uint8 in
 * the images folder, every frame used, as the reference's do_sample_frames=False; `fps`, `duration`), tokenized,
 * and the frames through the video processor (longest edge, then the square, never split) into pixel_values and
 * pixel_attention_mask.
 */
async function checkVideo(c: ParityCase, processor: Processor, samples: readonly CaseSample[], parsed: readonly (ReturnType<typeof parseSmolVlmPrompt>)[],
  imagesDir: string, res: ParityResult, fail: Fail, mark: Mark): Promise<void> {
  const { frames, fps, duration } = c.meta;
  if (samples.length !== 1 || typeof frames !== 'string' || typeof fps !== 'number' || typeof duration !== 'number') {
    fail(`${c.name}.json: a video case needs one prompt with "frames" (an .npy file name), "fps" and "duration" (numbers)`);
    return;
  }
  const npy = readNpyU8(join(imagesDir, frames));
  const [count, H, W, C] = npy.shape;
  if (!count || npy.shape.length !== 4 || C !== 3) {
    fail(`${join(imagesDir, frames)} holds no [N, H, W, 3] frames (shape [${npy.shape.join(', ')}])`);
    return;
  }
  const video = { timestamps: videoFrameTimestamps(Array.from({ length: count }, (_, i) => i), fps), duration };
  const p = parsed[0];
  checkTemplate(processor, [samples[0]!.prompt], parsed, res, fail);
  const built = p ? processor.prompt.build(p.messages, { videos: [video] }, { addGenerationPrompt: p.addGenerationPrompt }) : processor.prompt.buildText(samples[0]!.prompt, { videos: [video] });
  const want = c.meta.expanded_text;
  if (typeof want === 'string' && built.text !== want) {
    let at = 0;
    while (at < built.text.length && built.text[at] === want[at]) at++;
    fail(`expanded video prompt differs from the case's expanded_text at character ${at}: ours ${JSON.stringify(built.text.slice(Math.max(0, at - 20), at + 40))}`);
  }
  const vcfg = loadVideoProcessorConfig(processor.dir);
  const size = H! * W! * 3;
  const squares = Array.from({ length: count }, (_, i) => videoFrameToSquare({ width: W!, height: H!, data: npy.data.subarray(i * size, (i + 1) * size) }, vcfg.image));
  const px = processVideoFrames([squares], vcfg.image);
  const n = built.inputIds.length;
  compareBatch(c, {
    shape: [1, n], ids: built.inputIds, mask: new Array<number>(n).fill(1),
    pixelMask: { shape: px.pixelAttentionMaskShape, values: Array.from(px.pixelAttentionMask) },
    pixels: { shape: px.pixelValuesShape, data: px.pixelValues },
  }, res, fail, mark);
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

async function checkModel(c: ParityCase, opts: ParityOptions, res: ParityResult, fail: Fail, mark: Mark): Promise<void> {
  const wantsLogits = c.has('logits') && c.has('input_ids');
  const wantsVision = c.has('vision_last_hidden_state') || c.has('connector_out');
  const wantsGen = c.has('generate') && c.has('input_ids');
  if (!wantsLogits && !wantsVision && !wantsGen) return;
  if (typeof c.meta.adapter === 'string' && !opts.adapter) {
    res.notes.push(`the case was made with the adapter ${c.meta.adapter}: pass --adapter <dir> to check its model outputs`);
    return;
  }
  const { loadModelWeights } = await import('../models/index.js');
  const model = loadModelWeights(opts.model, { dtype: 'f32' });
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
          mark(key);
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
        mark('logits');
        const mask = c.has('attention_mask') ? c.ints('attention_mask').values : null;
        const out: Tensor = model.logits(inputs);
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
        mark('generate');
        const n = ref.shape[1]!;
        const gcfg = loadGenerationConfig(opts.model);
        const settings = { maxNewTokens: n, minNewTokens: n, eosTokenIds: gcfg.eosTokenIds };
        const got = await generate(model, inputs, settings);
        const ours = got.rows.flatMap((r) => [...r.tokenIds, ...new Array<number>(n - r.tokenIds.length).fill(gcfg.padTokenId ?? 0)]);
        let equal = eqArrays(ours, ref.values);
        if (!equal) fail(`generate (KV cache): ours ${JSON.stringify(got.rows.map((r) => r.tokenIds))} vs reference ${JSON.stringify(ref.values)}`);
        if (c.has('greedy_nocache')) {
          const refNc = c.ints('greedy_nocache');
          mark('greedy_nocache');
          // plain argmax for n steps, no end-of-sequence handling (as the reference's loop)
          const nc = await generate(noCacheLM((x) => model.logits(x), { vocabSize: model.vocabSize, maxPositions: model.maxPositions, passPositions: false }), inputs, { maxNewTokens: refNc.shape[1]!, eosTokenIds: [] });
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
