// LoRA training against the reference fixtures (transformers 5.17 + peft 0.21, float32):
//   - idefics3_lora_logits: tiny-idefics3 + the PEFT adapter loaded by loadAdapter;
//   - idefics3_lora_sft_step: loss of a right-padded batch of 2 conversations, every LoRA gradient, every LoRA
//     tensor after one AdamW step, the completion-only loss after the step (eval mode);
//   - idefics3_lora_dpo through the parity tool (test/train/dpo.test.ts checks the same values directly), and
//     altered copies of it that must fail;
//   - the parity tool on the training cases (smolvlm_full_ft_grads' gradients themselves are checked in
//     model.test.ts; here the tool's fields for it).
// Tolerances from the fixtures README: logits and losses 1e-4, gradients and parameters 1e-3 (max|diff|/max|ref|).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, noGrad, storageStats, tensor } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { loadModel } from '../../src/models/idefics3/index.js';
import { EXIT, main } from '../../src/parity/main.js';
import { readCaseTensors, runLoraSftStep, tensorRelErr } from '../../src/parity/train.js';
import { loadAdapter } from '../../src/train/peft.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const CASES = join(REF, 'cases');
const LORA = join(REF, 'tiny-idefics3-lora');

/** A finite number within tol (null, undefined and NaN are not: `null <= 1e-4` is true in JavaScript). */
function assertWithin(v: unknown, tol: number, what: string): void {
  assert.ok(typeof v === 'number' && Number.isFinite(v) && v <= tol, `${what} = ${JSON.stringify(v)}, want a finite number <= ${tol}`);
}

const open: Map<string, Tensor>[] = [];
function readCase(name: string): Map<string, Tensor> {
  const c = readCaseTensors(join(CASES, name + '.safetensors'));
  open.push(c);
  return c;
}
after(() => {
  for (const c of open) for (const t of c.values()) t.dispose();
});

/** Tensor groups for the report: vision/text, attention/mlp, A/B. */
function group(name: string): string {
  const part = name.includes('vision_model') ? 'vision' : 'text';
  const kind = /self_attn/.test(name) ? 'attn' : 'mlp';
  const ab = name.includes('lora_A') ? 'A' : 'B';
  return `${part} ${kind} lora_${ab}`;
}

function reportGroups(what: string, errs: Map<string, number>): void {
  const worst = new Map<string, number>();
  for (const [n, e] of errs) worst.set(group(n), Math.max(worst.get(group(n)) ?? 0, e));
  for (const [g, e] of [...worst].sort()) console.log(`  ${what} ${g}: worst max|diff|/max|ref| = ${e.toExponential(2)}`);
}

describe('LoRA against transformers + PEFT', () => {
  it('idefics3_lora_logits: loadAdapter on tiny-idefics3 gives PEFT\'s logits (<= 1e-4)', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
    const c = readCase('idefics3_lora_logits');
    try {
      const lora = loadAdapter(m, LORA);
      assert.equal(lora.layers().size, 20, '7 text modules x 2 layers + vision q/k/v x 2 layers');
      assert.equal(lora.training, false);
      const inputs = { inputIds: c.get('input_ids')!, attentionMask: c.get('attention_mask'), pixelValues: c.get('pixel_values'), pixelAttentionMask: c.get('pixel_attention_mask') };
      const logits = noGrad(() => m.forward(inputs));
      const e = tensorRelErr(logits, c.get('logits')!);
      console.log(`  idefics3_lora_logits: max|diff|/max|ref| = ${e.toExponential(2)}`);
      assertWithin(e, 1e-4, 'logits max|diff|/max|ref|');
      logits.dispose();
      lora.remove();
      assert.ok([...m.linears().values()].every((l) => !l.adapters?.length), 'remove() detaches every adapter');
    } finally {
      m.dispose();
    }
  });

  it('idefics3_lora_sft_step: loss, every LoRA gradient, every LoRA tensor after one AdamW step, completion loss', () => {
    const m = loadModel(join(REF, 'tiny-idefics3'), { dtype: 'f32' });
    const c = readCase('idefics3_lora_sft_step');
    try {
      const lora = loadAdapter(m, LORA);
      const live = storageStats().count;
      const r = runLoraSftStep(m, lora, c);
      assert.equal(storageStats().count, live, 'the step leaves no tensor behind (gradients and moments released)');
      console.log(`  loss ${r.loss} (reference ${r.lossRef}, rel ${r.lossRelErr.toExponential(2)})`);
      console.log(`  loss_completion_after_step ${r.lossCompletion} (reference ${r.lossCompletionRef}, rel ${r.lossCompletionRelErr!.toExponential(2)})`);
      reportGroups('grad', r.grads);
      reportGroups('after', r.after);
      assert.equal(r.beforeMaxRelErr, 0, 'the adapter file holds the case\'s before.* exactly');
      assertWithin(r.lossRelErr, 1e-4, 'loss');
      assert.equal(r.grads.size, 40);
      for (const [n, e] of r.grads) assertWithin(e, 1e-3, `grad.${n}`);
      assert.equal(r.after.size, 40);
      for (const [n, e] of r.after) assertWithin(e, 1e-3, `after.${n}`);
      assertWithin(r.lossCompletionRelErr, 1e-4, 'loss_completion_after_step');
      lora.remove();
    } finally {
      m.dispose();
    }
  });
});

