// A CausalLM over a plain forward (ids, masks, pixels -> logits [B, T, V]) that re-runs the whole sequence at every
// step. Slow (quadratic), but it needs nothing from a model but its forward: it is the yardstick the KV-cached path
// is checked against (transformers' greedy without cache) and a fallback for models without a cached step.
import { VlmkitError } from '../errors.js';
import { tensor } from '../engine/index.js';
import { Tensor } from '../engine/tensor.js';
import type { TypedArray } from '../engine/dtype.js';
import type { CausalLM, KVCache, ModelInputs, PrefillInputs, StepInputs } from './types.js';

export type ForwardFn = (inputs: ModelInputs & { positionIds?: Tensor }) => Tensor;

/** Copies rows (first axis) of a contiguous tensor into a fresh tensor on the same backend. */
export function selectRows(t: Tensor, rows: readonly number[]): Tensor {
  const B = t.shape[0]!;
  const per = B === 0 ? 0 : t.size / B;
  const src = (t.isContiguous() ? t : t.backend.contiguous(t)).data as TypedArray;
  const out = Tensor.empty(t.backend, [rows.length, ...t.shape.slice(1)], t.dtype);
  const dst = out.data as TypedArray;
  rows.forEach((r, i) => {
    if (r < 0 || r >= B) throw new VlmkitError('E_GENERATE', `selectRows: row ${r} out of range [0, ${B})`);
    (dst as Float32Array).set((src as Float32Array).subarray(r * per, (r + 1) * per), i * per);
  });
  return out;
}

function copyTensor(t: Tensor): Tensor {
  return selectRows(t, Array.from({ length: t.shape[0]! }, (_, i) => i));
}

class SequenceCache implements KVCache {
  ids: number[][] = [];
  mask: number[][] = [];
  pos: number[][] = [];
  pixelValues: Tensor | undefined;
  pixelAttentionMask: Tensor | undefined;

  get length(): number {
    return this.ids[0]?.length ?? 0;
  }

  keepRows(rows: readonly number[]): void {
    this.ids = rows.map((r) => this.ids[r]!);
    this.mask = rows.map((r) => this.mask[r]!);
    this.pos = rows.map((r) => this.pos[r]!);
    for (const k of ['pixelValues', 'pixelAttentionMask'] as const) {
      const t = this[k];
      if (t) {
        this[k] = selectRows(t, rows);
        t.dispose();
      }
    }
  }

  dispose(): void {
    this.pixelValues?.dispose();
    this.pixelAttentionMask?.dispose();
    this.pixelValues = this.pixelAttentionMask = undefined;
  }
}

function rowsOf(t: Tensor): number[][] {
  const flat = t.toArray();
  const [B, T] = t.shape as [number, number];
  return Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T));
}

export interface NoCacheOptions {
  vocabSize: number;
  maxPositions: number;
  /** pass the cache's position ids to the forward (default true); false = the forward's own (arange) positions */
  passPositions?: boolean;
}

/** The logits of the last position of every row of [B, T, V], as [B, V]. */
export function lastPositionLogits(logits: Tensor): Tensor {
  if (logits.rank !== 3) throw new VlmkitError('E_GENERATE', `forward returned logits of shape [${logits.shape}], expected [batch, seq, vocab]`);
  const [B, T, V] = logits.shape as [number, number, number];
  const src = logits.toFloat32Array();
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(src.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
  return tensor(out, [B, V], { backend: logits.backend });
}

/** Wraps a full forward as a CausalLM (see the file comment). */
export function noCacheLM(forward: ForwardFn, o: NoCacheOptions): CausalLM {
  const run = (c: SequenceCache): Tensor => {
    const B = c.ids.length;
    const T = c.length;
    const ids = tensor(c.ids.flat(), [B, T], { dtype: 'i32' });
    const mask = tensor(c.mask.flat(), [B, T], { dtype: 'i32' });
    const pos = o.passPositions === false ? undefined : tensor(c.pos.flat(), [B, T], { dtype: 'i32' });
    try {
      const full = forward({
        inputIds: ids,
        attentionMask: mask,
        ...(pos ? { positionIds: pos } : {}),
        ...(c.pixelValues ? { pixelValues: c.pixelValues } : {}),
        ...(c.pixelAttentionMask ? { pixelAttentionMask: c.pixelAttentionMask } : {}),
      });
      try {
        return lastPositionLogits(full);
      } finally {
        full.dispose();
      }
    } finally {
      ids.dispose();
      mask.dispose();
      pos?.dispose();
    }
  };
  return {
    vocabSize: o.vocabSize,
    maxPositions: o.maxPositions,
    createCache: () => new SequenceCache(),
    prefill(inputs: PrefillInputs, cache: KVCache): Tensor {
      const c = cache as SequenceCache;
      c.ids = rowsOf(inputs.inputIds);
      c.mask = rowsOf(inputs.attentionMask);
      c.pos = rowsOf(inputs.positionIds);
      c.pixelValues = inputs.pixelValues ? copyTensor(inputs.pixelValues) : undefined;
      c.pixelAttentionMask = inputs.pixelAttentionMask ? copyTensor(inputs.pixelAttentionMask) : undefined;
      return run(c);
    },
    step(inputs: StepInputs, cache: KVCache): Tensor {
      const c = cache as SequenceCache;
      const ids = inputs.inputIds.toArray();
      const pos = inputs.positionIds.toArray();
      const mask = rowsOf(inputs.attentionMask);
      c.ids = c.ids.map((r, b) => [...r, ids[b]!]);
      c.pos = c.pos.map((r, b) => [...r, pos[b]!]);
      c.mask = mask;
      return run(c);
    },
  };
}
