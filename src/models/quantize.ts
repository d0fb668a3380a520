// `vlmkit quantize`: a model folder -> a quantized model folder in the layout of quantized-file.ts (packed U8
// weights + "vlmkit.quant" metadata, config.json marked, the tokenizer/processor files copied). The folder is
// written whole or not at all: into a temporary sibling, renamed into place at the end.
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { QUANT_FORMATS, type QuantFormat, f32ToBf16, f32ToF16 } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { Checkpoint, ModelDir, isModelSideFile } from '../io/model-dir.js';
import { type SafetensorsEntry, type WritableDType, writeDirAtomic, writeSafetensors, writeTextFileAtomic } from '../io/safetensors-write.js';
import { loadModel as loadIdefics3Model } from './idefics3/model.js';
import { QUANT_METADATA_KEY, quantMetadata } from './quantized-file.js';
import { readModelConfig } from './index.js';

export interface QuantizeCheckpointOptions {
  /** NF4: double-quantize the block absmax (default true, as bitsandbytes' compress_statistics) */
  doubleQuant?: boolean;
  /** called after each weight is quantized */
  onWeight?: (name: string, done: number, total: number) => void;
}

export interface QuantizeCheckpointResult {
  /** weights stored in the block format */
  quantized: number;
  /** tensors kept as they were (embeddings, norms, biases, the patch embedding, ...) */
  kept: number;
  /** bytes of model.safetensors' tensor data */
  bytes: number;
}

/** Checks a --to / --quant value; one line listing the formats otherwise. */
export function checkQuantFormat(v: string, flag: string): QuantFormat {
  if (!(QUANT_FORMATS as readonly string[]).includes(v)) throw new VlmkitError('E_ARGS', `${flag} takes one of ${QUANT_FORMATS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as QuantFormat;
}

/** The dtype each tensor has in the source files, by name (a kept tensor is written back in it). */
function sourceDtypes(src: string): Map<string, string> {
  const ck = Checkpoint.open(src);
  try {
    return new Map(ck.names().map((n) => [n, ck.info(n).dtype]));
  } finally {
    ck.close();
  }
}

function floatsAs(f: Float32Array, to: WritableDType): ArrayBufferView {
  if (to === 'F32') return f;
  const h = new Uint16Array(f.length);
  const conv = to === 'BF16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < f.length; i++) h[i] = conv(f[i]!);
  return h;
}

/**
 * Quantizes the model in `src` to `format` and writes it to `out` (which must not exist yet, or be empty). Which
 * weights are quantized is Idefics3Model.quantize's choice (docs/quantization.md); the others are written in their
 * source dtype (norms and biases, which load as f32, go back to it exactly).
 */
export function quantizeCheckpoint(src: string, out: string, format: QuantFormat, o: QuantizeCheckpointOptions = {}): QuantizeCheckpointResult {
  const md = ModelDir.of(src);
  const { family } = readModelConfig(md);
  if (family !== 'idefics3') throw new VlmkitError('E_ARGS', `vlmkit quantize reads SmolVLM / Idefics3 checkpoints; ${src} is ${family}`);
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0))
    throw new VlmkitError('E_ARGS', `--out ${out} already exists and is not an empty folder; give a new folder (or remove it first)`);
  const stored = sourceDtypes(src);
  const model = loadIdefics3Model(md);
  try {
    if (model.quantizedWeights().size > 0)
      throw new VlmkitError('E_ARGS', `${src} is already quantized (${[...model.quantizedWeights().values()][0]!.format}); quantize the 16/32-bit model it came from`);
    model.quantize(format, { doubleQuant: o.doubleQuant, onWeight: o.onWeight });
    const packed = model.quantizedWeights();
    if (packed.size === 0) throw new VlmkitError('E_QUANT', `${src}: no linear of this model has an input size that is a multiple of ${format}'s block; nothing to quantize`);
    const entries: SafetensorsEntry[] = [];
    let bytes = 0;
    for (const [name, t] of model.parameters()) {
      const sd = stored.get(name) ?? stored.get(name.replace(/^model\./, ''));
      const dtype: WritableDType = sd === 'F32' || sd === 'BF16' || sd === 'F16' ? sd : 'F32';
      bytes += t.size * (dtype === 'F32' ? 4 : 2);
      const same = (t.dtype === 'f32' && dtype === 'F32') || (t.dtype === 'bf16' && dtype === 'BF16') || (t.dtype === 'f16' && dtype === 'F16');
      entries.push({ name, dtype, shape: t.shape, data: () => (same && t.isContiguous() ? t.data as ArrayBufferView : floatsAs(t.toFloat32Array(), dtype)) });
    }
    const shapes = new Map<string, readonly number[]>(), formats = new Map<string, QuantFormat>();
    for (const [name, w] of packed) {
      shapes.set(name, w.shape);
      formats.set(name, w.format);
      bytes += w.bytes.length;
      entries.push({ name, dtype: 'U8', shape: [w.bytes.length], data: w.bytes });
    }
    const doubleQuant = format === 'nf4' && (o.doubleQuant ?? true);
    const config = { ...(md.config() as Record<string, unknown>), vlmkit_quantization: { format, double_quant: doubleQuant } };
    writeDirAtomic(out, (tmp) => {
      for (const f of readdirSync(src)) {
        const p = join(src, f);
        if (f !== 'config.json' && isModelSideFile(f) && statSync(p).isFile()) copyFileSync(p, join(tmp, f));
      }
      writeTextFileAtomic(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
      writeSafetensors(join(tmp, 'model.safetensors'), entries, { format: 'pt', [QUANT_METADATA_KEY]: quantMetadata(format, doubleQuant, shapes, formats) });
    });
    return { quantized: packed.size, kept: entries.length - packed.size, bytes };
  } finally {
    model.dispose();
  }
}
