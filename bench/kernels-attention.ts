// Fused attention forward and backward throughput, handed back to bench/engine.ts, which divides it by the best f32
// FMA peak sample of the run (attention is compute-bound at these lengths; one more sample is taken before each
// timing) and prints beside it, as information, the best GEMM of the run.
// Flops as FlashAttention counts them: forward 4·B·H·Tq·Tk·D (halved when causal), backward 2.5x the forward.
// Each configuration is checked before it is timed: the forward against the naive composition (full scores, sgemm +
// softmax + sgemm on the native side), the backward by two identities of the exact gradient
// (Σ_j dV_j = Σ_i dO_i over the rows that share a kv head, Σ_j dK_j = 0).
import * as vk from '../src/engine/index.js';
import { nativeNaiveAttention } from '../src/engine/backend/native/attention.js';
import type { AttentionOptions, Backend, Tensor } from '../src/engine/index.js';
import { timeMedian, type PeakTracker } from './ceilings.js';

interface Config { T: number; B: number; H: number; Hkv: number; D: number; causal: boolean }

/** Median seconds per call (as the ceilings are measured); fewer runs for the long T = 4096 calls. */
function time(fn: () => void, T: number): number {
  return T >= 4096 ? timeMedian(fn, { warmup: 1, runs: 3, minMs: 0 }) : timeMedian(fn, { warmup: 2, runs: 7, minMs: 300 });
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

function checkForward(nat: Backend, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions, c: Config): void {
  const fused = nat.attention(q, k, v, o);
  const naive = nativeNaiveAttention(q, k, v, o);
  const e = relErr(fused.out.toFloat32Array(), naive.toFloat32Array());
  fused.out.dispose(); fused.lse.dispose(); naive.dispose();
  if (!(e < 1e-4)) throw new Error(`attention forward T=${c.T} causal=${c.causal}: fused differs from naive by ${e}`);
}

function checkBackward(g: { gq: Tensor; gk: Tensor; gv: Tensor }, gout: Tensor, c: Config): void {
  const { B, H, Hkv, T, D } = c, G = H / Hkv;
  const gv = g.gv.toFloat32Array(), gk = g.gk.toFloat32Array(), go = gout.toFloat32Array();
  let worst = 0;
  for (let b = 0; b < B; b++)
    for (let kh = 0; kh < Hkv; kh++)
      for (let d = 0; d < D; d++) {
        let sv = 0, so = 0, sk = 0, scaleK = 0;
        for (let j = 0; j < T; j++) {
          sv += gv[((b * Hkv + kh) * T + j) * D + d];
          sk += gk[((b * Hkv + kh) * T + j) * D + d];
          scaleK += Math.abs(gk[((b * Hkv + kh) * T + j) * D + d]);
        }
        for (let h = kh * G; h < (kh + 1) * G; h++) for (let i = 0; i < T; i++) so += go[((b * H + h) * T + i) * D + d];
        worst = Math.max(worst, Math.abs(sv - so) / Math.max(1, Math.abs(so)), Math.abs(sk) / Math.max(1e-3, scaleK));
      }
  const finite = g.gq.toFloat32Array().every(Number.isFinite);
  if (!(worst < 1e-3) || !finite) throw new Error(`attention backward T=${T} causal=${c.causal}: gradient identities fail (${worst}, finite ${finite})`);
}

/** attention_forward / attention_backward rows for T = 1024 and 4096 (B=1, H=12, D=64, causal and not), into `rows`. */
export async function benchAttention(peak: PeakTracker, rows: { row: Record<string, unknown>; gflops: number }[]): Promise<void> {
  const nat = vk.getBackend('native');
  const configs: Config[] = [];
  for (const T of [1024, 4096]) for (const causal of [false, true]) configs.push({ T, B: 1, H: 12, Hkv: 12, D: 64, causal });
  // SmolVLM-256M's text attention: 9 query heads over 3 kv heads
  configs.push({ T: 1024, B: 1, H: 9, Hkv: 3, D: 64, causal: true });
  for (const c of configs) {
    vk.tidy(() => {
      const { T, B, H, Hkv, D, causal } = c;
      const q = vk.randn([B, H, T, D], { backend: nat, seed: 1 });
      const k = vk.randn([B, Hkv, T, D], { backend: nat, seed: 2 });
      const v = vk.randn([B, Hkv, T, D], { backend: nat, seed: 3 });
      const gout = vk.randn([B, H, T, D], { backend: nat, seed: 4 });
      const o: AttentionOptions = { causal, scale: 1 / Math.sqrt(D), keyMask: null, qOffset: 0 };
      checkForward(nat, q, k, v, o, c);
      const flops = (4 * B * H * T * T * D) / (causal ? 2 : 1);
      const base = { T, B, H, ...(Hkv !== H ? { Hkv } : {}), D, causal, dtype: 'f32', unit: 'GFLOP/s' };
      peak.sample();
      let fwd: { out: Tensor; lse: Tensor } | null = null;
      const tf = time(() => {
        if (fwd) { fwd.out.dispose(); fwd.lse.dispose(); }
        fwd = nat.attention(q, k, v, o);
      }, T);
      const value = flops / tf / 1e9;
      rows.push({ row: { bench: 'attention_forward', ...base, value: +value.toFixed(1) }, gflops: value });
      const { out, lse } = fwd!;
      let grads: { gq: Tensor; gk: Tensor; gv: Tensor } | null = null;
      peak.sample();
      const tb = time(() => {
        if (grads) { grads.gq.dispose(); grads.gk.dispose(); grads.gv.dispose(); }
        grads = nat.attentionBackward(q, k, v, out, lse, gout, o);
      }, T);
      checkBackward(grads!, gout, c);
      const bvalue = (2.5 * flops) / tb / 1e9;
      rows.push({ row: { bench: 'attention_backward', ...base, value: +bvalue.toFixed(1) }, gflops: bvalue });
    });
    await new Promise((r) => setImmediate(r));
  }
}
