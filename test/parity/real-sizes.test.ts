// Real sizes: every model-level fixture comparison runs at hidden size 32/64 with 32-pixel tiles and pixel shuffle
// r=2; these checks run one layer of each tower, the connector, the bf16 path and RoPE at SmolVLM-256M's sizes
// (vision 768 wide, 1024 patches of a 512-pixel tile, 12 heads, MLP 3072; text 576 wide, 9 heads / 3 KV heads,
// head_dim 64, MLP 1536, rope_theta 100000; pixel shuffle r=4: 1024 x 768 -> 64 x 12288 -> 576), with random
// weights made here, native backend against the reference TS backend.
// The reference backend is slow (~0.5 GFLOP/s), so where a full layer would take tens of seconds it computes a
// subset of rows, said at each check: rows are independent in every op but attention, whose keys and values it
// takes over all 1024 patches.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Backend, type Tensor, Rng, add, attention, bf16ToF32, contiguous, f32ToBf16, geluTanh, getBackend, layerNorm,
  linear, noGrad, permute, pixelShuffle, referenceBackend, reshape, rope, ropeInvFreq, tensor, tidy,
} from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { type Idefics3Model, loadModel } from '../../src/models/idefics3/index.js';
import { relErr } from '../../src/parity/compare.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const nat = getBackend('native');
const refB = referenceBackend;
const TOL = 1e-4;

const VIS = { D: 768, image: 512, patch: 16, heads: 12, mlp: 3072 };
const TXT = { H: 576, heads: 9, kv: 3, hd: 64, mlp: 1536, theta: 100000, vocab: 448 };
const SCALE = 4;
const PATCHES = (VIS.image / VIS.patch) ** 2; // 1024
const TOKENS = PATCHES / SCALE ** 2; // 64 image tokens per tile

/** bf16-representable random values (so the bf16 and f32 loads hold the very same weights). */
function values(n: number, rng: Rng, scale: number, center = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bf16ToF32(f32ToBf16(center + scale * (2 * rng.next() - 1)));
  return out;
}

/** A SmolVLM-256M-sized Idefics3 checkpoint with one layer per tower, weights stored in bf16 (as on the Hub). */
function realCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-real-'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'processor_config.json', 'generation_config.json', 'chat_template.jinja'])
    copyFileSync(join(REF, 'tiny-idefics3', f), join(dir, f));
  const cfg = JSON.parse(readFileSync(join(REF, 'tiny-idefics3', 'config.json'), 'utf8'));
  cfg.scale_factor = SCALE;
  Object.assign(cfg.vision_config, { hidden_size: VIS.D, image_size: VIS.image, patch_size: VIS.patch, num_attention_heads: VIS.heads, intermediate_size: VIS.mlp, num_hidden_layers: 1 });
  Object.assign(cfg.text_config, { hidden_size: TXT.H, num_attention_heads: TXT.heads, num_key_value_heads: TXT.kv, head_dim: TXT.hd, intermediate_size: TXT.mlp, num_hidden_layers: 1, max_position_embeddings: 16384 });
  cfg.text_config.rope_parameters = { rope_theta: TXT.theta, rope_type: 'default' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const rng = new Rng(256);
  const D = VIS.D, H = TXT.H;
  const shapes: [string, number[], number, number?][] = [
    ['lm_head.weight', [TXT.vocab, H], 0.05],
    ['model.connector.modality_projection.proj.weight', [H, D * SCALE * SCALE], 0.01],
    ['model.text_model.embed_tokens.weight', [TXT.vocab, H], 0.5],
    ['model.text_model.norm.weight', [H], 0.1, 1],
    ['model.vision_model.embeddings.patch_embedding.weight', [D, 3, VIS.patch, VIS.patch], 0.03],
    ['model.vision_model.embeddings.patch_embedding.bias', [D], 0.02],
    ['model.vision_model.embeddings.position_embedding.weight', [PATCHES, D], 0.5],
    ['model.vision_model.post_layernorm.weight', [D], 0.1, 1],
    ['model.vision_model.post_layernorm.bias', [D], 0.02],
  ];
  const v = 'model.vision_model.encoder.layers.0.';
  for (const n of ['layer_norm1', 'layer_norm2']) shapes.push([`${v}${n}.weight`, [D], 0.1, 1], [`${v}${n}.bias`, [D], 0.02]);
  for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) shapes.push([`${v}self_attn.${n}.weight`, [D, D], 0.06], [`${v}self_attn.${n}.bias`, [D], 0.02]);
  shapes.push([`${v}mlp.fc1.weight`, [VIS.mlp, D], 0.06], [`${v}mlp.fc1.bias`, [VIS.mlp], 0.02], [`${v}mlp.fc2.weight`, [D, VIS.mlp], 0.03], [`${v}mlp.fc2.bias`, [D], 0.02]);
  const t = 'model.text_model.layers.0.';
  shapes.push([`${t}input_layernorm.weight`, [H], 0.1, 1], [`${t}post_attention_layernorm.weight`, [H], 0.1, 1]);
  const qd = TXT.heads * TXT.hd, kvd = TXT.kv * TXT.hd;
  shapes.push([`${t}self_attn.q_proj.weight`, [qd, H], 0.07], [`${t}self_attn.k_proj.weight`, [kvd, H], 0.07], [`${t}self_attn.v_proj.weight`, [kvd, H], 0.07], [`${t}self_attn.o_proj.weight`, [H, qd], 0.07]);
  shapes.push([`${t}mlp.gate_proj.weight`, [TXT.mlp, H], 0.07], [`${t}mlp.up_proj.weight`, [TXT.mlp, H], 0.07], [`${t}mlp.down_proj.weight`, [H, TXT.mlp], 0.04]);
  const entries: SafetensorsEntry[] = shapes.map(([name, shape, scale, center]) => {
    const f = values(shape.reduce((a, b) => a * b, 1), rng, scale, center ?? 0);
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = f32ToBf16(f[i]!);
    return { name, dtype: 'BF16', shape, data: h };
  });
  writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt' });
  return dir;
}

