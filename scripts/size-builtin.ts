// Sizing the built-in model: builds random Idefics3 models of a few candidate sizes and times real training steps
// of the SFT trainer (collation, image preprocessing, forward, backward, AdamW) on rows like the synthetic shapes
// data: one image of one tile, a question and a short answer (~30 text tokens). Reports parameters, the bf16
// checkpoint size, image tokens per tile and seconds per sample (min-max over repeats, so a busy machine shows).
//
//   node --import tsx scripts/size-builtin.ts [--only A,C] [--batch 8] [--steps 3] [--repeats 3] [--json out.json]
//
// The tokenizer is the tiny test fixture's (its ids are all < 448, far below the candidates' vocab_size, which
// alone sizes the embedding and lm_head); the processor config is the built-in's: one tile of image_size px, no
// splitting. VLMKIT_THREADS sets the engine's threads (default one per core).
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PNG } from 'pngjs';
import { idefics3ConfigFromJson } from '../src/models/idefics3/config.js';
import { randomModel } from '../src/models/idefics3/init.js';
import { Processor } from '../src/models/index.js';
import { SftDataset } from '../src/train/data.js';
import { trainableParameters } from '../src/train/params.js';
import { SftTrainer } from '../src/train/sft.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TOKENIZER = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');

export interface Candidate {
  name: string;
  vision: { image: number; patch: number; width: number; layers: number; heads: number; mlp: number };
  scale: number;
  text: { width: number; layers: number; heads: number; kvHeads: number; mlp: number; vocab: number };
}

// vision tokens per tile = (image / patch)² / scale²
export const CANDIDATES: Candidate[] = [
  { name: 'A', vision: { image: 128, patch: 16, width: 128, layers: 4, heads: 4, mlp: 512 }, scale: 2, text: { width: 256, layers: 4, heads: 4, kvHeads: 2, mlp: 768, vocab: 3072 } },
  { name: 'B', vision: { image: 128, patch: 16, width: 192, layers: 6, heads: 4, mlp: 768 }, scale: 2, text: { width: 320, layers: 6, heads: 5, kvHeads: 5, mlp: 960, vocab: 3072 } },
  { name: 'C', vision: { image: 128, patch: 8, width: 128, layers: 4, heads: 4, mlp: 512 }, scale: 4, text: { width: 256, layers: 6, heads: 4, kvHeads: 2, mlp: 768, vocab: 3072 } },
  { name: 'D', vision: { image: 96, patch: 8, width: 192, layers: 6, heads: 4, mlp: 768 }, scale: 2, text: { width: 320, layers: 6, heads: 5, kvHeads: 5, mlp: 960, vocab: 3072 } },
  { name: 'E', vision: { image: 128, patch: 16, width: 256, layers: 8, heads: 4, mlp: 1024 }, scale: 2, text: { width: 384, layers: 8, heads: 6, kvHeads: 2, mlp: 1152, vocab: 3072 } },
  { name: 'F', vision: { image: 128, patch: 8, width: 256, layers: 8, heads: 4, mlp: 1024 }, scale: 2, text: { width: 384, layers: 8, heads: 6, kvHeads: 2, mlp: 1152, vocab: 3072 } },
  { name: 'G', vision: { image: 128, patch: 8, width: 160, layers: 5, heads: 5, mlp: 640 }, scale: 4, text: { width: 256, layers: 6, heads: 4, kvHeads: 2, mlp: 768, vocab: 3072 } },
  { name: 'H', vision: { image: 128, patch: 16, width: 128, layers: 4, heads: 4, mlp: 512 }, scale: 2, text: { width: 256, layers: 6, heads: 4, kvHeads: 2, mlp: 768, vocab: 3072 } },
];

