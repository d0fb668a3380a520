// The parity check of a contrastive case (clip_logits, siglip_logits: `logits_per_image`, `image_embeds`,
// `text_embeds` from `input_ids`, `attention_mask` and `pixel_values`):
//  1. processing: the case's texts (json "texts") through our tokenizer, padded to the longest as the reference
//     was, against input_ids / attention_mask (exactly); when the json names its images ("images"), our image
//     processor against pixel_values. Without names the pixel values are the model's input as given, checked for
//     their shape (the tower's image size) and finiteness only, and a note says so.
//  2. the model on the case's own tensors: image_embeds, text_embeds, logits_per_image (max|diff| / max|ref|).
import { join } from 'node:path';
import { type Tensor, noGrad, tensor } from '../engine/index.js';
import { loadContrastiveModel } from '../models/index.js';
import { loadImage } from '../processing/decode.js';
import type { ParityCase } from './case.js';
import { relErr } from './compare.js';

export interface ContrastiveFields {
  input_ids_equal: boolean | null;
  masks_equal: boolean | null;
  pixel_values_max_abs: number | null;
  pixel_values_mean_abs: number | null;
  logits_rel_err: number | null;
  image_embeds_rel_err: number | null;
  text_embeds_rel_err: number | null;
  notes: string[];
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;
const strings = (v: unknown): string[] | null => (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? (v as string[]) : null);

export async function checkContrastiveCase(c: ParityCase, opts: { model: string; images?: string; noModel?: boolean }, res: ContrastiveFields,
  tol: { relErr: number; pixelMaxAbs: number; pixelMeanAbs: number }, fail: (m: string) => void, mark: (...names: string[]) => void): Promise<void> {
  const { model, processor } = loadContrastiveModel(opts.model, { dtype: 'f32' });
  const made: Tensor[] = [];
  try {
    const texts = strings(c.meta.texts);
    if (texts && c.has('input_ids')) {
      const ref = c.ints('input_ids');
      const enc = processor.encodeTexts(texts, { padding: 'longest' });
      const ids = enc.ids.flat();
      mark('input_ids');
      res.input_ids_equal = ref.shape[0] === enc.ids.length && ref.shape[1] === enc.ids[0]!.length && ids.every((v, i) => v === ref.values[i]);
      if (!res.input_ids_equal) fail(`input_ids: ours ${JSON.stringify(enc.ids)} vs reference ${shapeStr(ref.shape)} ${JSON.stringify(ref.values)}`);
      if (c.has('attention_mask')) {
        mark('attention_mask');
        const m = c.ints('attention_mask').values;
        res.masks_equal = enc.mask.flat().every((v, i) => v === m[i]) && m.length === enc.mask.flat().length;
        if (!res.masks_equal) fail('attention_mask differs');
      }
    } else res.notes.push('the case json has no "texts": input_ids were used as given, not compared with our tokenizer');
    if (c.has('pixel_values')) {
      const ref = c.floats('pixel_values');
      const S = model.imageSize;
      const names = strings(c.meta.images);
      mark('pixel_values');
      if (names) {
        const imgs = await Promise.all(names.map((n) => loadImage(join(opts.images ?? c.defaultImagesDir, n))));
        const ours = processor.pixelValues(imgs);
        if (ours.data.length !== ref.data.length) fail(`pixel_values: ours ${shapeStr(ours.shape)} vs reference ${shapeStr(ref.shape)}`);
        else {
          let max = 0, sum = 0;
          for (let i = 0; i < ref.data.length; i++) {
            const d = Math.abs(ours.data[i]! - ref.data[i]!);
            max = Number.isNaN(d) || d > max ? d : max;
            sum += d;
          }
          res.pixel_values_max_abs = max;
          res.pixel_values_mean_abs = sum / ref.data.length;
          if (!(max <= tol.pixelMaxAbs)) fail(`pixel_values max |diff| ${max} > ${tol.pixelMaxAbs}`);
          if (!(res.pixel_values_mean_abs <= tol.pixelMeanAbs)) fail(`pixel_values mean |diff| ${res.pixel_values_mean_abs} > ${tol.pixelMeanAbs}`);
        }
      } else {
        res.notes.push(`the case json names no images: pixel_values were checked as the model input only (shape [N, 3, ${S}, ${S}], finite), not against our image processor`);
        if (ref.shape.length !== 4 || ref.shape[1] !== 3 || ref.shape[2] !== S || ref.shape[3] !== S)
          fail(`pixel_values ${shapeStr(ref.shape)} are not [N, 3, ${S}, ${S}] images for this model (vision_config.image_size ${S}): the case was made with another model`);
        else if (!ref.data.every(Number.isFinite)) fail('pixel_values hold NaN or infinite values');
      }
    }
    if (opts.noModel) return;
    const want = ['image_embeds', 'text_embeds', 'logits_per_image'].filter((n) => c.has(n));
    if (!want.length || !c.has('input_ids') || !c.has('pixel_values')) return;
    noGrad(() => {
      const ids = c.ints('input_ids'), pv = c.floats('pixel_values');
      const mask = c.has('attention_mask') ? c.ints('attention_mask') : null;
      const inIds = tensor(ids.values, ids.shape, { dtype: 'i32' });
      const inMask = mask ? tensor(mask.values, mask.shape, { dtype: 'i32' }) : null;
      const inPv = tensor(pv.data, pv.shape, { dtype: 'f32' });
      made.push(inIds, inPv, ...(inMask ? [inMask] : []));
      const img = model.imageEmbeds(inPv);
      const txt = model.textEmbeds(inIds, inMask);
      const logits = model.logitsPerImage(img, txt);
      made.push(img, txt, logits);
      const outs: Record<string, [Tensor, 'image_embeds_rel_err' | 'text_embeds_rel_err' | 'logits_rel_err']> = {
        image_embeds: [img, 'image_embeds_rel_err'], text_embeds: [txt, 'text_embeds_rel_err'], logits_per_image: [logits, 'logits_rel_err'],
      };
      for (const name of want) {
        const [out, field] = outs[name]!;
        const ref = c.floats(name);
        mark(name);
        if (out.size !== ref.data.length) {
          fail(`${name}: ours ${shapeStr(out.shape)} vs reference ${shapeStr(ref.shape)}`);
          continue;
        }
        const e = relErr(out.toFloat32Array(), ref.data);
        res[field] = e;
        if (!(e <= tol.relErr)) fail(`${name}: relative error ${e} > ${tol.relErr}`);
      }
    });
  } finally {
    for (const t of made) t.dispose();
    model.dispose();
  }
}
