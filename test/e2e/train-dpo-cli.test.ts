// `vlmkit train dpo` as a user runs it: a bad pair is a one-line error naming file:line (exit 1), skipped and
// counted with --skip-bad-rows; --json streams the reward metrics and the run ends with a PEFT adapter.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vlmkit } from './spawn-cli.js';
import { REF, TINY } from '../train/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-dpo-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
copyFileSync(join(REF, 'images', 'square_64x64.png'), join(tmp, 'square_64x64.png'));
const user = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Color?' }] }];
const a = (s: string) => [{ role: 'assistant', content: s }];
const pairs = join(tmp, 'pairs.jsonl');
writeFileSync(pairs, [
  { prompt: user, chosen: a('Blue.'), rejected: a('Red.'), images: ['square_64x64.png'] },
  { prompt: user, chosen: a('Blue.'), rejected: a('Blue.'), images: ['square_64x64.png'] },
].map((r) => JSON.stringify(r)).join('\n') + '\n');

describe('vlmkit train dpo', () => {
  it('identical answers: a one-line error naming pairs.jsonl:2; --skip-bad-rows trains on the rest', async () => {
    const bad = await vlmkit(['train', 'dpo', '--model', TINY, '--data', pairs, '--out', join(tmp, 'r1'), '--max-steps', '1']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /pairs\.jsonl:2: "chosen" and "rejected" are the same answer.*--skip-bad-rows/);
    const out = join(tmp, 'r2');
    const r = await vlmkit(['train', 'dpo', '--model', TINY, '--data', pairs, '--out', out, '--max-steps', '1', '--skip-bad-rows', '--json', '--beta', '0.2']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = lines.find((l) => l.event === 'start')!;
    assert.equal((start.train as { skipped: number }).skipped, 1);
    assert.equal(start.beta, 0.2);
    const step = lines.find((l) => l.type === 'train')!;
    assert.ok(typeof step['rewards/margins'] === 'number' && typeof step['logps/chosen'] === 'number', JSON.stringify(step));
    assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  });
});
