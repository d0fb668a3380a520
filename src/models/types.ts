// The small faces a model family shows the rest of vlmkit. api.ts, cli/, generate/ and train/ see a model only
// through these (structurally: generate's CausalLM, train's AdaptableModel / ParameterizedModel are satisfied
// without models/ importing generate/ or train/). A family folder implements them; models/index.ts picks it.
import type { Tensor } from '../engine/tensor.js';
import type { QuantizedWeight } from '../engine/quant/weight.js';
import type { Linear } from './common.js';

/** The model's key/value cache for one batch. Rows are in the order of the batch given to prefill. */
export interface ModelCache {
  /** positions held per row (prompt length incl. padding + decoded steps) */
  readonly length: number;
  /** Keeps only these rows (indices into the current rows, ascending); later steps get that many rows. */
  keepRows(rows: readonly number[]): void;
  /** Keeps the first n positions (a prompt prefix shared with the next prompt). */
  truncate?(n: number): void;
  /** bytes its buffers hold (the server's prefix cache bounds its memory by it) */
  readonly bytes?: number;
  /** Room for at least `capacity` positions (the cached ones kept). */
  reserve?(capacity: number): void;
  dispose(): void;
}

/** The inputs of a forward: token ids [B, T] with the family's image tokens expanded, masks, pixel tiles. */
export interface ModelForwardInputs {
  inputIds: Tensor;
  attentionMask?: Tensor | null;
  pixelValues?: Tensor | null;
  pixelAttentionMask?: Tensor | null;
}

/** Generation: a KV cache, the prompt pass and one step, logits of the last position only (no graph). */
export interface GenerationModel {
  readonly vocabSize: number;
  readonly maxPositions: number;
  createCache(batch: number, capacity: number): ModelCache;
  prefill(inputs: ModelForwardInputs & { positionIds?: Tensor | null }, cache: ModelCache, o?: { onTile?: (done: number, total: number) => void }): Tensor;
  step(inputs: { inputIds: Tensor; positionIds?: Tensor | null; attentionMask?: Tensor | null }, cache: ModelCache): Tensor;
  resumePoint?(ids: readonly number[], p: number): number;
  prefillFrom?(inputs: ModelForwardInputs, cache: ModelCache, start: number, o?: { onTile?: (done: number, total: number) => void }): Tensor;
  /** Continuous batching: a new cache of rows taken from others, right-aligned to end at `length`. */
  gatherCache?(parts: readonly { cache: ModelCache; row: number; from: number; to: number }[], length: number, capacity: number): ModelCache;
  /** Logits [B, T, V] of every position, no graph; positions default to 0..T-1 as transformers' forward. */
  logits(inputs: ModelForwardInputs & { positionIds?: Tensor | null }): Tensor;
}

/** LoRA: every linear layer by its transformers module path, the objects the forward reads. */
export interface AdaptableModel {
  linears(): Map<string, Linear>;
  /** LoRA target_modules when none are given (PEFT's default for the architecture) */
  readonly defaultLoraTargets?: readonly string[];
}

/** Training: parameters by transformers name, and the hook a loss calls (it never reaches into the model). */
export interface TrainableModel {
  parameters(): Map<string, Tensor>;
  /**
   * The training hook: logits [rows.length, V] at the flat positions `rows` (row · T + t) of a [B, T] batch, with
   * a graph back to whatever requires grad. Only those rows go through the lm_head, so a loss pays for its
   * targets only. Parts of the model with nothing to train run without a graph.
   */
  logitsAt(inputs: ModelForwardInputs, rows: readonly number[]): Tensor;
  /**
   * logitsAt before the lm_head: the final hidden states [rows.length, H] at those rows, and the head's weight
   * [V, H] (block-quantized in an NF4 model, whose tied embeddings are Q8_0). A loss that applies the head itself
   * (linearCrossEntropy, which never holds the logits) reads this.
   */
  hiddenAt?(inputs: ModelForwardInputs, rows: readonly number[]): { hidden: Tensor; head: Tensor | QuantizedWeight };
  /** Whether the vision tower has anything that requires grad (else it runs without a graph). */
  visionTrains(): boolean;
  /** Recompute activations in the backward pass (only in parts that train). Off after training. */
  setGradientCheckpointing(on: boolean): void;
  /** transformers parameter names of the vision tower (frozen by the 'frozen-vision' mode) */
  readonly visionParameters: RegExp;
  /** the vision tower's module paths as a PEFT exclude_modules pattern (LoRA without the vision tower) */
  readonly visionModules: string;
}

/** The image side on its own (the parity tool checks each against the reference). */
export interface VisionEncoder {
  /** the vision tower's last hidden state [tiles, patches, Dv] of the real tiles of pixel values [B, N, C, S, S] */
  visionHiddenStates(pixelValues: Tensor, pixelAttentionMask?: Tensor | null): Tensor;
  /** image features [tiles, tokens per tile, H]: what replaces the image tokens' embeddings */
  visionFeatures(pixelValues: Tensor, pixelAttentionMask?: Tensor | null): Tensor;
}

/** A vision-language model as vlmkit uses it: generation, LoRA, training, its vision encoder. */
export interface VisionLanguageModel extends GenerationModel, AdaptableModel, TrainableModel, VisionEncoder {
  /** where a cached prompt prefix may end, at most at p (never inside an image's tokens) */
  resumePoint(ids: readonly number[], p: number): number;
  /** the family folder that made it ('idefics3') */
  readonly family: string;
  dispose(): void;
}

/**
 * A contrastive image-text model (CLIP, SigLIP): an image tower and a text tower that map into one embedding
 * space, and the pairwise scores between them. Embeddings come back L2-normalised, as transformers returns them.
 */
export interface ContrastiveModel {
  /** the family folder that made it ('clip', 'siglip') */
  readonly family: string;
  /** 'softmax': CLIP (an image's scores are probabilities over the labels); 'sigmoid': SigLIP (each on its own) */
  readonly scoring: 'softmax' | 'sigmoid';
  /** the vision tower's input side in pixels */
  readonly imageSize: number;
  /** the embedding width (projection_dim / projection_size) */
  readonly embedDim: number;
  /** image_embeds [N, E] of pixel values [N, C, S, S] (f32) */
  imageEmbeds(pixelValues: Tensor): Tensor;
  /** text_embeds [B, E] of token ids [B, T] and their attention mask (1 = real token) */
  textEmbeds(inputIds: Tensor, attentionMask?: Tensor | null): Tensor;
  /** logits_per_image [N, B]: logit_scale.exp() · image · textᵀ (+ logit_bias for SigLIP) */
  logitsPerImage(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor;
  /** parameters by transformers name */
  parameters(): Map<string, Tensor>;
  /** training: the encoder layers' linears by module path (what LoRA adapts) and PEFT-style default targets */
  linears(): Map<string, Linear>;
  readonly defaultLoraTargets: readonly string[];
  /** recompute each encoder layer in the backward pass (both towers) */
  setGradientCheckpointing(on: boolean): void;
  /** whether anything in the vision tower requires grad */
  visionTrains(): boolean;
  /** transformers names of the vision tower's parameters, and its module paths as a PEFT exclude pattern */
  readonly visionParameters: RegExp;
  readonly visionModules: string;
  dispose(): void;
}
