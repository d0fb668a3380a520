// A randomly initialised Idefics3 / SmolVLM model, for pretraining from scratch. The rules are transformers'
// Idefics3PreTrainedModel._init_weights (Idefics2's before it), which every submodule of
// Idefics3ForConditionalGeneration goes through, the SigLIP-style vision tower included (SigLIP's own lecun/xavier
// rules are not used by Idefics3):
//   Linear, Conv2d (the patch embedding)  weight ~ N(0, std²), bias = 0
//   Embedding (tokens, vision positions)  weight ~ N(0, std²); the text embedding's padding_idx row
//                                         (text_config.pad_token_id, as LlamaModel builds it) = 0
//   LayerNorm                              weight = 1, bias = 0;  RMSNorm  weight = 1
// with std = initializer_range (config.initializerRange). An untied lm_head is a Linear (normal); a tied one is the
// embedding itself. The draws are not torch's (its generator is not reproduced); they are a pure function of
// (seed, tensor name): a tensor's values do not depend on the order of creation nor on the other tensors, so the
// same seed gives the same model on every machine, and adding a layer leaves the other layers' values as they were.
import type { Backend } from '../../engine/backend/backend.js';
import { type Tensor, zeros } from '../../engine/index.js';
import { VlmkitError } from '../../errors.js';
import type { Json } from '../../io/model-dir.js';
import { type Idefics3Config, idefics3ConfigFromJson } from './config.js';
import { Idefics3Model } from './model.js';
import { type AssembledWeights, type WeightSpec, assembleIdefics3Weights, canonicalName, idefics3WeightSpecs } from './weights.js';

export interface RandomInitOptions {
  /** the same seed gives the same weights (default 0) */
  seed?: number;
  backend?: Backend;
  /**
   * Ids of tokens that stand for ordered values (the location bins <loc0000>..<loc1023>), in order. Their
   * embedding rows start as a smooth function of the position in this list instead of independent draws, so that
   * neighbouring bins start close (and, with tied embeddings, get close logits): a box learned at one bin carries
   * to its neighbours instead of each of 1,024 rarely seen tokens being learned alone.
   */
  orderedTokens?: readonly number[];
}

/** How one tensor is initialised. */
export type InitRule = 'normal' | 'zeros' | 'ones';

/** The rule transformers applies to a tensor of the spec list. */
export function initRule(spec: WeightSpec): InitRule {
  if (spec.kind !== 'vector') return 'normal'; // linear / conv weights, the token embedding, lm_head
  if (spec.key === 'vision.posEmbed') return 'normal'; // an nn.Embedding
  if (spec.key.endsWith('.b')) return 'zeros'; // linear, conv and LayerNorm biases
  return 'ones'; // LayerNorm and RMSNorm weights
}

/** A 32-bit seed from the run's seed and a tensor's name (FNV-1a over the name, then a murmur3 finalizer). */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193);
  // seeds past 32 bits still count
  h ^= Math.floor(seed / 4294967296);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * n values of N(0, std²) into out: mulberry32 uniforms through Box-Muller, both outputs used. Inlined (not
 * engine Rng) because a few million draws per model should take well under a second.
 */
function fillNormal(out: Float32Array, std: number, seed: number): void {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < out.length; i += 2) {
    let u = uniform();
    while (u === 0) u = uniform();
    const r = Math.sqrt(-2 * Math.log(u)) * std, a = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(a);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
  }
}

/**
 * Rows of a smooth embedding for n ordered tokens: row k = sum over J frequencies f of cos(pi f k / (n-1)) a_f +
 * sin(pi f k / (n-1)) b_f with a_f, b_f ~ N(0, std² / J), so each coordinate has variance ~std² as a normal draw
 * has. Frequencies run geometrically from 1/2 to n/16 half-cycles: bins 16 apart stay distinguishable (1,024 bins
 * over a 128 px picture is 8 bins a pixel) while neighbours nearly coincide.
 */
function fillOrderedRows(d: Float32Array, ids: readonly number[], H: number, std: number, seed: number): void {
  const n = ids.length;
  if (n < 2) return;
  const J = 16;
  const fLo = 0.5, fHi = Math.max(1, n / 16);
  const basis = new Float32Array(2 * J * H);
  fillNormal(basis, std / Math.sqrt(J), seed);
  const row = new Float32Array(H);
  for (let k = 0; k < n; k++) {
    row.fill(0);
    for (let j = 0; j < J; j++) {
      const f = fLo * Math.pow(fHi / fLo, j / (J - 1));
      const a = (Math.PI * f * k) / (n - 1);
      const c = Math.cos(a), s = Math.sin(a);
      const A = basis.subarray(2 * j * H, (2 * j + 1) * H), B = basis.subarray((2 * j + 1) * H, (2 * j + 2) * H);
      for (let h = 0; h < H; h++) row[h] += c * A[h]! + s * B[h]!;
    }
    d.set(row, ids[k]! * H);
  }
}

/** Every tensor of a fresh model by spec key (f32), as transformers initialises it; lm_head only when untied. */
export function randomIdefics3Weights(cfg: Idefics3Config, o: RandomInitOptions = {}): AssembledWeights {
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new VlmkitError('E_ARGS', `the seed of a random initialisation must be an integer >= 0, got ${seed}`);
  const std = cfg.initializerRange;
  const pad = cfg.text.padTokenId;
  const flat = new Map<string, Tensor>();
  try {
    for (const spec of idefics3WeightSpecs(cfg)) {
      if (spec.key === 'lmHead' && cfg.tieWordEmbeddings) continue;
      const name = canonicalName(spec);
      const t = zeros(spec.shape, { backend: o.backend });
      t.name = name;
      flat.set(spec.key, t);
      const rule = initRule(spec);
      const d = t.data as Float32Array;
      if (rule === 'ones') d.fill(1);
      else if (rule === 'normal') {
        fillNormal(d, std, tensorSeed(seed, name));
        if (spec.key === 'text.embed' && pad !== null && pad >= 0 && pad < cfg.text.vocabSize) {
          const H = cfg.text.hiddenSize;
          d.fill(0, pad * H, (pad + 1) * H);
        }
        if (spec.key === 'text.embed' && o.orderedTokens?.length) {
          const H = cfg.text.hiddenSize;
          for (const id of o.orderedTokens)
            if (!Number.isInteger(id) || id < 0 || id >= cfg.text.vocabSize) throw new VlmkitError('E_ARGS', `ordered token id ${id} is outside the vocabulary (0..${cfg.text.vocabSize - 1})`);
          fillOrderedRows(d, o.orderedTokens, H, std, tensorSeed(seed, name + '#ordered'));
        }
      }
    }
  } catch (e) {
    for (const t of flat.values()) t.dispose();
    throw e;
  }
  return assembleIdefics3Weights(cfg, flat, cfg.tieWordEmbeddings);
}

/** A fresh model of the given config, every weight f32 (training from scratch). */
export function randomModel(cfg: Idefics3Config, o: RandomInitOptions = {}): Idefics3Model {
  const { weights, named, linears } = randomIdefics3Weights(cfg, o);
  return new Idefics3Model(cfg, weights, named, linears);
}

/** A fresh model from a parsed config.json (`source` names it in errors). */
export function randomModelFromJson(json: Json, source = 'config.json', o: RandomInitOptions = {}): Idefics3Model {
  return randomModel(idefics3ConfigFromJson(json, source), o);
}
