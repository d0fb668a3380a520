// A random-weight checkpoint directory of SmolVLM-256M-Instruct's exact shape, for the benches (generation,
// training): config.json in the transformers 4.x form, preprocessor/processor configs (longest_edge 2048,
// max_image_size 512, image_seq_len 64), the tokenizer files of the tiny-smolvlm fixture (its special tokens have
// the ids the config names; generated ids past its small vocabulary are never decoded by the benches), and a
// model.safetensors written tensor by tensor with src/io/safetensors-write.ts (never assembled in memory).
// Weights are drawn from a normal distribution of std 0.02 (norm weights 1, biases 0), so activations stay finite
// through the 30 + 12 layers.
//
//   const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-'));
//   writeRandomSmolVLM(dir, { dtype: 'bf16' });
//   ...; rmSync(dir, { recursive: true, force: true });
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '../src/io/safetensors-write.js';

/** SmolVLM-256M-Instruct's shape. */
export const SMOLVLM_256M = {
  vision: { hidden: 768, layers: 12, heads: 12, mlp: 3072, imageSize: 512, patch: 16 },
  scaleFactor: 4,
  imageSeqLen: 64,
  text: { hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, mlp: 1536, vocab: 49280, ropeTheta: 100000, maxPositions: 8192 },
} as const;

export interface RandomModelOptions {
  /** dtype of every tensor in model.safetensors (default 'bf16', as the released checkpoint) */
  dtype?: 'bf16' | 'f16' | 'f32';
  /** seed of the weights (default 1) */
  seed?: number;
  /** fewer text layers (quick tests); default 30 */
  textLayers?: number;
  /** fewer vision layers (quick tests); default 12 */
  visionLayers?: number;
}

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'reference', 'tiny-smolvlm');
/** ids of the tiny tokenizer's special tokens (the config must name the same <image> id as the tokenizer) */
const IMAGE_TOKEN_ID = 5;

type Init = 'normal' | 'ones' | 'zeros';
interface Spec {
  name: string;
  shape: number[];
  init: Init;
}

