// `vlmkit train sft --dora` end to end on tiny-idefics3: a few DoRA steps lower the loss, the adapter is PEFT's
// DoRA layout, it changes the greedy answer after a reload (`vlmkit ask --adapter` answers the same) and scores
// through `vlmkit eval --adapter`; DoRA on an
// NF4 base (QDoRA) trains and its adapter loads onto the 16/32-bit base. The flag, its config-file form and its
// conflicts parse as documented.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadVlm } from '../../src/api.js';
import { trainOptions } from '../../src/cli/train.js';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadAdapter } from '../../src/train/peft.js';
import { runSft } from '../../src/train/sft.js';
import { TINY, writeSftData } from '../train/fixtures.js';
import { vlmkit } from './spawn-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-dora-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 8);
const jsonLines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('vlmkit train sft --dora', () => {
  it('--dora, dora=true in --lora and "dora": true in a config file turn DoRA on; --full --dora is an error', () => {
    const req = ['--model', TINY, '--data', data.train, '--out', join(tmp, 'x')];
    assert.equal(trainOptions([...req, '--dora']).opts.lora?.useDora, true);
    assert.equal(trainOptions([...req, '--lora', 'r=4,alpha=8,dora=true']).opts.lora?.useDora, true);
    assert.equal(trainOptions(req).opts.lora?.useDora, undefined, 'off by default');
    const cfg = join(tmp, 'dora.json');
    writeFileSync(cfg, JSON.stringify({ dora: true, lora: { r: 4, alpha: 8 } }));
    assert.equal(trainOptions([...req, '--config', cfg]).opts.lora?.useDora, true);
    assert.throws(() => trainOptions([...req, '--full', '--dora']), (e: Error) => e instanceof VlmkitError && /--dora .* --full/.test(e.message));
  });

  it('a few steps lower the loss; the adapter is PEFT\'s DoRA layout, changes the answer after a reload and scores via eval', async () => {
    const out = join(tmp, 'run');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', data.train, '--val', data.train, '--out', out, '--max-steps', '10',
      '--batch-size', '8', '--lr', '3e-2', '--warmup-steps', '1', '--lora', 'r=8,alpha=16,targets=all-linear', '--dora', '--json', '--seed', '1']);
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines(r.stdout);
    const first = recs.find((x) => x.type === 'train')!.loss as number;
    const evalLoss = recs.find((x) => x.type === 'eval')!.eval_loss as number;
    assert.ok(Number.isFinite(first) && Number.isFinite(evalLoss) && evalLoss < first - 0.5, `loss ${first} -> ${evalLoss}`);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.use_dora, true);
    const f = SafetensorsFile.open(join(out, 'adapter_model.safetensors'));
    try {
      const names = f.names();
      const mags = names.filter((k) => k.endsWith('.lora_magnitude_vector'));
      assert.equal(mags.length, names.filter((k) => k.endsWith('.lora_A.weight')).length, 'a magnitude per adapted module');
      assert.ok(mags.length > 7);
    } finally {
      f.close();
    }

    const vlm = await loadVlm(TINY);
    try {
      const ask = async () => (await vlm.generate('What is in this image?', { images: [join(tmp, 'wide_90x150.png')] }, { maxNewTokens: 8, temperature: 0 })).tokenIds;
      const before = await ask();
      const lora = loadAdapter(vlm.model, out);
      assert.ok(lora.config.useDora);
      const withAdapter = await ask();
      assert.ok(before.length > 0 && withAdapter.length > 0);
      assert.notDeepEqual(withAdapter, before);
      // vlmkit ask --adapter gives the same greedy tokens
      const asked = await vlmkit(['ask', '--model', TINY, '--adapter', out, '--image', join(tmp, 'wide_90x150.png'), '--max-new-tokens', '8', '--temperature', '0', '--json', 'What is in this image?']);
      assert.equal(asked.code, 0, asked.stderr);
      assert.deepEqual((JSON.parse(asked.stdout) as { token_ids: number[] }).token_ids, withAdapter);
    } finally {
      vlm.dispose();
    }
    const evalRows = join(tmp, 'eval.jsonl');
    writeFileSync(evalRows, JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }, { role: 'assistant', content: 'Shapes, number 0.' }], images: [join(tmp, 'wide_90x150.png')] }) + '\n');
    const ev = await vlmkit(['eval', '--model', TINY, '--adapter', out, '--data', evalRows, '--metric', 'exact', '--max-new-tokens', '8', '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    const report = JSON.parse(ev.stdout.trim().split('\n')[0]!) as { rows: number; adapter: string };
    assert.deepEqual({ rows: report.rows, adapter: report.adapter }, { rows: 1, adapter: out });
  });

  it('QDoRA: --dora on an NF4 base trains, and its adapter loads onto the unquantized base', async () => {
    const out = join(tmp, 'qdora');
    const { opts } = trainOptions(['--model', TINY, '--data', data.train, '--out', out, '--max-steps', '3', '--batch-size', '4',
      '--lr', '2e-2', '--lora', 'r=4,alpha=8', '--dora', '--quant', 'nf4', '--seed', '2']);
    const r = await runSft(opts);
    assert.equal(r.steps, 3);
    assert.ok(r.losses.length === 3 && r.losses.every(Number.isFinite), `losses ${r.losses}`);
    const vlm = await loadVlm(TINY);
    try {
      const lora = loadAdapter(vlm.model, out);
      assert.ok(lora.config.useDora && lora.layers().size > 0);
      lora.merge();
    } finally {
      vlm.dispose();
    }
  });
});
