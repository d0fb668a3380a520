// The DPO objective:
//   - against the reference fixture idefics3_lora_dpo (transformers + PEFT, float32): the pair's tokens, the four
//     summed log-probs, the sigmoid loss and every LoRA gradient, within the fixtures README's tolerances;
//   - the loss formulas (sigmoid, label smoothing, ipo, hinge, the SFT-weighted hybrid) and their gradients on
//     given log-probs, against values worked out here;
//   - the gradient of the whole objective (model + adapters + reference) against central finite differences on
//     tiny-idefics3, for each loss type;
//   - bad preference rows: a one-line error naming the line, or a counted skip.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, noGrad, tensor, tidy } from '../../src/engine/index.js';
import '../../src/engine/backend/native/index.js';
import { loadModel } from '../../src/models/idefics3/index.js';
import { loadProcessor } from '../../src/models/index.js';
import { readCaseTensors, runLoraDpo } from '../../src/parity/train.js';
import { type DpoConfig, DpoObjective, dpoTerms, resolveDpoConfig } from '../../src/train/dpo.js';
import { loadAdapter } from '../../src/train/peft.js';
import { PreferenceDataset } from '../../src/train/preference-data.js';
import { VlmkitError } from '../../src/errors.js';
import { REF, TINY } from './fixtures.js';

const CASES = join(REF, 'cases');
const LORA = join(REF, 'tiny-idefics3-lora');

function assertWithin(v: unknown, tol: number, what: string): void {
  assert.ok(typeof v === 'number' && Number.isFinite(v) && v <= tol, `${what} = ${JSON.stringify(v)}, want a finite number <= ${tol}`);
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlmkit-dpo-'));
  for (const im of ['square_64x64.png', 'wide_90x150.png']) copyFileSync(join(REF, 'images', im), join(dir, im));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const user = (q: string) => ({ role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] });
const answer = (a: string) => [{ role: 'assistant', content: a }];

describe('DPO against transformers + PEFT (idefics3_lora_dpo)', () => {
  it('tokens, the four summed log-probs, the loss (<= 1e-4) and every LoRA gradient (<= 1e-3)', async () => {
    const { readFileSync } = await import('node:fs');
    const meta = JSON.parse(readFileSync(join(CASES, 'idefics3_lora_dpo.json'), 'utf8')) as Record<string, unknown>;
    const m = loadModel(TINY, { dtype: 'f32' });
    const c = readCaseTensors(join(CASES, 'idefics3_lora_dpo.safetensors'));
    try {
      const lora = loadAdapter(m, LORA);
      const r = await runLoraDpo(m, lora, c, meta, TINY, join(REF, 'images'));
      for (const [n, v] of r.scalars) console.log(`  ${n}: ${v.ours} (reference ${v.ref}, rel ${v.relErr.toExponential(2)})`);
      assert.deepEqual(r.idsEqual, { chosen: true, rejected: true });
      assert.equal(r.promptLenEqual, true);
      assert.deepEqual([...r.scalars.keys()].sort(), ['loss', 'policy_chosen_logp', 'policy_rejected_logp', 'ref_chosen_logp', 'ref_rejected_logp']);
      for (const [n, v] of r.scalars) assertWithin(v.relErr, 1e-4, n);
      assert.equal(r.grads.size, 40);
      let worst = 0;
      for (const [n, e] of r.grads) {
        assertWithin(e, 1e-3, `grad.${n}`);
        worst = Math.max(worst, e);
      }
      console.log(`  worst LoRA gradient max|diff|/max|ref| = ${worst.toExponential(2)}`);
      lora.remove();
    } finally {
      for (const t of c.values()) t.dispose();
      m.dispose();
    }
  });
});

