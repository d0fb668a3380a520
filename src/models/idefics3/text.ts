// The Llama text model of Idefics3 / SmolVLM, as transformers' LlamaModel computes it: token embeddings, pre-norm
// decoder layers (RMSNorm; q/k/v/o projections; rotary embeddings at per-row positions; grouped-query attention,
// causal plus key padding mask; SiLU-gated MLP), a final RMSNorm and the lm_head. A KVCache holds pre-allocated
// [B, Hkv, maxLen, D] key/value buffers per layer for step-by-step generation.
import type { Backend, LlamaDecodeLayer } from '../../engine/backend/backend.js';
import {
  Tensor, type QuantizedWeight, add, addRmsNorm, attention, checkpoint, embedding, int8ActivationsNow, isGradEnabled, linear, linears, mul, noGrad, permute, reshape,
  rmsNorm, rope, ropeAppendKV, ropeInvFreq, silu, slice, swiglu, tensor, warmCaches, zeros,
} from '../../engine/index.js';
import { ShapeError, VlmkitError } from '../../errors.js';
import { type Linear, advance, applyLinear, tidyGraph } from '../common.js';
import type { LlamaTextConfig } from './config.js';
import type { TextLayerWeights, TextWeights } from './weights.js';

const lin = applyLinear;
/** A linear of f32/bf16/f16 weight without bias or enabled adapters (a fused op may read its weight directly). */
const plain = (l: Linear): l is Linear<Tensor> => l.w instanceof Tensor && !l.b && !(l.adapters ?? []).some((a) => a.enabled !== false);
/** No bias and no enabled adapter, whatever the weight (a tensor or a quantized weight). */
const bare = (l: Linear): boolean => !l.b && !(l.adapters ?? []).some((a) => a.enabled !== false);

/** dst[at .. at+n) = src[from .. from+n) along `axis` (through views released at once). */
function copySpan(dst: Tensor, src: Tensor, axis: number, at: number, from: number, n: number): void {
  const s = slice(src, axis, from, from + n), d = slice(dst, axis, at, at + n);
  dst.backend.copyInto(d, s);
  s.dispose();
  d.dispose();
}

/** Positions [from, to) of one row of a cache (see KVCache.gather). */
export interface CacheRowSpan {
  cache: KVCache;
  row: number;
  from: number;
  to: number;
}

/** Keys and values of every layer for `batch` rows and up to `maxLen` positions. */
export class KVCache {
  batch: number;
  maxLen: number;
  layers: { k: Tensor; v: Tensor }[];
  /** positions filled so far (the same for every row; padding is expressed by the attention mask) */
  length = 0;

  constructor(cfg: LlamaTextConfig, batch: number, maxLen: number, backend?: Backend) {
    this.batch = batch;
    this.maxLen = maxLen;
    const shape = [batch, cfg.numKeyValueHeads, maxLen, cfg.headDim];
    this.layers = Array.from({ length: cfg.numHiddenLayers }, () => ({ k: zeros(shape, { backend }), v: zeros(shape, { backend }) }));
  }

  /**
   * A new cache of parts.length rows for continuous batching: row i holds parts[i]'s positions right-aligned so
   * that they end at `length` (the columns before them are left padding, which the caller's attention mask hides;
   * keys carry their rotary positions already, so a moved column means the same), with room for `capacity`
   * positions. A part may name the same row of a cache twice (n choices of one prompt). The sources are left as
   * they are.
   */
  static gather(parts: readonly CacheRowSpan[], length: number, capacity: number): KVCache {
    const first = parts[0];
    if (!first) throw new ShapeError('KVCache.gather: no rows to gather');
    if (!Number.isInteger(length) || !Number.isInteger(capacity) || length < 0 || capacity < length)
      throw new ShapeError(`KVCache.gather: length ${length} must be an integer in 0..capacity ${capacity}`);
    for (const p of parts) {
      const n = p.to - p.from;
      if (p.cache.layers.length !== first.cache.layers.length || p.row < 0 || p.row >= p.cache.batch || p.from < 0 || n < 0 || p.to > p.cache.length || n > length)
        throw new ShapeError(`KVCache.gather: row ${p.row} positions [${p.from}, ${p.to}) do not fit its cache (${p.cache.batch} rows, ${p.cache.length} positions) or the new length ${length}`);
    }
    const [, hkv, , hd] = first.cache.layers[0]!.k.shape;
    const out = Object.create(KVCache.prototype) as KVCache;
    out.batch = parts.length;
    out.maxLen = capacity;
    out.length = length;
    out.layers = noGrad(() => first.cache.layers.map((_, li) => {
      const pick = (which: 'k' | 'v') => {
        const dst = zeros([parts.length, hkv!, capacity, hd!], { backend: first.cache.layers[li]!.k.backend });
        parts.forEach((p, i) => {
          const n = p.to - p.from;
          if (n === 0) return;
          const s = slice(p.cache.layers[li]![which], 0, p.row, p.row + 1), d = slice(dst, 0, i, i + 1);
          copySpan(d, s, 2, length - n, p.from, n);
          s.dispose();
          d.dispose();
        });
        return dst;
      };
      return { k: pick('k'), v: pick('v') };
    }));
    return out;
  }

