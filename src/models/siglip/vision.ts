// The SigLIP vision tower (with NaViT-style position ids for padded tiles), a module of its own: Idefics3 /
// SmolVLM use it, and a contrastive SigLIP model will. Computed as transformers' Idefics3VisionTransformer does: patch embedding (a stride-p conv, done here as unfold + linear), position
// embeddings indexed by bucketized fractional coordinates of the valid patches, pre-norm encoder layers with
// non-causal attention over the valid patches, and a final layer norm.
import { type Tensor, add, checkpoint, contiguous, embedding, layerNorm, linear, permute, reshape, tensor } from '../../engine/index.js';
import { ShapeError } from '../../errors.js';
import { advance, tidyGraph } from '../common.js';
import type { SiglipVisionConfig } from './config.js';
import { encoderLayer } from './encoder.js';
import type { VisionLayerWeights, VisionWeights } from './weights.js';

/** Which patches of each tile hold image content: [N, hp·wp] as 0/1 bytes, row-major over (row, col). */
export interface PatchMask {
  n: number;
  hp: number;
  wp: number;
  data: Uint8Array;
  /** every patch of every tile is valid (the attention needs no mask) */
  full: boolean;
}

/**
 * Patch mask from a pixel mask [N, H, W] (any values, nonzero = valid pixel): a patch is valid when any of its
 * pixels is (transformers: unfold + sum > 0).
 */
export function patchMaskFromPixelMask(pix: ArrayLike<number>, n: number, h: number, w: number, patch: number): PatchMask {
  if (h % patch !== 0 || w % patch !== 0) throw new ShapeError(`vision: pixel mask ${h}x${w} is not a multiple of the patch size ${patch}`);
  const hp = h / patch, wp = w / patch;
  const data = new Uint8Array(n * hp * wp);
  let full = true;
  for (let i = 0; i < n; i++) {
    const base = i * h * w;
    for (let r = 0; r < hp; r++)
      for (let c = 0; c < wp; c++) {
        let any = 0;
        for (let y = r * patch; y < (r + 1) * patch && !any; y++) {
          const row = base + y * w + c * patch;
          for (let x = 0; x < patch; x++) if (pix[row + x]) { any = 1; break; }
        }
        data[(i * hp + r) * wp + c] = any;
        if (!any) full = false;
      }
  }
  return { n, hp, wp, data, full };
}

export function fullPatchMask(n: number, hp: number, wp: number): PatchMask {
  return { n, hp, wp, data: new Uint8Array(n * hp * wp).fill(1), full: true };
}

/** torch.arange(start, end, step) in float32, as the CPU kernel computes it (double accumulation, then rounded). */
function arangeF32(start: number, end: number, step: number): Float32Array {
  const n = Math.max(0, Math.ceil((end - start) / step));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  return out;
}

/** torch.bucketize(x, boundaries, right=True): the number of boundaries <= x. */
function bucketizeRight(x: number, boundaries: Float32Array): number {
  let k = 0;
  while (k < boundaries.length && boundaries[k] <= x) k++;
  return k;
}

/**
 * Position ids of every patch: valid patches of a tile with nh x nw valid rows/cols get
 * bucket(i/nh)·side + bucket(j/nw) over `side` buckets of [0, 1); padding patches get 0 (Idefics3VisionEmbeddings).
 */
export function visionPositionIds(mask: PatchMask, side: number): Int32Array {
  const { n, hp, wp, data } = mask;
  const ids = new Int32Array(n * hp * wp);
  const boundaries = arangeF32(1 / side, 1.0, 1 / side);
  for (let t = 0; t < n; t++) {
    const off = t * hp * wp;
    let nh = 0, nw = 0;
    for (let r = 0; r < hp; r++) nh += data[off + r * wp];
    for (let c = 0; c < wp; c++) nw += data[off + c];
    if (nh === 0 || nw === 0) continue;
    // the step is the float32 tensor 1/nb_patches, widened back to double by arange
    const fh = arangeF32(0, 1 - 1e-6, Math.fround(1 / nh));
    const fw = arangeF32(0, 1 - 1e-6, Math.fround(1 / nw));
    const bh = Array.from(fh, (x) => bucketizeRight(x, boundaries));
    const bw = Array.from(fw, (x) => bucketizeRight(x, boundaries));
    const pos: number[] = [];
    for (const a of bh) for (const b of bw) pos.push(a * side + b);
    // position_ids[mask] = pos: assigned to the valid patches in row-major order
    let k = 0;
    for (let p = 0; p < hp * wp; p++) if (data[off + p]) {
      if (k >= pos.length) throw new ShapeError(`vision: tile ${t} has a patch mask that is not a rectangle at the top-left (${nh}x${nw} rows/cols)`);
      ids[off + p] = pos[k++];
    }
    if (k !== pos.length) throw new ShapeError(`vision: tile ${t} has a patch mask that is not a rectangle at the top-left (${nh}x${nw} rows/cols)`);
  }
  return ids;
}