/** The loss and gradient of dpoTerms on given summed log-probs (2 pairs: chosen rows 0-1, rejected rows 2-3). */
function termsOn(sums: number[], counts: number[], ref: { chosen: number[]; rejected: number[] }, c: Partial<DpoConfig>): { loss: number; grad: number[]; nll: number | null } {
  const leaf = tensor(sums, [4], { dtype: 'f32' }).requireGrad(true);
  try {
    const { loss, nll } = tidy(() => {
      const t = dpoTerms({ sum: leaf, counts }, ref, resolveDpoConfig(c));
      backward(t.lossSum);
      return { loss: t.lossSum.item(), nll: t.nll };
    });
    return { loss, grad: leaf.grad!.toArray(), nll };
  } finally {
    leaf.grad?.dispose();
    leaf.dispose();
  }
}

describe('DPO loss formulas on given log-probs', () => {
  const sums = [-10, -12, -14, -11], counts = [4, 5, 8, 2];
  const ref = { chosen: [-11, -12.5], rejected: [-13, -11.2] };
  const logsig = (x: number) => -Math.log1p(Math.exp(-x));
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  // delta per pair = (pc - pr) - (rc - rr)
  const delta = [(-10 - -14) - (-11 - -13), (-12 - -11) - (-12.5 - -11.2)];
  const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

  it('sigmoid with beta 0.1: -log σ(β delta) summed over pairs; d/d chosen = -β σ(-β delta)', () => {
    const r = termsOn(sums, counts, ref, {});
    close(r.loss, -logsig(0.1 * delta[0]!) - logsig(0.1 * delta[1]!), 'loss');
    for (let b = 0; b < 2; b++) {
      close(r.grad[b]!, -0.1 * sig(-0.1 * delta[b]!), `d/d chosen ${b}`);
      close(r.grad[2 + b]!, 0.1 * sig(-0.1 * delta[b]!), `d/d rejected ${b}`);
    }
    assert.equal(r.nll, null);
  });

  it('label smoothing s: (1 - s)(-log σ(β delta)) + s(-log σ(-β delta))', () => {
    const s = 0.2, beta = 0.5;
    const r = termsOn(sums, counts, ref, { beta, labelSmoothing: s });
    close(r.loss, delta.reduce((a, d) => a - (1 - s) * logsig(beta * d) - s * logsig(-beta * d), 0), 'loss');
    close(r.grad[0]!, -(1 - s) * beta * sig(-beta * delta[0]!) + s * beta * sig(beta * delta[0]!), 'd/d chosen 0');
  });

  it('ipo: (delta - 1/(2β))² on log-probs averaged over each answer\'s tokens', () => {
    const beta = 0.1;
    const avg = sums.map((v, i) => v / counts[i]!);
    const d = [0, 1].map((b) => (avg[b]! - avg[2 + b]!) - (ref.chosen[b]! / counts[b]! - ref.rejected[b]! / counts[2 + b]!));
    const r = termsOn(sums, counts, ref, { beta, lossType: 'ipo' });
    close(r.loss, d.reduce((a, x) => a + (x - 1 / (2 * beta)) ** 2, 0), 'loss');
    close(r.grad[0]!, (2 * (d[0]! - 1 / (2 * beta))) / counts[0]!, 'd/d chosen 0');
    close(r.grad[2]!, (-2 * (d[0]! - 1 / (2 * beta))) / counts[2]!, 'd/d rejected 0');
  });

  it('hinge: relu(1 - β delta)', () => {
    const beta = 0.4; // pair 0: 1 - 0.4·2 > 0 (counts); pair 1: 1 - 0.4·0.3 > 0
    const r = termsOn(sums, counts, ref, { beta, lossType: 'hinge' });
    close(r.loss, delta.reduce((a, d) => a + Math.max(0, 1 - beta * d), 0), 'loss');
    close(r.grad[0]!, -beta, 'd/d chosen 0');
    close(r.grad[3]!, beta, 'd/d rejected 1');
    const big = termsOn(sums, counts, ref, { beta: 5, lossType: 'hinge' }); // pair 0 past the margin: no loss, no gradient
    close(big.grad[0]!, 0, 'd/d chosen 0 past the margin');
  });

  it('the hybrid adds W x (NLL of the chosen answers: a mean over their tokens) per pair', () => {
    const W = 0.7;
    const base = termsOn(sums, counts, ref, {});
    const r = termsOn(sums, counts, ref, { sftWeight: W });
    const nll = -(sums[0]! + sums[1]!) / (counts[0]! + counts[1]!);
    close(r.nll!, nll, 'nll');
    close(r.loss, base.loss + 2 * W * nll, 'loss');
    close(r.grad[0]!, base.grad[0]! - (2 * W) / (counts[0]! + counts[1]!), 'd/d chosen 0');
    close(r.grad[2]!, base.grad[2]!, 'd/d rejected 0 (the NLL does not see rejected answers)');
  });

  it('bad settings are one-line errors naming the flag', () => {
    assert.throws(() => resolveDpoConfig({ beta: 0 }), /--beta must be a number > 0/);
    assert.throws(() => resolveDpoConfig({ lossType: 'kto' as 'ipo' }), /--loss-type must be sigmoid, ipo or hinge/);
    assert.throws(() => resolveDpoConfig({ labelSmoothing: 0.1, lossType: 'hinge' }), /--label-smoothing goes with --loss-type sigmoid/);
    assert.throws(() => resolveDpoConfig({ sftWeight: -1 }), /--sft-weight must be a number >= 0/);
  });
});

