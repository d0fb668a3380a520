// The patch-label objective: a vision tower alone, trained to name, for every patch, what covers it (dense
// supervision, as segmentation pretraining does). A tower trained only through a VLM's answer loss learns shape
// slowly (the built-in model read colours well and kinds hardly at all); a per-patch label of the object's kind,
// colour and part of its box gives every patch of every picture a target. The tower is then the start of a VLM
// (`--vision-from`), whose connector and decoder learn to read it.
//
// The pictures are generated as the batches are made (a new scene for every row of every step; the data is the
// generator, its seed and how many scenes an epoch has), so the tower never sees a picture twice.
//
// Loss: for each label set (head), the cross-entropy of a linear layer on the tower's last hidden state, summed over
// heads and patches; each patch of each picture is one loss target, so the reported loss is the per-patch sum over
// heads, averaged over patches.
import { type Tensor, add, argmax, crossEntropy, linear, mul, noGrad, randn, reshape, tensor } from '../engine/index.js';
import { hostInts } from '../models/index.js';
import { encoderLayers, siglipVisionTowerSpecs } from '../models/siglip/contrastive.js';
import type { SiglipVisionConfig } from '../models/siglip/config.js';
import { VisionTransformer } from '../models/siglip/vision.js';
import { BOX_HEADS, PATCH_HEADS, scenePatchLabels } from '../data/patch-labels.js';
import { Rng, mixSeed } from '../data/rng.js';
import { randomScene, renderScene } from '../data/shapes.js';
import type { TensorSpec } from '../models/contrastive.js';
import { randomSpecTensors } from '../models/contrastive.js';
import type { LoopModel, MicroBatch, Objective } from './trainer.js';

/** A generated picture: its stream is (seed, index), so the same example is the same picture on every machine. */
export interface PatchExample {
  index: number;
}

export interface PatchBatch extends MicroBatch {
  pixels: Tensor;
  /** per head: labels [N · P] */
  labels: Map<string, Int32Array>;
}

/** Every tensor of a SigLIP vision tower (transformers' SiglipVisionModel names) plus the patch heads. */
export function patchModelSpecs(v: SiglipVisionConfig, heads: Readonly<Record<string, readonly string[]>>): TensorSpec[] {
  const out = siglipVisionTowerSpecs(v);
  for (const [name, classes] of Object.entries(heads))
    out.push({ hf: `patch_heads.${name}.weight`, shape: [classes.length, v.hiddenSize], from: 'patch heads' }, { hf: `patch_heads.${name}.bias`, shape: [classes.length], from: 'patch heads' });
  return out;
}

/** A vision tower with a linear head per label set. */
export class PatchModel implements LoopModel {
  readonly vision: VisionTransformer;
  readonly heads: { name: string; classes: readonly string[]; w: Tensor; b: Tensor }[];

  constructor(readonly cfg: SiglipVisionConfig, readonly named: Map<string, Tensor>, headClasses: Readonly<Record<string, readonly string[]>>) {
    const g = (n: string) => {
      const t = named.get(n);
      if (!t) throw new Error(`patch model: no tensor ${n}`);
      return t;
    };
    this.vision = new VisionTransformer(cfg, {
      patch: { w: g('vision_model.embeddings.patch_embedding.weight'), b: g('vision_model.embeddings.patch_embedding.bias') },
      posEmbed: g('vision_model.embeddings.position_embedding.weight'),
      layers: encoderLayers(g, 'vision_model.encoder.layers.', cfg.numHiddenLayers),
      post: { w: g('vision_model.post_layernorm.weight'), b: g('vision_model.post_layernorm.bias') },
    });
    this.heads = Object.entries(headClasses).map(([name, classes]) => ({ name, classes, w: g(`patch_heads.${name}.weight`), b: g(`patch_heads.${name}.bias`) }));
  }

  /**
   * A new model: the tower initialised as the from-scratch VLM's (N(0, 0.02²) weights, zero biases, unit norms),
   * the heads the same.
   */
  static random(cfg: SiglipVisionConfig, heads: Readonly<Record<string, readonly string[]>>, seed: number): PatchModel {
    const named = randomSpecTensors(patchModelSpecs(cfg, heads), seed);
    // MAE's start for a ViT trained from scratch: 2D sin-cos position embeddings (so that "next to" and "above"
    // are there from the first step instead of learned from N(0, 0.02²) noise, several times smaller than the
    // patch embeddings) and a patch embedding at Xavier scale
    const D = cfg.hiddenSize, g = cfg.patchesPerSide, fanIn = cfg.numChannels * cfg.patchSize ** 2;
    const swap = (name: string, t: Tensor) => { named.get(name)!.dispose(); t.name = name; named.set(name, t); };
    swap('vision_model.embeddings.position_embedding.weight', tensor(sinCos2d(g, D), [g * g, D]));
    swap('vision_model.embeddings.patch_embedding.weight', randn([D, cfg.numChannels, cfg.patchSize, cfg.patchSize], { seed: seed * 1_000_003 + 7919, std: Math.sqrt(2 / (fanIn + D)) }));
    return new PatchModel(cfg, named, heads);
  }

  /** The trainable tensors by name (every one), gradients on. */
  parameters(): Map<string, Tensor> {
    for (const t of this.named.values()) t.requiresGrad = true;
    return this.named;
  }

  setGradientCheckpointing(on: boolean): void {
    this.vision.gradientCheckpointing = on;
  }

  visionTrains(): boolean {
    return true;
  }

