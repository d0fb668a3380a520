// Idefics3ForConditionalGeneration / SmolVLMForConditionalGeneration: vision tower -> connector -> image features
// that replace the embeddings of the <image> tokens, in order -> Llama text model -> lm_head. Follows
// transformers' Idefics3Model.forward: padding tiles (all-zero pixel values) are dropped before the vision tower,
// the pixel attention mask becomes a patch mask (a patch is valid when any of its pixels is).
import type { Backend } from '../../engine/backend/backend.js';
import {
  Tensor, concat, indexSelect, linear, noGrad, reshape, scatterRows, slice, tensor, tidy,
} from '../../engine/index.js';
import { ShapeError, VlmkitError } from '../../errors.js';
import { Checkpoint, type ModelDir } from '../../io/model-dir.js';
import { QuantizedWeight, type QuantFormat, type QuantOptions, WEIGHT_FORMATS } from '../../engine/quant/index.js';
import { type Linear, hostInts, tidyGraph } from '../common.js';
import type { VisionLanguageModel } from '../types.js';
import { type Idefics3Config, idefics3ConfigFromJson } from './config.js';
import { Connector } from './connector.js';
import { type CacheRowSpan, KVCache, LlamaText, type LogitsFor } from './text.js';
import { type PatchMask, VisionTransformer, fullPatchMask, patchMaskFromPixelMask } from '../siglip/index.js';
import { type Idefics3Weights, loadIdefics3Weights } from './weights.js';

export interface Idefics3Inputs {
  /** [B, T] i32/i64 token ids (the prompt expanded with <image> tokens) */
  inputIds: Tensor;
  /** [B, past + T]: 1 = token, 0 = padding. Default: all ones. */
  attentionMask?: Tensor | null;
  /** [B, N, C, S, S] f32 tiles; all-zero tiles are padding and are skipped */
  pixelValues?: Tensor | null;
  /** [B, N, S, S] (any int or float dtype), nonzero = real pixel; default all ones */
  pixelAttentionMask?: Tensor | null;
  /** [B, T] RoPE positions; default past + 0..T-1 (transformers' forward). See positionsFromAttentionMask. */
  positions?: Tensor | null;
}

/** Called after each image tile has gone through the vision tower (tiles done, tiles in all). */
export type TileProgress = (done: number, total: number) => void;

export interface ForwardOptions {
  /** 'all' (default): logits [B, T, V]; 'last': only the last position [B, 1, V] */
  logitsFor?: LogitsFor;
  /** progress of the vision tower, tile by tile */
  onTile?: TileProgress;
  /** a KV cache to append to (generation); image features are merged only when it is empty */
  cache?: KVCache | null;
}

/** Real (non-padding) tiles of [B·N, C, S, S] pixel values and the patch mask of those tiles. */
interface SelectedTiles {
  pixels: Tensor;
  mask: PatchMask;
}

const EMBED_NAME = 'model.text_model.embed_tokens.weight';
const LM_HEAD_NAME = 'lm_head.weight';

/** transformers parameter names of the vision tower (SigLIP encoder and its embeddings) */
export const VISION_TOWER: RegExp = /(^|\.)vision_model\./;

export class Idefics3Model implements VisionLanguageModel {
  readonly family = 'idefics3';
  readonly visionParameters = VISION_TOWER;
  readonly visionModules = '.*vision_model\\..*';
  /** LoRA's usual targets: the Llama attention and MLP projections (q/k/v_proj also name the SigLIP tower's) */
  readonly defaultLoraTargets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  readonly config: Idefics3Config;
  readonly vision: VisionTransformer;
  readonly connector: Connector;
  readonly text: LlamaText;
  readonly weights: Idefics3Weights;
  private readonly named: Map<string, Tensor>;
  private readonly linearMap: Map<string, Linear>;
  private readonly packed = new Map<string, QuantizedWeight>();

