// `vlmkit info <dir>`: what a checkpoint is, from its files alone (no weights are read): architecture and sizes,
// parameter counts per part, weight dtypes, image tokens per tile and per image at given sizes.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../io/model-dir.js';
import { loadIdefics3Config } from '../models/idefics3/config.js';
import { loadImageProcessorConfig, type ImageProcessorConfig } from '../processing/image.js';
import { imageGridForSize, withImageOptions } from '../processing/processor.js';
import { imagePromptString, type ImageGrid } from '../processing/prompt.js';
import { Tokenizer } from '../processing/tokenizer.js';
import { argError, generationOptions, parsing, parseSize } from './args.js';
import { count } from './format.js';
import { type CliIo, write } from './io.js';

export const INFO_USAGE = `usage: vlmkit info <dir> [--size WxH]... [--longest-edge PX] [--no-split] [--json]
  --size WxH          also show how many tokens an image of that size becomes (repeatable; default 512x512 and 1920x1080)
  --longest-edge PX   ... when images are first resized to this long edge (as ask/chat --longest-edge)
  --no-split          ... when images are not split into tiles (as ask/chat --no-split)
  --json       one JSON object`;

type Part = 'vision' | 'connector' | 'text' | 'lm_head';

function partOf(name: string): Part {
  if (name.includes('vision_model') || name.includes('vision_tower')) return 'vision';
  if (name.includes('connector') || name.includes('modality_projection')) return 'connector';
  if (name.startsWith('lm_head') || name.includes('.lm_head')) return 'lm_head';
  return 'text';
}

export interface ImageTokens {
  size: string;
  grid: ImageGrid;
  tiles: number;
  tokens: number;
}

export function tokensForSize(w: number, h: number, cfg: ImageProcessorConfig, imageSeqLen: number, tok: Tokenizer | null): ImageTokens {
  const grid = imageGridForSize(w, h, cfg);
  const tiles = grid.rows ? grid.rows * grid.cols + 1 : 1;
  const text = imagePromptString(grid, imageSeqLen);
  // exact with the tokenizer ("\n\n" may be one token); otherwise every special token and newline counts one
  const tokens = tok ? tok.encode(text, { addSpecialTokens: false }).length : (text.match(/<[^<>]+>|\n/g) ?? []).length;
  return { size: `${w}x${h}`, grid, tiles, tokens };
}

