// `vlmkit train dpo` as a run (runDpo) on tiny-idefics3 with pairs over the reference images: a few steps raise
// the reward margin on the training pairs; the metrics (rewards/*, logps/*) reach metrics.jsonl and --json; the
// PEFT adapter is saved; precomputed reference log-probs give the same first step as the adapters-off reference
// and are cached for a resumed run; a resume continues the run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/engine/backend/native/index.js';
import { runDpo } from '../../src/train/dpo-run.js';
import { trainOptions } from '../../src/cli/train.js';
import { REF, TINY } from './fixtures.js';

let dir: string;
let data: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlmkit-dpo-run-'));
  for (const im of ['square_64x64.png', 'wide_90x150.png', 'tall_200x70.png']) copyFileSync(join(REF, 'images', im), join(dir, im));
  const user = (q: string) => [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] }];
  const a = (s: string) => [{ role: 'assistant', content: s }];
  const rows = [
    { prompt: user('What color is the square?'), chosen: a('Blue.'), rejected: a('A cat.'), images: ['square_64x64.png'] },
    { prompt: user('How many shapes?'), chosen: a('Three.'), rejected: a('Seven dogs.'), images: ['wide_90x150.png'] },
    { prompt: '<|im_start|>User:<image>Is it tall?<end_of_utterance>\nAssistant:', chosen: ' Yes.<end_of_utterance>\n', rejected: ' No idea.<end_of_utterance>\n', images: ['tall_200x70.png'] },
    { prompt: user('Describe it.'), chosen: a('Shapes on white.'), rejected: a('Nothing.'), images: ['square_64x64.png'] },
  ];
  data = join(dir, 'pairs.jsonl');
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const records = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const base = (out: string) => ({
  model: TINY, data, out, lr: 5e-3, maxSteps: 6, batchSize: 2, schedule: 'constant' as const, seed: 3, f32: true,
  lora: { r: 4, loraAlpha: 8 }, beta: 0.5,
});