describe('DPO gradient against finite differences on tiny-idefics3 (adapters on, reference with them off)', () => {
  const cases: Partial<DpoConfig>[] = [
    { lossType: 'sigmoid', beta: 0.5 }, { lossType: 'sigmoid', beta: 0.5, labelSmoothing: 0.1, sftWeight: 0.5 },
    { lossType: 'ipo', beta: 0.5 }, { lossType: 'hinge', beta: 0.5 },
  ];
  for (const cfg of cases) {
    it(`${JSON.stringify(cfg)}: the largest gradient entries of a text and a vision adapter match central differences`, async () => {
      const m = loadModel(TINY, { dtype: 'f32' });
      try {
        const processor = loadProcessor(TINY);
        const pairs = [
          { prompt: [user('What color is the square?')], chosen: answer('Blue.'), rejected: answer('A cat.'), images: [join(dir, 'square_64x64.png')] },
          { prompt: [user('How many shapes?')], chosen: answer('Three shapes.'), rejected: answer('None.'), images: [join(dir, 'wide_90x150.png')] },
        ];
        const exs = await Promise.all(pairs.map((p, i) => PreferenceDataset.encodeRow(p, dir, processor, { file: 'pairs', line: i + 1 })));
        const lora = loadAdapter(m, LORA);
        lora.requireGrad(true);
        lora.train();
        const obj = new DpoObjective(processor, cfg, lora);
        const b = await obj.prepare(exs);
        try {
          const lossOf = () => noGrad(() => tidy(() => obj.loss(m, b, 2).item()));
          tidy(() => backward(obj.loss(m, b, 2)));
          const params = lora.parameters();
          const names = ['base_model.model.model.text_model.layers.1.self_attn.v_proj.lora_B.default.weight',
            'base_model.model.model.text_model.layers.0.mlp.up_proj.lora_A.default.weight',
            'base_model.model.model.vision_model.encoder.layers.0.self_attn.q_proj.lora_B.default.weight'];
          let checked = 0;
          for (const n of names) {
            const p = params.get(n)!;
            const g = p.grad!.toFloat32Array();
            const data = p.data as Float32Array;
            // the largest entry (the finite difference of a tiny one is mostly f32 rounding)
            const idx = Array.from(g.keys()).sort((a, c) => Math.abs(g[c]!) - Math.abs(g[a]!)).slice(0, 1);
            for (const i of idx) {
              const x = data[i]!, h = 1e-2 * Math.max(1, Math.abs(x));
              data[i] = x + h;
              const up = lossOf();
              data[i] = x - h;
              const down = lossOf();
              data[i] = x;
              const fd = (up - down) / (2 * h);
              const err = Math.abs(fd - g[i]!) / Math.max(Math.abs(g[i]!), 1e-6);
              console.log(`  ${n.replace('base_model.model.model.', '')}[${i}]: analytic ${g[i]!.toExponential(4)} finite difference ${fd.toExponential(4)} (rel ${err.toExponential(2)})`);
              assert.ok(Math.abs(g[i]!) > 1e-5, `the gradient at ${n}[${i}] is ${g[i]}: the check would see nothing`);
              assertWithin(err, 2e-2, `${n}[${i}] relative difference`);
              checked++;
            }
          }
          assert.equal(checked, 3);
          for (const p of params.values()) { p.grad?.dispose(); p.grad = null; }
        } finally {
          b.dispose();
          lora.remove();
        }
      } finally {
        m.dispose();
      }
    });
  }
});