/** A config.json of the candidate: SmolVLM-256M's keys and conventions at another size. */
export function candidateConfig(c: Candidate): Record<string, unknown> {
  return {
    architectures: ['Idefics3ForConditionalGeneration'],
    model_type: 'idefics3',
    image_token_id: 5, // the fixture tokenizer's <image>
    pad_token_id: 2,
    scale_factor: c.scale,
    tie_word_embeddings: true,
    initializer_range: 0.02,
    torch_dtype: 'float32',
    vision_config: {
      model_type: 'idefics3_vision', hidden_act: 'gelu_pytorch_tanh', hidden_size: c.vision.width, image_size: c.vision.image,
      intermediate_size: c.vision.mlp, layer_norm_eps: 1e-6, num_attention_heads: c.vision.heads, num_channels: 3,
      num_hidden_layers: c.vision.layers, patch_size: c.vision.patch,
    },
    text_config: {
      model_type: 'llama', hidden_act: 'silu', hidden_size: c.text.width, intermediate_size: c.text.mlp,
      num_attention_heads: c.text.heads, num_key_value_heads: c.text.kvHeads, head_dim: c.text.width / c.text.heads,
      num_hidden_layers: c.text.layers, vocab_size: c.text.vocab, max_position_embeddings: 512, rms_norm_eps: 1e-5,
      rope_theta: 10000, attention_bias: false, mlp_bias: false, tie_word_embeddings: true, pad_token_id: 2, bos_token_id: 1, eos_token_id: 3,
    },
  };
}

/** processor_config.json of a one-tile, no-splitting processor for tiles of `side` px. */
export function oneTileProcessorConfig(side: number, imageSeqLen: number): Record<string, unknown> {
  return {
    image_processor: {
      do_convert_rgb: true, do_image_splitting: false, do_normalize: true, do_pad: true, do_rescale: true, do_resize: true,
      image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], image_processor_type: 'Idefics3ImageProcessor',
      max_image_size: { longest_edge: side }, size: { longest_edge: side }, resample: 1, rescale_factor: 1 / 255,
    },
    image_seq_len: imageSeqLen,
    processor_class: 'Idefics3Processor',
  };
}

/** A white square with 1-6 coloured rectangles, as PNG bytes (deterministic in i). */
function shapesPng(side: number, i: number): Buffer {
  const png = new PNG({ width: side, height: side });
  png.data.fill(255);
  let s = (i + 1) * 2654435761 >>> 0;
  const r = (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n);
  const colours = [[230, 25, 25], [25, 160, 25], [25, 25, 230], [240, 200, 0], [150, 0, 150], [0, 170, 170]];
  const count = 1 + (i % 6);
  for (let k = 0; k < count; k++) {
    const [cr, cg, cb] = colours[r(colours.length)]!;
    const w = 8 + r(side / 3), h = 8 + r(side / 3), x0 = r(side - w), y0 = r(side - h);
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) {
      const p = (y * side + x) * 4;
      png.data[p] = cr!; png.data[p + 1] = cg!; png.data[p + 2] = cb!;
    }
  }
  return PNG.sync.write(png);
}

const QUESTIONS = ['How many shapes are there?', 'What colour is the largest shape?', 'Is there a red square?', 'Where is the blue circle?'];
const ANSWERS = ['There are 3 shapes.', 'The largest shape is green.', 'Yes, top left.', 'Bottom right, <loc0412><loc0180>.'];

/** A model directory without weights (config, tokenizer, one-tile processor) and a JSONL of `rows` shapes rows. */
function writeWorkspace(dir: string, c: Candidate, rows: number): string {
  const cfg = candidateConfig(c);
  const seq = idefics3ConfigFromJson(cfg).imageSeqLen;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify(oneTileProcessorConfig(c.vision.image, seq)));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) copyFileSync(join(TOKENIZER, f), join(dir, f));
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    writeFileSync(join(dir, `img${i}.png`), shapesPng(c.vision.image, i));
    lines.push(JSON.stringify({
      messages: [
        { role: 'user', content: [{ type: 'image' }, { type: 'text', text: QUESTIONS[i % QUESTIONS.length] }] },
        { role: 'assistant', content: [{ type: 'text', text: ANSWERS[i % ANSWERS.length] }] },
      ],
      images: [`img${i}.png`],
    }));
  }
  const data = join(dir, 'train.jsonl');
  writeFileSync(data, lines.join('\n') + '\n');
  return data;
}