  /** Keeps only these rows (ascending indices into the current rows), e.g. to drop finished sequences. */
  keepRows(rows: readonly number[]): void {
    for (let i = 0; i < rows.length; i++)
      if (!Number.isInteger(rows[i]) || rows[i] < 0 || rows[i] >= this.batch || (i > 0 && rows[i] <= rows[i - 1]))
        throw new ShapeError(`KVCache.keepRows: rows ${JSON.stringify(rows)} must be ascending indices below ${this.batch}`);
    if (rows.length === this.batch) return;
    this.replaceBuffers((src) => {
      const dst = zeros([rows.length, ...src.shape.slice(1)], { backend: src.backend });
      rows.forEach((r, i) => copySpan(dst, src, 0, i, r, 1));
      return dst;
    });
    this.batch = rows.length;
  }

  /** bytes of its key and value buffers (capacity, not just the filled positions): what holding it costs */
  get bytes(): number {
    return this.layers.reduce((s, l) => s + l.k.data.byteLength + l.v.data.byteLength, 0);
  }

  /** Forgets the cached positions (the buffers are reused). */
  reset(): void {
    this.length = 0;
  }

  /** Keeps the first n positions (a shared prompt prefix) and forgets the rest; the buffers are reused. */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) throw new ShapeError(`KVCache.truncate: ${n} must be an integer in 0..${this.length}`);
    this.length = n;
  }

  /** Room for at least `capacity` positions: larger buffers, the cached positions copied over. */
  reserve(capacity: number): void {
    if (capacity <= this.maxLen) return;
    this.replaceBuffers((src) => {
      const dst = zeros([src.shape[0], src.shape[1], capacity, src.shape[3]], { backend: src.backend });
      if (this.length > 0) copySpan(dst, src, 2, 0, 0, this.length);
      return dst;
    });
    this.maxLen = capacity;
  }

  /** Swaps every layer's key and value buffers for fn(buffer) (the old buffers are released). */
  private replaceBuffers(fn: (src: Tensor) => Tensor): void {
    noGrad(() => {
      this.layers = this.layers.map(({ k, v }) => {
        const next = { k: fn(k), v: fn(v) };
        k.dispose();
        v.dispose();
        return next;
      });
    });
  }

  dispose(): void {
    for (const l of this.layers) {
      l.k.dispose();
      l.v.dispose();
    }
  }
}

export type LogitsFor = 'all' | 'last';

export interface TextForwardOptions {
  /** [B, past + T], nonzero = a real token, zero = padding (never attended to). Default: every key attends. */
  attentionMask?: Tensor | null;
  /** [B, T] integer positions for RoPE. Default: past + 0..T-1 for every row (transformers' forward). */
  positions?: Tensor | null;
  /** append this step's keys/values to the cache and attend over everything cached */
  cache?: KVCache | null;
}

/**
 * Positions for a left-padded batch as transformers' generate() makes them: cumsum(mask) - 1, and 1 where the
 * mask is 0. For a cached step pass the last `steps` columns (`mask` covering past and new tokens).
 */