  constructor(config: Idefics3Config, weights: Idefics3Weights, named: Map<string, Tensor>, linears: Map<string, Linear>) {
    this.config = config;
    this.weights = weights;
    this.named = named;
    this.linearMap = linears;
    for (const [path, l] of linears) if (l.w instanceof QuantizedWeight) this.packed.set(`${path}.weight`, l.w);
    // an NF4 checkpoint's Q8_0 token embeddings (and its lm_head, when not tied)
    if (weights.text.embed instanceof QuantizedWeight) this.packed.set(EMBED_NAME, weights.text.embed);
    if (!weights.text.tied && weights.text.lmHead instanceof QuantizedWeight) this.packed.set(LM_HEAD_NAME, weights.text.lmHead);
    this.vision = new VisionTransformer(config.vision, weights.vision);
    this.connector = new Connector(config.scaleFactor, weights.connector);
    this.text = new LlamaText(config.text, weights.text);
    this.makeDecodeHead();
  }

  // A quantized model decodes with a Q8_0 copy of the lm_head: on the SmolVLM-256M shape the tied bf16 embeddings
  // are 57 MB of every token's reads, the copy 30 (llama.cpp quantizes output.weight as well). Prompts, training and
  // scoring keep the 16/32-bit weight; the copy is never written to a checkpoint (docs/quantization.md).
  // (An NF4 model's lm_head is Q8_0 already, as its tied embeddings: no copy.)
  private makeDecodeHead(): void {
    const h = this.text.w.lmHead;
    if (this.packed.size === 0 || this.text.decodeHeadMaker || h instanceof QuantizedWeight || h.rank !== 2 || h.shape[1] % WEIGHT_FORMATS.q8_0.blockValues !== 0) return;
    // made on first use: a training step never reads it
    this.text.decodeHeadMaker = () => QuantizedWeight.quantize(h, 'q8_0', 'weight "lm_head.weight" (its decode copy)');
  }

  get backend(): Backend {
    return this.weights.text.embed.backend;
  }

  /**
   * Every parameter by its transformers name ("model.text_model.layers.0.self_attn.q_proj.weight", ...); the
   * block-quantized weights of a quantized model are not Tensors and are listed by quantizedWeights() instead.
   */
  parameters(): Map<string, Tensor> {
    return new Map(this.named);
  }

  /** The block-quantized linear weights by transformers name (empty for a 16/32-bit model). */
  quantizedWeights(): Map<string, QuantizedWeight> {
    return new Map(this.packed);
  }

  /**
   * Stores the weights of the transformer layers' linears (text and vision: attention and MLP projections) and of
   * the connector in a block format, in place: the forward reads them packed from then on, and the f32/bf16
   * tensors are released. The norms, biases, position embeddings and the vision patch embedding stay as they are,
   * as does a linear whose input size is not a multiple of the format's block (docs/quantization.md). A linear
   * with adapters attached is quantized under them (QLoRA). The token embeddings (and a tied lm_head) stay 16/32-bit
   * under Q8_0 and Q4_0, and go to Q8_0 under NF4 (see embeddingsToQ8).
   */
  quantize(format: QuantFormat, o: QuantOptions & { onWeight?: (name: string, done: number, total: number) => void } = {}): void {
    const block = WEIGHT_FORMATS[format].blockValues;
    const todo = [...this.linearMap].filter(([path, l]) => l.w instanceof Tensor && !path.endsWith('.patch_embedding') && l.w.rank === 2 && l.w.shape[1] % block === 0);
    const tables = format === 'nf4' ? this.embeddingsToQ8() : [];
    const total = todo.length + tables.length;
    let done = 0;
    for (const [path, l] of todo) {
      const name = `${path}.weight`, t = l.w as Tensor;
      const q = QuantizedWeight.quantize(t, format, `weight "${name}"`, o);
      q.name = name;
      l.w = q;
      if (this.weights.connector.linear === l) this.weights.connector.proj = q;
      this.packed.set(name, q);
      this.named.delete(name);
      t.dispose();
      o.onWeight?.(name, ++done, total);
    }
    for (const name of tables) {
      this.quantizeTable(name);
      o.onWeight?.(name, ++done, total);
    }
    this.makeDecodeHead();
  }