function specs(o: Required<Pick<RandomModelOptions, 'textLayers' | 'visionLayers'>>): Spec[] {
  const v = SMOLVLM_256M.vision, t = SMOLVLM_256M.text;
  const out: Spec[] = [];
  const add = (name: string, shape: number[], init: Init = 'normal') => out.push({ name, shape, init });
  const D = v.hidden, side = v.imageSize / v.patch;
  add('model.vision_model.embeddings.patch_embedding.weight', [D, 3, v.patch, v.patch]);
  add('model.vision_model.embeddings.patch_embedding.bias', [D], 'zeros');
  add('model.vision_model.embeddings.position_embedding.weight', [side * side, D]);
  for (let i = 0; i < o.visionLayers; i++) {
    const p = `model.vision_model.encoder.layers.${i}`;
    const lin = (n: string, rows: number, cols: number) => {
      add(`${p}.${n}.weight`, [rows, cols]);
      add(`${p}.${n}.bias`, [rows], 'zeros');
    };
    add(`${p}.layer_norm1.weight`, [D], 'ones');
    add(`${p}.layer_norm1.bias`, [D], 'zeros');
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) lin(`self_attn.${n}`, D, D);
    add(`${p}.layer_norm2.weight`, [D], 'ones');
    add(`${p}.layer_norm2.bias`, [D], 'zeros');
    lin('mlp.fc1', v.mlp, D);
    lin('mlp.fc2', D, v.mlp);
  }
  add('model.vision_model.post_layernorm.weight', [D], 'ones');
  add('model.vision_model.post_layernorm.bias', [D], 'zeros');
  const H = t.hidden, r2 = SMOLVLM_256M.scaleFactor ** 2;
  add('model.connector.modality_projection.proj.weight', [H, D * r2]);
  add('model.text_model.embed_tokens.weight', [t.vocab, H]);
  const qd = t.heads * t.headDim, kvd = t.kvHeads * t.headDim;
  for (let i = 0; i < o.textLayers; i++) {
    const p = `model.text_model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [H], 'ones');
    add(`${p}.self_attn.q_proj.weight`, [qd, H]);
    add(`${p}.self_attn.k_proj.weight`, [kvd, H]);
    add(`${p}.self_attn.v_proj.weight`, [kvd, H]);
    add(`${p}.self_attn.o_proj.weight`, [H, qd]);
    add(`${p}.post_attention_layernorm.weight`, [H], 'ones');
    add(`${p}.mlp.gate_proj.weight`, [t.mlp, H]);
    add(`${p}.mlp.up_proj.weight`, [t.mlp, H]);
    add(`${p}.mlp.down_proj.weight`, [H, t.mlp]);
  }
  add('model.text_model.norm.weight', [H], 'ones');
  // tie_word_embeddings: no lm_head.weight, as the released checkpoint
  return out;
}

/** 4096 samples of N(0, 0.02²) (Box-Muller, fixed seed): drawn from at random, fast enough for 230M weights. */
function normalTable(): Float32Array {
  let s = 0x9e3779b9;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const t = new Float32Array(4096);
  for (let i = 0; i < t.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), a = 2 * Math.PI * u();
    t[i] = 0.02 * r * Math.cos(a);
    t[i + 1] = 0.02 * r * Math.sin(a);
  }
  return t;
}

const f32Bits = new Uint32Array(1), f32View = new Float32Array(f32Bits.buffer);
function toBf16(x: number): number {
  f32View[0] = x;
  const b = f32Bits[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even (no NaNs here)
}
function toF16(x: number): number {
  // finite values of magnitude < 65504; subnormals flushed to zero (irrelevant at std 0.02 for timing)
  f32View[0] = x;
  const b = f32Bits[0];
  const sign = (b >>> 16) & 0x8000, e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  const m = b & 0x7fffff;
  let h = sign | (e << 10) | (m >>> 13);
  if ((m & 0x1fff) > 0x1000 || ((m & 0x1fff) === 0x1000 && (h & 1))) h++;
  return h;
}

/**
 * Writes config.json, preprocessor_config.json, processor_config.json, generation_config.json, the tokenizer files
 * and model.safetensors of a random SmolVLM-256M-Instruct into `dir` (which must exist). Returns the number of
 * parameters written.
 */
export function writeRandomSmolVLM(dir: string, opts: RandomModelOptions = {}): { params: number; bytes: number } {
  const dtype = opts.dtype ?? 'bf16';
  const textLayers = opts.textLayers ?? SMOLVLM_256M.text.layers;
  const visionLayers = opts.visionLayers ?? SMOLVLM_256M.vision.layers;
  const v = SMOLVLM_256M.vision, t = SMOLVLM_256M.text;
  const config = {
    architectures: ['Idefics3ForConditionalGeneration'],
    image_token_id: IMAGE_TOKEN_ID,
    model_type: 'idefics3',
    pad_token_id: 2,
    scale_factor: SMOLVLM_256M.scaleFactor,
    text_config: {
      architectures: ['VLlama3ForCausalLM'],
      attention_bias: false,
      bos_token_id: 1,
      eos_token_id: 3,
      head_dim: t.headDim,
      hidden_act: 'silu',
      hidden_size: t.hidden,
      intermediate_size: t.mlp,
      max_position_embeddings: t.maxPositions,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: t.heads,
      num_hidden_layers: textLayers,
      num_key_value_heads: t.kvHeads,
      pad_token_id: 2,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: t.ropeTheta,
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
      vocab_size: t.vocab,
    },
    tie_word_embeddings: true,
    torch_dtype: dtype === 'bf16' ? 'bfloat16' : dtype === 'f16' ? 'float16' : 'float32',
    transformers_version: '4.46.0',
    use_cache: true,
    vision_config: {
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: v.hidden,
      image_size: v.imageSize,
      intermediate_size: v.mlp,
      layer_norm_eps: 1e-6,
      max_image_size: { longest_edge: v.imageSize },
      model_type: 'idefics3',
      num_attention_heads: v.heads,
      num_channels: 3,
      num_hidden_layers: visionLayers,
      patch_size: v.patch,
      size: { longest_edge: 2048 },
    },
    vocab_size: t.vocab,
  };
  const preprocessor = {
    do_convert_rgb: true,
    do_image_splitting: true,
    do_normalize: true,
    do_pad: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'Idefics3ImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    max_image_size: { longest_edge: v.imageSize },
    processor_class: 'Idefics3Processor',
    resample: 1,
    rescale_factor: 1 / 255,
    size: { longest_edge: 2048 },
  };
  const json = (name: string, o: unknown) => writeFileSync(join(dir, name), JSON.stringify(o, null, 2) + '\n');
  json('config.json', config);
  json('preprocessor_config.json', preprocessor);
  json('processor_config.json', { image_seq_len: SMOLVLM_256M.imageSeqLen, processor_class: 'Idefics3Processor' });
  json('generation_config.json', { bos_token_id: 1, eos_token_id: [3, 2], pad_token_id: 2 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) copyFileSync(join(FIXTURE, f), join(dir, f));

  // model.safetensors through the project's writer, one tensor at a time (each drawn when its turn comes)
  const list = specs({ textLayers, visionLayers });
  const stDtype = dtype === 'bf16' ? 'BF16' : dtype === 'f16' ? 'F16' : 'F32';
  const table = normalTable();
  const conv = dtype === 'bf16' ? toBf16 : dtype === 'f16' ? toF16 : null;
  const half = conv ? Uint16Array.from(table, conv) : null;
  const one = conv ? conv(1) : 0;
  let state = (opts.seed ?? 1) >>> 0 || 1;
  const draw = (sp: Spec): ArrayBufferView => {
    const n = sp.shape.reduce((a, d) => a * d, 1);
    const out = half ? new Uint16Array(n) : new Float32Array(n);
    if (sp.init !== 'normal') return out.fill(sp.init === 'ones' ? (half ? one : 1) : 0);
    const src = half ?? table;
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = src[state >>> 20];
    }
    return out;
  };
  let params = 0;
  for (const sp of list) params += sp.shape.reduce((a, d) => a * d, 1);
  const file = join(dir, 'model.safetensors');
  writeSafetensors(file, list.map((sp) => ({ name: sp.name, dtype: stDtype, shape: sp.shape, data: () => draw(sp) })), { format: 'pt' });
  return { params, bytes: statSync(file).size };
}