describe('runDpo on tiny-idefics3', () => {
  it('a few steps raise the reward margin and accuracy on the training pairs; metrics and the adapter are written', async () => {
    const out = join(dir, 'run');
    const lines: string[] = [];
    const r = await runDpo({ ...base(out), val: data, evalEvery: 3 }, { json: true, stdout: { write: (s: string) => lines.push(s) } });
    assert.equal(r.steps, 6);
    assert.equal(r.output, out);
    assert.ok(existsSync(join(out, 'adapter_model.safetensors')) && existsSync(join(out, 'adapter_config.json')), 'PEFT adapter files');
    const evals = records(out).filter((x) => x.type === 'eval');
    const train = records(out).filter((x) => x.type === 'train');
    assert.equal(train.length, 6);
    for (const k of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'])
      for (const t of train) assert.ok(typeof t[k] === 'number' && Number.isFinite(t[k]), `${k} in every train record: ${JSON.stringify(t)}`);
    // the first step starts at the reference: the policy is base + zero-initialised B, so every reward is 0
    assert.ok(Math.abs(train[0]!['rewards/margins'] as number) < 1e-6, `first margin ${train[0]!['rewards/margins']}`);
    assert.ok(Math.abs((train[0]!.loss as number) - Math.log(2)) < 1e-5, `first loss ${train[0]!.loss} (log 2 at the reference)`);
    assert.equal(evals.length, 2);
    const [mid, last] = evals as [Record<string, number>, Record<string, number>];
    console.log(`  eval margin after 3 steps ${mid['eval_rewards/margins']}, after 6 ${last['eval_rewards/margins']}; accuracy ${last['eval_rewards/accuracies']}; loss ${last.eval_loss}`);
    assert.ok(last['eval_rewards/margins']! > 0.05, `margin after 6 steps: ${last['eval_rewards/margins']}`);
    assert.ok(last['eval_rewards/margins']! > mid['eval_rewards/margins']!, 'the margin keeps rising');
    assert.equal(last['eval_rewards/accuracies'], 1);
    assert.ok(last.eval_loss! < Math.log(2), `eval loss ${last.eval_loss} below log 2`);
    assert.ok(lines.some((l) => l.includes('"rewards/margins"')), '--json lines carry the metrics');
  });

  it('--precompute-ref: the same first step as the adapters-off reference, cached and reused by a resume', async () => {
    const live = join(dir, 'live'), pre = join(dir, 'pre');
    await runDpo({ ...base(live), maxSteps: 2 });
    const say: string[] = [];
    await runDpo({ ...base(pre), maxSteps: 2, precomputeRef: true, saveEvery: 1 }, { stderr: { write: (s: string) => say.push(s) } });
    assert.ok(say.some((s) => /reference log-probs of 4 pairs computed/.test(s)), say.join(''));
    const a = records(live).filter((x) => x.type === 'train'), b = records(pre).filter((x) => x.type === 'train');
    for (let i = 0; i < 2; i++) {
      assert.ok(Math.abs((a[i]!.loss as number) - (b[i]!.loss as number)) < 1e-5, `step ${i + 1}: ${a[i]!.loss} vs ${b[i]!.loss}`);
      assert.ok(Math.abs((a[i]!['rewards/margins'] as number) - (b[i]!['rewards/margins'] as number)) < 1e-5);
    }
    assert.ok(existsSync(join(pre, 'reference-logps.json')));
    // a longer run resumed from checkpoint-2 reads the cache (the pairs and base are the same)
    const say2: string[] = [];
    const r = await runDpo({ ...base(pre), maxSteps: 3, precomputeRef: true, resume: join(pre, 'checkpoint-2') }, { stderr: { write: (s: string) => say2.push(s) } }).catch((e: Error) => e);
    // the step count is part of the run: a different --max-steps is another run, refused with a one-line error
    assert.ok(r instanceof Error && /cannot resume .*totalSteps/.test(r.message), String(r));
    const r2 = await runDpo({ ...base(pre), maxSteps: 2, precomputeRef: true, resume: join(pre, 'checkpoint-1') }, { stderr: { write: (s: string) => say2.push(s) } });
    assert.equal(r2.steps, 2);
    assert.ok(say2.some((s) => /reference log-probs of 4 pairs read from/.test(s)), say2.join(''));
    const resumed = records(pre).filter((x) => x.type === 'train');
    assert.ok(Math.abs((resumed[resumed.length - 1]!.loss as number) - (b[1]!.loss as number)) < 1e-6, 'the resumed step 2 equals the first run\'s');
  });

  it('the hybrid logs the NLL of the chosen answers; the CLI reads the DPO flags', async () => {
    const out = join(dir, 'hybrid');
    await runDpo({ ...base(out), maxSteps: 1, sftWeight: 1, lossType: 'sigmoid' });
    const [t] = records(out).filter((x) => x.type === 'train');
    assert.ok(typeof t!.nll_loss === 'number' && (t!.nll_loss as number) > 0, JSON.stringify(t));
    assert.ok(Math.abs((t!.loss as number) - (Math.log(2) + (t!.nll_loss as number))) < 1e-4, `loss = log 2 + NLL at the reference: ${t!.loss}`);
    const { opts } = trainOptions(['--model', TINY, '--data', data, '--out', out, '--beta', '0.2', '--loss-type', 'ipo', '--sft-weight', '0.5', '--precompute-ref'], 'dpo');
    assert.equal(opts.beta, 0.2);
    assert.equal(opts.lossType, 'ipo');
    assert.equal(opts.sftWeight, 0.5);
    assert.equal(opts.precomputeRef, true);
    assert.throws(() => trainOptions(['--model', TINY, '--data', data, '--out', out, '--loss-type', 'kto'], 'dpo'), /--loss-type takes sigmoid, ipo or hinge/);
    assert.throws(() => trainOptions(['--model', TINY, '--data', data, '--out', out, '--full'], 'dpo'), /--full is not an option of train dpo/);
    assert.throws(() => trainOptions(['--model', TINY, '--data', data, '--out', out, '--beta', '0.1']), /--beta is an option of vlmkit train dpo/);
  });
});