let dir = '';
let nat32: Idefics3Model, natBf16: Idefics3Model, ref32: Idefics3Model;
before(() => {
  dir = realCheckpoint();
  nat32 = loadModel(dir, { dtype: 'f32' });
  natBf16 = loadModel(dir);
  ref32 = loadModel(dir, { dtype: 'f32', backend: refB });
});
after(() => {
  for (const m of [nat32, natBf16, ref32]) m?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The rows `rows` of a [1, N, W] host array, as a [1, rows.length, W] tensor on backend b. */
function pickRows(data: Float32Array, W: number, rows: readonly number[], b: Backend): Tensor {
  const out = new Float32Array(rows.length * W);
  rows.forEach((r, i) => out.set(data.subarray(r * W, (r + 1) * W), i * W));
  return tensor(out, [1, rows.length, W], { backend: b });
}

function assertClose(what: string, ours: Float32Array, want: Float32Array, tol = TOL): void {
  const e = relErr(ours, want);
  console.log(`  ${what}: max|diff|/max|ref| = ${e.toExponential(2)}`);
  assert.ok(Number.isFinite(e) && e <= tol, `${what}: relative error ${e} > ${tol}`);
}

/** 16 rows spread over n, the first and last included. */
function spread(n: number, k = 16): number[] {
  return Array.from({ length: k }, (_, i) => Math.round((i * (n - 1)) / (k - 1)));
}

describe('SmolVLM-256M sizes: native against the reference backend', () => {
  it('the checkpoint has the real sizes', () => {
    assert.equal(nat32.config.vision.hiddenSize, 768);
    assert.equal(nat32.config.vision.patchesPerSide ** 2, 1024);
    assert.equal(nat32.config.text.numKeyValueHeads, 3);
    assert.equal(nat32.config.text.ropeTheta, 100000);
    assert.equal((natBf16.weights.vision.layers[0]!.q.w as Tensor).dtype, 'bf16');
    assert.equal((nat32.weights.vision.layers[0]!.q.w as Tensor).dtype, 'f32');
  });

  it('vision encoder layer, 1024 patches x 768, 12 heads, MLP 3072 (reference: 16 query rows over all 1024 keys)', () => {
    noGrad(() => tidy(() => {
      const rng = new Rng(1);
      const xs = values(PATCHES * VIS.D, rng, 1);
      const l = nat32.weights.vision.layers[0]!;
      const lr = ref32.weights.vision.layers[0]!;
      const eps = nat32.config.vision.layerNormEps;
      const x = tensor(xs, [1, PATCHES, VIS.D], { backend: nat });
      const y = nat32.vision.layer(x, l, null).toFloat32Array();
      // keys and values of all patches: native projections, checked against the reference on the chosen rows
      const h = layerNorm(x, l.ln1.w, l.ln1.b, eps);
      const kAll = linear(h, l.k.w, l.k.b).toFloat32Array(), vAll = linear(h, l.v.w, l.v.b).toFloat32Array();
      const rows = spread(PATCHES);
      const hr = layerNorm(pickRows(xs, VIS.D, rows, refB), lr.ln1.w, lr.ln1.b, eps);
      const pick = (a: Float32Array) => pickRows(a, VIS.D, rows, refB).toFloat32Array();
      assertClose('vision k_proj (16 rows)', pick(kAll), linear(hr, lr.k.w, lr.k.b).toFloat32Array());
      assertClose('vision v_proj (16 rows)', pick(vAll), linear(hr, lr.v.w, lr.v.b).toFloat32Array());
      const heads = (t: Tensor, n: number) => permute(reshape(t, [1, n, VIS.heads, VIS.D / VIS.heads]), [0, 2, 1, 3]);
      const q = heads(linear(hr, lr.q.w, lr.q.b), rows.length);
      const k = heads(tensor(kAll, [1, PATCHES, VIS.D], { backend: refB }), PATCHES);
      const v = heads(tensor(vAll, [1, PATCHES, VIS.D], { backend: refB }), PATCHES);
      const a = attention(q, k, v, { causal: false, scale: (VIS.D / VIS.heads) ** -0.5 });
      const merged = reshape(contiguous(permute(a, [0, 2, 1, 3])), [1, rows.length, VIS.D]);
      const x1 = add(pickRows(xs, VIS.D, rows, refB), linear(merged, lr.out.w, lr.out.b));
      const h2 = layerNorm(x1, lr.ln2.w, lr.ln2.b, eps);
      const want = add(x1, linear(geluTanh(linear(h2, lr.fc1.w, lr.fc1.b)), lr.fc2.w, lr.fc2.b)).toFloat32Array();
      assertClose('vision layer output (16 rows)', pickRows(y, VIS.D, rows, refB).toFloat32Array(), want);
    }));
  });

  it('connector: pixel shuffle r=4 of 1024 x 768 -> 64 x 12288 (all of it), projection to 576 (16 of 64 rows)', () => {
    noGrad(() => tidy(() => {
      const xs = values(PATCHES * VIS.D, new Rng(2), 1);
      const out = nat32.connector.forward(tensor(xs, [1, PATCHES, VIS.D], { backend: nat }));
      assert.deepEqual(out.shape, [1, TOKENS, TXT.H]);
      const sN = pixelShuffle(tensor(xs, [1, PATCHES, VIS.D], { backend: nat }), SCALE);
      const sR = pixelShuffle(tensor(xs, [1, PATCHES, VIS.D], { backend: refB }), SCALE);
      assert.deepEqual(sN.shape, [1, TOKENS, VIS.D * SCALE * SCALE]);
      assert.deepEqual(sN.toFloat32Array(), sR.toFloat32Array(), 'pixel shuffle is a permutation: exactly equal');
      const rows = spread(TOKENS);
      const W = VIS.D * SCALE * SCALE;
      const want = linear(pickRows(sR.toFloat32Array(), W, rows, refB), ref32.weights.connector.proj).toFloat32Array();
      assertClose('connector output (16 rows)', pickRows(out.toFloat32Array(), TXT.H, rows, refB).toFloat32Array(), want);
    }));
  });

  it('text decoder layer, 576 wide, 9 heads / 3 KV heads, head_dim 64, MLP 1536, 64 tokens at positions 8160..8223 (all rows)', () => {
    noGrad(() => tidy(() => {
      const T = 64;
      const xs = values(T * TXT.H, new Rng(3), 1);
      const pos = Array.from({ length: T }, (_, i) => 8160 + i);
      const run = (m: Idefics3Model, b: Backend) =>
        m.text.layer(tensor(xs, [1, T, TXT.H], { backend: b }), m.weights.text.layers[0]!, tensor(pos, [1, T], { dtype: 'i32', backend: b }), null, null, 0).toFloat32Array();
      assertClose('text layer output', run(nat32, nat), run(ref32, refB));
    }));
  });

  it('RoPE at positions 8180..8203, theta 100000, head_dim 64, 9 heads', () => {
    noGrad(() => tidy(() => {
      const T = 24;
      const xs = values(TXT.heads * T * TXT.hd, new Rng(4), 1);
      const pos = Array.from({ length: T }, (_, i) => 8180 + i);
      const run = (b: Backend) =>
        rope(tensor(xs, [1, TXT.heads, T, TXT.hd], { backend: b }), tensor(pos, [1, T], { dtype: 'i32', backend: b }), ropeInvFreq(TXT.hd, TXT.theta, { backend: b })).toFloat32Array();
      // at position ~8192 the angle is ~8192 rad for the first frequency: float32 rounding of pos·invFreq matters
      assertClose('rope near 8192', run(nat), run(refB), 1e-5);
    }));
  });

  it('the default bf16 weights with an image give the f32 path\'s logits (one 512 tile, 64 image tokens)', () => {
    noGrad(() => tidy(() => {
      const px = values(3 * VIS.image * VIS.image, new Rng(5), 1);
      const imageId = nat32.config.imageTokenId;
      const ids = [1, 7, ...new Array<number>(TOKENS).fill(imageId), 9, 11, 13, 3];
      const inputs = (b: Backend) => ({
        inputIds: tensor(ids, [1, ids.length], { dtype: 'i32', backend: b }),
        pixelValues: tensor(px, [1, 1, 3, VIS.image, VIS.image], { backend: b }),
      });
      const a = natBf16.forward(inputs(nat)).toFloat32Array();
      const b = nat32.forward(inputs(nat)).toFloat32Array();
      assertClose('bf16 weights vs the same weights in f32, logits', a, b);
    }));
  });
});