  // NF4 is QLoRA's format, where the point is a small training footprint: on the SmolVLM-256M shape the tied bf16
  // embeddings / lm_head are 57 MB of a 157 MB NF4 model, 30 MB in Q8_0 (llama.cpp's 4-bit files keep token_embd
  // in a block format as well). bitsandbytes' QLoRA keeps them 16-bit; vlmkit's choice is documented in
  // docs/quantization.md and README. The lookup reads only the rows it needs (embedding) and the loss reads the
  // head's blocks in its products (linearCrossEntropy): no dequantized copy of the table is ever made. An untied
  // lm_head goes to Q8_0 too. A table whose width is not a multiple of 32 stays as it is.
  private embeddingsToQ8(): string[] {
    const fits = (t: Tensor | QuantizedWeight) => t instanceof Tensor && t.rank === 2 && t.shape[1] % WEIGHT_FORMATS.q8_0.blockValues === 0;
    const tw = this.text.w;
    return [...(fits(tw.embed) ? [EMBED_NAME] : []), ...(!tw.tied && fits(tw.lmHead) ? [LM_HEAD_NAME] : [])];
  }

  /** The token embeddings (with a tied lm_head) or an untied lm_head to Q8_0, in place. */
  private quantizeTable(name: string): void {
    const tw = this.text.w, t = name === EMBED_NAME ? tw.embed : tw.lmHead;
    if (!(t instanceof Tensor)) return;
    const q = QuantizedWeight.quantize(t, 'q8_0', `weight "${name}"`);
    q.name = name;
    this.packed.set(name, q);
    this.named.delete(name);
    if (name === EMBED_NAME) {
      tw.embed = q;
      if (tw.tied) tw.lmHead = q;
    } else tw.lmHead = q;
    t.dispose();
  }

  /**
   * Every linear layer by its transformers module path ("model.text_model.layers.0.self_attn.q_proj",
   * "model.vision_model.encoder.layers.0.mlp.fc1", ...): the objects the forward reads, so adapters attached to
   * them (LowRankAdapter) take effect. The connector projection is listed
   * ("model.connector.modality_projection.proj"); lm_head is not. The patch embedding is listed with its conv
   * weight [D, C, p, p] and ignores adapters.
   */
  linears(): Map<string, Linear> {
    return new Map(this.linearMap);
  }

