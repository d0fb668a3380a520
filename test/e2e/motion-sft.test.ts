// Motion clips end to end on tiny-idefics3: `vlmkit data motion` writes real clips and their questions, a LoRA
// SFT run on a handful of them lowers the loss, the adapter changes the greedy answer about a clip, and the
// held-out clips score through `vlmkit eval --adapter`.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadVlm } from '../../src/api.js';
import { loadAdapter } from '../../src/train/peft.js';
import { ROOT, vlmkit } from './spawn-cli.js';

const TINY = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-idefics3');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-motion-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const jsonLines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('motion clips: LoRA SFT', () => {
  it('lowers the loss and the adapter changes the answers', async () => {
    const data = join(tmp, 'motion');
    const made = await vlmkit(['data', 'motion', '--n', '6', '--seed', '1', '--size', '32', '--out', data]);
    assert.equal(made.code, 0, made.stderr);
    const train = join(data, 'train.jsonl');
    assert.equal(readFileSync(train, 'utf8').trim().split('\n').length, 5);
    const out = join(tmp, 'run');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', train, '--val', train, '--out', out, '--max-steps', '8',
      '--batch-size', '5', '--lr', '3e-2', '--warmup-steps', '1', '--lora', 'r=8,alpha=16,targets=all-linear', '--json', '--seed', '1']);
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines(r.stdout);
    const first = recs.find((x) => x.type === 'train')!.loss as number;
    const evalLoss = recs.find((x) => x.type === 'eval')!.eval_loss as number;
    assert.ok(Number.isFinite(first) && Number.isFinite(evalLoss) && evalLoss < first - 0.5, `loss ${first} -> ${evalLoss}`);

    const row = JSON.parse(readFileSync(join(data, 'test.jsonl'), 'utf8').trim().split('\n')[0]!) as { messages: { content: { path?: string }[] }[] };
    const video = join(data, row.messages[0]!.content[0]!.path!);
    const vlm = await loadVlm(TINY);
    try {
      const ask = async () => (await vlm.generate('What happens in the video?', { videos: [video] }, { maxNewTokens: 8, temperature: 0 })).tokenIds;
      const before = await ask();
      loadAdapter(vlm.model, out);
      const withAdapter = await ask();
      assert.equal(before.length > 0 && withAdapter.length > 0, true);
      assert.notDeepEqual(withAdapter, before);
    } finally {
      vlm.dispose();
    }
    // the held-out clips score through vlmkit eval with the adapter (video parts in eval rows)
    const ev = await vlmkit(['eval', '--model', TINY, '--adapter', out, '--data', join(data, 'test.jsonl'), '--metric', 'exact', '--max-new-tokens', '2', '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    const report = JSON.parse(ev.stdout.trim().split('\n')[0]!) as { rows: number; adapter: string; skipped: unknown[] };
    assert.deepEqual({ rows: report.rows, adapter: report.adapter, skipped: report.skipped.length }, { rows: 1, adapter: out, skipped: 0 });
  });
});