export interface Measurement {
  name: string;
  params: number;
  visionParams: number;
  bf16Bytes: number;
  imageTokens: number;
  textTokensPerRow: number;
  batch: number;
  /** seconds per sample of each timed step */
  secondsPerSample: number[];
}

async function measure(c: Candidate, o: { batch: number; steps: number; repeats: number }): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), `vlmkit-size-${c.name}-`));
  try {
    const data = writeWorkspace(dir, c, o.batch * 4);
    const cfg = idefics3ConfigFromJson(candidateConfig(c));
    const processor = Processor.fromDir(dir);
    const model = randomModel(cfg, { seed: 1 });
    try {
      const train = await SftDataset.load(data, processor, { maxLength: 512 });
      const params = trainableParameters(model, 'full', null);
      let total = 0, vision = 0;
      for (const [n, t] of params) { total += t.size; if (n.includes('vision_model.')) vision += t.size; }
      const rowTokens = train.examples.reduce((a, e) => a + e.length, 0) / train.examples.length;
      const trainer = new SftTrainer({ model, processor, train, params, config: { lr: 1e-3, maxSteps: 1 + o.steps * o.repeats, batchSize: o.batch, seed: 1, clip: 1 } });
      try {
        await trainer.step(); // warm-up: first-touch allocations, kernel caches
        const per: number[] = [];
        for (let i = 0; i < o.steps * o.repeats; i++) {
          const r = await trainer.step();
          per.push(r.seconds / r.samples);
        }
        return {
          name: c.name, params: total, visionParams: vision, bf16Bytes: total * 2, imageTokens: cfg.imageSeqLen,
          textTokensPerRow: rowTokens - cfg.imageSeqLen - 3, batch: o.batch, secondsPerSample: per,
        };
      } finally {
        trainer.dispose();
      }
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function describe(c: Candidate): string {
  const v = c.vision, t = c.text;
  return `vision ${v.image}px/p${v.patch} w${v.width} L${v.layers} | s${c.scale} | text w${t.width} L${t.layers} kv${t.kvHeads} V${t.vocab}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { only: { type: 'string' }, batch: { type: 'string' }, steps: { type: 'string' }, repeats: { type: 'string' }, json: { type: 'string' } },
  });
  const pick = values.only ? new Set(values.only.split(',')) : null;
  const o = { batch: Number(values.batch ?? 8), steps: Number(values.steps ?? 3), repeats: Number(values.repeats ?? 1) };
  for (const [k, v] of Object.entries(o)) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} takes an integer >= 1, got ${v}`);
  const out: Measurement[] = [];
  for (const c of CANDIDATES) {
    if (pick && !pick.has(c.name)) continue;
    const m = await measure(c, o);
    out.push(m);
    const s = [...m.secondsPerSample].sort((a, b) => a - b);
    const med = s[Math.floor(s.length / 2)]!;
    process.stdout.write(`${c.name}  ${describe(c)}\n    ${(m.params / 1e6).toFixed(2)}M params (vision ${(m.visionParams / 1e6).toFixed(2)}M), bf16 ${(m.bf16Bytes / 2 ** 20).toFixed(1)} MiB, ` +
      `${m.imageTokens} image tokens + ~${m.textTokensPerRow.toFixed(0)} text tokens/row; s/sample min ${s[0]!.toFixed(4)} median ${med.toFixed(4)} max ${s[s.length - 1]!.toFixed(4)} ` +
      `(batch ${m.batch}); samples in 2 h at the median: ${Math.floor(7200 / med)}\n`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