  /**
   * Drops padding tiles (every value exactly 0, as transformers' real_images_inds) and turns the pixel mask of the
   * rest into a patch mask. pixels: [B, N, C, S, S] or [N, C, S, S]; pixelMask: [B, N, S, S] or [N, S, S].
   */
  private selectTiles(pixels: Tensor, pixelMask: Tensor | null): SelectedTiles {
    const v = this.config.vision;
    const shape = pixels.shape;
    if ((pixels.rank !== 5 && pixels.rank !== 4) || shape[shape.length - 3] !== v.numChannels)
      throw new ShapeError(`pixel values ${JSON.stringify(shape)} must be [batch, tiles, ${v.numChannels}, H, W] or [tiles, ${v.numChannels}, H, W]`);
    if (pixels.dtype !== 'f32') throw new ShapeError(`pixel values must be f32, got ${pixels.dtype}`);
    const [H, W] = shape.slice(-2);
    const n = shape.slice(0, -3).reduce((a, d) => a * d, 1);
    const C = v.numChannels;
    const per = C * H * W;
    const flat = reshape(pixels, [n, per]);
    const data = flat.data as Float32Array;
    const real: number[] = [];
    for (let i = 0; i < n; i++) {
      let zero = true;
      for (let j = i * per, e = j + per; j < e; j++) if (data[j] !== 0) { zero = false; break; }
      if (!zero) real.push(i);
    }
    // transformers keeps one (empty) tile when every tile is padding
    if (!real.length) real.push(0);
    let mask: PatchMask;
    if (pixelMask) {
      const ms = pixelMask.shape;
      if (ms.slice(0, -2).reduce((a, d) => a * d, 1) !== n || ms[ms.length - 2] !== H || ms[ms.length - 1] !== W)
        throw new ShapeError(`pixel attention mask ${JSON.stringify(ms)} does not match pixel values ${JSON.stringify(shape)}`);
      const all = hostInts(pixelMask);
      const sel = new Int32Array(real.length * H * W);
      real.forEach((t, i) => sel.set(all.subarray(t * H * W, (t + 1) * H * W), i * H * W));
      mask = patchMaskFromPixelMask(sel, real.length, H, W, v.patchSize);
    } else mask = fullPatchMask(real.length, H / v.patchSize, W / v.patchSize);
    let sel: Tensor;
    if (real.length === n) sel = reshape(flat, [n, C, H, W]);
    else {
      const idx = tensor(real, [real.length], { dtype: 'i32', backend: pixels.backend });
      sel = reshape(indexSelect(flat, idx), [real.length, C, H, W]);
      idx.dispose();
    }
    if (flat !== sel) flat.dispose();
    return { pixels: sel, mask };
  }

  /**
   * The vision tower's last_hidden_state [tiles, patches, Dv] of the real tiles of `pixelValues`
   * ([B, N, C, S, S] or [N, C, S, S]); `pixelAttentionMask` as in forward (default: every pixel valid).
   */
  visionHiddenStates(pixelValues: Tensor, pixelAttentionMask?: Tensor | null): Tensor {
    return tidyGraph([pixelValues], () => {
      const { pixels, mask } = this.selectTiles(pixelValues, pixelAttentionMask ?? null);
      return this.perTile(pixels, mask, (p, m) => this.vision.forward(p, m));
    });
  }

  /** Image features [tiles, imageSeqLen, H] (vision tower + connector) of the real tiles. */
  visionFeatures(pixelValues: Tensor, pixelAttentionMask?: Tensor | null, onTile?: TileProgress): Tensor {
    return tidyGraph([pixelValues], () => {
      const { pixels, mask } = this.selectTiles(pixelValues, pixelAttentionMask ?? null);
      return this.perTile(pixels, mask, (p, m) => this.connector.forward(this.vision.forward(p, m)), onTile);
    });
  }