describe('bad preference rows', () => {
  const write = (name: string, rows: unknown[]) => {
    const p = join(dir, name);
    writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return p;
  };
  const good = { prompt: [user('Color?')], chosen: answer('Blue.'), rejected: answer('Red.'), images: ['square_64x64.png'] };
  const plainGood = { prompt: '<|im_start|>User:<image>Color?<end_of_utterance>\nAssistant:', chosen: ' Blue.<end_of_utterance>\n', rejected: ' Red.<end_of_utterance>\n', images: ['square_64x64.png'] };
  const bads: [string, unknown, RegExp][] = [
    ['empty chosen (plain)', { ...plainGood, chosen: '' }, /"chosen" is empty/],
    ['blank rejected (plain)', { ...plainGood, rejected: '   ' }, /"rejected" is empty/],
    ['identical answers (plain)', { ...plainGood, rejected: plainGood.chosen }, /"chosen" and "rejected" are the same answer/],
    ['empty chosen (conversational)', { ...good, chosen: answer('') }, /"chosen" is empty/],
    ['identical answers (conversational)', { ...good, rejected: answer('Blue.') }, /"chosen" and "rejected" are the same answer/],
    ['no rejected', { prompt: good.prompt, chosen: good.chosen, images: good.images }, /"rejected" is missing/],
    ['mixed forms', { ...good, rejected: 'Red.' }, /must both be strings .* or both lists of messages/],
  ];
  for (const [what, row, msg] of bads) {
    it(`${what}: a one-line error naming the file and line; --skip-bad-rows skips and counts it`, async () => {
      const processor = loadProcessor(TINY);
      const p = write('bad.jsonl', [good, row, plainGood]);
      await assert.rejects(PreferenceDataset.load(p, processor), (e: unknown) => {
        assert.ok(e instanceof VlmkitError, String(e));
        assert.match(e.message, new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: `));
        assert.match(e.message, msg);
        assert.match(e.message, /--skip-bad-rows/);
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      });
      const ds = await PreferenceDataset.load(p, processor, { skipBadRows: true });
      assert.equal(ds.length, 2);
      assert.deepEqual(ds.summary().skipped, 1);
      assert.equal(ds.skipped[0]!.line, 2);
      assert.match(ds.skipped[0]!.reason, msg);
    });
  }

  it('a file of only bad rows is an error even with --skip-bad-rows', async () => {
    const p = write('allbad.jsonl', [{ ...plainGood, chosen: '' }]);
    await assert.rejects(PreferenceDataset.load(p, loadProcessor(TINY), { skipBadRows: true }), /no usable preference rows \(1 of 1 skipped as bad\)/);
  });

  it('the implicit prompt: chosen and rejected conversations that start alike', async () => {
    const processor = loadProcessor(TINY);
    const p = write('implicit.jsonl', [{ chosen: [user('Color?'), ...answer('Blue.')], rejected: [user('Color?'), ...answer('Red.')], images: ['square_64x64.png'] }]);
    const [ex] = (await PreferenceDataset.load(p, processor)).examples;
    const q = write('explicit.jsonl', [good]);
    const [ey] = (await PreferenceDataset.load(q, processor)).examples;
    assert.deepEqual(ex!.chosen, ey!.chosen);
    assert.deepEqual(ex!.rejected, ey!.rejected);
  });
});