describe('parity tool on the training cases', () => {
  async function parity(args: string[]): Promise<{ code: number; out: Record<string, unknown> }> {
    const lines: string[] = [];
    const code = await main(args, (s) => lines.push(s), () => {});
    assert.equal(lines.length, 1, 'one JSON line');
    return { code, out: JSON.parse(lines[0]!) as Record<string, unknown> };
  }

  it('idefics3_lora_sft_step with --adapter: loss_rel_err, grads_max_rel_err, after_step_max_rel_err', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_sft_step.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', LORA]);
    assert.equal(r.code, EXIT.ok, JSON.stringify(r.out));
    assert.equal(r.out.ok, true);
    assert.deepEqual(r.out.unchecked, []);
    assert.equal(r.out.labels_equal, true, 'labels and labels_completion from our collator');
    assertWithin(r.out.loss_rel_err, 1e-4, 'loss_rel_err');
    assertWithin(r.out.grads_max_rel_err, 1e-3, 'grads_max_rel_err');
    assertWithin(r.out.after_step_max_rel_err, 1e-3, 'after_step_max_rel_err');
    assertWithin(r.out.loss_completion_rel_err, 1e-4, 'loss_completion_rel_err');
  });

  it('idefics3_lora_sft_step without --adapter says what to pass and exits 3 with the step unchecked', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_sft_step.safetensors'), '--model', join(REF, 'tiny-idefics3')]);
    assert.equal(r.code, EXIT.unchecked);
    assert.equal(r.out.ok, null);
    assert.ok((r.out.notes as string[]).some((s) => s.includes('--adapter')));
    const un = r.out.unchecked as string[];
    assert.equal(un.filter((n) => n.startsWith('grad.')).length, 40);
    assert.ok(un.includes('loss') && un.includes('loss_completion_after_step'));
  });

  it('idefics3_lora_dpo with --adapter: ids, pixels, the four log-probs and the loss, every LoRA gradient (exit 0)', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_dpo.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', LORA]);
    assert.equal(r.code, EXIT.ok, JSON.stringify(r.out));
    assert.equal(r.out.ok, true);
    assert.deepEqual(r.out.unchecked, []);
    assert.equal(r.out.input_ids_equal, true);
    assertWithin(r.out.pixel_values_max_abs, 0.02, 'pixel_values_max_abs');
    assertWithin(r.out.pixel_values_mean_abs, 1e-3, 'pixel_values_mean_abs');
    assertWithin(r.out.loss_rel_err, 1e-4, 'loss_rel_err (the worst of the four log-probs and the loss)');
    assertWithin(r.out.grads_max_rel_err, 1e-3, 'grads_max_rel_err');
  });

  it('an altered DPO case fails (exit 1): another beta, another chosen answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmkit-dpo-case-'));
    try {
      mkdirSync(join(dir, 'cases'));
      const meta = JSON.parse(readFileSync(join(CASES, 'idefics3_lora_dpo.json'), 'utf8')) as Record<string, unknown>;
      const alter = async (name: string, change: Record<string, unknown>) => {
        copyFileSync(join(CASES, 'idefics3_lora_dpo.safetensors'), join(dir, 'cases', name + '.safetensors'));
        writeFileSync(join(dir, 'cases', name + '.json'), JSON.stringify({ ...meta, ...change }));
        return parity([join(dir, 'cases', name + '.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', LORA, '--images', join(REF, 'images')]);
      };
      const beta = await alter('beta', { beta: 0.2 });
      assert.equal(beta.code, EXIT.failed, JSON.stringify(beta.out));
      assert.equal(beta.out.ok, false);
      assert.ok((beta.out.failures as string[]).some((f) => /^loss .* relative error/.test(f)), JSON.stringify(beta.out.failures));
      assert.ok((beta.out.failures as string[]).some((f) => /^grad\./.test(f)), 'the gradients scale with beta too');
      const answer = await alter('answer', { chosen: ' The square is red.<end_of_utterance>\n' });
      assert.equal(answer.code, EXIT.failed);
      assert.ok((answer.out.failures as string[]).some((f) => /^chosen_input_ids/.test(f)), JSON.stringify(answer.out.failures));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smolvlm_full_ft_grads: loss_rel_err and grads_max_rel_err', async () => {
    const r = await parity([join(CASES, 'smolvlm_full_ft_grads.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, EXIT.ok, JSON.stringify(r.out));
    assert.equal(r.out.ok, true);
    assert.deepEqual(r.out.unchecked, []);
    assertWithin(r.out.loss_rel_err, 1e-4, 'loss_rel_err');
    assertWithin(r.out.grads_max_rel_err, 1e-3, 'grads_max_rel_err');
  });

  it('tensorRelErr: NaN or Infinity anywhere in ours fails; a shape mismatch too', () => {
    const ref = tensor([1, 2, 3, 4], [4], { dtype: 'f32' });
    try {
      for (const ours of [[5, NaN, 3, 4], [NaN, 2, 3, 4], [1, 2, Infinity, 4]]) {
        const t = tensor(ours, [4], { dtype: 'f32' });
        const e = tensorRelErr(t, ref);
        t.dispose();
        assert.ok(!(e <= 1e-3), `${JSON.stringify(ours)} gave ${e}`);
      }
      const t = tensor([1, 2, 3, 4], [2, 2], { dtype: 'f32' });
      assert.equal(tensorRelErr(t, ref), Infinity);
      t.dispose();
    } finally {
      ref.dispose();
    }
  });

  it('the SFT step with an adapter for another model is a one-line adapter error', async () => {
    const lines: string[] = [];
    let err = '';
    const code = await main([join(CASES, 'idefics3_lora_sft_step.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', join(REF, 'tiny-smolvlm')], (s) => lines.push(s), (s) => (err += s));
    assert.equal(code, 1);
    assert.match(err, /not a PEFT adapter directory/);
  });
});