export class VisionTransformer {
  readonly cfg: SiglipVisionConfig;
  readonly w: VisionWeights;
  /** recompute each encoder layer in the backward pass instead of keeping its intermediates (read at forward time) */
  gradientCheckpointing = false;

  /**
   * 'buckets': Idefics3's NaViT-style ids (above); 'arange': SiglipVisionEmbeddings' plain 0..P-1 (the contrastive
   * SigLIP model, whose images are never padded). The two agree on a full square grid except where the float32
   * bucketing rounds a fraction down, so each model keeps its own reference's rule.
   */
  readonly positions: 'buckets' | 'arange';

  constructor(cfg: SiglipVisionConfig, w: VisionWeights, o: { positions?: 'buckets' | 'arange' } = {}) {
    this.cfg = cfg;
    this.w = w;
    this.positions = o.positions ?? 'buckets';
  }

  /** Patch + position embeddings: pixels [N, C, H, W] f32 -> [N, hp·wp, D]. */
  embed(pixels: Tensor, mask: PatchMask): Tensor {
    const { patchSize: p, numChannels: C, patchesPerSide } = this.cfg;
    const [N, c, H, W] = pixels.shape;
    if (pixels.rank !== 4 || c !== C || H % p !== 0 || W % p !== 0)
      throw new ShapeError(`vision: pixel values ${JSON.stringify(pixels.shape)} must be [tiles, ${C}, H, W] with H and W multiples of ${p}`);
    const hp = H / p, wp = W / p;
    return tidyGraph([pixels], () => {
      // conv with stride = kernel = p: unfold into [N, hp·wp, C·p·p] in the weight's (c, ky, kx) order
      const u = reshape(pixels, [N, C, hp, p, wp, p]);
      const patches = reshape(contiguous(permute(u, [0, 2, 4, 1, 3, 5])), [N, hp * wp, C * p * p]);
      const x = linear(patches, reshape(this.w.patch.w, [this.cfg.hiddenSize, C * p * p]), this.w.patch.b ?? undefined);
      if (this.positions === 'arange' && (hp !== patchesPerSide || wp !== patchesPerSide || !mask.full))
        throw new ShapeError(`vision: pixel values ${JSON.stringify(pixels.shape)} must be ${this.cfg.imageSize}x${this.cfg.imageSize} images (vision_config.image_size)`);
      const pos = this.positions === 'arange' ? Int32Array.from({ length: N * hp * wp }, (_, i) => i % (hp * wp)) : visionPositionIds(mask, patchesPerSide);
      const ids = tensor(pos, [N, hp * wp], { dtype: 'i32', backend: pixels.backend });
      return add(x, embedding(this.w.posEmbed, ids));
    });
  }

  layer(x: Tensor, l: VisionLayerWeights, keyMask: Tensor | null): Tensor {
    const { numAttentionHeads: heads, headDim, layerNormEps: eps, hiddenAct: act } = this.cfg;
    return encoderLayer(x, l, { heads, headDim, eps, act, keyMask });
  }

  /**
   * last_hidden_state [N, hp·wp, D] of tiles pixels [N, C, H, W] (f32). `mask` marks valid patches (default: all);
   * padding patches are never attended to.
   */
  forward(pixels: Tensor, mask?: PatchMask | null): Tensor {
    const p = this.cfg.patchSize;
    const [N, , H, W] = pixels.shape;
    const m = mask ?? fullPatchMask(N, H / p, W / p);
    if (m.n !== N || m.hp * p !== H || m.wp * p !== W)
      throw new ShapeError(`vision: patch mask [${m.n}, ${m.hp}, ${m.wp}] does not fit pixel values ${JSON.stringify(pixels.shape)} (patch ${p})`);
    return tidyGraph([pixels], () => {
      let x = this.embed(pixels, m);
      const keyMask = m.full ? null : tensor(m.data, [N, m.hp * m.wp], { dtype: 'u8', backend: pixels.backend });
      for (const l of this.w.layers)
        x = advance(x, this.gradientCheckpointing ? checkpoint((xi) => this.layer(xi, l, keyMask), [x]) : this.layer(x, l, keyMask));
      return layerNorm(x, this.w.post.w, this.w.post.b, this.cfg.layerNormEps);
    });
  }
}