  /** Per head, the logits [N · P, classes] of pixels [N, C, H, W]. */
  logits(pixels: Tensor): Map<string, Tensor> {
    const h = this.vision.forward(pixels);
    const [N, P, D] = h.shape as [number, number, number];
    const flat = reshape(h, [N * P, D]);
    return new Map(this.heads.map((hd) => [hd.name, linear(flat, hd.w, hd.b)]));
  }

  dispose(): void {
    for (const t of this.named.values()) t.dispose();
  }
}

/**
 * MAE's 2D sin-cos position embeddings of a g x g grid, [g·g, D] row-major: the first half of the channels encodes
 * the row, the second the column, each as D/4 sines then D/4 cosines of frequencies 1 / 10000^(k / (D/4)).
 */
export function sinCos2d(g: number, D: number): Float32Array {
  if (D % 4 !== 0) throw new Error(`2D sin-cos position embeddings need a width that is a multiple of 4, got ${D}`);
  const q = D / 4, out = new Float32Array(g * g * D);
  for (let r = 0; r < g; r++)
    for (let c = 0; c < g; c++) {
      const o = (r * g + c) * D;
      for (let k = 0; k < q; k++) {
        const w = 1 / 10000 ** (k / q);
        out[o + k] = Math.sin(r * w);
        out[o + q + k] = Math.cos(r * w);
        out[o + 2 * q + k] = Math.sin(c * w);
        out[o + 3 * q + k] = Math.cos(c * w);
      }
    }
  return out;
}

/** Pixel values as the Idefics3 / SigLIP processors make them: rescale by 1/255, then (x - 0.5) / 0.5. */
export function normalizePixels(rgb: Uint8Array, size: number, into: Float32Array, offset: number): void {
  const plane = size * size;
  for (let i = 0; i < plane; i++)
    for (let c = 0; c < 3; c++) into[offset + c * plane + i] = (Math.fround(rgb[i * 3 + c]! * Math.fround(1 / 255)) - 0.5) / 0.5;
}

export interface PatchObjectiveOptions {
  /** the generator's seed: example i is the scene of stream (seed, i) */
  seed: number;
  /** the side of the pictures (the tower's image_size) */
  size: number;
  patchSize: number;
  /** the label sets trained (each a head of the model); PATCH_HEADS when left out */
  heads?: Readonly<Record<string, readonly string[]>>;
}

/** Per-patch cross-entropy on generated shapes scenes. */
export class PatchObjective implements Objective<PatchExample, PatchBatch, PatchModel> {
  readonly patches: number;
  private right = new Map<string, number>();
  /** box heads: patches whose predicted bin is within one of the label's */
  private near = new Map<string, number>();
  private fg = 0;
  private seen = 0;

  constructor(readonly o: PatchObjectiveOptions) {
    if (o.size % o.patchSize !== 0) throw new Error(`patch objective: ${o.size} px pictures are not a whole number of ${o.patchSize} px patches`);
    this.patches = (o.size / o.patchSize) ** 2;
  }

  length(): number {
    return this.patches;
  }

  countTargets(): number {
    return this.patches;
  }

  async prepare(exs: PatchExample[]): Promise<PatchBatch> {
    const { size, patchSize, seed } = this.o;
    const N = exs.length, P = this.patches;
    const px = new Float32Array(N * 3 * size * size);
    const labels = new Map<string, Int32Array>(Object.keys(this.o.heads ?? PATCH_HEADS).map((k) => [k, new Int32Array(N * P)]));
    exs.forEach((ex, b) => {
      const scene = randomScene(new Rng(mixSeed(seed, 7, ex.index)), size);
      normalizePixels(renderScene(scene).data, size, px, b * 3 * size * size);
      const l = scenePatchLabels(scene, patchSize);
      for (const [k, v] of labels) {
        const lk = l[k];
        if (!lk) throw new Error(`patch objective: no labels named ${JSON.stringify(k)} (there are ${Object.keys(l).join(', ')})`);
        v.set(lk, b * P);
      }
    });
    const pixels = tensor(px, [N, 3, size, size]);
    return { batchSize: N, numTokens: N * P, numTargets: N * P, pixels, labels, dispose() { pixels.dispose(); } };
  }

  loss(model: PatchModel, b: PatchBatch, denominator: number): Tensor {
    const logits = model.logits(b.pixels);
    let total: Tensor | null = null;
    const kind = b.labels.get('kind')!;
    for (const [name, lg] of logits) {
      const y = b.labels.get(name)!;
      const ce = crossEntropy(lg, tensor(y, [y.length], { dtype: 'i32' }), { reduction: 'sum' });
      total = total ? add(total, ce) : ce;
      // accuracy on the patches that an object covers (the background is most of every picture)
      const pred = noGrad(() => hostInts(argmax(lg, -1)));
      let r = 0, near = 0;
      for (let i = 0; i < y.length; i++) {
        if (kind[i] === 0) continue;
        if (pred[i] === y[i]) r++;
        if (pred[i] !== 0 && Math.abs(pred[i]! - y[i]!) <= 1) near++;
      }
      this.right.set(name, (this.right.get(name) ?? 0) + r);
      if (BOX_HEADS[name]) this.near.set(name, (this.near.get(name) ?? 0) + near);
    }
    for (let i = 0; i < kind.length; i++) if (kind[i] !== 0) this.fg++;
    this.seen += b.batchSize;
    return mul(total!, 1 / denominator);
  }

  takeMetrics(): Record<string, number> | null {
    if (!this.fg) return null;
    const out: Record<string, number> = {};
    for (const [k, r] of this.right) out[`${k}_accuracy`] = r / this.fg;
    for (const [k, r] of this.near) out[`${k}_within1`] = r / this.fg;
    this.right.clear();
    this.near.clear();
    this.fg = this.seen = 0;
    return out;
  }
}
