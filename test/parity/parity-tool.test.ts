// The parity tool over every reference case in the fixtures. A case passes (ok: true, exit 0) only when every
// tensor it holds was compared and matched: the single image, batch, no split, text only, vision/connector, full
// fine-tuning, video, CLIP/SigLIP and (with --adapter) LoRA and DPO cases do. The others report what they left
// unchecked with exit code 3: adapter cases without
// --adapter. A case it has never seen (an altered copy) is judged by its contents: a wrong expectation, a NaN or
// an unmatched gradient makes it fail with exit code 1, an extra tensor leaves it unchecked.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { EXIT, main } from '../../src/parity/main.js';
import { relErr } from '../../src/parity/run.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REF = join(ROOT, 'test', 'fixtures', 'reference');
const CASES = join(REF, 'cases');

const KEYS = ['case', 'input_ids_equal', 'pixel_values_max_abs', 'pixel_values_mean_abs', 'logits_rel_err', 'generate_equal', 'ok', 'unchecked'];

async function parity(args: string[]): Promise<{ code: number; out: Record<string, unknown> | null; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(args, (s) => lines.push(s), (s) => (err += s + '\n'));
  return { code, out: lines.length ? (JSON.parse(lines[0]!) as Record<string, unknown>) : null, lines, err };
}

/** A field that must be a finite number within tol (null, a missing field, NaN or "Infinity" fail). */
function assertWithin(o: Record<string, unknown>, field: string, tol: number): void {
  const v = o[field];
  assert.ok(typeof v === 'number' && Number.isFinite(v) && v <= tol, `${field} = ${JSON.stringify(v)}, want a finite number <= ${tol}: ${JSON.stringify(o)}`);
}

const modelFor = (name: string) => join(REF, name.startsWith('smolvlm') ? 'tiny-smolvlm' : name.startsWith('clip') ? 'tiny-clip' : name.startsWith('siglip') ? 'tiny-siglip' : 'tiny-idefics3');
const cases = readdirSync(CASES).filter((f) => f.endsWith('.safetensors')).sort();
/** the cases that must pass fully */
const REQUIRED = /_(single_|batch_leftpad|nosplit_|textonly|vision_connector|full_ft_grads|video$)|^(clip|siglip)_logits$/;
/** the cases the tool cannot check in full, and what it leaves unchecked (a pattern every unchecked name matches) */
const PARTIAL: Record<string, RegExp> = {
  idefics3_lora_logits: /^logits$/, // without --adapter
  idefics3_lora_sft_step: /^(before|grad|after)\.|^loss/, // without --adapter
  idefics3_lora_dpo: /./, // without --adapter
};

