// The quantized checkpoint vlmkit writes (`vlmkit quantize`) and reads (docs/quantization.md):
//   model.safetensors   every tensor under its transformers name; the block-quantized linear weights as U8
//                       tensors of their packed bytes (QuantizedWeight.bytes: ggml's Q8_0/Q4_0 blocks, or NF4's
//                       codes and statistics as src/engine/quant/nf4.ts lays them out), the rest as in the source
//   "__metadata__"      "vlmkit.quant": JSON {"format", "double_quant", "tensors": {name: [out, in]}, "formats"?:
//                       {name: format}} ("formats": the tensors packed in another format than the file's, e.g. an
//                       NF4 model's Q8_0 token embeddings; absent when there are none)
//   config.json         the source's, plus "vlmkit_quantization": {"format", "double_quant"} (for people and `info`)
// and the source's other files (tokenizer, processor, chat template, generation config) as they were.
import { type QuantFormat, QUANT_FORMATS } from '../engine/index.js';
import { FileFormatError } from '../errors.js';

export const QUANT_METADATA_KEY = 'vlmkit.quant';

export interface QuantEntry {
  format: QuantFormat;
  doubleQuant: boolean;
  shape: [number, number];
}

interface QuantMetadata {
  format: QuantFormat;
  double_quant: boolean;
  tensors: Record<string, [number, number]>;
  formats?: Record<string, QuantFormat>;
}

const cache = new WeakMap<Record<string, string>, QuantMetadata | null>();

function parse(meta: Record<string, string>, file: string): QuantMetadata | null {
  if (cache.has(meta)) return cache.get(meta)!;
  const raw = meta[QUANT_METADATA_KEY];
  let out: QuantMetadata | null = null;
  if (raw !== undefined) {
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      throw new FileFormatError(`${file}: metadata "${QUANT_METADATA_KEY}" is not JSON; re-run vlmkit quantize`);
    }
    const m = v as Partial<QuantMetadata>;
    if (typeof m !== 'object' || m === null || !(QUANT_FORMATS as readonly unknown[]).includes(m.format) || typeof m.tensors !== 'object' || m.tensors === null)
      throw new FileFormatError(`${file}: metadata "${QUANT_METADATA_KEY}" needs a format (${QUANT_FORMATS.join(', ')}) and a tensors object; re-run vlmkit quantize`);
    if (m.formats !== undefined && (typeof m.formats !== 'object' || m.formats === null || !Object.values(m.formats).every((f) => (QUANT_FORMATS as readonly unknown[]).includes(f))))
      throw new FileFormatError(`${file}: metadata "${QUANT_METADATA_KEY}" has a "formats" entry that is not a map of tensor names to ${QUANT_FORMATS.join(', ')}; re-run vlmkit quantize`);
    out = { format: m.format!, double_quant: m.double_quant !== false, tensors: m.tensors, ...(m.formats && { formats: m.formats }) };
  }
  cache.set(meta, out);
  return out;
}

/** How the U8 tensor `name` of `file` is quantized, from its file's metadata; a clear error if it is not listed. */
export function quantEntry(meta: Record<string, string>, name: string, file: string): QuantEntry {
  const m = parse(meta, file);
  const shape = m?.tensors[name];
  if (!m || !Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new FileFormatError(`tensor "${name}" in ${file} is U8 but the file's "${QUANT_METADATA_KEY}" metadata does not give its [out, in]; ` +
      'vlmkit reads packed weights only from checkpoints written by vlmkit quantize');
  const format = m.formats?.[name] ?? m.format;
  return { format, doubleQuant: format === 'nf4' && m.double_quant, shape: [shape[0], shape[1]] };
}

/**
 * The metadata value for a file of `format` holding these quantized tensors ([out, in] by name); `formats` names
 * those packed in another format (they are listed under "formats").
 */
export function quantMetadata(format: QuantFormat, doubleQuant: boolean, tensors: ReadonlyMap<string, readonly number[]>, formats: ReadonlyMap<string, QuantFormat> = new Map()): string {
  const t: Record<string, number[]> = {};
  for (const [n, s] of tensors) t[n] = [s[0], s[1]];
  const other: Record<string, QuantFormat> = {};
  for (const [n, f] of formats) if (f !== format) other[n] = f;
  return JSON.stringify({ format, double_quant: format === 'nf4' && doubleQuant, tensors: t, ...(Object.keys(other).length > 0 && { formats: other }) });
}
