// What an Idefics3 / SmolVLM checkpoint is, from its files alone (no weights are read): architecture and sizes,
// parameter counts per part, weight dtypes, image tokens per tile and per image at given sizes (`vlmkit info`).
import { Checkpoint, type ModelDir } from '../../io/model-dir.js';
import { Tokenizer } from '../../processing/tokenizer.js';
import { loadIdefics3Config } from './config.js';
import { type ImageProcessorConfig, loadImageProcessorConfig } from './image.js';
import { imageGridForSize, withImageOptions } from './processor.js';
import { type ImageGrid, imagePromptString } from './prompt.js';
import { quantEntry } from '../quantized-file.js';

/** What to describe beyond the checkpoint itself: image sizes [w, h] and the image options they are read with. */
export interface DescribeOptions {
  sizes: readonly (readonly [number, number])[];
  doImageSplitting?: boolean;
  longestEdge?: number;
}

/** A checkpoint described: `json` for machines, `lines` for people. */
export interface ModelDescription {
  json: Record<string, unknown>;
  lines: string[];
}

/** A parameter count the way people read them: 1.23B, 256.50M, 12.3K. */
export function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

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

export function describeIdefics3(md: ModelDir, o: DescribeOptions): ModelDescription {
  const cfg = loadIdefics3Config(md);
  const ckpt = Checkpoint.open(md);
  const params: Record<Part, number> = { vision: 0, connector: 0, text: 0, lm_head: 0 };
  const dtypes: Record<string, number> = {};
  try {
    for (const n of ckpt.names()) {
      const i = ckpt.info(n);
      // a packed weight of a quantized checkpoint: its parameters are [out, in] from the file's metadata, not its bytes
      const q = i.dtype === 'U8' ? quantEntry(ckpt.metadataOf(n), n, i.file) : null;
      const k = (q ? q.shape : i.shape).reduce((a, d) => a * d, 1);
      params[partOf(n)] += k;
      const d = q ? q.format : i.dtype;
      dtypes[d] = (dtypes[d] ?? 0) + k;
    }
  } finally {
    ckpt.close();
  }
  const total = params.vision + params.connector + params.text + params.lm_head;
  let imageCfg: ImageProcessorConfig | null = null;
  try {
    imageCfg = loadImageProcessorConfig(md);
  } catch {
    imageCfg = null;
  }
  const { doImageSplitting, longestEdge } = o;
  if (imageCfg) imageCfg = withImageOptions(imageCfg, { doImageSplitting, longestEdge });
  const tok = md.has('tokenizer.json') ? Tokenizer.fromDir(md) : null;
  const seq = imageCfg?.imageSeqLen ?? cfg.imageSeqLen;
  const perImage = imageCfg ? o.sizes.map(([w, h]) => tokensForSize(w, h, imageCfg!, seq, tok)) : [];
  const v = cfg.vision;
  const t = cfg.text;
  const architecture = (() => {
    const a = (ckpt.config.architectures as unknown[] | undefined)?.[0];
    return typeof a === 'string' ? a : cfg.modelType === 'smolvlm' ? 'SmolVLMForConditionalGeneration' : 'Idefics3ForConditionalGeneration';
  })();
  const json = {
    dir: md.dir,
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
  };
  const pct = (n: number) => `${((100 * n) / Math.max(1, total)).toFixed(1)}%`;
  const lines = [
    `${architecture} (model_type ${cfg.modelType}) in ${md.dir}`,
    `vision     SigLIP: ${v.numHiddenLayers} layers, hidden ${v.hiddenSize}, ${v.numAttentionHeads} heads, MLP ${v.intermediateSize}, ${v.imageSize} px tiles, patch ${v.patchSize}`,
    `connector  pixel shuffle x${cfg.scaleFactor}, ${v.hiddenSize * cfg.scaleFactor ** 2} -> ${t.hiddenSize}`,
    `text       Llama: ${t.numHiddenLayers} layers, hidden ${t.hiddenSize}, ${t.numAttentionHeads} heads / ${t.numKeyValueHeads} KV heads, MLP ${t.intermediateSize}, vocab ${t.vocabSize}, context ${t.maxPositionEmbeddings}, rope theta ${t.ropeTheta}`,
    `parameters ${count(total)} total: vision ${count(params.vision)}, connector ${count(params.connector)}, text ${count(params.text)}, lm_head ${cfg.tieWordEmbeddings && params.lm_head === 0 ? 'tied to the embeddings' : count(params.lm_head)}`,
    `dtypes     ${Object.entries(dtypes).map(([d, n]) => `${d} ${count(n)} (${pct(n)})`).join(', ')}`,
    `image_seq_len ${seq} tokens per tile` +
      (imageCfg ? `; images resized to ${imageCfg.longestEdge} px on the long edge, ${imageCfg.maxImageSize} px tiles, splitting ${imageCfg.doImageSplitting ? 'on' : 'off'}` : '; no image processor config found'),
    ...perImage.map((p) => `  ${p.size.padEnd(10)} -> ${p.grid.rows ? `${p.grid.rows}x${p.grid.cols} tiles + global` : '1 tile'} = ${p.tiles} tiles, ${p.tokens} tokens${tok ? '' : ' (approx., no tokenizer.json)'}`),
  ];
  return { json, lines };
}