describe('parity tool on every reference case', () => {
  it('finds the reference cases', () => {
    assert.ok(cases.length >= 25, `only ${cases.length} cases in ${CASES}`);
    for (const name of [...Object.keys(PARTIAL), 'clip_logits', 'siglip_logits', 'smolvlm_video']) assert.ok(cases.includes(name + '.safetensors'), `${name} is missing`);
  });
  for (const f of cases) {
    const name = f.replace('.safetensors', '');
    it(name, async () => {
      const r = await parity([join(CASES, f), '--model', modelFor(name)]);
      assert.equal(r.lines.length, 1, 'one JSON line');
      const o = r.out!;
      for (const k of KEYS) assert.ok(k in o, `field ${k}`);
      assert.equal(o.case, name);
      if (REQUIRED.test(name)) {
        assert.equal(o.ok, true, JSON.stringify(o));
        assert.equal(r.code, EXIT.ok);
        assert.deepEqual(o.unchecked, []);
        if (!name.endsWith('vision_connector')) {
          assert.equal(o.input_ids_equal, true);
          assert.equal(o.masks_equal, true);
        }
        if (/^(clip|siglip)_/.test(name)) {
          // logits_per_image, image_embeds, text_embeds; the json names no images, so the pixels are the input only
          assertWithin(o, 'logits_rel_err', 1e-4);
          assertWithin(o, 'image_embeds_rel_err', 1e-4);
          assertWithin(o, 'text_embeds_rel_err', 1e-4);
          assert.ok((o.notes as string[]).some((s) => /names no images/.test(s)), JSON.stringify(o.notes));
          assert.equal(o.generate_equal, null);
          return;
        } else if (name.endsWith('vision_connector')) {
          assertWithin(o, 'vision_rel_err', 1e-4);
          assertWithin(o, 'connector_rel_err', 1e-4);
        } else if (name.endsWith('full_ft_grads')) {
          assert.equal(o.labels_equal, true);
          assertWithin(o, 'loss_rel_err', 1e-4);
          assertWithin(o, 'grads_max_rel_err', 1e-3);
        } else {
          assertWithin(o, 'logits_rel_err', 1e-4);
        }
        if (!name.endsWith('textonly')) {
          assertWithin(o, 'pixel_values_max_abs', 0.02);
          assertWithin(o, 'pixel_values_mean_abs', 1e-3);
        }
        if (/single_(wide|big)|batch_leftpad/.test(name)) assert.equal(o.generate_equal, true);
        else assert.equal(o.generate_equal, null);
      } else {
        const left = PARTIAL[name];
        assert.ok(left, `${name} is neither required to pass nor known to be partial`);
        assert.deepEqual(o.failures ?? [], [], JSON.stringify(o));
        assert.equal(o.ok, null, 'a partly checked case is not ok');
        assert.equal(r.code, EXIT.unchecked);
        const un = o.unchecked as string[];
        assert.ok(un.length > 0 && un.every((n) => left.test(n)), JSON.stringify(un));
        assert.ok((o.notes as string[]).length > 0, 'notes say why');
        assert.ok(!(o.notes as string[]).some((s) => /checked by the DPO trainer tests/.test(s)), 'no claim of tests that do not exist');
      }
    });
  }

  it('the video case, checked whole: prompt expanded for its 6 frames, ids and masks exact, frame pixels, logits', async () => {
    const r = await parity([join(CASES, 'smolvlm_video.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, EXIT.ok, JSON.stringify(r.out));
    assert.equal(r.out!.ok, true);
    assert.equal(r.out!.input_ids_equal, true);
    assert.equal(r.out!.masks_equal, true);
    assert.equal(r.out!.template_equal, true);
    assertWithin(r.out!, 'logits_rel_err', 1e-4);
    assertWithin(r.out!, 'pixel_values_max_abs', 0.02);
    assertWithin(r.out!, 'pixel_values_mean_abs', 1e-3);
    assert.deepEqual(r.out!.unchecked, []);
  });

  it('the SFT-step case without --adapter: its batch still goes through the collator (ids, masks, labels, pixels)', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_sft_step.safetensors'), '--model', join(REF, 'tiny-idefics3')]);
    const o = r.out!;
    assert.equal(o.input_ids_equal, true);
    assert.equal(o.masks_equal, true);
    assert.equal(o.labels_equal, true);
    assert.equal(o.template_equal, true);
    assertWithin(o, 'pixel_values_max_abs', 0.02);
    const un = o.unchecked as string[];
    for (const k of ['input_ids', 'attention_mask', 'labels', 'labels_completion', 'pixel_values', 'pixel_attention_mask']) assert.ok(!un.includes(k), `${k} compared`);
    assert.equal(r.code, EXIT.unchecked);
  });
});

describe('parity tool on unseen cases and bad input', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-parity-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const dir = join(tmp, 'cases');
  mkdirSync(dir);

  it('a renamed copy of a case passes (nothing depends on the name); images found via --images', async () => {
    copyFileSync(join(CASES, 'idefics3_single_tall_200x70.safetensors'), join(dir, 'mine.safetensors'));
    copyFileSync(join(CASES, 'idefics3_single_tall_200x70.json'), join(dir, 'mine.json'));
    const r = await parity([join(dir, 'mine.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--images', join(REF, 'images')]);
    assert.equal(r.code, 0, JSON.stringify(r.out));
    assert.equal(r.out!.ok, true);
  });

  it('a case whose prompt does not give its input_ids fails with exit 1', async () => {
    copyFileSync(join(CASES, 'smolvlm_textonly.safetensors'), join(dir, 'wrong.safetensors'));
    const meta = JSON.parse(readFileSync(join(CASES, 'smolvlm_textonly.json'), 'utf8'));
    meta.prompt = meta.prompt.replace('Say hello.', 'Say goodbye.');
    writeFileSync(join(dir, 'wrong.json'), JSON.stringify(meta));
    const r = await parity([join(dir, 'wrong.safetensors'), '--model', join(REF, 'tiny-smolvlm'), '--no-model']);
    assert.equal(r.code, 1);
    assert.equal(r.out!.ok, false);
    assert.equal(r.out!.input_ids_equal, false);
    assert.ok((r.out!.failures as string[]).some((s) => s.includes('input_ids')));
  });

  it('logits from another model fail the logits check', async () => {
    const r = await parity([join(CASES, 'idefics3_textonly.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, EXIT.failed);
    assert.equal(r.out!.ok, false);
    const e = r.out!.logits_rel_err;
    assert.ok(typeof e === 'number' && e > 1e-4, JSON.stringify(r.out));
  });

  it('missing arguments and files are one-line errors', async () => {
    let r = await parity([join(CASES, 'idefics3_textonly.safetensors')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /--model/);
    r = await parity([join(dir, 'absent.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /does not exist/);
  });

  it('--adapter applies a PEFT LoRA adapter (idefics3_lora_logits)', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_logits.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', join(REF, 'tiny-idefics3-lora')]);
    assert.equal(r.code, 0, JSON.stringify(r.out));
    assert.equal(r.out!.ok, true);
    assert.deepEqual(r.out!.unchecked, []);
    assertWithin(r.out!, 'logits_rel_err', 1e-4);
    const bad = await parity([join(CASES, 'idefics3_lora_logits.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', join(REF, 'tiny-idefics3')]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /not a PEFT adapter directory/);
  });

  it('npm run -s parity prints one JSON line and exits 0', () => {
    const p = spawnSync('npm', ['run', '-s', 'parity', '--', join(CASES, 'smolvlm_nosplit_big_300x410.safetensors'), '--model', join(REF, 'tiny-smolvlm')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    const lines = p.stdout.trim().split('\n');
    assert.equal(lines.length, 1, p.stdout);
    assert.equal(JSON.parse(lines[0]!).ok, true);
  });

  /** A copy of a case (its json beside it) with tensors changed, added or removed by `edit`. */
  function alteredCase(from: string, to: string, edit: (entries: SafetensorsEntry[]) => SafetensorsEntry[]): string {
    const f = SafetensorsFile.open(join(CASES, from + '.safetensors'));
    let entries: SafetensorsEntry[];
    try {
      entries = f.names().map((n) => {
        const t = f.read(n);
        return { name: n, dtype: t.dtype as SafetensorsEntry['dtype'], shape: t.shape, data: t.data.slice() };
      });
    } finally {
      f.close();
    }
    const path = join(dir, to + '.safetensors');
    writeSafetensors(path, edit(entries));
    copyFileSync(join(CASES, from + '.json'), join(dir, to + '.json'));
    return path;
  }

  it('relErr: NaN or Infinity anywhere in our output fails, not only as the last element', () => {
    const ref = new Float32Array([1, 2, 3, 4]);
    for (const ours of [[5, NaN, 3, 4], [NaN, 2, 3, 4], [1, 2, 3, NaN], [1, Infinity, 3, 4], [1, 2, -Infinity, 4]]) {
      const e = relErr(new Float32Array(ours), ref);
      assert.ok(!(e <= 1e-4), `${JSON.stringify(ours)} gave ${e}`);
    }
    assert.equal(relErr(new Float32Array([1, 2, 3, 4]), ref), 0);
    assert.equal(relErr(new Float32Array([1, 2, 3, 5]), ref), 0.25);
    // rows left out by `keep` are not compared (padding positions)
    assert.equal(relErr(new Float32Array([NaN, 9, 3, 4]), ref, 2, (r) => r === 1), 0);
  });

  it('a NaN in one logit column (not the last) fails the case, and the line says NaN/Infinity, not null', async () => {
    const model = join(tmp, 'nan-model');
    mkdirSync(model);
    for (const f of readdirSync(join(REF, 'tiny-smolvlm'))) copyFileSync(join(REF, 'tiny-smolvlm', f), join(model, f));
    const w = SafetensorsFile.open(join(REF, 'tiny-smolvlm', 'model.safetensors'));
    const entries: SafetensorsEntry[] = w.names().map((n) => {
      const t = w.read(n);
      const data = (t.data as Float32Array).slice();
      // tied embeddings: a NaN row 5 (a token not in the prompt) gives NaN logits in vocabulary column 5 only
      if (n === 'model.text_model.embed_tokens.weight') data.fill(NaN, 5 * t.shape[1]!, 6 * t.shape[1]!);
      return { name: n, dtype: 'F32', shape: t.shape, data };
    });
    w.close();
    writeSafetensors(join(model, 'model.safetensors'), entries, { format: 'pt' });
    const r = await parity([join(CASES, 'smolvlm_textonly.safetensors'), '--model', model]);
    assert.equal(r.code, EXIT.failed, JSON.stringify(r.out));
    assert.equal(r.out!.ok, false);
    assert.ok(r.lines[0]!.includes('"logits_rel_err":"Infinity"'), r.lines[0]);
  });

  it('--no-model leaves the model outputs unchecked: exit 3, or 0 with --partial', async () => {
    const args = [join(CASES, 'smolvlm_single_wide_90x150.safetensors'), '--model', join(REF, 'tiny-smolvlm'), '--no-model'];
    const r = await parity(args);
    assert.equal(r.code, EXIT.unchecked);
    assert.equal(r.out!.ok, null);
    assert.deepEqual(r.out!.unchecked, ['generate', 'greedy_nocache', 'logits']);
    assert.equal(r.out!.input_ids_equal, true);
    const p = await parity([...args, '--partial']);
    assert.equal(p.code, EXIT.ok);
  });

  it('a tensor the tool does not know is listed unchecked, never passed over', async () => {
    const path = alteredCase('smolvlm_textonly', 'extra', (e) => [...e, { name: 'hidden_states', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    const r = await parity([path, '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, EXIT.unchecked, JSON.stringify(r.out));
    assert.deepEqual(r.out!.unchecked, ['hidden_states']);
    assertWithin(r.out!, 'logits_rel_err', 1e-4);
  });

  it('a grad.* tensor that matches no parameter fails the case', async () => {
    const path = alteredCase('smolvlm_full_ft_grads', 'bogus-grad', (e) => [...e, { name: 'grad.model.text_model.layers.7.mlp.up_proj.weight', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    const r = await parity([path, '--model', join(REF, 'tiny-smolvlm'), '--images', join(REF, 'images')]);
    assert.equal(r.code, EXIT.failed, r.err || JSON.stringify(r.out));
    assert.ok((r.out!.failures as string[]).some((s) => s.includes('grad.model.text_model.layers.7.mlp.up_proj.weight') && s.includes('matches no parameter')));
    assert.deepEqual(r.out!.unchecked, []);
  });

  it('labels the collator would not make fail the training case', async () => {
    const path = alteredCase('smolvlm_full_ft_grads', 'bad-labels', (e) => e.map((x) => {
      if (x.name !== 'labels') return x;
      const d = (x.data as BigInt64Array).slice();
      d[d.length - 1] = -100n; // the last answer token masked
      return { ...x, data: d };
    }));
    const r = await parity([path, '--model', join(REF, 'tiny-smolvlm'), '--images', join(REF, 'images'), '--no-model']);
    assert.equal(r.code, EXIT.failed, r.err || JSON.stringify(r.out));
    assert.equal(r.out!.labels_equal, false);
    assert.equal(r.out!.input_ids_equal, true);
  });
});

describe('parity tool on contrastive cases', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-parity-contrastive-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const copyCase = (from: string, to: string, meta: (j: Record<string, unknown>) => void, edit?: (name: string, data: Float32Array) => void): string => {
    const f = SafetensorsFile.open(join(CASES, from + '.safetensors'));
    const entries: SafetensorsEntry[] = f.names().map((n) => {
      const t = f.read(n);
      const data = t.data.slice();
      if (edit && data instanceof Float32Array) edit(n, data);
      return { name: n, dtype: t.dtype as SafetensorsEntry['dtype'], shape: t.shape, data };
    });
    f.close();
    writeSafetensors(join(tmp, to + '.safetensors'), entries);
    const j = JSON.parse(readFileSync(join(CASES, from + '.json'), 'utf8')) as Record<string, unknown>;
    meta(j);
    writeFileSync(join(tmp, to + '.json'), JSON.stringify(j));
    return join(tmp, to + '.safetensors');
  };
  // refgen made both cases' pixels from these two images with PIL resize((32, 32)) and x / 127.5 - 1
  const IMAGES = ['square_64x64.png', 'wide_90x150.png'];

  it('SigLIP with its images named: our processor (bicubic resize, 0.5 mean/std) gives the pixel values', async () => {
    const path = copyCase('siglip_logits', 'siglip_named', (j) => { j.images = IMAGES; });
    const r = await parity([path, '--model', join(REF, 'tiny-siglip'), '--images', join(REF, 'images')]);
    assert.equal(r.code, EXIT.ok, JSON.stringify(r.out));
    assertWithin(r.out!, 'pixel_values_max_abs', 1e-5);
    assertWithin(r.out!, 'pixel_values_mean_abs', 1e-6);
  });

  it('CLIP with the same images named fails the pixel check: its processor normalizes with OpenAI mean/std, which refgen did not use', async () => {
    const path = copyCase('clip_logits', 'clip_named', (j) => { j.images = IMAGES; });
    const r = await parity([path, '--model', join(REF, 'tiny-clip'), '--images', join(REF, 'images')]);
    assert.equal(r.code, EXIT.failed, JSON.stringify(r.out));
    assert.ok((r.out!.failures as string[]).some((s) => /pixel_values max/.test(s)));
    assertWithin(r.out!, 'logits_rel_err', 1e-4);
  });

  it('a changed logits_per_image, other texts, or the other model fail with exit 1', async () => {
    const bumped = copyCase('clip_logits', 'clip_bumped', () => {}, (n, d) => { if (n === 'logits_per_image') d[4] += 0.01; });
    let r = await parity([bumped, '--model', join(REF, 'tiny-clip')]);
    assert.equal(r.code, EXIT.failed, JSON.stringify(r.out));
    assert.ok(typeof r.out!.logits_rel_err === 'number' && (r.out!.logits_rel_err as number) > 1e-4);
    assertWithin(r.out!, 'image_embeds_rel_err', 1e-4);
    const texts = copyCase('siglip_logits', 'siglip_texts', (j) => { j.texts = ['a red square', 'a blue square on white', 'three stars']; });
    r = await parity([texts, '--model', join(REF, 'tiny-siglip')]);
    assert.equal(r.code, EXIT.failed);
    assert.equal(r.out!.input_ids_equal, false);
    r = await parity([join(CASES, 'siglip_logits.safetensors'), '--model', join(REF, 'tiny-clip')]);
    assert.equal(r.code, EXIT.failed, JSON.stringify(r.out));
  });

  it('--no-model leaves the outputs unchecked (exit 3) after the processing checks', async () => {
    const r = await parity([join(CASES, 'clip_logits.safetensors'), '--model', join(REF, 'tiny-clip'), '--no-model']);
    assert.equal(r.code, EXIT.unchecked);
    assert.deepEqual(r.out!.unchecked, ['image_embeds', 'logits_per_image', 'text_embeds']);
    assert.equal(r.out!.input_ids_equal, true);
  });
});