export function positionsFromAttentionMask(mask: Int32Array | readonly number[], batch: number, len: number, steps = len): Int32Array {
  const out = new Int32Array(batch * steps);
  for (let b = 0; b < batch; b++) {
    let c = 0;
    for (let t = 0; t < len; t++) {
      const m = mask[b * len + t] ? 1 : 0;
      c += m;
      if (t >= len - steps) out[b * steps + t - (len - steps)] = m ? c - 1 : 1;
    }
  }
  return out;
}

/** The weights of a decoder layer's linears in the order the layer reads them (the tensors among them). */
function layerWeights(l: TextLayerWeights): Tensor[] {
  return [l.q.w, l.k.w, l.v.w, l.o.w, l.gate.w, l.up.w, l.down.w].filter((w): w is Tensor => w instanceof Tensor);
}

export class LlamaText {
  readonly cfg: LlamaTextConfig;
  readonly w: TextWeights;
  readonly invFreq: Tensor;
  /** recompute each decoder layer in the backward pass instead of keeping its intermediates (read at forward time) */
  gradientCheckpointing = false;
  /**
   * Cached one-token steps through the backend's one-call decode step where it applies (see decodeStep); false
   * runs them layer by layer (the reference the fused step is tested against). Same results either way.
   */
  fusedDecode = true;
  /** Makes the decode copy on first use (Idefics3Model sets it for a quantized model): training and scoring never
   *  read the copy, so they never hold it (30 MB on the SmolVLM-256M shape, a QLoRA step's memory). */
  decodeHeadMaker: (() => QuantizedWeight) | null = null;
  private decodeHeadCopy: QuantizedWeight | null = null;

  /** A Q8_0 copy of the lm_head that inference over a few rows reads instead (docs/quantization.md); null: the
   *  lm_head itself everywhere. */
  get decodeHead(): QuantizedWeight | null {
    if (!this.decodeHeadCopy && this.decodeHeadMaker) {
      this.decodeHeadCopy = this.decodeHeadMaker();
      this.decodeHeadMaker = null;
    }
    return this.decodeHeadCopy;
  }
  set decodeHead(w: QuantizedWeight | null) {
    this.decodeHeadCopy = w;
    this.decodeHeadMaker = null;
  }

  constructor(cfg: LlamaTextConfig, w: TextWeights) {
    this.cfg = cfg;
    this.w = w;
    this.invFreq = ropeInvFreq(cfg.headDim, cfg.ropeTheta, { backend: w.embed.backend });
  }

  /** Token embeddings [B, T, H] (f32) of ids [B, T]. */
  embed(ids: Tensor): Tensor {
    return embedding(this.w.embed, ids);
  }

  /** One decoder layer. */
  layer(x: Tensor, l: TextLayerWeights, pos: Tensor, keyMask: Tensor | null, cache: { k: Tensor; v: Tensor } | null, past: number): Tensor {
    const { numAttentionHeads: hq, numKeyValueHeads: hkv, headDim: hd, rmsNormEps: eps } = this.cfg;
    const [B, T, H] = x.shape;
    return tidyGraph([x], () => {
      const h = rmsNorm(x, l.inputNorm, eps);
      const heads = (t: Tensor, n: number) => permute(reshape(t, [B, T, n, hd]), [0, 2, 1, 3]);
      // q/k/v in one pass over their weights when they are plain (no bias, no adapter): the fused ops give the
      // same numbers as separate linears, and fall back to them under autograd
      const [qp, kp, vp] = plain(l.q) && plain(l.k) && plain(l.v) ? linears(h, [l.q.w, l.k.w, l.v.w]) : [lin(h, l.q), lin(h, l.k), lin(h, l.v)];
      let q: Tensor, k: Tensor, v: Tensor;
      if (cache) {
        if (isGradEnabled() && (qp.requiresGrad || kp.requiresGrad || vp.requiresGrad))
          throw new VlmkitError('E_CACHE', 'the KV cache is for inference: run cached steps under noGrad() (gradients do not flow through it)');
        // rope on q and k, and k/v written into the cache at past..past+T-1, in one call
        q = ropeAppendKV(heads(qp, hq), heads(kp, hkv), heads(vp, hkv), pos, this.invFreq, cache.k, cache.v, past);
        k = slice(cache.k, 2, 0, past + T);
        v = slice(cache.v, 2, 0, past + T);
      } else {
        q = rope(heads(qp, hq), pos, this.invFreq);
        k = rope(heads(kp, hkv), pos, this.invFreq);
        v = heads(vp, hkv);
      }
      const a = attention(q, k, v, { causal: true, scale: hd ** -0.5, keyMask, qOffset: past });
      // residual add fused with the post-attention norm
      const { sum: x1, y: h2 } = addRmsNorm(x, lin(reshape(permute(a, [0, 2, 1, 3]), [B, T, hq * hd]), l.o), l.postNorm, eps);
      const act = plain(l.gate) && plain(l.up) ? swiglu(h2, l.gate.w, l.up.w) : mul(silu(lin(h2, l.gate)), lin(h2, l.up));
      const m = lin(act, l.down);
      if (m.shape[2] !== H) throw new Error('vlmkit internal: MLP output width');
      return add(x1, m);
    });
  }