export async function info(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(INFO_USAGE, () => parseArgs({ args: argv, options: { size: { type: 'string', multiple: true }, 'longest-edge': { type: 'string' }, 'no-split': { type: 'boolean' }, json: { type: 'boolean' }, model: { type: 'string' } }, allowPositionals: true, strict: true }));
  const dir = positionals[0] ?? values.model;
  if (!dir || positionals.length > 1) throw argError(`give one checkpoint directory\n${INFO_USAGE}`);
  const sizes = (values.size ?? ['512x512', '1920x1080']).map(parseSize);
  const cfg = loadIdefics3Config(dir);
  const ckpt = Checkpoint.open(dir);
  const params: Record<Part, number> = { vision: 0, connector: 0, text: 0, lm_head: 0 };
  const dtypes: Record<string, number> = {};
  try {
    for (const n of ckpt.names()) {
      const i = ckpt.info(n);
      const k = i.shape.reduce((a, d) => a * d, 1);
      params[partOf(n)] += k;
      dtypes[i.dtype] = (dtypes[i.dtype] ?? 0) + k;
    }
  } finally {
    ckpt.close();
  }
  const total = params.vision + params.connector + params.text + params.lm_head;
  let imageCfg: ImageProcessorConfig | null = null;
  try {
    imageCfg = loadImageProcessorConfig(dir);
  } catch {
    imageCfg = null;
  }
  const { doImageSplitting, longestEdge } = generationOptions({ 'no-split': values['no-split'], 'longest-edge': values['longest-edge'] });
  if (imageCfg) imageCfg = withImageOptions(imageCfg, { doImageSplitting, longestEdge });
  const tok = existsSync(join(dir, 'tokenizer.json')) ? Tokenizer.fromDir(dir) : null;
  const seq = imageCfg?.imageSeqLen ?? cfg.imageSeqLen;
  const perImage = imageCfg ? sizes.map(([w, h]) => tokensForSize(w, h, imageCfg!, seq, tok)) : [];
  const v = cfg.vision;
  const t = cfg.text;
  const architecture = (() => {
    const a = (ckpt.config.architectures as unknown[] | undefined)?.[0];
    return typeof a === 'string' ? a : cfg.modelType === 'smolvlm' ? 'SmolVLMForConditionalGeneration' : 'Idefics3ForConditionalGeneration';
  })();
  if (values.json) {
    await write(
      io.stdout,
      JSON.stringify({
        dir,
        architecture,
        model_type: cfg.modelType,
        vision: { layers: v.numHiddenLayers, hidden: v.hiddenSize, heads: v.numAttentionHeads, mlp: v.intermediateSize, image_size: v.imageSize, patch_size: v.patchSize },
        connector: { scale_factor: cfg.scaleFactor },
        text: { layers: t.numHiddenLayers, hidden: t.hiddenSize, heads: t.numAttentionHeads, kv_heads: t.numKeyValueHeads, mlp: t.intermediateSize, vocab: t.vocabSize, context: t.maxPositionEmbeddings, rope_theta: t.ropeTheta },
        tie_word_embeddings: cfg.tieWordEmbeddings,
        parameters: { ...params, total },
        dtypes,
        image_seq_len: seq,
        image_processor: imageCfg ? { longest_edge: imageCfg.longestEdge, tile: imageCfg.maxImageSize, splitting: imageCfg.doImageSplitting } : null,
        tokens_per_image: perImage,
      }) + '\n',
    );
    return 0;
  }
  const pct = (n: number) => `${((100 * n) / Math.max(1, total)).toFixed(1)}%`;
  const lines = [
    `${architecture} (model_type ${cfg.modelType}) in ${dir}`,
    `vision     SigLIP: ${v.numHiddenLayers} layers, hidden ${v.hiddenSize}, ${v.numAttentionHeads} heads, MLP ${v.intermediateSize}, ${v.imageSize} px tiles, patch ${v.patchSize}`,
    `connector  pixel shuffle x${cfg.scaleFactor}, ${v.hiddenSize * cfg.scaleFactor ** 2} -> ${t.hiddenSize}`,
    `text       Llama: ${t.numHiddenLayers} layers, hidden ${t.hiddenSize}, ${t.numAttentionHeads} heads / ${t.numKeyValueHeads} KV heads, MLP ${t.intermediateSize}, vocab ${t.vocabSize}, context ${t.maxPositionEmbeddings}, rope theta ${t.ropeTheta}`,
    `parameters ${count(total)} total: vision ${count(params.vision)}, connector ${count(params.connector)}, text ${count(params.text)}, lm_head ${cfg.tieWordEmbeddings && params.lm_head === 0 ? 'tied to the embeddings' : count(params.lm_head)}`,
    `dtypes     ${Object.entries(dtypes).map(([d, n]) => `${d} ${count(n)} (${pct(n)})`).join(', ')}`,
    `image_seq_len ${seq} tokens per tile` +
      (imageCfg ? `; images resized to ${imageCfg.longestEdge} px on the long edge, ${imageCfg.maxImageSize} px tiles, splitting ${imageCfg.doImageSplitting ? 'on' : 'off'}` : '; no image processor config found'),
    ...perImage.map((p) => `  ${p.size.padEnd(10)} -> ${p.grid.rows ? `${p.grid.rows}x${p.grid.cols} tiles + global` : '1 tile'} = ${p.tiles} tiles, ${p.tokens} tokens${tok ? '' : ' (approx., no tokenizer.json)'}`),
  ];
  await write(io.stdout, lines.join('\n') + '\n');
  return 0;
}