  /**
   * fn applied to one tile at a time, the results concatenated: tiles never interact, and a tile's activations stay
   * in the caches (on 2 cores a 17-tile image encodes ~17% faster tile by tile than as one batch, whose MLP
   * activations alone are 200+ MB). Under autograd each tile keeps its own graph and concat joins them.
   */
  private perTile(pixels: Tensor, mask: PatchMask, fn: (pixels: Tensor, mask: PatchMask) => Tensor, onTile?: TileProgress): Tensor {
    const n = pixels.shape[0];
    if (n <= 1) {
      const out = fn(pixels, mask);
      onTile?.(n, n);
      return out;
    }
    const per = mask.hp * mask.wp;
    const parts: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const data = mask.data.subarray(i * per, (i + 1) * per);
      const tileMask: PatchMask = { n: 1, hp: mask.hp, wp: mask.wp, data, full: data.every((v) => v === 1) };
      parts.push(tidyGraph([pixels], () => fn(slice(pixels, 0, i, i + 1), tileMask)));
      onTile?.(i + 1, n);
    }
    const out = concat(parts, 0);
    if (!out.requiresGrad) for (const t of parts) t.dispose();
    return out;
  }

  /** Input embeddings [B, T, H]: token embeddings with the <image> positions replaced by image features. */
  embedInputs(inputIds: Tensor, pixelValues?: Tensor | null, pixelAttentionMask?: Tensor | null, imageFeatures?: Tensor | null, onTile?: TileProgress): Tensor {
    if (inputIds.rank !== 2) throw new ShapeError(`input ids ${JSON.stringify(inputIds.shape)} must be [batch, tokens]`);
    const [B, T] = inputIds.shape;
    const H = this.config.text.hiddenSize;
    return tidyGraph([inputIds, ...(pixelValues ? [pixelValues] : []), ...(imageFeatures ? [imageFeatures] : [])], () => {
      const emb = this.text.embed(inputIds);
      const feats = imageFeatures ?? (pixelValues ? this.visionFeatures(pixelValues, pixelAttentionMask, onTile) : null);
      if (!feats) return emb;
      const ids = hostInts(inputIds);
      const pos: number[] = [];
      for (let i = 0; i < ids.length; i++) if (ids[i] === this.config.imageTokenId) pos.push(i);
      const nFeat = feats.shape[0] * feats.shape[1];
      if (pos.length !== nFeat)
        throw new VlmkitError('E_IMAGE_TOKENS', `the prompt has ${pos.length} <image> tokens (id ${this.config.imageTokenId}) but the images give ${feats.shape[0]} tiles x ${feats.shape[1]} = ${nFeat} features; expand the prompt with the processor for these images`);
      if (!pos.length) return emb;
      const idx = tensor(pos, [pos.length], { dtype: 'i32', backend: emb.backend });
      const merged = scatterRows(reshape(emb, [B * T, H]), idx, reshape(feats, [nFeat, H]));
      return reshape(merged, [B, T, H]);
    });
  }

  /**
   * Logits [B, T, V] (or [B, 1, V] with logitsFor 'last'). With a cache, the new tokens' keys/values are appended
   * and attention covers everything cached; images are merged only on the first (empty-cache) call, as in
   * transformers.
   */
  forward(inputs: Idefics3Inputs, o: ForwardOptions = {}): Tensor {
    const cache = o.cache ?? null;
    const first = !cache || cache.length === 0;
    const roots = [inputs.inputIds, inputs.pixelValues, inputs.attentionMask].filter((t): t is Tensor => !!t);
    return tidyGraph(roots, () => {
      const emb = this.embedInputs(inputs.inputIds, first ? inputs.pixelValues : null, inputs.pixelAttentionMask, null, o.onTile);
      return this.text.forward(emb, { attentionMask: inputs.attentionMask, positions: inputs.positions, cache, logitsFor: o.logitsFor });
    });
  }

  // ---- training (the TrainableModel hook): logits at the positions a loss asks for

  /** Whether any vision tower weight or adapter on it requires grad (else the tower runs without a graph). */
  visionTrains(): boolean {
    for (const [n, t] of this.named) if (t.requiresGrad && VISION_TOWER.test(n)) return true;
    for (const [n, l] of this.linearMap)
      if (VISION_TOWER.test(n) && l.adapters?.some((a) => a.a.requiresGrad || a.b.requiresGrad || !!a.magnitude?.requiresGrad)) return true;
    return false;
  }

  logitsAt(inputs: Idefics3Inputs, rows: readonly number[]): Tensor {
    const { hidden, head } = this.hiddenAt(inputs, rows);
    return linear(hidden, head);
  }

  hiddenAt(inputs: Idefics3Inputs, rows: readonly number[]): { hidden: Tensor; head: Tensor | QuantizedWeight } {
    const [B, T] = inputs.inputIds.shape;
    const H = this.config.text.hiddenSize;
    let feats: Tensor | null = null;
    if (inputs.pixelValues) {
      if (this.visionTrains()) feats = this.visionFeatures(inputs.pixelValues, inputs.pixelAttentionMask);
      else {
        const vh = noGrad(() => this.visionHiddenStates(inputs.pixelValues!, inputs.pixelAttentionMask));
        feats = this.connector.forward(vh);
      }
    }
    const emb = this.embedInputs(inputs.inputIds, null, null, feats);
    const h = this.text.hidden(emb, { attentionMask: inputs.attentionMask });
    const idx = tensor(rows, [rows.length], { dtype: 'i32', backend: h.backend });
    return { hidden: indexSelect(reshape(h, [B * T, H]), idx), head: this.text.w.lmHead };
  }

  setGradientCheckpointing(on: boolean): void {
    this.text.gradientCheckpointing = on;
    this.vision.gradientCheckpointing = on && this.visionTrains();
  }

  // ---- generation (the CausalLM contract of src/generate): logits of the last position only, no graph

  /** Logits [B, T, V] of every position without a graph (positions 0..T-1 unless given, as transformers' forward). */
  logits(inputs: Omit<Idefics3Inputs, 'positions'> & { positionIds?: Tensor | null }): Tensor {
    return noGrad(() =>
      this.forward({
        inputIds: inputs.inputIds,
        attentionMask: inputs.attentionMask ?? null,
        pixelValues: inputs.pixelValues ?? null,
        pixelAttentionMask: inputs.pixelAttentionMask ?? null,
        positions: inputs.positionIds ?? null,
      }),
    );
  }

  /** logits width */
  get vocabSize(): number {
    return this.config.text.vocabSize;
  }
  /** the text model's context length */
  get maxPositions(): number {
    return this.config.text.maxPositionEmbeddings;
  }

  /** A KV cache for `batch` rows of up to `capacity` tokens (prompt + generated). */
  createCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.config.text, batch, capacity, this.backend);
  }

  /** A cache of rows taken from others, right-aligned to end at `length` (continuous batching; KVCache.gather). */
  gatherCache(parts: readonly CacheRowSpan[], length: number, capacity: number): KVCache {
    return KVCache.gather(parts, length, capacity);
  }

  /** The prompt pass: fills the (empty) cache, returns logits [B, V] of each row's last position. */
  prefill(inputs: Omit<Idefics3Inputs, 'positions'> & { positionIds?: Tensor | null }, cache: KVCache, o: { onTile?: TileProgress } = {}): Tensor {
    if (cache.length !== 0) throw new VlmkitError('E_CACHE', `prefill needs an empty cache, this one holds ${cache.length} positions; reset() it or make a new one`);
    return this.lastLogits({ ...inputs, positions: inputs.positionIds ?? null }, cache, o.onTile);
  }

  /**
   * Where a cached prefix of `ids` may end, at most at p: never inside a tile's run of <image> tokens (a tile's
   * features come from its own pixels only, so whole tiles can stay cached while later ones are encoded).
   */
  resumePoint(ids: readonly number[], p: number): number {
    const img = this.config.imageTokenId, seq = this.config.imageSeqLen;
    let inTile = 0; // <image> tokens of the tile that p cuts, before p
    for (let i = 0; i < p; i++) if (ids[i] === img) inTile = (inTile + 1) % seq;
    let q = p;
    while (inTile > 0 && q > 0) if (ids[--q] === img) inTile--;
    return q;
  }

  /**
   * The prompt pass after a cached prefix: the cache keeps positions [0, start) (they hold these same tokens) and
   * the rest of a one-row prompt runs now. `inputs` are the whole prompt's (ids [1, T], every image's tiles);
   * only the tiles whose <image> tokens lie past `start` go through the vision tower. Returns logits [1, V].
   */
  prefillFrom(inputs: Omit<Idefics3Inputs, 'positions'>, cache: KVCache, start: number, o: { onTile?: TileProgress } = {}): Tensor {
    const [B, T] = inputs.inputIds.shape;
    if (B !== 1) throw new ShapeError(`prefillFrom: one row only, got ${B}`);
    if (!Number.isInteger(start) || start < 0 || start >= T || start > cache.length)
      throw new ShapeError(`prefillFrom: start ${start} must be below the prompt's ${T} tokens and within the cache's ${cache.length}`);
    return noGrad(() => tidy(() => {
      const ids = hostInts(inputs.inputIds);
      const img = this.config.imageTokenId;
      let rest = 0;
      for (let i = start; i < T; i++) if (ids[i] === img) rest++;
      if (rest % this.config.imageSeqLen !== 0)
        throw new VlmkitError('E_CACHE', `prefillFrom: start ${start} cuts a tile's <image> tokens; take it from resumePoint()`);
      const tiles = rest / this.config.imageSeqLen;
      let pixels: Tensor | null = null, pmask: Tensor | null = null;
      if (tiles > 0) {
        const pv = inputs.pixelValues;
        if (!pv || pv.shape[1] < tiles) throw new VlmkitError('E_IMAGE_TOKENS', `prefillFrom: the prompt's last ${tiles} tiles have no pixel values`);
        const N = pv.shape[1];
        pixels = slice(pv, 1, N - tiles, N);
        pmask = inputs.pixelAttentionMask ? slice(inputs.pixelAttentionMask, 1, N - tiles, N) : null;
      }
      cache.truncate(start);
      const emb = this.embedInputs(slice(inputs.inputIds, 1, start, T), pixels, pmask, null, o.onTile);
      const positions = tensor(Array.from({ length: T - start }, (_, i) => start + i), [1, T - start], { dtype: 'i32', backend: emb.backend });
      const l = this.text.forward(emb, { cache, positions, logitsFor: 'last' });
      return reshape(l, [1, l.shape[2]]);
    }));
  }

  /** One new token per row ([B, 1] ids and positions, attention mask [B, past + 1]); returns logits [B, V]. */
  step(inputs: { inputIds: Tensor; positionIds?: Tensor | null; attentionMask?: Tensor | null }, cache: KVCache): Tensor {
    return this.lastLogits({ inputIds: inputs.inputIds, attentionMask: inputs.attentionMask, positions: inputs.positionIds ?? null }, cache);
  }

  private lastLogits(inputs: Idefics3Inputs, cache: KVCache, onTile?: TileProgress): Tensor {
    return noGrad(() => tidy(() => {
      const l = this.forward(inputs, { cache, logitsFor: 'last', onTile });
      return reshape(l, [l.shape[0], l.shape[2]]);
    }));
  }

  dispose(): void {
    for (const t of this.named.values()) t.dispose();
    for (const w of this.packed.values()) w.dispose();
    this.text.decodeHeadMaker = null; // (never made: nothing to release)
    this.text.decodeHead?.dispose();
    this.text.decodeHead = null;
    this.text.invFreq.dispose();
  }
}

export interface LoadModelOptions {
  /** 'f32': every weight in f32 (training, parity). Default: linear weights stay in their stored dtype. */
  dtype?: 'f32';
  backend?: Backend;
  /** quantize the linears at load time (Idefics3Model.quantize); a checkpoint already quantized keeps its format */
  quant?: QuantFormat;
  /** NF4: double-quantize the block absmax (default true) */
  doubleQuant?: boolean;
}

/** Loads an Idefics3 / SmolVLM checkpoint directory (config.json + model.safetensors or sharded). */
export function loadModel(dir: string | ModelDir, o: LoadModelOptions = {}): Idefics3Model {
  const ckpt = Checkpoint.open(dir);
  try {
    const config = idefics3ConfigFromJson(ckpt.config, `${ckpt.dir}/config.json`);
    const { weights, named, linears } = loadIdefics3Weights(ckpt, config, { dtype: o.dtype, backend: o.backend });
    const model = new Idefics3Model(config, weights, named, linears);
    if (o.quant) {
      try {
        model.quantize(o.quant, { doubleQuant: o.doubleQuant });
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    return model;
  } finally {
    ckpt.close();
  }
}