  /** Final-normed hidden states [B, T, H] of input embeddings [B, T, H]. */
  hidden(embeds: Tensor, o: TextForwardOptions = {}): Tensor {
    const [B, T, H] = embeds.shape;
    if (embeds.rank !== 3 || H !== this.cfg.hiddenSize)
      throw new ShapeError(`text: input embeddings ${JSON.stringify(embeds.shape)} must be [batch, tokens, ${this.cfg.hiddenSize}]`);
    const cache = o.cache ?? null;
    const past = cache ? cache.length : 0;
    if (cache) {
      if (cache.batch !== B) throw new ShapeError(`text: the KV cache holds ${cache.batch} rows, the input has ${B}`);
      if (past + T > cache.maxLen)
        throw new VlmkitError('E_CONTEXT', `text: ${past} cached + ${T} new tokens exceed the cache length ${cache.maxLen}; make a larger cache`);
    }
    const mask = o.attentionMask ?? null;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== past + T))
      throw new ShapeError(`text: attention mask ${JSON.stringify(mask.shape)} must be [${B}, ${past + T}] (cached ${past} + new ${T} tokens)`);
    const given = o.positions ?? null;
    if (given && (given.rank !== 2 || given.shape[0] !== B || given.shape[1] !== T))
      throw new ShapeError(`text: positions ${JSON.stringify(given.shape)} must be [${B}, ${T}]`);
    if (cache && T === 1 && this.fusedDecode) {
      const y = this.decodeStep(embeds, cache, mask, given, past);
      if (y) {
        cache.length = past + 1;
        return y;
      }
    }
    const out = tidyGraph([embeds], () => {
      let pos = given;
      if (!pos) {
        const p = new Int32Array(B * T);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = past + t;
        pos = tensor(p, [B, T], { dtype: 'i32', backend: embeds.backend });
      }
      let x = embeds;
      const layers = this.w.layers;
      layers.forEach((l, i) => {
        // generation: idle pool workers read the next layer's weights (or the lm_head) into the caches meanwhile
        if (cache) warmCaches(i + 1 < layers.length ? layerWeights(layers[i + 1]) : [this.head(B)].filter((h): h is Tensor => h instanceof Tensor));
        const nx = this.gradientCheckpointing && !cache
          ? checkpoint((xi) => this.layer(xi, l, pos!, mask, null, past), [x])
          : this.layer(x, l, pos!, mask, cache ? cache.layers[i] : null, past);
        x = x === embeds ? nx : advance(x, nx);
      });
      return rmsNorm(x, this.w.norm, this.cfg.rmsNormEps);
    });
    if (cache) cache.length = past + T;
    return out;
  }

  /**
   * hidden() of one cached position per row through Backend.llamaDecode (the whole stack in one call), or null
   * where it does not apply and the layer-by-layer path runs: a backend without it (the reference backend), a
   * gradient to record, a linear that is not plain (a bias, an enabled LoRA adapter), weights of mixed dtypes or
   * formats, or other than f32/bf16/f16 or one block format, or a tensor that is not contiguous f32 (norms, caches).
   * Block-quantized weights take it only where the layer-by-layer products would run on 8-bit activations (at most
   * 8 rows, int8ActivationsNow()), the only products the step has for them. Shapes are checked by hidden() before.
   */
  private decodeStep(x: Tensor, cache: KVCache, mask: Tensor | null, given: Tensor | null, past: number): Tensor | null {
    const be = x.backend;
    if (!be.llamaDecode || x.dtype !== 'f32' || !x.isContiguous()) return null;
    const grad = isGradEnabled();
    const ok = (t: Tensor, dtype: string) => t.backend === be && t.dtype === dtype && t.isContiguous() && !(grad && t.requiresGrad);
    const wt = this.w.layers[0]?.q.w;
    if (!wt || (grad && x.requiresGrad)) return null;
    const dense = wt instanceof Tensor ? wt : null, quant = wt instanceof Tensor ? null : wt;
    if (quant ? !(x.shape[0] <= 8 && int8ActivationsNow()) : !['f32', 'bf16', 'f16'].includes(dense!.dtype)) return null;
    // every weight a tensor of wt's dtype, or a quantized weight of wt's format (and NF4 double quantization)
    const same = (w: Tensor | QuantizedWeight) => quant
      ? !(w instanceof Tensor) && w.backend === be && w.format === quant.format && w.doubleQuant === quant.doubleQuant
      : w instanceof Tensor && ok(w, dense!.dtype);
    const layers: LlamaDecodeLayer[] = [];
    for (const [i, l] of this.w.layers.entries()) {
      const lins = [l.q, l.k, l.v, l.o, l.gate, l.up, l.down];
      if (!lins.every((li) => bare(li) && same(li.w))) return null;
      const c = cache.layers[i]!;
      if (![l.inputNorm, l.postNorm, c.k, c.v].every((t) => ok(t, 'f32'))) return null;
      layers.push({
        inputNorm: l.inputNorm, q: l.q.w, k: l.k.w, v: l.v.w, o: l.o.w, postNorm: l.postNorm,
        gate: l.gate.w, up: l.up.w, down: l.down.w, kCache: c.k, vCache: c.v,
      });
    }
    if (!ok(this.w.norm, 'f32') || !ok(this.invFreq, 'f32') || (mask && (mask.backend !== be || !mask.isContiguous()))) return null;
    if (given && (given.backend !== be || !given.isContiguous() || (given.dtype !== 'i32' && given.dtype !== 'i64'))) return null;
    const B = x.shape[0];
    const pos = given ?? tensor(new Int32Array(B).fill(past), [B, 1], { dtype: 'i32', backend: be });
    try {
      const { numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim, rmsNormEps: eps } = this.cfg;
      return be.llamaDecode(x, {
        layers, heads, kvHeads, headDim, eps, scale: headDim ** -0.5, past, positions: pos, keyMask: mask, invFreq: this.invFreq,
        // the lm_head the next call reads (warmed for tensor weights only; a quantized model reads its decodeHead)
        finalNorm: this.w.norm, next: this.w.lmHead instanceof Tensor ? this.w.lmHead : null,
      });
    } finally {
      if (pos !== given) pos.dispose();
    }
  }

  /** The lm_head for a product over `rows` rows: the decode copy for up to 8 rows of inference (the 8-bit decode
   *  kernels' rule, engine/quant/activations.ts), else the weight itself (prompts, training, scoring). */
  head(rows: number): Tensor | QuantizedWeight {
    return rows <= 8 && int8ActivationsNow() && this.decodeHead ? this.decodeHead : this.w.lmHead;
  }

  /** lm_head over every position [B, T, V] or only the last one [B, 1, V]. */
  logits(hidden: Tensor, which: LogitsFor = 'all'): Tensor {
    const [B, T] = hidden.shape;
    if (which === 'all') return linear(hidden, this.head(B * T));
    return tidyGraph([hidden], () => linear(slice(hidden, 1, T - 1, T), this.head(B)));
  }

  /** Logits of input embeddings (see hidden() for the options). */
  forward(embeds: Tensor, o: TextForwardOptions & { logitsFor?: LogitsFor } = {}): Tensor {
    return tidyGraph([embeds], () => this.logits(this.hidden(embeds, o), o.logitsFor ?? 'all'));
  }
}
